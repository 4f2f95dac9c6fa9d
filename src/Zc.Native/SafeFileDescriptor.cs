using Microsoft.Win32.SafeHandles;

namespace ZcFlow.Native;

/// <summary>An open file descriptor; releasing it closes it.</summary>
internal sealed class SafeFileDescriptor : SafeHandleZeroOrMinusOneIsInvalid
{
    public SafeFileDescriptor() : base(ownsHandle: true) { }

    public SafeFileDescriptor(int fd) : base(ownsHandle: true) => SetHandle(fd);

    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => Libc.Close((int)handle) == 0;
}
