using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Ipc;
using ZcFlow.Native;
using ZcFlow.Queues;

namespace ZcFlow.CLib.Pcap;

/// <summary>
/// A libpcap handle on a ZcFlow queue, <c>zc:&lt;cluster&gt;@&lt;queue&gt;</c>: what <c>pcap_create</c> made and every later
/// call on that handle acts on. The <c>pcap_t</c> the program holds is a real libpcap handle, opened on an empty capture file
/// in memory, so that the calls this library does not take over (<c>pcap_compile</c>, <c>pcap_geterr</c>,
/// <c>pcap_breakloop</c>, <c>pcap_freecode</c>, <c>pcap_is_swapped</c> ...) find a handle they know how to treat.
///
/// Packets are handed over where they lie in the cluster's memory, as libpcap hands over its ring's frames: a packet of
/// <c>pcap_next_ex</c> stays valid until the next packet is asked for, one given to a callback until the callback returns.
/// They are taken from the queue a burst at a time and given back a burst at a time, once every packet of it has been handed
/// over. <c>pcap_breakloop</c>, which programs call from signal handlers, cannot enter .NET code there: it is libpcap's own,
/// and sets the handle's flag, which this class reads between packets and between sleeps (a signal also ends a sleep).
/// </summary>
internal sealed unsafe class QueueCapture : IDisposable
{
    public const int PCAP_ERROR = -1, PCAP_ERROR_BREAK = -2, PCAP_ERROR_NOT_ACTIVATED = -3, PCAP_ERROR_ACTIVATED = -4,
        PCAP_ERROR_NO_SUCH_DEVICE = -5, PCAP_ERROR_RFMON_NOTSUP = -6, PCAP_ERROR_PERM_DENIED = -8, PCAP_WARNING_TSTAMP_TYPE_NOTSUP = 3;
    public const int DLT_EN10MB = 1, MaxSnaplen = 262144, PrecisionMicro = 0, PrecisionNano = 1;
    public const int ErrbufSize = 256;
    private const int Burst = 64;

    private readonly PacketHandle[] _burst = new PacketHandle[Burst];
    private int _next, _count;
    // Each packet of the burst as the program sees it: its header (valid until the burst is given back, after the next packet
    // is asked for), where its bytes are, and how many the buffer holds (what the filter runs over).
    private readonly PacketHeader* _headers;
    private readonly byte** _data;
    private readonly uint* _lengths;
    private BpfInstruction* _filter;
    private AttachedQueue? _attached;
    private IngressSink? _sink;
    private ulong _examined;
    private bool _waitsOnDescriptor;

    public QueueCapture(nint pcap, string name)
    {
        Pcap = pcap;
        Name = name;
        _breakFlag = (int*)(pcap + Math.Max(0, BreakOffset));
        _headers = (PacketHeader*)NativeMemory.AllocZeroed(Burst, (nuint)sizeof(PacketHeader));
        _data = (byte**)NativeMemory.AllocZeroed(Burst, (nuint)sizeof(byte*));
        _lengths = (uint*)NativeMemory.AllocZeroed(Burst, sizeof(uint));
    }

    /// <summary>The pcap_t the program holds.</summary>
    public nint Pcap { get; }

    public string Name { get; }

    public bool Activated => _attached is not null;

    public int Snaplen { get; set; } = MaxSnaplen;

    public int TimeoutMs { get; set; }

    public int Precision { get; set; } = PrecisionMicro;

    public bool NonBlocking { get; set; }

    private QueueConsumer Queue => _attached?.Queue ?? throw new InvalidOperationException($"{Name}: the handle is not activated yet (pcap_activate)");

    // ---- the handle's flag that libpcap's pcap_breakloop sets ----

    // Before BreakOffset: static fields are set in the order they are written, and FindBreakFlag opens a handle on it.
    private static readonly nint EmptyCapture = MakeEmptyCapture();

    // A capture file's header and nothing after it: Ethernet, the largest snapshot length.
    private static nint MakeEmptyCapture()
    {
        uint* h = (uint*)NativeMemory.Alloc(24);
        h[0] = 0xa1b2c3d4; h[1] = 0x00040002; h[2] = 0; h[3] = 0; h[4] = MaxSnaplen; h[5] = DLT_EN10MB;
        return (nint)h;
    }

    private static readonly int BreakOffset = FindBreakFlag();

    private readonly int* _breakFlag;   // read once a packet: kept here, not worked out each time

    /// <summary>Where in a libpcap handle pcap_breakloop sets its flag: the one int it changes on a handle like ours.</summary>
    private static int FindBreakFlag()
    {
        nint p = OpenHandle(PrecisionMicro, out string? problem);
        if (p == 0) return -1;
        try
        {
            int size = (int)Math.Min(SystemPcap.MallocUsableSize(p), 64 * 1024);
            byte[] before = new Span<byte>((void*)p, size).ToArray();
            SystemPcap.BreakLoop(p);
            var after = new Span<byte>((void*)p, size);
            int found = -1;
            for (int i = 0; i + 4 <= size; i += 4)
                if (MemoryMarshal.Read<int>(before.AsSpan(i)) == 0 && MemoryMarshal.Read<int>(after[i..]) == 1)
                    found = found == -1 ? i : -2;
            return found;
        }
        finally
        {
            SystemPcap.Close(p);
        }
    }

    /// <summary>A libpcap handle on an empty capture file in memory, for a queue's capture to stand behind; 0 and why when it cannot be made.</summary>
    public static nint OpenHandle(int precision, out string? problem)
    {
        byte* mode = stackalloc byte[] { (byte)'r', 0 };
        nint file = SystemPcap.FMemOpen((void*)EmptyCapture, 24, mode);
        problem = null;
        if (file == 0)
        {
            problem = "fmemopen failed: out of memory";
            return 0;
        }
        byte* errbuf = stackalloc byte[ErrbufSize];
        nint p = SystemPcap.FOpenOffline(file, (uint)precision, errbuf);
        if (p == 0) problem = Marshal.PtrToStringUTF8((nint)errbuf);
        return p;
    }

    /// <summary>Whether pcap_breakloop can be followed on this libpcap; why not when it cannot.</summary>
    public static string? BreakLoopProblem => BreakOffset >= 0 ? null
        : $"this libpcap's pcap_breakloop sets no flag ZcFlow can find ({(BreakOffset == -1 ? "none" : "several")} changed): a ZcFlow queue cannot be read through it";

    // ---- errors, in the handle's own buffer, where pcap_geterr finds them ----

    /// <summary>Writes <paramref name="message"/> where pcap_geterr and pcap_perror read it; returns <paramref name="code"/>.</summary>
    public int Fail(int code, string message)
    {
        WriteError(SystemPcap.GetErr(Pcap), message);
        return code;
    }

    public static void WriteError(byte* errbuf, string message)
    {
        if (errbuf is null) return;
        var span = new Span<byte>(errbuf, ErrbufSize);
        int n = Encoding.UTF8.GetBytes(message.AsSpan(0, Math.Min(message.Length, ErrbufSize - 1)), span[..(ErrbufSize - 1)]);
        span[Math.Min(n, ErrbufSize - 1)] = 0;
    }

    // ---- activation ----

    public int Activate()
    {
        if (Activated) return Fail(PCAP_ERROR_ACTIVATED, $"{Name}: the handle is activated already");
        if (BreakLoopProblem is { } problem) return Fail(PCAP_ERROR, problem);
        try
        {
            _attached = AttachedQueue.Attach(Name);
        }
        catch (Exception e)
        {
            (int code, string hint) = e switch
            {
                ErrnoException { Errno: Libc.EACCES } => (PCAP_ERROR_PERM_DENIED, ""),
                QueueBusyException => (PCAP_ERROR, ": one consumer per queue; stop the other, or read another queue (tcpdump -D lists them)"),
                TimeoutException => (PCAP_ERROR, ": try again in a moment"),
                ArgumentOutOfRangeException => (PCAP_ERROR_NO_SUCH_DEVICE, " (tcpdump -D lists its queues)"),
                ArgumentException => (PCAP_ERROR_NO_SUCH_DEVICE, ""),
                InvalidOperationException => (PCAP_ERROR_NO_SUCH_DEVICE, ""),
                _ => (PCAP_ERROR, ""),
            };
            return Fail(code, $"{Name}: {SetupError.Describe(e)}{hint}");
        }
        if (_attached.Role == QueueRole.Ingress) _sink = IngressSink.Over(_attached, Name);
        return 0;
    }

    private int NotForSending(string call) => Fail(PCAP_ERROR,
        $"{Name}: {call}: this is an ingress queue, which a program sends into (pcap_inject, pcap_sendpacket); packets are received from a cluster's other queues");

    // ---- receiving ----

    /// <summary>pcap_dispatch: hands up to <paramref name="count"/> packets (what waits, up to four bursts, for 0 or -1) to the callback.</summary>
    public int Dispatch(int count, delegate* unmanaged<nint, PacketHeader*, byte*, void> callback, nint user) => Deliver(count, callback, user, loop: false);

    /// <summary>pcap_loop: hands packets to the callback until <paramref name="count"/> (forever for 0 or -1), an error or pcap_breakloop.</summary>
    public int Loop(int count, delegate* unmanaged<nint, PacketHeader*, byte*, void> callback, nint user) => Deliver(count, callback, user, loop: true);

    private int Deliver(int count, delegate* unmanaged<nint, PacketHeader*, byte*, void> callback, nint user, bool loop)
    {
        if (!Activated) return Fail(PCAP_ERROR_NOT_ACTIVATED, $"{Name}: the handle is not activated yet (pcap_activate)");
        if (_sink is not null) return NotForSending(loop ? "pcap_loop" : "pcap_dispatch");
        // pcap_dispatch with 0 or -1 hands over what waits, a few bursts at most, as libpcap hands over a ring block's worth:
        // under a stream that never pauses it still returns, to the program's other work.
        int limit = count > 0 ? count : loop ? int.MaxValue : 4 * Burst, done = 0;
        try
        {
            while (done < limit)
            {
                // pcap_loop waits for as long as it takes; pcap_dispatch for its first packet (not in non-blocking mode),
                // then hands over what is there and returns.
                int got = Take(loop || (done == 0 && !NonBlocking), loop ? -1 : TimeoutMs, out int i);
                if (got == PCAP_ERROR_BREAK) return got;
                if (got == 0) break;
                callback(user, &_headers[i], _data[i]);
                done++;
            }
            return loop ? 0 : done;
        }
        catch (ClusterGoneException e)
        {
            return Fail(PCAP_ERROR, $"{Name}: {e.Message}");
        }
        finally
        {
            if (_waitsOnDescriptor) PrepareDescriptor();
        }
    }

    /// <summary>pcap_next_ex: 1 and the next packet, 0 when none came in time (at once without blocking), or an error.</summary>
    public int NextEx(PacketHeader** header, byte** data)
    {
        if (!Activated) return Fail(PCAP_ERROR_NOT_ACTIVATED, $"{Name}: the handle is not activated yet (pcap_activate)");
        if (_sink is not null) return NotForSending("pcap_next_ex");
        try
        {
            int got = Take(!NonBlocking, TimeoutMs, out int i);
            if (got == 1)
            {
                *header = &_headers[i];
                *data = _data[i];
            }
            return got;
        }
        catch (ClusterGoneException e)
        {
            return Fail(PCAP_ERROR, $"{Name}: {e.Message}");
        }
        finally
        {
            if (_waitsOnDescriptor) PrepareDescriptor();
        }
    }

    // The next packet of the burst that passes the filter, the next burst taken when this one is through: 1 and its place i,
    // 0 when none came (in time, or at once without waiting), or PCAP_ERROR_BREAK. pcap_breakloop is looked for between
    // bursts: what a burst holds is handed over first (microseconds), so nothing taken from the queue is left behind.
    private int Take(bool wait, int timeoutMs, out int i)
    {
        while (true)
        {
            if (_next == _count)
            {
                int got = TakeBreak() ? PCAP_ERROR_BREAK : Refill(wait, timeoutMs);
                if (got <= 0)
                {
                    if (got == PCAP_ERROR_BREAK) TakeBreak();
                    i = -1;
                    return got;
                }
            }
            i = _next++;
            if (Admit(i)) return 1;
        }
    }

    // The filter's verdict on packet i of the burst, which cuts it to the bytes it accepts.
    private bool Admit(int i)
    {
        _examined++;
        if (_filter is null) return true;
        PacketHeader* h = &_headers[i];
        uint verdict = Native.Pcap.Filter(_filter, _data[i], h->WireLength, _lengths[i]);
        if (verdict == 0) return false;
        h->CapturedLength = Math.Min(h->CapturedLength, verdict);
        return true;
    }

    // The burst's headers as the program sees them: cut to the snapshot length, stamped in the handle's precision. Read in
    // one pass, right after the burst came: each packet's header is a cache miss (the producer wrote it on another core),
    // and here they overlap, where between callbacks they would come one after another.
    private void Describe(int n)
    {
        uint snaplen = (uint)Snaplen;
        bool nano = Precision == PrecisionNano;
        for (int i = 0; i < n; i++)
        {
            ref readonly PacketHandle p = ref _burst[i];
            Span<byte> bytes = p.Data;
            uint length = (uint)bytes.Length;
            long ns = p.TimestampNs;
            (long seconds, long fraction) = Math.DivRem(ns, 1_000_000_000);
            PacketHeader* h = &_headers[i];
            h->Seconds = seconds;
            h->Fraction = nano ? fraction : fraction / 1000;
            h->CapturedLength = Math.Min(length, snaplen);
            h->WireLength = Math.Max((uint)p.WireLength, length);
            _data[i] = (byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref MemoryMarshal.GetReference(bytes));
            _lengths[i] = length;
        }
    }

    // Gives the last burst back, takes the next: how many came, 0 when none did (in time), or PCAP_ERROR_BREAK.
    private int Refill(bool wait, int timeoutMs)
    {
        QueueConsumer queue = Queue;
        if (_count != 0)
        {
            queue.ReleaseBurst(_burst.AsSpan(0, _count));
            _next = _count = 0;
        }
        int n = queue.ReceiveBurst(_burst);
        if (n == 0 && wait) n = Wait(queue, timeoutMs);
        if (n > 0)
        {
            _count = n;
            Describe(n);
        }
        return n;
    }

    // A packet comes soon after another more often than not: a little spinning first, then sleeps (which use no CPU) of at
    // most a tenth of a second between looks at the break flag; a signal ends a sleep at once.
    private int Wait(QueueConsumer queue, int timeoutMs)
    {
        for (int spin = 0; spin < 64; spin++)
        {
            Thread.SpinWait(32);
            int n = queue.ReceiveBurst(_burst);
            if (n != 0) return n;
        }
        long deadline = timeoutMs > 0 ? Stopwatch.GetTimestamp() + timeoutMs * Stopwatch.Frequency / 1000 : long.MaxValue;
        while (true)
        {
            if (Volatile.Read(ref *_breakFlag) != 0) return PCAP_ERROR_BREAK;
            long left = deadline - Stopwatch.GetTimestamp();
            if (left <= 0) return 0;
            queue.Wait((int)Math.Min(100, Math.Max(1, left * 1000 / Stopwatch.Frequency)));
            int n = queue.ReceiveBurst(_burst);
            if (n != 0) return n;
        }
    }

    // pcap_breakloop's flag, cleared as libpcap clears it when a loop ends on it.
    private bool TakeBreak()
    {
        if (Volatile.Read(ref *_breakFlag) == 0) return false;
        Volatile.Write(ref *_breakFlag, 0);
        return true;
    }

    // ---- waiting with the program's own event loop ----

    /// <summary>pcap_get_selectable_fd and pcap_fileno: the queue's descriptor, readable while packets wait.</summary>
    public int SelectableDescriptor()
    {
        if (!Activated || _sink is not null) return -1;
        _waitsOnDescriptor = true;
        int fd = Queue.WaitDescriptor;
        PrepareDescriptor();
        return fd;
    }

    // Packets in hand (the rest of a burst) wait as much as those in the queue.
    private void PrepareDescriptor() => Queue.PrepareToWait(packetsInHand: _next < _count);

    public int SetNonBlocking(bool value)
    {
        NonBlocking = value;
        return 0;
    }

    // ---- filters, direction, link type, counters ----

    public int SetFilter(BpfProgram* program)
    {
        if (program is null || (program->Length != 0 && program->Instructions is null) || program->Length > 4096)
            return Fail(PCAP_ERROR, $"{Name}: pcap_setfilter: not a compiled program");
        var copy = (BpfInstruction*)NativeMemory.Alloc((nuint)Math.Max(1, program->Length), (nuint)sizeof(BpfInstruction));
        Buffer.MemoryCopy(program->Instructions, copy, program->Length * (long)sizeof(BpfInstruction), program->Length * (long)sizeof(BpfInstruction));
        if (program->Length == 0) { NativeMemory.Free(copy); copy = null; }
        BpfInstruction* old = _filter;
        _filter = copy;
        if (old is not null) NativeMemory.Free(old);
        return 0;
    }

    public int SetDirection(int direction) => direction switch
    {
        0 or 1 => 0,   // PCAP_D_INOUT, PCAP_D_IN: a queue carries what its cluster's devices received
        _ => Fail(PCAP_ERROR, $"{Name}: a queue carries packets its cluster received; there is no outgoing direction to capture"),
    };

    public int Stats(PcapStat* stats)
    {
        if (!Activated) return Fail(PCAP_ERROR_NOT_ACTIVATED, $"{Name}: the handle is not activated yet (pcap_activate)");
        if (stats is null) return Fail(PCAP_ERROR, $"{Name}: pcap_stats: stats is NULL");
        QueueStats q = Queue.Stats;
        stats->Received = (uint)_examined;              // every packet taken from the queue, as the filter saw them
        stats->Dropped = (uint)q.Dropped;               // what the owner could not put in the queue: it was full
        stats->InterfaceDropped = 0;
        return 0;
    }

    // ---- sending, into an ingress queue ----

    /// <summary>pcap_inject: the frame copied into a spare buffer of the ingress queue and sent; waits for a spare as a full socket would.</summary>
    public int Inject(byte* data, int size)
    {
        if (!Activated) return Fail(PCAP_ERROR_NOT_ACTIVATED, $"{Name}: the handle is not activated yet (pcap_activate)");
        if (_sink is not { } sink) return Fail(PCAP_ERROR,
            $"{Name}: packets go into a cluster through its ingress queues (a Balancer's -i Q); this queue is one consumers receive from");
        if (size < 0 || (data is null && size != 0)) return Fail(PCAP_ERROR, $"{Name}: pcap_inject: no packet given");
        var frame = new ReadOnlySpan<byte>(data, size);
        long now = Workers.TimePulse.WallClockNs();
        long deadline = Stopwatch.GetTimestamp() + 2 * Stopwatch.Frequency;
        try
        {
            while (!sink.TrySend(frame, size, now))
            {
                if (NonBlocking || Stopwatch.GetTimestamp() > deadline)
                    return Fail(PCAP_ERROR, $"{Name}: no buffer to send into: the cluster's owner has stocked none for 2 s (is its balancer running?), or the packet is larger than its buffers");
                sink.Flush(wait: true);
            }
            sink.Flush();
            return size;
        }
        catch (ClusterGoneException e)
        {
            return Fail(PCAP_ERROR, $"{Name}: {e.Message}");
        }
    }

    /// <summary>Gives back what it holds, detaches, frees what it made; the program then closes the libpcap handle.</summary>
    public void Dispose()
    {
        if (_attached is not null && _sink is null && _count != 0) _attached.Queue.ReleaseBurst(_burst.AsSpan(0, _count));
        _next = _count = 0;
        if (_sink is not null) _sink.Dispose();
        else _attached?.Dispose();
        _attached = null;
        _sink = null;
        if (_filter is not null) NativeMemory.Free(_filter);
        _filter = null;
        NativeMemory.Free(_headers);
        NativeMemory.Free(_data);
        NativeMemory.Free(_lengths);
    }
}
