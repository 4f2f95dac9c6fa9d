using System.Runtime.InteropServices;

namespace ZcFlow.Native;

/// <summary>A failed system call: what was attempted, errno, its text and, where known, what to do.</summary>
public sealed class ErrnoException : ZcFlowException
{
    public int Errno { get; }

    public ErrnoException(string what, int errno, string? hint = null)
        : base(Format(what, errno, hint)) => Errno = errno;

    /// <summary>Builds the exception from the last P/Invoke error of the calling thread.</summary>
    public static ErrnoException FromLastError(string what, string? hint = null)
        => new(what, Marshal.GetLastPInvokeError(), hint);

    public static string Describe(int errno) => $"{Name(errno)}: {Marshal.GetPInvokeErrorMessage(errno)}";

    private static string Format(string what, int errno, string? hint)
        => hint is null ? $"{what} failed ({Describe(errno)})" : $"{what} failed ({Describe(errno)}): {hint}";

    private static string Name(int errno) => errno switch
    {
        Libc.EPERM => "EPERM",
        Libc.ENOENT => "ENOENT",
        Libc.ESRCH => "ESRCH",
        Libc.EINTR => "EINTR",
        Libc.EAGAIN => "EAGAIN",
        Libc.ENOMEM => "ENOMEM",
        Libc.EACCES => "EACCES",
        Libc.EEXIST => "EEXIST",
        Libc.EINVAL => "EINVAL",
        Libc.ETIMEDOUT => "ETIMEDOUT",
        Libc.EBADF => "EBADF",
        Libc.EBUSY => "EBUSY",
        Libc.EADDRINUSE => "EADDRINUSE",
        Libc.ECONNREFUSED => "ECONNREFUSED",
        _ => $"errno {errno}",
    };
}
