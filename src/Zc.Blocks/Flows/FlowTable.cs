using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
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
/// A fixed number of flows in arrays allocated once: open addressing (linear probing, half full at
/// most, deletion by backward shift) over flow slots, and the slots on a list in the order of their
/// last packet, so that the idle ones are found at its head, and the least recently seen one makes
/// room when the table is full (counted in <see cref="Evicted"/>). Nothing is allocated per packet or
/// per flow. Time is the packets' own (<see cref="ClockNs"/> is the latest seen), so a capture file
/// gives the same flows at any replay speed; call <see cref="Expire"/> now and then, and
/// <see cref="ExpireAll"/> at the end.
///
/// A flow ends when it has seen no packet for <see cref="IdleTimeoutNs"/>; when a packet comes more
/// than <see cref="ActiveTimeoutNs"/> after its first (it is exported, and the packet starts it again);
/// <see cref="ClosedTimeoutNs"/> after a TCP RST or FINs from both sides (the last ACK still counts in it).
/// </summary>
public sealed class FlowTable<TExport> where TExport : IFlowExport
{
    private const int None = -1;
    private const byte Closing = 1, FinForward = 2, FinReverse = 4;

    private readonly FlowRecord[] _flows;
    private readonly int[] _prev, _next;
    private readonly uint[] _hash;
    private readonly byte[] _state;
    private readonly int[] _index;   // flow slot + 1; 0 is empty
    private readonly int _indexMask;
    private TExport _export;
    private int _free, _count;
    private int _lruHead = None, _lruTail = None, _closingHead = None, _closingTail = None;
    private long _clock;
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
        _hash = new uint[capacity];
        _state = new byte[capacity];
        _index = new int[(int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)capacity * 2)];
        _indexMask = _index.Length - 1;
        for (int i = 0; i < capacity; i++) _next[i] = i + 1 < capacity ? i + 1 : None;
        _export = export;
    }

    public long IdleTimeoutNs { get; set; } = 15_000_000_000;

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
        ReadOnlySpan<byte> frame = packet.Data;
        PacketParser.Parse(frame, out PacketInfo info, Link);
        bool inner = Tunnels && info.Inner.IpVersion != 0;
        ref readonly FlowKey key = ref inner ? ref info.Inner : ref info.Outer;
        if (key.IpVersion == 0)
        {
            _ignored++;
            return false;
        }
        long t = packet.TimestampNs;
        if (t > _clock) _clock = t;
        int l3 = inner ? info.InnerL3Offset : info.L3Offset, l4 = inner ? info.InnerL4Offset : info.L4Offset;
        uint bytes = IpLength(frame, l3, key.IpVersion, packet.WireLength);
        byte flags = key.Protocol == 6 && key.HasPorts && l4 + 14 <= frame.Length ? frame[l4 + 13] : (byte)0;
        uint hash = FlowHash.Mix((ulong)FlowHash.FiveTuple(key) << 16 | info.VlanId);

        int f = Find(key, info.VlanId, hash, out bool forward);
        if (f != None && _flows[f].FirstNs != 0 && t - _flows[f].FirstNs >= ActiveTimeoutNs)
        {
            End(f, FlowEnd.Active);
            f = None;
        }
        if (f == None)
        {
            f = Create(key, info.VlanId, hash);
            forward = true;
        }
        ref FlowRecord r = ref _flows[f];
        if (forward)
        {
            if (r.Packets++ == 0) r.FirstNs = t;
            r.Bytes += bytes;
            r.LastNs = Math.Max(r.LastNs, t);
            r.TcpFlags |= flags;
        }
        else
        {
            if (r.ReversePackets++ == 0) r.ReverseFirstNs = t;
            r.ReverseBytes += bytes;
            r.ReverseLastNs = Math.Max(r.ReverseLastNs, t);
            r.ReverseTcpFlags |= flags;
        }
        _packets++;
        ref byte state = ref _state[f];
        if ((state & Closing) == 0)
        {
            // TCP: RST ends the flow, and so do FINs from both sides; a little later, so the last ACK still counts in it.
            if ((flags & 0x01) != 0) state |= forward ? FinForward : FinReverse;
            if ((flags & 0x04) != 0 || (state & (FinForward | FinReverse)) == (FinForward | FinReverse))
            {
                state |= Closing;
                Unlink(f, ref _lruHead, ref _lruTail);
                Append(f, ref _closingHead, ref _closingTail);
            }
            else if (f != _lruTail)
            {
                Unlink(f, ref _lruHead, ref _lruTail);
                Append(f, ref _lruHead, ref _lruTail);
            }
        }
        return true;
    }

    /// <summary>Ends the flows idle at <paramref name="nowNs"/> (by default the latest packet time), and the closed ones; returns how many.</summary>
    public int Expire(long nowNs = 0)
    {
        if (nowNs == 0) nowNs = _clock;
        int ended = 0;
        while (_lruHead != None && LastOf(_lruHead) + IdleTimeoutNs <= nowNs)
        {
            End(_lruHead, FlowEnd.Idle);
            ended++;
        }
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
        while (_lruHead != None) End(_lruHead, FlowEnd.Forced);
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
            int slot = _index[i] - 1;
            if (slot < 0) return None;
            if (_hash[slot] != hash) continue;
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
            End(_closingHead != None ? _closingHead : _lruHead, FlowEnd.LackOfResources);
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
        _index[i] = f + 1;
        Append(f, ref _lruHead, ref _lruTail);
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
        else Unlink(f, ref _lruHead, ref _lruTail);
        // Out of the index, by backward shift: each entry after it that may move closer to its home slot moves up.
        int i = (int)_hash[f] & _indexMask;
        while (_index[i] != f + 1) i = (i + 1) & _indexMask;
        for (int j = (i + 1) & _indexMask; _index[j] != 0; j = (j + 1) & _indexMask)
        {
            int home = (int)_hash[_index[j] - 1] & _indexMask;
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
