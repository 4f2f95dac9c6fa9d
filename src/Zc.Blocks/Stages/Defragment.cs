using System.Buffers.Binary;
using ZcFlow.Buffers;
using ZcFlow.Parsing;

namespace ZcFlow.Stages;

/// <summary>Bounds of a <see cref="Defragment"/> stage: what it may hold, and for how long.</summary>
public sealed record DefragmentOptions
{
    /// <summary>Datagrams in reassembly at once; a fragment of one more makes room by dropping the oldest (<see cref="DefragmentStats.Evicted"/>).</summary>
    public int MaxDatagrams { get; init; } = 64;

    /// <summary>
    /// The longest datagram put back together, its IP payload (65535 at most, IPv4's limit): with
    /// <see cref="MaxDatagrams"/>, the stage's memory, taken once when it is made.
    /// </summary>
    public int MaxDatagramBytes { get; init; } = 65535;

    /// <summary>Fragments one datagram may arrive in; more is refused.</summary>
    public int MaxFragments { get; init; } = 64;

    /// <summary>How long a datagram may wait for its fragments, by the packets' own timestamps (Linux's <c>ipfrag_time</c>).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>What a <see cref="Defragment"/> stage did: fragments seen, datagrams put back together and why others were not.</summary>
/// <param name="Fragments">Fragments taken in.</param>
/// <param name="Reassembled">Datagrams put back together and passed on.</param>
/// <param name="Duplicates">Fragments dropped as exact copies of one already held.</param>
/// <param name="Refused">Datagrams refused: fragments that overlap, a tiny first fragment, too long, in too many pieces.</param>
/// <param name="TimedOut">Datagrams dropped for not being whole within the timeout.</param>
/// <param name="Evicted">Datagrams dropped to make room for a newer one (the memory bound).</param>
/// <param name="Unreassembled">Fragments cut short by the capture, passed on as they are.</param>
/// <param name="Pending">Datagrams held: waiting for fragments, or refused and remembered so that their fragments still to come are dropped.</param>
public readonly record struct DefragmentStats(
    ulong Fragments, ulong Reassembled, ulong Duplicates, ulong Refused, ulong TimedOut, ulong Evicted, ulong Unreassembled, int Pending);

/// <summary>
/// Puts fragmented IP datagrams back together, IPv4 and IPv6, for sources the kernel does not reassemble for (files, queues,
/// AF_XDP; an AF_PACKET fanout group has <c>defrag=1</c>): a packet that is not a fragment goes on as it is; a fragment is
/// kept (its bytes copied into the stage's memory, its buffer released) until its datagram is whole, which then goes on in
/// the buffer of the fragment that completed it, with the first fragment's link and IP headers (IPv4: total length, flags
/// and checksum set again; IPv6: the fragment header taken out). Memory is bounded in total and per datagram
/// (<see cref="DefragmentOptions"/>), taken once, nothing allocated per packet. A datagram with fragments that overlap is
/// refused whole, with its fragments still to come (RFC 5722), as is one whose first fragment cannot hold the transport
/// ports (a tiny fragment, RFC 1858), one too long or in too many pieces; an exact duplicate of a fragment is dropped and
/// its datagram kept. A datagram not whole within <see cref="DefragmentOptions.Timeout"/> of its first fragment is dropped.
/// A fragment cut short by the capture cannot be put back: it goes on as it is (<see cref="DefragmentStats.Unreassembled"/>).
/// A datagram longer than the buffer it goes on in is cut to it, its wire length the whole (as a short snap length cuts).
/// The struct is a handle: copies of it share one state, used by one thread.
/// </summary>
public readonly struct Defragment : IStage
{
    private readonly Reassembly _state;

    /// <summary>A stage with the default bounds (<see cref="DefragmentOptions"/>).</summary>
    public Defragment()
        : this(new DefragmentOptions())
    {
    }

    public Defragment(DefragmentOptions options) => _state = new Reassembly(options ?? throw new ArgumentNullException(nameof(options)));

    /// <summary>Its counters.</summary>
    public DefragmentStats Stats => _state.Stats;

    public int Process(Span<PacketHandle> burst)
    {
        int kept = 0;
        for (int i = 0; i < burst.Length; i++)
        {
            if (!_state.Take(ref burst[i])) continue;
            if (i != kept) (burst[kept], burst[i]) = (burst[i], burst[kept]);
            kept++;
        }
        return kept;
    }

    private sealed class Reassembly
    {
        private const int MaxHeader = 256;   // link and IP headers of a first fragment kept, at most
        private readonly DefragmentOptions _o;
        private readonly long _timeoutNs;
        private readonly byte[] _memory;       // MaxDatagrams × (MaxHeader + MaxDatagramBytes)
        private readonly Slot[] _slots;
        private readonly (int Start, int End)[] _ranges;   // MaxDatagrams × MaxFragments, each slot's sorted
        private readonly Dictionary<Key, int> _index;
        private readonly Stack<int> _free;
        private long _earliest = long.MaxValue;  // the first fragment time of the oldest datagram held
        private ulong _fragments, _reassembled, _duplicates, _refused, _timedOut, _evicted, _unreassembled;

        public Reassembly(DefragmentOptions o)
        {
            if (o.MaxDatagrams < 1 || o.MaxDatagramBytes is < 8 or > 65535 || o.MaxFragments < 2 || o.Timeout <= TimeSpan.Zero)
                throw new ArgumentException("MaxDatagrams is at least 1, MaxDatagramBytes 8 to 65535, MaxFragments at least 2, Timeout positive", nameof(o));
            _o = o;
            _timeoutNs = (long)o.Timeout.TotalNanoseconds;
            _memory = GC.AllocateUninitializedArray<byte>(o.MaxDatagrams * (MaxHeader + o.MaxDatagramBytes));
            _slots = new Slot[o.MaxDatagrams];
            _ranges = new (int, int)[o.MaxDatagrams * o.MaxFragments];
            _index = new Dictionary<Key, int>(o.MaxDatagrams);
            _free = new Stack<int>(o.MaxDatagrams);
            for (int s = o.MaxDatagrams - 1; s >= 0; s--) _free.Push(s);
        }

        public DefragmentStats Stats => new(_fragments, _reassembled, _duplicates, _refused, _timedOut, _evicted, _unreassembled, _index.Count);

        private struct Slot
        {
            public Key Key;
            public long FirstSeen;
            public int Ranges, Covered, Total;   // Total: the datagram's payload length, -1 until its last fragment came
            public int HeaderLength, IpOffset;  // of the first fragment's headers, kept; 0 until it came
            public bool Refused;                // refused: its fragments still to come are dropped until it times out
        }

        private readonly record struct Key(UInt128 Source, UInt128 Destination, uint Id, byte Protocol, byte Version);

        // True when the packet goes on: not a fragment, cut short, or the fragment that completed its datagram (now the whole).
        public bool Take(ref PacketHandle p)
        {
            long now = p.TimestampNs;
            if (now - _earliest > _timeoutNs) Expire(now);   // time goes on with every packet, fragment or not
            PacketParser.Parse(p, out PacketInfo info);
            if (!info.IsFragment) return true;
            Span<byte> frame = p.Data;
            int l3 = info.L3Offset;
            if (!Describe(frame, l3, out Key key, out int headerEnd, out int nextHeaderAt, out int offset, out bool more, out int payloadEnd))
            {
                _unreassembled++;
                return true;
            }
            _fragments++;
            ReadOnlySpan<byte> payload = frame[headerEnd..payloadEnd];
            if (offset == 0 && !more) return true;   // an atomic fragment (RFC 6946): whole as it is

            if (!_index.TryGetValue(key, out int s))
            {
                s = Allocate(now);
                _slots[s] = new Slot { Key = key, FirstSeen = now, Total = -1 };
                _index.Add(key, s);
            }
            ref Slot slot = ref _slots[s];
            if (slot.Refused) return false;

            int end = offset + payload.Length;
            if (end > _o.MaxDatagramBytes || (more && payload.Length % 8 != 0) || payload.Length == 0
                || (!more && ((slot.Total >= 0 && slot.Total != end) || Ranges(s, slot).Length > 0 && Ranges(s, slot)[^1].End > end))
                || (more && slot.Total >= 0 && end > slot.Total)
                || (offset == 0 && (payload.Length < 8 || headerEnd > MaxHeader)))
                return Refuse(ref slot);

            Span<(int Start, int End)> ranges = Ranges(s, slot);
            int at = 0;
            while (at < ranges.Length && ranges[at].End <= offset) at++;
            Span<byte> data = Data(s);
            if (at < ranges.Length && ranges[at].Start < end)
            {
                // The same piece again, byte for byte, is a copy the network made; anything else that overlaps is refused.
                if (ranges[at].Start == offset && ranges[at].End == end && data[offset..end].SequenceEqual(payload)) { _duplicates++; return false; }
                return Refuse(ref slot);
            }
            if (slot.Ranges == _o.MaxFragments) return Refuse(ref slot);
            Span<(int, int)> all = _ranges.AsSpan(s * _o.MaxFragments, slot.Ranges + 1);
            all[at..^1].CopyTo(all[(at + 1)..]);
            all[at] = (offset, end);
            slot.Ranges++;
            slot.Covered += payload.Length;
            payload.CopyTo(data[offset..]);
            if (!more) slot.Total = end;
            if (offset == 0)
            {
                frame[..headerEnd].CopyTo(Header(s));
                slot.HeaderLength = headerEnd;
                slot.IpOffset = l3 | nextHeaderAt << 16;
            }
            if (slot.Total < 0 || slot.Covered != slot.Total || slot.HeaderLength == 0) return false;
            Complete(ref p, s, ref slot);
            return true;
        }

        // The fragment's datagram, where its payload starts and ends, its place in the datagram; false for one cut short.
        private static bool Describe(ReadOnlySpan<byte> f, int l3, out Key key, out int headerEnd, out int nextHeaderAt, out int offset, out bool more, out int payloadEnd)
        {
            key = default;
            headerEnd = payloadEnd = offset = nextHeaderAt = 0;
            more = false;
            if (f[l3] >> 4 == 4)
            {
                int ihl = (f[l3] & 0x0F) * 4, total = BinaryPrimitives.ReadUInt16BigEndian(f[(l3 + 2)..]);
                if (l3 + total > f.Length || total < ihl) return false;
                ushort flags = BinaryPrimitives.ReadUInt16BigEndian(f[(l3 + 6)..]);
                key = new Key(BinaryPrimitives.ReadUInt32BigEndian(f[(l3 + 12)..]), BinaryPrimitives.ReadUInt32BigEndian(f[(l3 + 16)..]),
                    BinaryPrimitives.ReadUInt16BigEndian(f[(l3 + 4)..]), f[l3 + 9], 4);
                (offset, more, headerEnd, payloadEnd) = ((flags & 0x1FFF) * 8, (flags & 0x2000) != 0, l3 + ihl, l3 + total);
                return true;
            }
            // IPv6: the extension headers before the fragment header are the unfragmentable part, kept from the first.
            int payload = BinaryPrimitives.ReadUInt16BigEndian(f[(l3 + 4)..]);
            int end = l3 + 40 + payload;
            if (payload == 0 || end > f.Length) return false;
            int next = l3 + 6, at = l3 + 40;
            while (f[next] != 44)
            {
                if (f[next] is not (0 or 43 or 60) || end - at < 8) return false;
                next = at;
                at += (f[at + 1] + 1) * 8;
            }
            if (end - at < 8) return false;
            ushort place = BinaryPrimitives.ReadUInt16BigEndian(f[(at + 2)..]);
            key = new Key(BinaryPrimitives.ReadUInt128BigEndian(f[(l3 + 8)..]), BinaryPrimitives.ReadUInt128BigEndian(f[(l3 + 24)..]),
                BinaryPrimitives.ReadUInt32BigEndian(f[(at + 4)..]), f[at], 6);
            (offset, more, headerEnd, payloadEnd, nextHeaderAt) = (place & 0xFFF8, (place & 1) != 0, at + 8, end, next);
            return true;
        }

        // The whole datagram into the completing fragment's buffer: the first fragment's headers, set for it, and the data.
        private void Complete(ref PacketHandle p, int s, ref Slot slot)
        {
            Span<byte> header = Header(s)[..slot.HeaderLength];
            int l3 = slot.IpOffset & 0xFFFF, next = slot.IpOffset >> 16;
            int headerLength = header.Length;
            if (slot.Key.Version == 4)
            {
                int ihl = headerLength - l3;
                BinaryPrimitives.WriteUInt16BigEndian(header[(l3 + 2)..], (ushort)(ihl + slot.Total));
                header[l3 + 6] &= 0x40;   // DF stays; MF and the offset go
                header[l3 + 7] = 0;
                header[l3 + 10] = header[l3 + 11] = 0;
                BinaryPrimitives.WriteUInt16BigEndian(header[(l3 + 10)..], Checksum(header[l3..]));
            }
            else
            {
                header[next] = header[headerLength - 8];   // the fragment header's next header, into the one before it
                headerLength -= 8;
                BinaryPrimitives.WriteUInt16BigEndian(header[(l3 + 4)..], (ushort)(headerLength - l3 - 40 + slot.Total));
            }
            int whole = headerLength + slot.Total;
            int length = Math.Min(whole, p.Capacity);
            Span<byte> buffer = p.Buffer;
            header[..headerLength].CopyTo(buffer);
            if (length > headerLength) Data(s)[..(length - headerLength)].CopyTo(buffer[headerLength..]);
            p.SetReceived(length, whole, p.TimestampNs, p.DeviceIndex, p.LinkType);
            _reassembled++;
            Free(s);
        }

        private static ushort Checksum(ReadOnlySpan<byte> ip)
        {
            int ihl = (ip[0] & 0x0F) * 4;
            uint sum = 0;
            for (int i = 0; i < ihl; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(ip[i..]);
            while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
            return (ushort)~sum;
        }

        private bool Refuse(ref Slot slot)
        {
            if (!slot.Refused) _refused++;
            slot.Refused = true;
            return false;
        }

        // A slot for a new datagram: a free one, or the oldest held, dropped.
        private int Allocate(long now)
        {
            if (_free.Count == 0)
            {
                int oldest = 0;
                for (int s = 1; s < _slots.Length; s++)
                    if (_slots[s].FirstSeen < _slots[oldest].FirstSeen) oldest = s;
                if (!_slots[oldest].Refused) _evicted++;
                Free(oldest);
            }
            _earliest = Math.Min(_earliest, now);
            return _free.Pop();
        }

        // Drops the datagrams whose first fragment came more than the timeout before `now`.
        private void Expire(long now)
        {
            _earliest = long.MaxValue;
            foreach (int s in _index.Values)
            {
                if (now - _slots[s].FirstSeen > _timeoutNs)
                {
                    if (!_slots[s].Refused) _timedOut++;
                    _index.Remove(_slots[s].Key);   // removing the entry being enumerated is allowed
                    _free.Push(s);
                }
                else
                {
                    _earliest = Math.Min(_earliest, _slots[s].FirstSeen);
                }
            }
        }

        private void Free(int s)
        {
            _index.Remove(_slots[s].Key);
            _free.Push(s);
        }

        private Span<(int Start, int End)> Ranges(int s, in Slot slot) => _ranges.AsSpan(s * _o.MaxFragments, slot.Ranges);

        private Span<byte> Header(int s) => _memory.AsSpan(s * (MaxHeader + _o.MaxDatagramBytes), MaxHeader);

        private Span<byte> Data(int s) => _memory.AsSpan(s * (MaxHeader + _o.MaxDatagramBytes) + MaxHeader, _o.MaxDatagramBytes);
    }
}
