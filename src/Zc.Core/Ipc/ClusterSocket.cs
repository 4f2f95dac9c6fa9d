using System.Runtime.InteropServices;
using ZcFlow.Native;

namespace ZcFlow.Ipc;

/// <summary>
/// The unix socket a cluster is served on (<c>SOCK_SEQPACKET</c>: one message per send, and a
/// hang-up the other end sees at once when a process dies), and the few things done with it:
/// listen, connect, a message with file descriptors riding along (<c>SCM_RIGHTS</c>), and the
/// peer's credentials as the kernel vouches for them (<c>SO_PEERCRED</c>, a pid translated into
/// the asker's PID namespace).
/// </summary>
internal static unsafe class ClusterSocket
{
    public const int MaxFds = 3 + AttachReply.MaxPieces;

    /// <summary>Binds and listens on <paramref name="path"/> (removing what was there), 0600, or 0660 for <paramref name="group"/>.</summary>
    public static SafeFileDescriptor Listen(string path, int? group)
    {
        SafeFileDescriptor fd = NewSocket();
        try
        {
            Libc.Unlink(path);
            SockaddrUn address = Address(path, out int length);
            if (Libc.Bind(fd.Fd, &address, length) != 0) throw ErrnoException.FromLastError($"binding {path}");
            if (group is int g && Libc.Chown(path, -1, g) != 0)
                throw ErrnoException.FromLastError($"giving {path} to group {g}", "the process must belong to that group or be root");
            if (Libc.Chmod(path, group is null ? 0x180u /* 0600 */ : 0x1B0u /* 0660 */) != 0) throw ErrnoException.FromLastError($"chmod of {path}");
            if (Libc.Listen(fd.Fd, 128) != 0) throw ErrnoException.FromLastError($"listening on {path}");
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Connects to <paramref name="path"/>; null with <paramref name="errno"/> when nobody listens there (ENOENT, ECONNREFUSED) or it is not ours to reach (EACCES).</summary>
    public static SafeFileDescriptor? Connect(string path, out int errno)
    {
        SafeFileDescriptor fd = NewSocket(blocking: true);
        SockaddrUn address = Address(path, out int length);
        if (Libc.Connect(fd.Fd, &address, length) == 0)
        {
            errno = 0;
            return fd;
        }
        errno = Marshal.GetLastPInvokeError();
        fd.Dispose();
        return null;
    }

    /// <summary>The pid of the process serving cluster <paramref name="id"/>, as this process's PID namespace sees it; null when none answers.</summary>
    public static int? PeerPid(uint id)
    {
        using SafeFileDescriptor? fd = Connect(ClusterLock.SocketPathOf(id), out _);
        return fd is null ? null : Credentials(fd).Pid;
    }

    public static UCred Credentials(SafeFileDescriptor fd)
    {
        UCred cred;
        int length = sizeof(UCred);
        return Libc.GetSockOpt(fd.Fd, Libc.SOL_SOCKET, Libc.SO_PEERCRED, &cred, ref length) == 0 ? cred : default;
    }

    /// <summary>
    /// Asks cluster <paramref name="clusterId"/>'s owner, connected on <paramref name="socket"/>, for a queue
    /// (<see cref="AttachRequest.Attach"/>) or a look at the counters (<see cref="AttachRequest.Monitor"/>), and
    /// returns its answer, the descriptors that came with it in <paramref name="fds"/> (the caller disposes them).
    /// An owner that does not answer is gone; one that answers in another layout version is refused.
    /// </summary>
    public static AttachReply Ask(SafeFileDescriptor socket, uint clusterId, uint kind, int queue, List<SafeFileDescriptor> fds, int timeoutMs)
    {
        var request = new AttachRequest { Magic = AttachRequest.CurrentMagic, Version = Memory.ArenaLayout.Version, Kind = kind, Queue = queue };
        if (!Send(socket, request, []) || Receive(socket, out AttachReply reply, fds, timeoutMs) <= 0)
            throw new ClusterGoneException(clusterId, false, $"cluster {clusterId}'s owner (pid {Credentials(socket).Pid}) did not answer");
        if (reply.Magic != AttachReply.CurrentMagic || reply.Version != Memory.ArenaLayout.Version || reply.ClusterId != clusterId)
            throw new InvalidDataException($"cluster {clusterId}'s owner speaks layout version {reply.Version}; this build speaks version {Memory.ArenaLayout.Version}");
        return reply;
    }

    /// <summary>Sends one message with <paramref name="fds"/> attached; false when the peer is gone.</summary>
    public static bool Send<T>(SafeFileDescriptor socket, in T message, ReadOnlySpan<int> fds) where T : unmanaged
    {
        byte* control = stackalloc byte[ControlSize];
        fixed (T* body = &message)
        {
            var iov = new IoVec { Base = body, Length = (nuint)sizeof(T) };
            var msg = new MsgHdr { Iov = &iov, IovLength = 1 };
            if (fds.Length > 0)
            {
                if (fds.Length > MaxFds) throw new ArgumentOutOfRangeException(nameof(fds));
                new Span<byte>(control, ControlSize).Clear();
                var header = (CmsgHdr*)control;
                header->Level = Libc.SOL_SOCKET;
                header->Type = Libc.SCM_RIGHTS;
                header->Length = (nuint)(sizeof(CmsgHdr) + sizeof(int) * fds.Length);
                fds.CopyTo(new Span<int>(control + sizeof(CmsgHdr), fds.Length));
                msg.Control = control;
                // CMSG_SPACE of these descriptors: what follows must not read as a second, empty header (EINVAL)
                msg.ControlLength = (nuint)(sizeof(CmsgHdr) + (sizeof(int) * fds.Length + 7) / 8 * 8);
            }
            return Libc.SendMsg(socket.Fd, &msg, Libc.MSG_NOSIGNAL | Libc.MSG_DONTWAIT) == sizeof(T);
        }
    }

    /// <summary>
    /// Receives one message into <paramref name="message"/>, waiting up to <paramref name="timeoutMs"/>,
    /// with the descriptors that came along it in <paramref name="fds"/>. Returns the bytes received
    /// (0: the peer hung up; -1: nothing came in time, or an error).
    /// </summary>
    public static int Receive<T>(SafeFileDescriptor socket, out T message, List<SafeFileDescriptor> fds, int timeoutMs) where T : unmanaged
    {
        message = default;
        if (!WaitReadable(socket, timeoutMs)) return -1;
        byte* control = stackalloc byte[ControlSize];
        nint n;
        fixed (T* body = &message)
        {
            var iov = new IoVec { Base = body, Length = (nuint)sizeof(T) };
            var msg = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)ControlSize };
            n = Libc.RecvMsg(socket.Fd, &msg, Libc.MSG_DONTWAIT | Libc.MSG_CMSG_CLOEXEC);
            if (n >= 0 && msg.ControlLength >= (nuint)sizeof(CmsgHdr))
            {
                var header = (CmsgHdr*)control;
                if (header->Level == Libc.SOL_SOCKET && header->Type == Libc.SCM_RIGHTS)
                {
                    int count = (int)(((long)header->Length - sizeof(CmsgHdr)) / sizeof(int));
                    for (int i = 0; i < Math.Min(count, MaxFds); i++) fds.Add(new SafeFileDescriptor(((int*)(control + sizeof(CmsgHdr)))[i]));
                }
            }
        }
        return (int)n;
    }

    /// <summary>True when a message or a hang-up is waiting.</summary>
    public static bool WaitReadable(SafeFileDescriptor socket, int timeoutMs)
    {
        var p = new PollFd { Fd = socket.Fd, Events = Libc.POLLIN };
        return Libc.Poll(&p, 1, timeoutMs) > 0;
    }

    private static int ControlSize => sizeof(CmsgHdr) + sizeof(int) * MaxFds;

    private static SafeFileDescriptor NewSocket(bool blocking = false)
    {
        int fd = Libc.Socket(Libc.AF_UNIX, Libc.SOCK_SEQPACKET | Libc.SOCK_CLOEXEC | (blocking ? 0 : Libc.SOCK_NONBLOCK), 0);
        if (fd < 0) throw ErrnoException.FromLastError("creating a unix socket");
        return new SafeFileDescriptor(fd);
    }

    private static SockaddrUn Address(string path, out int length)
    {
        var address = new SockaddrUn { Family = Libc.AF_UNIX };
        int n = System.Text.Encoding.UTF8.GetBytes(path, new Span<byte>(address.Path, SockaddrUn.PathCapacity - 1));
        length = sizeof(ushort) + n + 1;
        return address;
    }
}
