using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Parsing;

namespace ZcFlow.Flows;

/// <summary>Where a <see cref="FlowTable{TExport}"/> hands the flows that end (a struct's call is inlined; <see cref="FlowEncoder"/> is one).</summary>
public interface IFlowExport
{
    void Export(in FlowRecord flow);
}

/// <summary>
/// Flows of IP packets, both directions in one entry, keyed on addresses, ports, protocol and outer VLAN
/// (with <see cref="Tunnels"/>, on the innermost IP flow of GTP-U, GRE and VXLAN). One worker owns it.
///
/// A fixed number of flows in arrays allocated once: open addressing over flow slots (linear probing,
/// half full at most, deletion by backward shift; each index entry holds the flow's hash, so a lookup
/// reads the index and the flow, nothing else), and a timing wheel: each flow is filed under a tick
/// (a sixteenth of the idle timeout), first that of its first packet. The packet path never moves it:
/// when its tick comes due, a flow that has seen packets since is filed again under the tick of its last
/// one, and the others have been idle for the timeout. So a packet touches its index entry and its flow
/// and nothing else, and the idle flows are whole ticks found in order. When the table is full, the least
/// recently seen flow (to within a tick) makes room, counted in <see cref="Evicted"/>.
/// Nothing is allocated per packet or per flow. Time is the packets' own (<see cref="ClockNs"/> is the
/// latest seen), so a capture file gives the same flows at any replay speed; call <see cref="Expire"/>
/// now and then, and <see cref="ExpireAll"/> at the end.
///
/// A flow ends when it has seen no packet for <see cref="IdleTimeoutNs"/> (found within a tick after);
/// when a packet comes more than <see cref="ActiveTimeoutNs"/> after its first (it is exported, and the
/// packet starts it again); <see cref="ClosedTimeoutNs"/> after a TCP RST or FINs from both sides (the
/// last ACK still counts in it).
/// </summary>
public sealed class FlowTable<TExport> where TExport : IFlowExport
{
    private const int None = -1;
    private const byte Closing = 1, FinForward = 2, FinReverse = 4;
    private const int TicksPerIdle = 16, Wheel = 32;   // the wheel holds every tick a live flow can be under, and more

    private readonly FlowRecord[] _flows;
    private readonly int[] _prev, _next;
    private readonly long[] _tick;
    private readonly uint[] _hash;
    private readonly byte[] _state;
    private readonly ulong[] _index;   // the flow's hash << 32 | its slot + 1; 0 is empty
    private readonly int _indexMask;
    private readonly int[] _wheelHead = new int[Wheel], _wheelTail = new int[Wheel];
    private TExport _export;
    private int _free, _count;
    private int _closingHead = None, _closingTail = None;
    private long _clock, _oldestTick = long.MaxValue, _tickNs;
    private long _idleNs = 15_000_000_000;
    private ulong _packets, _ignored, _created, _exported, _evicted;

    /// <param name="capacity">The most flows held at once.</param>
    /// <param name="export">Given each flow that ends.</param>
    public FlowTable(int capacity, TExport export)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, 1 << 28);
        _flows = new FlowRecord[capacity];
        _prev = new int[capacity];
        _next = new int[capacity];
        _tick = new long[capacity];
        _hash = new uint[capacity];
        _state = new byte[capacity];
        _index = new ulong[(int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)capacity * 2)];
        _indexMask = _index.Length - 1;
        for (int i = 0; i < capacity; i++) _next[i] = i + 1 < capacity ? i + 1 : None;
        Array.Fill(_wheelHead, None);
        Array.Fill(_wheelTail, None);
        _tickNs = _idleNs / TicksPerIdle;
        _export = export;
    }

    /// <summary>How long a flow may go without a packet (15 s). Set it before the first packet.</summary>
    public long IdleTimeoutNs
    {
        get => _idleNs;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TicksPerIdle);
            if (_count != 0) throw new InvalidOperationException("the idle timeout is set before the table holds flows");
            _idleNs = value;
            _tickNs = value / TicksPerIdle;
        }
    }

    public long ActiveTimeoutNs { get; set; } = 1_800_000_000_000;

    public long ClosedTimeoutNs { get; set; } = 1_000_000_000;

    /// <summary>Key on the innermost IP flow under GTP-U, GRE and VXLAN instead of the outer one.</summary>
    public bool Tunnels { get; set; }

    /// <summary>What the packets' first header is (Ethernet unless a capture file says otherwise: <see cref="Devices.PcapFileDevice.LinkType"/>).</summary>
    public LinkType Link { get; set; } = LinkType.Ethernet;

    public int Capacity => _flows.Length;

    /// <summary>Flows held now.</summary>
    public int Count => _count;

    /// <summary>The latest packet time seen, nanoseconds since the Unix epoch.</summary>
    public long ClockNs => _clock;

    /// <summary>Packets counted into flows.</summary>
    public ulong Packets => Volatile.Read(ref _packets);

    /// <summary>Packets without an IP layer, or cut short before it: in no flow.</summary>
    public ulong Ignored => Volatile.Read(ref _ignored);

    public ulong Created => Volatile.Read(ref _created);

    public ulong Exported => Volatile.Read(ref _exported);

    /// <summary>Flows ended early to make room (<see cref="FlowEnd.LackOfResources"/>).</summary>
    public ulong Evicted => Volatile.Read(ref _evicted);

    /// <summary>The exporter the table was given (a struct is the table's own copy).</summary>
    public ref TExport Export => ref _export;

    /// <summary>Counts the packet into its flow; false when it has no IP layer (<see cref="Ignored"/>).</summary>
    public bool Add(in PacketHandle packet)
    {
        Read(0, packet.Data, packet.WireLength, packet.TimestampNs, LinkOf(packet));
        return CountIn(0);
    }

    // A packet's first header: its own when its device said (not Ethernet: `any`'s cooked frames), else the table's Link.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private LinkType LinkOf(in PacketHandle packet) => packet.LinkType == (uint)LinkType.Ethernet ? Link : (LinkType)packet.LinkType;

    /// <summary>
    /// Counts a frame that is not in a pool buffer into its flow: a record of a mapped capture file, say, read in place
    /// (<see cref="AddBurst(ReadOnlySpan{CapturedFrame})"/> takes a burst of them). <paramref name="wireLength"/> is its length
    /// on the wire, <paramref name="timestampNs"/> its time; its first header is <see cref="Link"/>'s.
    /// </summary>
    public bool Add(ReadOnlySpan<byte> frame, int wireLength, long timestampNs)
    {
        Read(0, frame, wireLength, timestampNs, Link);
        return CountIn(0);
    }

    /// <summary>
    /// Counts a burst of packets into their flows, as <see cref="Add(in PacketHandle)"/> does one by one, but parses them all
    /// first and asks the memory for each one's place in the index before the first lookup, so that the
    /// lookups of a burst wait for memory together rather than one after the other. Returns how many had an IP layer.
    /// </summary>
    public int AddBurst(ReadOnlySpan<PacketHandle> packets)
    {
        int added = 0;
        for (int start = 0; start < packets.Length; start += BurstSize)
        {
            ReadOnlySpan<PacketHandle> burst = packets.Slice(start, Math.Min(BurstSize, packets.Length - start));
            for (int i = 0; i < burst.Length; i++) Read(i, burst[i].Data, burst[i].WireLength, burst[i].TimestampNs, LinkOf(burst[i]));
            added += CountBurst(burst.Length);
        }
        return added;
    }

    /// <summary>
    /// Counts a burst of a capture file's records into their flows, read in place (<see cref="CaptureFile.ReadBurst"/>), as
    /// <see cref="AddBurst(ReadOnlySpan{PacketHandle})"/> counts packets; each frame's first header is its own <see cref="CapturedFrame.Link"/>.
    /// </summary>
    public int AddBurst(ReadOnlySpan<CapturedFrame> frames)
    {
        int added = 0;
        for (int start = 0; start < frames.Length; start += BurstSize)
        {
            ReadOnlySpan<CapturedFrame> burst = frames.Slice(start, Math.Min(BurstSize, frames.Length - start));
            for (int i = 0; i < burst.Length; i++) Read(i, burst[i].Data, burst[i].WireLength, burst[i].TimestampNs, burst[i].Link);
            added += CountBurst(burst.Length);
        }
        return added;
    }

    // The burst's packets, read first (_read): each one's place in the index and its flow asked of the memory, while the index
    // lines come in; then each counted.
    private int CountBurst(int n)
    {
        for (int i = 0; i < n; i++)
        {
            ulong entry = _index[(int)_read[i].Hash & _indexMask];
            if (entry != 0 && (uint)(entry >> 32) == _read[i].Hash)
            {
                // Every line of the flow the packet writes: it spans two or three.
                ref byte record = ref Unsafe.As<FlowRecord, byte>(ref _flows[(int)(uint)entry - 1]);
                Prefetch(ref record);
                Prefetch(ref Unsafe.Add(ref record, 64));
                Prefetch(ref Unsafe.Add(ref record, Unsafe.SizeOf<FlowRecord>() - 1));
            }
        }
        int added = 0;
        for (int i = 0; i < n; i++)
            if (CountIn(i)) added++;
        return added;
    }

    private const int BurstSize = 32;
    private readonly Packet[] _read = new Packet[BurstSize];

    // What counting a packet takes from its frame.
    private struct Packet
    {
        public FlowKey Key;
        public long Time;
        public uint Hash;
        public uint Bytes;
        public ushort Vlan;
        public byte TcpFlags;
    }

    // Reads the frame into burst place i and asks the memory for its index entry. The frame most links carry most of (plain
    // IPv4 TCP or UDP) gives its key straight; any other is parsed whole.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Read(int i, ReadOnlySpan<byte> frame, int wireLength, long time, LinkType link)
    {
        ref Packet p = ref _read[i];
        p.Time = time;
        if (link == LinkType.Ethernet && PacketParser.PlainFlow(frame, ref p.Key))
        {
            p.Vlan = 0;
            p.Bytes = IpLength(frame, PacketParser.PlainL3, 4, wireLength);
            p.TcpFlags = p.Key.Protocol == 6 ? frame[PacketParser.PlainL4 + 13] : (byte)0;
        }
        else
        {
            ReadLayers(ref p, frame, wireLength, link);
        }
        p.Hash = FlowHash.FiveTuple(p.Key) ^ p.Vlan * 0x9E3779B1u;
        Prefetch(ref _index[(int)p.Hash & _indexMask]);
    }

    private void ReadLayers(ref Packet p, ReadOnlySpan<byte> frame, int wireLength, LinkType link)
    {
        PacketParser.Parse(frame, out PacketInfo info, link);
        bool inner = Tunnels && info.Inner.IpVersion != 0;
        p.Key = inner ? info.Inner : info.Outer;
        p.Vlan = info.VlanId;
        int l3 = inner ? info.InnerL3Offset : info.L3Offset, l4 = inner ? info.InnerL4Offset : info.L4Offset;
        p.Bytes = IpLength(frame, l3, p.Key.IpVersion, wireLength);
        p.TcpFlags = p.Key.Protocol == 6 && p.Key.HasPorts && l4 + 14 <= frame.Length ? frame[l4 + 13] : (byte)0;
        // ICMP's type and code go where a collector looks for them, and softflowd puts them: the destination port, type * 256 +
        // code (nfdump shows 3.3); they are part of the key, so an echo request and its reply are two flows, as there.
        // ICMPv6 keeps 0, as softflowd does.
        if (p.Key.Protocol == 1 && p.Key.IpVersion == 4 && l4 != 0 && l4 + 2 <= frame.Length) p.Key.DestinationPort = (ushort)(frame[l4] << 8 | frame[l4 + 1]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Prefetch<T>(ref T line)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref line));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool CountIn(int i)
    {
        ref readonly Packet p = ref _read[i];
        ref readonly FlowKey key = ref p.Key;
        if (key.IpVersion == 0)
        {
            _ignored++;
            return false;
        }
        long t = p.Time;
        if (t > _clock) _clock = t;

        int f = Find(key, p.Vlan, p.Hash, out bool forward);
        if (f != None && _flows[f].FirstNs != 0 && t - _flows[f].FirstNs >= ActiveTimeoutNs)
        {
            End(f, FlowEnd.Active);
            f = None;
        }
        if (f == None)
        {
            f = Create(key, p.Vlan, p.Hash);
            forward = true;
        }
        ref FlowRecord r = ref _flows[f];
        if (forward)
        {
            if (r.Packets++ == 0) r.FirstNs = t;
            r.Bytes += p.Bytes;
            r.LastNs = Math.Max(r.LastNs, t);
            r.TcpFlags |= p.TcpFlags;
        }
        else
        {
            if (r.ReversePackets++ == 0) r.ReverseFirstNs = t;
            r.ReverseBytes += p.Bytes;
            r.ReverseLastNs = Math.Max(r.ReverseLastNs, t);
            r.ReverseTcpFlags |= p.TcpFlags;
        }
        _packets++;
        // TCP: RST ends the flow, and so do FINs from both sides; a little later, so the last ACK still counts in it.
        if ((p.TcpFlags & 0x05) != 0) EndingFlags(f, p.TcpFlags, forward);
        return true;
    }

    private void EndingFlags(int f, byte flags, bool forward)
    {
        ref byte state = ref _state[f];
        if ((state & Closing) != 0) return;
        if ((flags & 0x01) != 0) state |= forward ? FinForward : FinReverse;
        if ((flags & 0x04) != 0 || (state & (FinForward | FinReverse)) == (FinForward | FinReverse))
        {
            state |= Closing;
            Unfile(f);
            Append(f, ref _closingHead, ref _closingTail);
        }
    }

    // The tick of the flow's last packet (it is filed under that one or an earlier one).
    private long LastTick(int f) => LastOf(f) / _tickNs;

    // A flow found under a due tick k that has seen packets since: filed again under the tick of its last one. False
    // when it has not (it is idle as of k).
    private bool Refiled(int f, long k)
    {
        long last = LastTick(f);
        if (last <= k) return false;
        Unfile(f);
        File(f, last);
        return true;
    }

    /// <summary>
    /// Ends the flows idle at <paramref name="nowNs"/> (by default the latest packet time): every flow of each
    /// tick that is wholly past the idle timeout; and the closed ones. Returns how many.
    /// </summary>
    public int Expire(long nowNs = 0)
    {
        if (nowNs == 0) nowNs = _clock;
        int ended = 0;
        long lastIdleTick = (nowNs - _idleNs) / _tickNs - 1;   // a flow under tick k saw its last packet before (k + 1) ticks
        if (_oldestTick < lastIdleTick - Wheel)
        {
            // Time leapt (a gap in a capture): every bucket once, rather than every tick between.
            for (int b = 0; b < Wheel; b++)
                for (int f = _wheelHead[b], next; f != None; f = next)
                {
                    next = _next[f];
                    if (_tick[f] > lastIdleTick || Refiled(f, lastIdleTick)) continue;
                    End(f, FlowEnd.Idle);
                    ended++;
                }
            _oldestTick = lastIdleTick + 1;
        }
        for (; _oldestTick <= lastIdleTick && _count != 0; _oldestTick++)
            ended += EndTick(_oldestTick, FlowEnd.Idle);
        while (_closingHead != None && LastOf(_closingHead) + ClosedTimeoutNs <= nowNs)
        {
            End(_closingHead, FlowEnd.EndOfFlow);
            ended++;
        }
        return ended;
    }

    /// <summary>Ends every flow (<see cref="FlowEnd.Forced"/>): at the end of the input, or at shutdown.</summary>
    public int ExpireAll()
    {
        int ended = _count;
        while (_closingHead != None) End(_closingHead, FlowEnd.EndOfFlow);
        for (int b = 0; b < Wheel; b++)
            for (int f = _wheelHead[b]; f != None; f = _wheelHead[b])
            {
                if (_next[f] != None) Prefetch(ref _index[(int)_hash[_next[f]] & _indexMask]);
                End(f, FlowEnd.Forced);
            }
        _oldestTick = long.MaxValue;
        return ended;
    }

    // Ends the flows filed under tick k (its bucket may also hold flows of a tick a whole wheel later: they stay).
    private int EndTick(long k, FlowEnd reason)
    {
        int ended = 0;
        for (int f = _wheelHead[(int)(k & (Wheel - 1))], next; f != None; f = next)
        {
            next = _next[f];
            if (next != None) Prefetch(ref _flows[next]);   // the next one's times, while this one is looked at
            if (_tick[f] != k || Refiled(f, k)) continue;
            End(f, reason);
            ended++;
        }
        return ended;
    }

    private long LastOf(int f) => Math.Max(_flows[f].LastNs, _flows[f].ReverseLastNs);

    // The IP packet's length from its header (total length, or payload length and the fixed header), as NetFlow counts octets
    // (so Ethernet padding does not count); what the frame held past the link header when the header says 0 (a jumbogram,
    // BIG TCP) or was cut off.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint IpLength(ReadOnlySpan<byte> frame, int l3, byte version, int wireLength)
    {
        uint length = version == 4 && l3 + 4 <= frame.Length ? BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 2)..])
            : version == 6 && l3 + 6 <= frame.Length ? BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 4)..]) : 0u;
        if (version == 6 && length != 0) length += 40;
        return length != 0 ? length : (uint)Math.Max(wireLength - l3, 0);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Find(in FlowKey key, ushort vlan, uint hash, out bool forward)
    {
        forward = true;
        for (int i = (int)hash & _indexMask; ; i = (i + 1) & _indexMask)
        {
            ulong entry = _index[i];
            if (entry == 0) return None;
            if ((uint)(entry >> 32) != hash) continue;
            int slot = (int)(uint)entry - 1;
            ref FlowRecord r = ref _flows[slot];
            if (r.Protocol != key.Protocol || r.IpVersion != key.IpVersion || r.Vlan != vlan) continue;
            if (r.SourceAddress == key.Source && r.DestinationAddress == key.Destination && r.SourcePort == key.SourcePort && r.DestinationPort == key.DestinationPort)
                return slot;
            if (r.SourceAddress == key.Destination && r.DestinationAddress == key.Source && r.SourcePort == key.DestinationPort && r.DestinationPort == key.SourcePort)
            {
                forward = false;
                return slot;
            }
        }
    }

    private int Create(in FlowKey key, ushort vlan, uint hash)
    {
        if (_free == None)
        {
            _evicted++;
            End(_closingHead != None ? _closingHead : Oldest(), FlowEnd.LackOfResources);
        }
        int f = _free;
        _free = _next[f];
        _flows[f] = new FlowRecord
        {
            SourceAddress = key.Source, DestinationAddress = key.Destination, SourcePort = key.SourcePort, DestinationPort = key.DestinationPort,
            Protocol = key.Protocol, IpVersion = key.IpVersion, Vlan = vlan,
        };
        _hash[f] = hash;
        _state[f] = 0;
        int i = (int)hash & _indexMask;
        while (_index[i] != 0) i = (i + 1) & _indexMask;
        _index[i] = (ulong)hash << 32 | (uint)(f + 1);
        File(f, Math.Max(_clock / _tickNs, _oldestTick == long.MaxValue ? 0 : _oldestTick));
        _count++;
        _created++;
        return f;
    }

    private void End(int f, FlowEnd reason)
    {
        _flows[f].End = reason;
        _export.Export(_flows[f]);
        _exported++;
        if ((_state[f] & Closing) != 0) Unlink(f, ref _closingHead, ref _closingTail);
        else Unfile(f);
        // Out of the index, by backward shift: each entry after it that may move closer to its home slot moves up.
        int i = (int)_hash[f] & _indexMask;
        while ((uint)_index[i] != (uint)(f + 1)) i = (i + 1) & _indexMask;
        for (int j = (i + 1) & _indexMask; _index[j] != 0; j = (j + 1) & _indexMask)
        {
            int home = (int)(_index[j] >> 32) & _indexMask;
            // The entry at j may fill the hole at i unless its home lies cyclically in (i, j].
            if (i <= j ? home <= i || home > j : home <= i && home > j)
            {
                _index[i] = _index[j];
                i = j;
            }
        }
        _index[i] = 0;
        _next[f] = _free;
        _free = f;
        _count--;
    }

    // The least recently seen flow, to within a tick: the first of the oldest tick that has one (flows filed under it
    // that have seen packets since are filed again on the way).
    private int Oldest()
    {
        for (; ; _oldestTick++)
            for (int f = _wheelHead[(int)(_oldestTick & (Wheel - 1))], next; f != None; f = next)
            {
                next = _next[f];
                if (_tick[f] == _oldestTick && !Refiled(f, _oldestTick)) return f;
            }
    }

    private void File(int f, long tick)
    {
        _tick[f] = tick;
        if (tick < _oldestTick) _oldestTick = tick;
        int b = (int)(tick & (Wheel - 1));
        Append(f, ref _wheelHead[b], ref _wheelTail[b]);
    }

    private void Unfile(int f)
    {
        int b = (int)(_tick[f] & (Wheel - 1));
        Unlink(f, ref _wheelHead[b], ref _wheelTail[b]);
    }

    private void Append(int f, ref int head, ref int tail)
    {
        _prev[f] = tail;
        _next[f] = None;
        if (tail != None) _next[tail] = f;
        else head = f;
        tail = f;
    }

    private void Unlink(int f, ref int head, ref int tail)
    {
        int p = _prev[f], n = _next[f];
        if (p != None) _next[p] = n;
        else head = n;
        if (n != None) _prev[n] = p;
        else tail = p;
    }
}
