using System.Runtime.InteropServices;
using ZcFlow.Native;

namespace ZcFlow.Ipc;

/// <summary>Whether another process is there, the way owners and consumers watch each other.</summary>
internal static class Processes
{
    /// <summary>True while <paramref name="pid"/> exists (a process we may not signal exists too).</summary>
    public static bool IsAlive(int pid)
        => pid > 0 && (Libc.Kill(pid, 0) == 0 || Marshal.GetLastPInvokeError() == Libc.EPERM);
}
