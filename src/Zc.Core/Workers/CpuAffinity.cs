using ZcFlow.Native;

namespace ZcFlow.Workers;

/// <summary>Pins the calling thread to a core and says where it runs.</summary>
public static unsafe class CpuAffinity
{
    /// <summary>Binds the calling OS thread to <paramref name="core"/>; a core the process may not use is a clear error.</summary>
    public static void PinCurrentThread(int core)
    {
        if ((uint)core >= CpuSet.Capacity) throw new ArgumentOutOfRangeException(nameof(core), core, $"core {core} does not exist");
        CpuSet set = default;
        set.Add(core);
        if (Libc.SchedSetAffinity(0, (nuint)sizeof(CpuSet), &set) == 0) return;
        int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        if (errno == Libc.EINVAL)
            throw new ArgumentOutOfRangeException(nameof(core), core,
                $"core {core} is not one this process may run on (it may use {string.Join(",", AllowedCores())})");
        throw new ErrnoException($"pinning thread {Libc.GetTid()} to core {core}", errno);
    }

    /// <summary>
    /// The cores the process may run on: its main thread's affinity, which threads it starts
    /// inherit unless pinned elsewhere.
    /// </summary>
    public static int[] AllowedCores()
    {
        CpuSet allowed = default;
        if (Libc.SchedGetAffinity(Libc.GetPid(), (nuint)sizeof(CpuSet), &allowed) != 0) throw ErrnoException.FromLastError("sched_getaffinity");
        return AllowedCores(allowed);
    }

    private static int[] AllowedCores(in CpuSet set)
    {
        var cores = new List<int>();
        for (int c = 0; c < CpuSet.Capacity; c++) if (set.Contains(c)) cores.Add(c);
        return [.. cores];
    }

    /// <summary>The core the calling thread is on now.</summary>
    public static int CurrentCore => Libc.SchedGetCpu();
}
