using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using ZcFlow.Buffers;
using ZcFlow.Memory;
using ZcFlow.Native;

namespace ZcFlow.Devices;

/// <summary>
/// One receive queue of an interface through an AF_XDP socket, <c>xdp:eth0@0[?ring=N&amp;mode=native|skb&amp;latency=MS]</c>, or
/// <c>zc:eth0@0</c> which insists on zero copy. The cluster's buffers are registered as the
/// socket's UMEM, so the kernel (or, in zero-copy mode, the NIC) writes each packet straight into
/// a pool buffer: receiving moves only descriptors. The fill ring is kept stocked with free
/// buffers from the pool, which the device holds until a packet comes back in them. libxdp loads
/// its default XDP program, which redirects the queue's packets to the socket, and removes it when
/// the last socket closes; a program left by a process that died is taken over or replaced.
///
/// Sending copies the packet into a buffer of the pool and hands that to the transmit ring; the
/// completion ring gives it back. Chunks are 2048 bytes in unaligned mode, each starting
/// 256 bytes (the kernel's XDP headroom) before a buffer's data, so the pool's buffers must hold
/// at least 1792 bytes (<c>ClusterOptions.BufferSize</c>), the longest frame the kernel writes.
/// </summary>
internal sealed unsafe class XdpDevice : IPacketSource, IPacketSink
{
    private const uint ChunkSize = 2048;
    private const uint XdpPacketHeadroom = 256;

    /// <summary>The least buffer size (<c>ClusterOptions.BufferSize</c>) of a pool an AF_XDP device works with.</summary>
    public const int MinBufferSize = (int)(ChunkSize - XdpPacketHeadroom);

    /// <summary>True for the names this device opens: <c>xdp:&lt;if&gt;@&lt;queue&gt;</c>, and <c>zc:&lt;if&gt;@&lt;queue&gt;</c> where the part before @ is not a cluster number.</summary>
    public static bool IsName(string name)
        => name.StartsWith("xdp:", StringComparison.Ordinal)
           || (name.StartsWith("zc:", StringComparison.Ordinal) && name.IndexOf('@') is > 3 and var at && !uint.TryParse(name.AsSpan(3, at - 3), out _));
    private const ulong AddressMask = (1UL << Xdp.XSK_UNALIGNED_BUF_OFFSET_SHIFT) - 1;

    // Where in the UMEM a descriptor's address points, in unaligned-chunk mode: the chunk's base, plus the offset in its top bits.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong UmemOffset(ulong address) => (address & AddressMask) + (address >> Xdp.XSK_UNALIGNED_BUF_OFFSET_SHIFT);

    private readonly BufferPool _pool;
    private readonly uint _deviceIndex;
    private readonly XskRing* _rings;   // fill, completion, rx, tx: native memory libxdp keeps pointers to
    private readonly bool[] _lent;   // which buffers the kernel holds, by buffer index less the pool's first
    private readonly uint _first;
    private nint _umem, _socket;
    private readonly int _fd;
    private readonly PacketHandle[] _refill = new PacketHandle[64];
    private ulong _received, _bytes, _sent, _sendFailed, _errors;
    private int _txQueued;
    private uint _owed;   // buffers the fill ring is owed: its size less what the kernel holds
    private int _latencyMs;   // how long WaitReadable lets packets gather once the first has come
    private bool _flowing;   // the last wait found packets: the next one sleeps before it polls

    public string Name { get; }

    public string Interface { get; }

    public int Queue { get; }

    /// <summary>True when the driver gives packets in place (zero copy); false in copy mode (veth, generic XDP).</summary>
    public bool IsZeroCopy { get; }

    public bool IsExhausted => false;

    /// <summary>Descriptors from the kernel that named no buffer the device had lent it (never expected).</summary>
    public ulong Errors => _errors;

    private XdpDevice(string name, string ifName, int queue, BufferPool pool, uint deviceIndex, XskRing* rings, nint umem, nint socket, bool zeroCopy)
    {
        Name = name;
        Interface = ifName;
        Queue = queue;
        _pool = pool;
        _deviceIndex = deviceIndex;
        _rings = rings;
        _umem = umem;
        _socket = socket;
        _fd = Xdp.SocketFd(socket);
        IsZeroCopy = zeroCopy;
        _first = pool.FirstBuffer;
        _lent = new bool[pool.Capacity];
    }

    /// <summary>Opens <c>xdp:&lt;if&gt;@&lt;queue&gt;</c> or <c>zc:&lt;if&gt;@&lt;queue&gt;</c> over <paramref name="pool"/>.</summary>
    public static XdpDevice Open(string name, BufferPool pool, uint deviceIndex = 0, Filters.Rules? rules = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(pool);
        bool zeroCopy = name.StartsWith("zc:", StringComparison.Ordinal);
        string[] parts = name[(name.IndexOf(':') + 1)..].Split('?', 2);
        string spec = parts[0];
        (uint ring, uint mode, int latency) = Options(name, parts.Length == 2 ? parts[1] : "");
        int at = spec.LastIndexOf('@');
        string ifName = at > 0 ? spec[..at] : "";
        if (at <= 0 || !int.TryParse(spec[(at + 1)..], out int queue) || queue < 0 || ifName.Length > 15)
            throw new ArgumentException($"'{name}': write xdp:<interface>@<queue>, for example xdp:eth0@0", nameof(name));
        int ifIndex = (int)Libc.IfNameToIndex(ifName);
        if (ifIndex == 0) throw new ArgumentException($"'{name}': there is no interface '{ifName}' in this network namespace (see 'ip link')", nameof(name));
        int queues = Interfaces.RxQueues(ifName);
        if (queue >= queues) throw new ArgumentException($"'{name}': {ifName} has receive queues 0 to {queues - 1}", nameof(name));
        if (pool.BufferCapacity < MinBufferSize)
            throw new ArgumentException($"'{name}': AF_XDP needs buffers of at least {MinBufferSize} bytes, and this pool's hold {pool.BufferCapacity} (ClusterOptions.BufferSize)", nameof(pool));

        var rings = (XskRing*)NativeMemory.AllocZeroed((nuint)(4 * sizeof(XskRing)));
        nint umem = 0, socket = 0;
        Filters.KernelRules? kernel = null;
        int link = -1;
        try
        {
            // With rules, the device's own program takes libxdp's place: libxdp loads none, and the socket goes into its map.
            kernel = rules is null ? null : new Filters.KernelRules(rules);
            (nint start, ulong length) = pool.DeviceRegion;
            var umemConfig = new XskUmemConfig { FillSize = ring, CompletionSize = ring, FrameSize = ChunkSize, FrameHeadroom = 0, Flags = Xdp.XDP_UMEM_UNALIGNED_CHUNK_FLAG };
            int rc = Xdp.UmemCreate(out umem, (void*)start, length, &rings[0], &rings[1], umemConfig);
            if (rc != 0) throw new ErrnoException($"registering the pool as the UMEM of '{name}'", -rc);
            var socketConfig = new XskSocketConfig
            {
                RxSize = ring, TxSize = ring, XdpFlags = mode, LibxdpFlags = kernel is null ? 0 : Xdp.XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
                BindFlags = (ushort)(Xdp.XDP_USE_NEED_WAKEUP | (zeroCopy ? Xdp.XDP_ZEROCOPY : 0)),
            };
            rc = Xdp.SocketCreate(out socket, ifName, (uint)queue, umem, &rings[2], &rings[3], socketConfig);
            // The kernel lets go of a closed socket's queue a moment after the close (a process just
            // killed): busy for a while is worth waiting out. Busy still: a program we cannot share.
            for (int tries = 0; rc == -Libc.EBUSY && tries < 20; tries++)
            {
                Thread.Sleep(50);
                rc = Xdp.SocketCreate(out socket, ifName, (uint)queue, umem, &rings[2], &rings[3], socketConfig);
            }
            if (rc != 0 && -rc is Libc.EBUSY or Libc.EEXIST && DetachLeftover(ifIndex))
                rc = Xdp.SocketCreate(out socket, ifName, (uint)queue, umem, &rings[2], &rings[3], socketConfig);
            if (rc != 0)
            {
                socket = 0;
                if (zeroCopy && -rc is Libc.EOPNOTSUPP or Libc.EINVAL or Libc.EPERM)
                    throw new InvalidOperationException($"'{name}': the driver of {ifName} cannot give AF_XDP packets in place (zero copy, {ErrnoException.Describe(-rc)}); xdp:{ifName}@{queue} works in copy mode");
                throw new ErrnoException($"creating the AF_XDP socket of '{name}'", -rc,
                    -rc == Libc.EPERM ? "AF_XDP needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF)" : -rc == Libc.EBUSY ? "another socket or XDP program holds this queue" : null);
            }
            if (kernel is not null) link = Attach(kernel, socket, ifName, ifIndex, mode);
            XdpOptionsZeroCopy(Xdp.SocketFd(socket), out bool inPlace);
            var device = new XdpDevice(name, ifName, queue, pool, deviceIndex, rings, umem, socket, inPlace)
            {
                _owed = ring, _latencyMs = latency, _kernel = kernel, _link = link, Rules = rules,
            };
            device.Refill();
            return device;
        }
        catch
        {
            if (link >= 0) Libc.Close(link);
            if (socket != 0) Xdp.SocketDelete(socket);
            if (umem != 0) Xdp.UmemDelete(umem);
            kernel?.Dispose();
            NativeMemory.Free(rings);
            throw;
        }
    }

    /// <summary>The rules its XDP program runs in the kernel (add and remove them while it runs), or null: libxdp's program.</summary>
    public Filters.Rules? Rules { get; private init; }

    /// <summary>
    /// zbalance_ipc's <c>-Z</c> rules into its XDP program, after its rules (see <see cref="Filters.KernelRules.SetAddresses"/>);
    /// false when it runs libxdp's program (opened without rules), where they stay in user space only.
    /// </summary>
    internal bool SetAddressRules(Filters.IpRules? rules)
    {
        if (_kernel is null) return false;
        _kernel.SetAddresses(rules);
        return true;
    }

    /// <summary>Packets and bytes zbalance_ipc's <c>-Z</c> rules dropped in the kernel.</summary>
    internal (ulong Packets, ulong Bytes) AddressDropped => _kernel?.AddressDropped ?? (0, 0);

    /// <summary>Packets and bytes rule <paramref name="id"/> (-1: the default) matched in the kernel.</summary>
    public (ulong Packets, ulong Bytes) RuleCounters(int id) => _kernel?.Counters(id) ?? (0, 0);

    private Filters.KernelRules? _kernel;
    private int _link = -1;   // the BPF link that holds the rules' program on the interface

    // The socket into the program's map, by its queue; the program onto the interface through a BPF link, which the kernel
    // takes off when its descriptor closes, so a process that is killed leaves nothing behind. A program attached the older
    // way by a process that died (libxdp's, say) is taken off first.
    private static int Attach(Filters.KernelRules kernel, nint socket, string ifName, int ifIndex, uint mode)
    {
        int rc = Xdp.SocketUpdateXskMap(socket, kernel.SocketMapFd);
        if (rc != 0) throw new ErrnoException($"putting the AF_XDP socket of {ifName} into the rules' program's map", -rc);
        var options = new BpfLinkCreateOptions { Size = (nuint)sizeof(BpfLinkCreateOptions), Flags = mode };
        int link = Bpf.LinkCreate(kernel.ProgramFd, ifIndex, Bpf.BPF_XDP, &options);
        if (link < 0 && -link is Libc.EBUSY or Libc.EEXIST && DetachLeftover(ifIndex))
            link = Bpf.LinkCreate(kernel.ProgramFd, ifIndex, Bpf.BPF_XDP, &options);
        if (link < 0)
            throw new ErrnoException($"attaching the rules' XDP program to {ifName}", -link, -link is Libc.EBUSY or Libc.EEXIST ? "another XDP program is on the interface"
                : -link == 34 /* ERANGE */ ? $"{ifName}'s MTU is too large for XDP in its driver: lower it, or give mode=skb" : null);
        return link;
    }

    // ?ring=N (descriptors in each ring, a power of two; 2048), ?mode=native|skb (where the XDP
    // program runs: the driver, or the generic path every interface has; libxdp picks by default),
    // and ?latency=MS (see WaitReadable; 0). Device.OpenSource takes ?rules=FILE off first (for every device).
    private static (uint Ring, uint Mode, int Latency) Options(string name, string query)
    {
        uint ring = 2048, mode = Xdp.XDP_MODE_UNSPEC;
        int latency = 0;
        foreach (string option in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] kv = option.Split('=', 2);
            if (kv is ["ring", var r] && uint.TryParse(r, out uint n) && n >= 64 && n <= 1 << 16 && (n & (n - 1)) == 0) ring = n;
            else if (kv is ["mode", "skb"]) mode = Xdp.XDP_FLAGS_SKB_MODE;
            else if (kv is ["mode", "native"]) mode = Xdp.XDP_FLAGS_DRV_MODE;
            else if (kv is ["latency", var l] && int.TryParse(l, out int ms) && ms is >= 0 and <= 1000) latency = ms;
            else throw new ArgumentException($"'{name}': options are ring=<power of two, 64 to 65536>, mode=native|skb, latency=<0 to 1000 ms> (and rules=<file>, through Device.OpenSource); not '{option}'", nameof(name));
        }
        return (ring, mode, latency);
    }

    // A program on the interface that libxdp cannot share: one a process that died left there. Taken off.
    private static bool DetachLeftover(int ifIndex)
    {
        nint multiprog = Xdp.MultiprogFromIfIndex(ifIndex);
        if (Xdp.IsError(multiprog)) return false;
        try
        {
            return Xdp.MultiprogDetach(multiprog) == 0;
        }
        finally
        {
            Xdp.MultiprogClose(multiprog);
        }
    }

    private static void XdpOptionsZeroCopy(int fd, out bool zeroCopy)
    {
        uint flags = 0;
        int length = sizeof(uint);
        zeroCopy = Libc.GetSockOpt(fd, Xdp.SOL_XDP, Xdp.XDP_OPTIONS, &flags, ref length) == 0 && (flags & Xdp.XDP_OPTIONS_ZEROCOPY) != 0;
    }

    private ref XskRing Fill => ref _rings[0];
    private ref XskRing Completion => ref _rings[1];
    private ref XskRing Rx => ref _rings[2];
    private ref XskRing Tx => ref _rings[3];

    // libxdp's xsk_prod_nb_free: room in a producer ring, re-reading the consumer only when short.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint FreeEntries(ref XskRing r, uint wanted)
    {
        uint free = r.CachedConsumer - r.CachedProducer;
        if (free >= wanted) return free;
        r.CachedConsumer = Volatile.Read(ref *r.Consumer) + r.Size;
        return r.CachedConsumer - r.CachedProducer;
    }

    // libxdp's xsk_cons_nb_avail: entries in a consumer ring, re-reading the producer only when empty.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Available(ref XskRing r, uint wanted)
    {
        uint entries = r.CachedProducer - r.CachedConsumer;
        if (entries == 0)
        {
            r.CachedProducer = Volatile.Read(ref *r.Producer);
            entries = r.CachedProducer - r.CachedConsumer;
        }
        return Math.Min(entries, wanted);
    }

    private static bool NeedsWakeup(ref XskRing r) => (Volatile.Read(ref *r.Flags) & Xdp.XDP_RING_NEED_WAKEUP) != 0;

    // Gives the kernel the free buffers it is owed. Every packet it hands back used one fill entry,
    // so the ring always has room for what is owed, and the kernel's index need not be read. What
    // an empty pool could not give stays owed for the next call.
    private void Refill()
    {
        ref XskRing fill = ref Fill;
        uint given = 0;
        while (_owed > 0)
        {
            int n = _pool.GetBurst(_refill.AsSpan(0, (int)Math.Min(_owed, (uint)_refill.Length)));
            if (n == 0) break;
            var addresses = (ulong*)fill.Ring;
            for (int i = 0; i < n; i++)
            {
                addresses[(fill.CachedProducer + (uint)i) & fill.Mask] = _pool.DataOffset(_refill[i]) - XdpPacketHeadroom;
                _lent[_refill[i].Index - _first] = true;
            }
            fill.CachedProducer += (uint)n;
            _owed -= (uint)n;
            given += (uint)n;
        }
        if (given == 0) return;
        Volatile.Write(ref *fill.Producer, fill.CachedProducer);
        if (NeedsWakeup(ref fill)) Libc.RecvFrom(_fd, null, 0, Libc.MSG_DONTWAIT, null, null);
    }

    /// <summary>Takes up to <c>packets.Length</c> received packets, in the buffers they arrived in, and restocks the fill ring.</summary>
    public int ReceiveBurst(Span<PacketHandle> packets)
    {
        ref XskRing rx = ref Rx;
        uint n = Available(ref rx, (uint)packets.Length);
        int got = 0;
        if (n != 0)
        {
            long now = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;
            var descs = (XdpDesc*)rx.Ring;
            ulong bytes = 0;
            // The buffers come back in the order the fill ring lent them, a ring's length ago: their lines are long out of this
            // core's caches, and the kernel wrote the frames on another core. Ask for every header (written below) and first
            // line of frame (read by whoever takes the packet) at once, rather than missing on each in turn. (A descriptor
            // checked below as naming no buffer of ours is harmless here: a prefetch never faults.)
            if (Sse.IsSupported)
            {
                var region = (byte*)_pool.DeviceRegion.Start;
                for (uint i = 0; i < n; i++)
                {
                    byte* data = region + UmemOffset(descs[(rx.CachedConsumer + i) & rx.Mask].Address);
                    Sse.Prefetch0(data - ArenaLayout.BufferHeaderSize);
                    Sse.Prefetch0(data);
                }
            }
            for (uint i = 0; i < n; i++)
            {
                XdpDesc d = descs[(rx.CachedConsumer + i) & rx.Mask];
                ulong offset = UmemOffset(d.Address);
                if (!_pool.TryAtDataOffset(offset, out PacketHandle p) || !_lent[p.Index - _first])
                {
                    _errors++;
                    continue;
                }
                _lent[p.Index - _first] = false;
                int length = (int)Math.Min(d.Length, (uint)p.Capacity);
                p.SetReceived(length, length, now, _deviceIndex);
                packets[got++] = p;
                bytes += (uint)length;
            }
            rx.CachedConsumer += n;
            Volatile.Write(ref *rx.Consumer, rx.CachedConsumer);
            _owed += n;
            Volatile.Write(ref _received, _received + (ulong)got);
            Volatile.Write(ref _bytes, _bytes + bytes);
        }
        if (_owed != 0) Refill();
        return got;
    }

    /// <summary>Copies the packet into a buffer of the pool and queues that on the transmit ring.</summary>
    public bool TrySend(in PacketHandle packet)
    {
        ref XskRing tx = ref Tx;
        PacketHandle copy = default;
        if (FreeEntries(ref tx, 1) == 0 || packet.Length > ChunkSize - XdpPacketHeadroom
            || !_pool.TryGet(out copy) && (Complete() == 0 || !_pool.TryGet(out copy)))   // sent buffers come back only when the pool runs short
        {
            Volatile.Write(ref _sendFailed, _sendFailed + 1);
            return false;
        }
        packet.Data.CopyTo(copy.Buffer);
        var descs = (XdpDesc*)tx.Ring;
        descs[tx.CachedProducer & tx.Mask] = new XdpDesc { Address = _pool.DataOffset(copy), Length = (uint)packet.Length };
        _lent[copy.Index - _first] = true;
        tx.CachedProducer++;
        _txQueued++;
        Volatile.Write(ref _sent, _sent + 1);
        return true;
    }

    /// <summary>Publishes what <see cref="TrySend"/> queued and wakes the kernel to send it; with <paramref name="wait"/>, until all is sent.</summary>
    public void Flush(bool wait = false)
    {
        ref XskRing tx = ref Tx;
        if (_txQueued != 0)
        {
            Volatile.Write(ref *tx.Producer, tx.CachedProducer);
            _txQueued = 0;
        }
        while (true)
        {
            if (NeedsWakeup(ref tx) || wait) Libc.SendTo(_fd, null, 0, Libc.MSG_DONTWAIT, null, 0);
            Complete();
            if (!wait || Volatile.Read(ref *tx.Consumer) == tx.CachedProducer && Completion.CachedConsumer == Volatile.Read(ref *Completion.Producer)) return;
            Thread.Yield();
        }
    }

    // Buffers the kernel has sent go back to the pool; returns how many.
    private uint Complete()
    {
        ref XskRing c = ref Completion;
        uint n = Available(ref c, c.Size);
        if (n == 0) return 0;
        var addresses = (ulong*)c.Ring;
        for (uint i = 0; i < n; i++)
        {
            ulong a = addresses[(c.CachedConsumer + i) & c.Mask];
            if (_pool.TryAtDataOffset(UmemOffset(a), out PacketHandle p) && _lent[p.Index - _first])
            {
                _lent[p.Index - _first] = false;
                _pool.Release(p);
            }
            else _errors++;
        }
        c.CachedConsumer += n;
        Volatile.Write(ref *c.Consumer, c.CachedConsumer);
        return n;
    }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> for a packet (for callers that would rather sleep than
    /// spin). With <c>latency=MS</c>, packets are let gather for MS once the first has come, so that
    /// they are taken in one batch rather than a wake-up each, as the kernel's block timeout does for
    /// AF_PACKET; while packets keep coming the wait is that sleep alone, without a poll. The ring
    /// must hold what arrives in that time: what the kernel could not put in it is counted in
    /// <see cref="DeviceStats.DroppedKernel"/>.
    /// </summary>
    public bool WaitReadable(int timeoutMs)
    {
        if (Available(ref Rx, 1) != 0) return true;
        if (_latencyMs == 0) return Device.Poll(_fd, timeoutMs);
        if (_flowing)
        {
            Thread.Sleep(Math.Min(_latencyMs, timeoutMs));
            if (Available(ref Rx, 1) != 0) return true;
        }
        _flowing = Device.Poll(_fd, timeoutMs);
        if (_flowing) Thread.Sleep(_latencyMs);
        return _flowing;
    }

    public DeviceStats Stats
    {
        get
        {
            XdpStatistics s = default;
            int length = sizeof(XdpStatistics);
            ulong kernel = _socket != 0 && Libc.GetSockOpt(_fd, Xdp.SOL_XDP, Xdp.XDP_STATISTICS, &s, ref length) == 0 ? s.RxDropped + s.RxRingFull : 0;
            return new DeviceStats(Volatile.Read(ref _received), Volatile.Read(ref _bytes), 0, kernel, Volatile.Read(ref _sent), Volatile.Read(ref _sendFailed));
        }
    }

    /// <summary>Closes the socket (libxdp removes its program with the last one) and gives every buffer the kernel held back to the pool.</summary>
    public void Dispose()
    {
        if (_socket == 0) return;
        if (_link >= 0) Libc.Close(_link);   // the program comes off the interface with its link
        _kernel?.Dispose();
        Xdp.SocketDelete(_socket);
        Xdp.UmemDelete(_umem);
        _socket = _umem = 0;
        NativeMemory.Free(_rings);
        for (int i = 0; i < _lent.Length; i++)
        {
            if (!_lent[i] || !_pool.TryAt(_first + (uint)i, out PacketHandle p)) continue;
            _pool.Release(p);
            _lent[i] = false;
        }
    }

    public override string ToString() => Name;
}
