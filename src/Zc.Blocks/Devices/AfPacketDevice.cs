using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Filters;
using ZcFlow.Native;
using ZcFlow.Parsing;

namespace ZcFlow.Devices;

/// <summary>How an AF_PACKET device is set up (pf_ring.ko's <c>min_num_slots</c>, <c>enable_tx_capture</c> and the rest).</summary>
internal sealed record AfPacketOptions
{
    /// <summary>Bytes of each receive ring block (a power of two, at least a page); the kernel fills a block, then hands it over whole.</summary>
    public int BlockSize { get; init; } = 1 << 20;

    /// <summary>Blocks in the receive ring: <c>BlockSize × BlockCount</c> bytes of packets can wait for the reader.</summary>
    public int BlockCount { get; init; } = 16;

    /// <summary>Longest part of a packet kept (also cut to the buffer size).</summary>
    public int SnapLength { get; init; } = 65535;

    /// <summary>Whether packets this host sends out of the interface are captured too.</summary>
    public bool CaptureOutgoing { get; init; } = true;

    /// <summary>Whether the interface is put in promiscuous mode while the device is open (undone by the kernel when the socket closes, even if the process dies).</summary>
    public bool Promiscuous { get; init; } = true;

    /// <summary>A filter the kernel runs before a packet reaches the ring: what it rejects costs no copy.</summary>
    public BpfFilter? Filter { get; init; }

    /// <summary>Slots of the transmit ring (0 for none).</summary>
    public int TxSlots { get; init; } = 1024;

    /// <summary>Bytes of each transmit slot, its 48-byte header included: the longest frame sent is this less 48.</summary>
    public int TxSlotSize { get; init; } = 2048;

    /// <summary>
    /// How long a partly filled block may wait before the kernel hands it over, so a quiet link
    /// still delivers (<c>latency=MS</c>): longer means larger batches and fewer wake-ups of a reader
    /// that waits in <see cref="AfPacketDevice.WaitReadable"/>.
    /// </summary>
    public int BlockTimeoutMs { get; init; } = 1;

    /// <summary>
    /// The kernel fanout group this socket joins (<c>fanout=ID</c>, 0 to 65535; PF_RING's cluster id): every member of one
    /// group, in any process of the network namespace, names the same interface and mode, and each packet goes to one of them.
    /// </summary>
    public int? FanoutGroup { get; init; }

    /// <summary>How the group shares the packets out (<c>fanout_mode=</c>).</summary>
    public FanoutMode FanoutMode { get; init; } = FanoutMode.Hash;

    /// <summary>
    /// Whether the kernel reassembles IPv4 fragments before the packet reaches the ring (<c>defrag=1</c>,
    /// pf_ring.ko's <c>enable_ip_defrag</c>): a fanout group's option, in hash mode; without a group the device makes one of its own.
    /// </summary>
    public bool Defragment { get; init; }

    /// <summary>The one receive queue taken in (<c>eth0@2</c>), or null for all.</summary>
    public int? RxQueue { get; init; }
}

/// <summary>How a fanout group shares packets among its members (<c>PACKET_FANOUT_*</c>).</summary>
internal enum FanoutMode
{
    /// <summary>Per flow, both directions together: the kernel's symmetric hash of addresses and ports (PF_RING's per-flow clustering).</summary>
    Hash = Libc.PACKET_FANOUT_HASH,

    /// <summary>Round-robin, packet by packet (PF_RING's round-robin clustering).</summary>
    Lb = Libc.PACKET_FANOUT_LB,

    /// <summary>By the core the packet came in on.</summary>
    Cpu = Libc.PACKET_FANOUT_CPU,

    /// <summary>To one member until its ring is full, then the next.</summary>
    Rollover = Libc.PACKET_FANOUT_ROLLOVER,

    /// <summary>At random.</summary>
    Rnd = Libc.PACKET_FANOUT_RND,

    /// <summary>By the receive queue the packet came in on.</summary>
    Qm = Libc.PACKET_FANOUT_QM,
}

/// <summary>
/// An interface through an AF_PACKET socket, <c>eth0</c>, <c>eth0@2</c> (receive queue 2 only) or
/// <c>af_packet:eth0[@2][?snaplen=N&amp;blocks=N&amp;latency=MS&amp;promisc=0&amp;outgoing=0&amp;fanout=ID&amp;fanout_mode=hash&amp;defrag=1]</c>:
/// PF_RING's "1-copy" mode for drivers that know nothing of us. Receiving reads a TPACKET_V3
/// ring the kernel fills in blocks, mapped into this process, and copies each packet once into
/// a pool buffer with its kernel timestamp, or hands it to a reader of this process where it lies
/// (<see cref="ReadBurst"/>); a VLAN tag the kernel took off is put back, as libpcap does. Sending copies each packet into a slot of the transmit ring, and one
/// <c>sendto</c> sends all the slots filled since the last. When the pool is empty the device
/// leaves packets in the ring, so the only losses are the kernel's, counted in
/// <see cref="DeviceStats.DroppedKernel"/>.
/// </summary>
internal sealed unsafe class AfPacketDevice : IPacketSource, IPacketSink, IFrameReader
{
    private const int Tpacket3HeaderSize = 48;
    private const int VlanTagLength = 4;
    private const int Sll2HeaderLength = 20;
    private const string Any = "any";

    private readonly SafeFileDescriptor _socket;
    private readonly SafeMapping _ring;
    private readonly BufferPool? _pool;
    private readonly uint _deviceIndex;
    private readonly int _snapLength;
    private readonly BpfFilter? _filter;
    private readonly byte* _rx;
    private readonly int _blockSize, _blockCount;
    private readonly byte* _tx;
    private readonly int _txSlotSize, _txSlots;
    private readonly AfPacketOptions _options;
    private KernelRules? _rules;   // the rules' socket filter and maps, with the device (OpenWithRules)
    private readonly bool _cooked;   // any: frames from the network header on, behind a LINUX_SLL2 header made from the kernel's address
    private int _block;
    private byte* _packet;
    private uint _packetsLeft;
    private int _leased;        // blocks read through and not yet given back: their frames were handed out in place
    private int _txNext, _txQueued;
    private ulong _received, _bytes, _sent, _sendFailed;
    private ulong _kernelPackets, _kernelDrops;

    private AfPacketDevice(string name, string ifName, int ifIndex, SafeFileDescriptor socket, SafeMapping ring, BufferPool? pool, uint deviceIndex,
        AfPacketOptions o, int rxBlocks)
    {
        Name = WithoutDirection(name);
        Interface = ifName;
        InterfaceIndex = ifIndex;
        _socket = socket;
        _ring = ring;
        _pool = pool;
        _deviceIndex = deviceIndex;
        _snapLength = o.SnapLength;
        _filter = o.Filter;
        _blockSize = o.BlockSize;
        _blockCount = rxBlocks;
        _rx = ring.Pointer;
        _tx = ring.Pointer + (long)rxBlocks * o.BlockSize;
        _txSlotSize = o.TxSlotSize;
        _txSlots = o.TxSlots;
        _options = o;
        _cooked = ifIndex == 0;
    }

    /// <summary>What its frames start with: Ethernet, or for <c>any</c> a <c>LINUX_SLL2</c> header naming the interface.</summary>
    public LinkType Link => _cooked ? LinkType.LinuxSll2 : LinkType.Ethernet;

    /// <summary>The fanout group it is a member of, with its mode, or null.</summary>
    public (int Group, FanoutMode Mode)? Fanout => _options.FanoutGroup is int g ? (g, _options.FanoutMode) : null;

    /// <summary>Bytes of its receive ring.</summary>
    public long RingBytes => (long)_blockSize * _blockCount;

    /// <summary>
    /// The name it was opened with, less its <c>outgoing=</c> option: the samples add that one for the user (zbalance_ipc
    /// takes in the receive direction only), and a user reading stats expects the name they typed.
    /// </summary>
    public string Name { get; }

    private static string WithoutDirection(string name)
    {
        Device.WithoutOption(name, "outgoing", out string rest);
        return rest;
    }

    /// <summary>The interface's name and index.</summary>
    public string Interface { get; }

    public int InterfaceIndex { get; }

    public bool IsExhausted => false;

    /// <summary>
    /// Opens <paramref name="name"/> (<c>eth0</c> or <c>af_packet:eth0[?…]</c>). With a pool the device
    /// receives into it; without one (<c>null</c>) it only sends. Options in the name override <paramref name="options"/>.
    /// </summary>
    public static AfPacketDevice Open(string name, BufferPool? pool, uint deviceIndex = 0, AfPacketOptions? options = null)
        => Open(name, pool, deviceIndex, options, rules: null)!;

    /// <summary>
    /// Opens <paramref name="name"/> to receive with <paramref name="rules"/> deciding in the kernel, as a socket filter
    /// (<see cref="KernelRules.ForPacketSocket"/>): what is not for the application is never copied into the ring. Null when a
    /// socket filter cannot run them here (<see cref="KernelRules.SocketFilterRefuses(Rules)"/>, <c>any</c>, one receive queue):
    /// the caller runs them in user space.
    /// </summary>
    public static AfPacketDevice? OpenWithRules(string name, BufferPool pool, uint deviceIndex, Rules rules) => Open(name, pool, deviceIndex, null, rules);

    private static AfPacketDevice? Open(string name, BufferPool? pool, uint deviceIndex, AfPacketOptions? options, Rules? rules)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        string spec = name.StartsWith("af_packet:", StringComparison.Ordinal) ? name["af_packet:".Length..] : name;
        string[] parts = spec.Split('?', 2);
        AfPacketOptions o = ParseOptions(name, parts.Length == 2 ? parts[1] : "", options ?? new AfPacketOptions());
        string ifName = parts[0];
        if (ifName.LastIndexOf('@') is var at and >= 0)
        {
            if (!int.TryParse(ifName.AsSpan(at + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int queue))
                throw new ArgumentException($"'{name}': after @ comes a receive queue number, as in eth0@2", nameof(name));
            o = o with { RxQueue = queue };
            ifName = ifName[..at];
        }
        if (ifName.Length is 0 or > 15) throw new ArgumentException($"'{name}': an interface name is 1 to 15 characters", nameof(name));
        bool cooked = ifName == Any;
        int ifIndex = cooked ? 0 : (int)Libc.IfNameToIndex(ifName);
        if (ifIndex == 0 && !cooked) throw new ArgumentException($"'{name}': there is no interface '{ifName}' in this network namespace (see 'ip link')", nameof(name));
        if (cooked && o.RxQueue is not null) throw new ArgumentException($"'{name}': any is every interface; a receive queue is one interface's (eth0@2)", nameof(name));
        if (cooked && o.Filter is not null) throw new ArgumentException($"'{name}': a kernel filter reads Ethernet frames, and any's are cooked: filter in user space", nameof(options));
        if (cooked && pool is null) throw new ArgumentException($"'{name}': any receives from every interface and sends through none: name the interface to send out of", nameof(name));
        if (cooked) o = o with { Promiscuous = false, TxSlots = 0 };   // as libpcap's any: no interface is made promiscuous
        if (o.RxQueue is int rxQueue && Interfaces.RxQueues(ifName) is var queues && rxQueue >= queues)
            throw new ArgumentException($"'{name}': {ifName} has {queues} receive queue{(queues == 1 ? "" : "s")}, 0 to {queues - 1}", nameof(name));
        if (o.FanoutGroup is < 0 or > 65535) throw new ArgumentException($"'{name}': a fanout group id is 0 to 65535", nameof(name));
        if (o.Defragment && o.FanoutMode != FanoutMode.Hash)
            throw new ArgumentException($"'{name}': the kernel reassembles fragments for fanout groups in hash mode only (defrag=1 with fanout_mode=hash)", nameof(name));
        bool joins = o.FanoutGroup is not null || o.Defragment;
        if (o.BlockSize < 4096 || (o.BlockSize & (o.BlockSize - 1)) != 0) throw new ArgumentException("BlockSize is a power of two of at least 4096", nameof(options));
        if (o.BlockCount < 1 || (long)o.BlockCount * o.BlockSize > 1L << 32) throw new ArgumentException("BlockCount is at least 1, and the ring at most 4 GiB", nameof(options));
        if (o.TxSlots < 0 || o.TxSlotSize < 128 || o.TxSlotSize % 16 != 0 || o.TxSlotSize > 65536)
            throw new ArgumentException("TxSlots is 0 or more; TxSlotSize a multiple of 16 from 128 to 65536", nameof(options));
        if (o.SnapLength < 1) throw new ArgumentException("SnapLength is at least 1", nameof(options));
        if (o.BlockTimeoutMs is < 1 or > 1000) throw new ArgumentException("BlockTimeoutMs (latency=) is 1 to 1000", nameof(options));
        if (rules is not null && (cooked || o.RxQueue is not null || o.Filter is not null || KernelRules.SocketFilterRefuses(rules) is not null)) return null;

        // No protocol: nothing arrives before bind. any reads every interface from the network header on (SOCK_DGRAM),
        // as their link layers differ, and gets a cooked header instead.
        int fd = Libc.Socket(Libc.AF_PACKET, (cooked ? 2 /* SOCK_DGRAM */ : Libc.SOCK_RAW) | Libc.SOCK_CLOEXEC, 0);
        if (fd < 0) throw ErrnoException.FromLastError($"socket(AF_PACKET) for '{ifName}'", "AF_PACKET needs CAP_NET_RAW (run as root or grant the capability)");
        var socket = new SafeFileDescriptor(fd);
        SafeMapping? ring = null;
        KernelRules? program = null;
        try
        {
            if (rules is not null) program = KernelRules.ForPacketSocket(rules);
            Libc.SetSockOpt(fd, Libc.SOL_PACKET, Libc.PACKET_VERSION, Libc.TPACKET_V3, "setsockopt(PACKET_VERSION, TPACKET_V3)");
            // Room before each frame for the VLAN tag the kernel took off, so that a frame read in place gets it back where it
            // lies; for any, for the cooked header.
            Libc.SetSockOpt(fd, Libc.SOL_PACKET, Libc.PACKET_RESERVE, cooked ? Sll2HeaderLength : VlanTagLength, "setsockopt(PACKET_RESERVE)");
            // A socket bound to the interface takes in all its packets until it is in its fanout group, and those the group
            // also gives to another member: until then it keeps none (a member that joins a busy group takes nothing twice).
            if (joins) AttachProgram(fd, [new BpfInstruction { Code = Return, K = 0 }], "a filter that keeps nothing until the socket is in its fanout group");
            else if (program is not null) AttachRules(fd, program);
            else if (o.Filter is not null || o.RxQueue is not null) AttachFilter(fd, o.Filter, o.RxQueue);
            if (!o.CaptureOutgoing) Libc.SetSockOpt(fd, Libc.SOL_PACKET, Libc.PACKET_IGNORE_OUTGOING, 1, "setsockopt(PACKET_IGNORE_OUTGOING)");
            int rxBlocks = pool is null ? 0 : o.BlockCount;
            if (rxBlocks > 0)
            {
                var rx = new TpacketReq3
                {
                    BlockSize = (uint)o.BlockSize, BlockCount = (uint)rxBlocks, FrameSize = 2048,
                    FrameCount = (uint)((long)o.BlockSize * rxBlocks / 2048), RetireBlockTimeoutMs = (uint)o.BlockTimeoutMs,
                };
                if (Libc.SetSockOpt(fd, Libc.SOL_PACKET, Libc.PACKET_RX_RING, &rx, sizeof(TpacketReq3)) != 0)
                    throw ErrnoException.FromLastError("setsockopt(PACKET_RX_RING)", "try a smaller ring (BlockSize × BlockCount)");
            }
            long txBytes = 0;
            if (o.TxSlots > 0)
            {
                int txBlock = Math.Max(4096, (int)Math.Min(1 << 20, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)o.TxSlotSize)));
                int perBlock = txBlock / o.TxSlotSize;
                int txBlocks = (o.TxSlots + perBlock - 1) / perBlock;
                var tx = new TpacketReq3 { BlockSize = (uint)txBlock, BlockCount = (uint)txBlocks, FrameSize = (uint)o.TxSlotSize, FrameCount = (uint)(txBlocks * perBlock) };
                if (Libc.SetSockOpt(fd, Libc.SOL_PACKET, Libc.PACKET_TX_RING, &tx, sizeof(TpacketReq3)) != 0)
                    throw ErrnoException.FromLastError("setsockopt(PACKET_TX_RING)");
                txBytes = (long)txBlock * txBlocks;
                o = o with { TxSlots = txBlocks * perBlock };
            }
            long size = (long)rxBlocks * o.BlockSize + txBytes;
            if (size == 0) throw new ArgumentException($"'{name}': nothing to do: no pool to receive into and no transmit ring", nameof(options));
            nint map = Libc.Mmap(0, (nuint)size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_POPULATE, fd, 0);
            if (map == Libc.MAP_FAILED) throw ErrnoException.FromLastError("mmap of the AF_PACKET rings");
            ring = new SafeMapping(map, (nuint)size);

            var address = new SockAddrLl { Family = Libc.AF_PACKET, Protocol = BinaryPrimitives.ReverseEndianness(Libc.ETH_P_ALL), IfIndex = ifIndex };
            if (Libc.Bind(fd, &address, sizeof(SockAddrLl)) != 0) throw ErrnoException.FromLastError($"bind to '{ifName}'");
            if (o.Promiscuous)
            {
                var membership = new PacketMreq { IfIndex = ifIndex, Type = Libc.PACKET_MR_PROMISC };
                if (Libc.SetSockOpt(fd, Libc.SOL_PACKET, Libc.PACKET_ADD_MEMBERSHIP, &membership, sizeof(PacketMreq)) != 0)
                    throw ErrnoException.FromLastError($"promiscuous mode on '{ifName}'");
            }
            if (joins)
            {
                JoinFanout(fd, name, ifName, o);
                if (program is not null) AttachRules(fd, program);
                else if (o.Filter is not null || o.RxQueue is not null) AttachFilter(fd, o.Filter, o.RxQueue);
                else Libc.SetSockOpt(fd, Libc.SOL_SOCKET, Libc.SO_DETACH_FILTER, 0, "setsockopt(SO_DETACH_FILTER)");
            }
            return new AfPacketDevice(name, ifName, ifIndex, socket, ring, pool, deviceIndex, o, rxBlocks) { _rules = program };
        }
        catch
        {
            ring?.Dispose();
            socket.Dispose();
            program?.Dispose();
            throw;
        }
    }

    // The rules' socket filter in place of any other: the socket holds the program from here on.
    private static void AttachRules(int fd, KernelRules program)
        => Libc.SetSockOpt(fd, Libc.SOL_SOCKET, Libc.SO_ATTACH_BPF, program.ProgramFd, "setsockopt(SO_ATTACH_BPF) with the rules' socket filter");

    private const ushort LoadWordAbsolute = 0x20, JumpIfEqual = 0x15, Return = 0x06;
    private const uint AncillaryData = 0xfffff000;                 // SKF_AD_OFF
    private const uint VlanTagPresent = AncillaryData + 48, RxQueueMapping = AncillaryData + 24;   // SKF_AD_VLAN_TAG_PRESENT, SKF_AD_QUEUE

    // The kernel runs the filter over the packet as it holds it, without the VLAN tag it took off
    // into the packet's metadata, where tcpdump's syntax means the bytes as captured. So the kernel
    // gets the program behind two instructions that let every packet with a stripped tag through,
    // and those few are filtered again in user space once their tag is back (see TryNextFrame).
    // One receive queue comes first: the queue the kernel recorded the packet under (skb_get_rx_queue: the skb's queue
    // mapping less one, as drivers record it, where generic XDP and xdp:eth0@Y look), and queue 0 for a packet none was
    // recorded for.
    private static void AttachFilter(int fd, BpfFilter? filter, int? queue)
    {
        var program = new List<BpfInstruction>();
        if (queue is int q)
        {
            program.Add(new BpfInstruction { Code = LoadWordAbsolute, K = RxQueueMapping });
            program.Add(new BpfInstruction { Code = JumpIfEqual, K = (uint)q + 1, JumpTrue = (byte)(q == 0 ? 2 : 1) });
            if (q == 0) program.Add(new BpfInstruction { Code = JumpIfEqual, K = 0, JumpTrue = 1 });
            program.Add(new BpfInstruction { Code = Return, K = 0 });
        }
        if (filter is null) program.Add(new BpfInstruction { Code = Return, K = 0x40000 });
        else
        {
            program.Add(new BpfInstruction { Code = LoadWordAbsolute, K = VlanTagPresent });
            program.Add(new BpfInstruction { Code = JumpIfEqual, K = 0, JumpTrue = 1 });
            program.Add(new BpfInstruction { Code = Return, K = 0x40000 });
            program.AddRange(filter.Instructions);
        }
        AttachProgram(fd, [.. program], filter is null ? $"the program that keeps receive queue {queue}" : $"the filter '{filter.Expression}'");
    }

    private static void AttachProgram(int fd, BpfInstruction[] program, string what)
    {
        fixed (BpfInstruction* p = program)
        {
            var fprog = new BpfProgram { Length = (uint)program.Length, Instructions = p };
            if (Libc.SetSockOpt(fd, Libc.SOL_SOCKET, Libc.SO_ATTACH_FILTER, &fprog, sizeof(BpfProgram)) != 0)
                throw ErrnoException.FromLastError($"setsockopt(SO_ATTACH_FILTER) with {what}");
        }
    }

    // Joins the socket, bound and running, to its group; without a group id (defrag=1 alone), to a group of its own.
    private static void JoinFanout(int fd, string name, string ifName, AfPacketOptions o)
    {
        int flags = (o.Defragment ? Libc.PACKET_FANOUT_FLAG_DEFRAG : 0) | (o.FanoutGroup is null ? Libc.PACKET_FANOUT_FLAG_UNIQUEID : 0);
        int group = o.FanoutGroup ?? 0;
        int value = group | (((int)o.FanoutMode | flags) << 16);
        if (Libc.SetSockOpt(fd, Libc.SOL_PACKET, Libc.PACKET_FANOUT, &value, sizeof(int)) == 0) return;
        int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        throw errno switch
        {
            Libc.EINVAL when o.FanoutGroup is not null => new ArgumentException(
                $"'{name}': fanout group {group} is in use in this network namespace with another mode, another defrag= or on another interface " +
                $"(every member of a group names the same interface, fanout_mode and defrag; this one {ifName}, {o.FanoutMode.ToString().ToLowerInvariant()}, defrag={(o.Defragment ? 1 : 0)})", nameof(name)),
            Libc.ENOSPC => new ArgumentException($"'{name}': fanout group {group} has as many members as the kernel allows", nameof(name)),
            _ => new ErrnoException($"setsockopt(PACKET_FANOUT) joining fanout group {group} on '{ifName}'", errno),
        };
    }

    private const string OptionsHelp = "snaplen=N, blocks=N, blocksize=N, latency=MS, txslots=N, promisc=0|1, outgoing=0|1, fanout=ID, fanout_mode=hash|lb|cpu|rollover|rnd|qm, defrag=0|1";

    private static AfPacketOptions ParseOptions(string name, string query, AfPacketOptions o)
    {
        bool modeGiven = false;
        foreach (string option in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] kv = option.Split('=', 2);
            if (kv.Length == 2 && kv[0] == "fanout_mode")
            {
                o = o with
                {
                    FanoutMode = Enum.TryParse(kv[1], ignoreCase: true, out FanoutMode mode) && Enum.IsDefined(mode) && !char.IsAsciiDigit(kv[1][0]) ? mode
                        : throw new ArgumentException($"'{name}': fanout_mode is hash (per flow, both directions), lb (round-robin), cpu, rollover, rnd or qm; not '{kv[1]}'", nameof(name)),
                };
                modeGiven = true;
                continue;
            }
            if (kv.Length != 2 || !int.TryParse(kv[1], NumberStyles.None, CultureInfo.InvariantCulture, out int v))
                throw new ArgumentException($"'{name}': options are {OptionsHelp}; not '{option}'", nameof(name));
            o = kv[0] switch
            {
                "snaplen" => o with { SnapLength = v },
                "blocks" => o with { BlockCount = v },
                "blocksize" => o with { BlockSize = v },
                "latency" => o with { BlockTimeoutMs = v },
                "txslots" => o with { TxSlots = v },
                "promisc" => o with { Promiscuous = v != 0 },
                "outgoing" => o with { CaptureOutgoing = v != 0 },
                "fanout" => o with { FanoutGroup = v },
                "defrag" => o with { Defragment = v != 0 },
                _ => throw new ArgumentException($"'{name}': unknown option '{kv[0]}' ({OptionsHelp})", nameof(name)),
            };
        }
        if (modeGiven && o.FanoutGroup is null) throw new ArgumentException($"'{name}': fanout_mode= is the mode of a fanout group: name the group with fanout=ID", nameof(name));
        return o;
    }

    /// <summary>Copies up to <c>packets.Length</c> waiting packets into pool buffers.</summary>
    public int ReceiveBurst(Span<PacketHandle> packets)
    {
        if (_pool is null) return 0;
        GiveBackLeased();
        int n = 0;
        ulong bytes = 0;
        while (n < packets.Length)
        {
            if (_packetsLeft == 0 && !NextBlock()) break;
            if (!_pool.TryGet(out PacketHandle p)) break;   // leave it in the ring: the kernel drops, and counts, if the ring fills
            if (!TryNextFrame(out CapturedFrame frame))
            {
                _pool.Release(p);   // the rest of what had come was filtered out
                break;
            }
            int length = Math.Min(frame.Length, p.Capacity);
            frame.Data[..length].CopyTo(p.Buffer);
            p.SetReceived(length, frame.WireLength, frame.TimestampNs, _deviceIndex, (uint)frame.Link);
            packets[n++] = p;
            bytes += (ulong)length;
        }
        GiveBackLeased();   // copied: the blocks read through are the kernel's again now
        Count(n, bytes);
        return n;
    }

    /// <summary>
    /// Up to <c>frames.Length</c> waiting packets where they lie in the kernel's ring, copied nowhere: for a reader of this
    /// process that is done with a packet before it asks for more (a capture writer, a flow table, a filter). Each frame
    /// is valid until the next call of this or of <see cref="ReceiveBurst"/>, or until the device is disposed: that call
    /// gives the blocks read through back to the kernel, in order, so the ring is held up by one burst at most, however
    /// slow the reader. A frame that must outlive the next call, or go to another process, is copied into a pool buffer
    /// (<see cref="ReceiveBurst"/> does that).
    /// </summary>
    public int ReadBurst(Span<CapturedFrame> frames)
    {
        if (_pool is null) return 0;
        GiveBackLeased();
        int n = 0;
        ulong bytes = 0;
        while (n < frames.Length && TryNextFrame(out frames[n])) bytes += (ulong)frames[n++].Length;
        Count(n, bytes);
        return n;
    }

    private void Count(int n, ulong bytes)
    {
        if (n == 0) return;
        Volatile.Write(ref _received, _received + (ulong)n);
        Volatile.Write(ref _bytes, _bytes + bytes);
    }

    // The next frame the filter keeps, where it lies in the ring, with the VLAN tag the kernel took off put back in place
    // as libpcap does: the MAC addresses four bytes back, into the room PACKET_RESERVE leaves, and the tag after them. Its
    // block stays leased until GiveBackLeased. False when nothing more has come.
    private bool TryNextFrame(out CapturedFrame frame)
    {
        while (_packetsLeft != 0 || NextBlock())
        {
            var h = (Tpacket3Hdr*)_packet;
            Ahead();
            byte* data = _packet + h->MacOffset;
            int length = (int)Math.Min(h->SnapLength, (uint)_snapLength), wire = (int)h->Length;
            if (_cooked)
            {
                data -= Sll2HeaderLength;
                Cook(data, (SockAddrLl*)(_packet + Tpacket3HeaderSize));
                frame = new CapturedFrame(data, Math.Min(length + Sll2HeaderLength, _snapLength), wire + Sll2HeaderLength, h->Seconds * 1_000_000_000L + h->Nanoseconds, LinkType.LinuxSll2);
                Lease(h);
                return true;
            }
            bool tagged = (h->Status & Libc.TP_STATUS_VLAN_VALID) != 0 && length >= 12;
            if (tagged)
            {
                Buffer.MemoryCopy(data, data - VlanTagLength, 12, 12);
                data -= VlanTagLength;
                BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(data + 12, 2), (h->Status & Libc.TP_STATUS_VLAN_TPID_VALID) != 0 ? h->VlanTpid : (ushort)0x8100);
                BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(data + 14, 2), (ushort)h->VlanTci);
                length = Math.Min(length + VlanTagLength, _snapLength);
                wire += VlanTagLength;
            }
            frame = new CapturedFrame(data, length, wire, h->Seconds * 1_000_000_000L + h->Nanoseconds, LinkType.Ethernet);
            Lease(h);
            // The kernel's filter saw the frame without its tag (see AttachFilter): a tagged one is filtered again here.
            if (!tagged || _filter is null || _filter.Matches(frame.Data, wire)) return true;
        }
        frame = default;
        return false;
    }

    // The LINUX_SLL2 header, as libpcap writes it, from the address the kernel put after the frame's tpacket3_hdr:
    // protocol, 2 reserved bytes, interface index, ARPHRD type, packet type, address length, 8 bytes of address. A VLAN tag
    // the kernel took off stays off, as libpcap leaves it for LINUX_SLL2.
    private static void Cook(byte* header, SockAddrLl* from)
    {
        var h = new Span<byte>(header, Sll2HeaderLength);
        BinaryPrimitives.WriteUInt16LittleEndian(h, from->Protocol);   // already in network order
        BinaryPrimitives.WriteUInt16BigEndian(h[2..], 0);
        BinaryPrimitives.WriteInt32BigEndian(h[4..], from->IfIndex);
        BinaryPrimitives.WriteUInt16BigEndian(h[8..], from->HaType);
        h[10] = from->PktType;
        h[11] = from->HaLen;
        BinaryPrimitives.WriteUInt64LittleEndian(h[12..], from->Address);   // bytes as the kernel laid them out
    }

    // Each frame's place follows from the one before, and the kernel wrote them on another core: the lines ahead of the
    // walk are asked for before it gets there (a prefetch past the ring's end is dropped, never a fault).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Ahead()
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.Prefetch0(_packet + 512);
    }

    // Past a frame: a block read through is the kernel's again at GiveBackLeased, not now.
    private void Lease(Tpacket3Hdr* h)
    {
        _packet += h->NextOffset;
        if (--_packetsLeft != 0) return;
        _leased++;
        _block = _block + 1 == _blockCount ? 0 : _block + 1;
    }

    // The blocks before the current one that were read through, oldest first.
    private void GiveBackLeased()
    {
        for (int k = _leased; k > 0; k--)
        {
            int b = (_block - k + _blockCount) % _blockCount;
            Volatile.Write(ref ((TpacketBlockDesc*)(_rx + (long)b * _blockSize))->BlockStatus, Libc.TP_STATUS_KERNEL);
        }
        _leased = 0;
    }

    private bool NextBlock()
    {
        var block = (TpacketBlockDesc*)(_rx + (long)_block * _blockSize);
        if ((Volatile.Read(ref block->BlockStatus) & Libc.TP_STATUS_USER) == 0) return false;
        _packetsLeft = block->PacketCount;
        _packet = (byte*)block + block->OffsetToFirstPacket;
        if (_packetsLeft != 0) return true;
        _leased++;   // empty: given back with, and after, the blocks before it
        _block = _block + 1 == _blockCount ? 0 : _block + 1;
        return false;
    }

    /// <summary>Queues a copy of the packet in the next free transmit slot.</summary>
    public bool TrySend(in PacketHandle packet)
    {
        if (_txSlots == 0) throw new InvalidOperationException($"'{Name}' was opened without a transmit ring (TxSlots = 0)");
        ReadOnlySpan<byte> data = packet.Data;
        var slot = (Tpacket3Hdr*)(_tx + (long)_txNext * _txSlotSize);
        uint status = Volatile.Read(ref slot->Status);
        if (status == Libc.TP_STATUS_WRONG_FORMAT)
        {
            _sendFailed++;   // the kernel refused what was in this slot before; the slot is free again
            status = Libc.TP_STATUS_AVAILABLE;
        }
        if (status != Libc.TP_STATUS_AVAILABLE || data.Length > _txSlotSize - Tpacket3HeaderSize)
        {
            Volatile.Write(ref _sendFailed, _sendFailed + 1);
            return false;
        }
        data.CopyTo(new Span<byte>((byte*)slot + Tpacket3HeaderSize, data.Length));
        slot->NextOffset = 0;
        slot->Length = (uint)data.Length;
        slot->SnapLength = (uint)data.Length;
        Volatile.Write(ref slot->Status, Libc.TP_STATUS_SEND_REQUEST);
        _txNext = _txNext + 1 == _txSlots ? 0 : _txNext + 1;
        _txQueued++;
        Volatile.Write(ref _sent, _sent + 1);
        return true;
    }

    /// <summary>Asks the kernel to send the filled slots; with <paramref name="wait"/>, until it has sent them all.</summary>
    public void Flush(bool wait = false)
    {
        if (_txQueued == 0 && !wait) return;
        _txQueued = 0;
        while (true)
        {
            if (Libc.SendTo(_socket.Fd, null, 0, wait ? 0 : Libc.MSG_DONTWAIT, null, 0) < 0)
            {
                int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                if (errno is not (Libc.EAGAIN or Libc.ENOBUFS or Libc.EINTR)) throw new ErrnoException($"sendto on '{Interface}'", errno);
            }
            if (!wait || !AnySlotBusy()) return;
            Thread.Sleep(1);
        }
    }

    private bool AnySlotBusy()
    {
        for (int i = 0; i < _txSlots; i++)
        {
            uint s = Volatile.Read(ref ((Tpacket3Hdr*)(_tx + (long)i * _txSlotSize))->Status);
            if (s is Libc.TP_STATUS_SEND_REQUEST or Libc.TP_STATUS_SENDING) return true;
        }
        return false;
    }

    /// <summary>Counters, with the kernel's (read through <c>PACKET_STATISTICS</c>, which the kernel resets on each read).</summary>
    public DeviceStats Stats
    {
        get
        {
            lock (_socket)
            {
                TpacketStatsV3 s;
                int length = sizeof(TpacketStatsV3);
                if (!_socket.IsClosed && Libc.GetSockOpt(_socket.Fd, Libc.SOL_PACKET, Libc.PACKET_STATISTICS, &s, ref length) == 0)
                {
                    _kernelPackets += s.Packets;
                    _kernelDrops += s.Drops;
                }
                return new DeviceStats(Volatile.Read(ref _received), Volatile.Read(ref _bytes), 0, _kernelDrops, Volatile.Read(ref _sent), Volatile.Read(ref _sendFailed));
            }
        }
    }

    /// <summary>Waits up to <paramref name="timeoutMs"/> for a block to be ready (for callers that would rather sleep than spin).</summary>
    public bool WaitReadable(int timeoutMs) => _packetsLeft != 0 || Device.Poll(_socket.Fd, timeoutMs);

    public void Dispose()
    {
        lock (_socket)
        {
            _ring.Dispose();
            _socket.Dispose();
            _rules?.Dispose();
        }
    }

    public override string ToString() => Name;
}
