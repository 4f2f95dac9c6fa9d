using System.Runtime.InteropServices;

namespace ZcFlow.Native;

/// <summary>An <c>mmap</c>ed region; releasing it unmaps it.</summary>
internal sealed class SafeMapping : SafeHandle
{
    public nuint Length { get; }

    public SafeMapping(nint address, nuint length) : base(Libc.MAP_FAILED, ownsHandle: true)
    {
        SetHandle(address);
        Length = length;
    }

    public override bool IsInvalid => handle == Libc.MAP_FAILED || handle == 0;

    public unsafe byte* Pointer => (byte*)handle;

    protected override bool ReleaseHandle() => Libc.Munmap(handle, Length) == 0;
}
