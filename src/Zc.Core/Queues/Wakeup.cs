using ZcFlow.Native;

namespace ZcFlow.Queues;

/// <summary>
/// How a queue's producer wakes a consumer that sleeps: a pipe, one per queue, made by the owner. The owner keeps the
/// write end; a consumer gets the read end. The owner writes with O_NONBLOCK set on a file description no consumer ever
/// holds, so nothing a consumer does to its end (leaving the pipe full, changing its flags) can block the owner: a full
/// pipe is readable already.
///
/// A consumer whose event loop waits by itself (poll, select, epoll; libpcap's selectable descriptor) is given
/// <see cref="Descriptor"/>: an epoll instance over the pipe and an eventfd of the consumer's own, with which it makes
/// the descriptor readable when packets wait already as it prepares to wait.
/// </summary>
internal sealed unsafe class Wakeup : IDisposable
{
    private readonly SafeFileDescriptor _read;
    private readonly SafeFileDescriptor? _write;    // the owner's; null in a consumer's process
    private SafeFileDescriptor? _epoll, _self;      // made when the consumer first asks for a descriptor
    private bool _selfSignalled;

    private Wakeup(SafeFileDescriptor read, SafeFileDescriptor? write)
    {
        _read = read;
        _write = write;
    }

    /// <summary>The owner's: a new pipe, both ends non-blocking and closed on exec.</summary>
    public static Wakeup Create()
    {
        int* fds = stackalloc int[2];
        if (Libc.Pipe2(fds, Libc.O_NONBLOCK | Libc.O_CLOEXEC) != 0) throw ErrnoException.FromLastError("creating a queue's wake-up pipe");
        return new Wakeup(new SafeFileDescriptor(fds[0]), new SafeFileDescriptor(fds[1]));
    }

    /// <summary>A consumer's: the read end the owner handed over.</summary>
    public static Wakeup Attach(SafeFileDescriptor read) => new(read, null);

    /// <summary>The pipe's read end, which the owner hands to the consumer that attaches.</summary>
    public SafeFileDescriptor ReadEnd => _read;

    /// <summary>The consumer's descriptor to wait on: readable once the producer has signalled, or the consumer itself.</summary>
    public int Descriptor
    {
        get
        {
            if (_epoll is null) MakeDescriptor();
            return _epoll!.Fd;
        }
    }

    private void MakeDescriptor()
    {
        int self = Libc.EventFd(0, Libc.EFD_NONBLOCK | Libc.EFD_CLOEXEC);
        if (self < 0) throw ErrnoException.FromLastError("creating a queue's eventfd");
        var selfFd = new SafeFileDescriptor(self);
        int epoll = Libc.EpollCreate1(Libc.EPOLL_CLOEXEC);
        if (epoll < 0)
        {
            selfFd.Dispose();
            throw ErrnoException.FromLastError("creating a queue's epoll descriptor");
        }
        var epollFd = new SafeFileDescriptor(epoll);
        var ev = new EpollEvent { Events = Libc.EPOLLIN };
        if (Libc.EpollCtl(epoll, Libc.EPOLL_CTL_ADD, _read.Fd, &ev) != 0 || Libc.EpollCtl(epoll, Libc.EPOLL_CTL_ADD, self, &ev) != 0)
        {
            var e = ErrnoException.FromLastError("watching a queue's wake-up pipe");
            epollFd.Dispose();
            selfFd.Dispose();
            throw e;
        }
        _self = selfFd;
        _epoll = epollFd;
    }

    /// <summary>The producer: makes the read end readable. One byte, never a block: when the pipe is full it is readable already.</summary>
    public void Signal()
    {
        if (_write is null) return;
        byte one = 1;
        Libc.Write(_write.Fd, &one, 1);
    }

    /// <summary>The consumer: makes <see cref="Descriptor"/> readable, for packets that wait already. A no-op until it is asked for.</summary>
    public void SignalSelf()
    {
        if (_self is null || _selfSignalled) return;
        ulong one = 1;
        Libc.Write(_self.Fd, &one, sizeof(ulong));
        _selfSignalled = true;
    }

    /// <summary>The consumer: empties the pipe (and its own signal), so that it is readable again only after the next one.</summary>
    public void Drain()
    {
        byte* sink = stackalloc byte[64];
        while (Libc.Read(_read.Fd, sink, 64) == 64) { }
        if (_selfSignalled)
        {
            Libc.Read(_self!.Fd, sink, sizeof(ulong));
            _selfSignalled = false;
        }
    }

    /// <summary>The consumer: sleeps until signalled, <paramref name="timeoutMs"/> passes, or a signal handler runs.</summary>
    public void Wait(int timeoutMs)
    {
        var poll = new PollFd { Fd = _read.Fd, Events = Libc.POLLIN };
        Libc.Poll(&poll, 1, timeoutMs);
    }

    public void Dispose()
    {
        _epoll?.Dispose();
        _self?.Dispose();
        _write?.Dispose();
        _read.Dispose();
    }
}
