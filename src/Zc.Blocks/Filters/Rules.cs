using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace ZcFlow.Filters;

/// <summary>What a rule does with the packets it matches (PF_RING's rule actions).</summary>
public enum RuleAction
{
    /// <summary>To the application: the device hands the packet over.</summary>
    ToApplication,

    /// <summary>Dropped: no one sees it.</summary>
    Drop,

    /// <summary>To the Linux stack only, as if ZcFlow were not there (ARP, management traffic).</summary>
    ToKernel,

    /// <summary>Sent unchanged out of another interface (<see cref="Rule.ReflectTo"/>), never reaching user space.</summary>
    Reflect,
}

/// <summary>
/// One filtering rule: fields to match, each left out (null) to match anything, and an action. A rule that gives the
/// protocol, both addresses whole and both ports as single values is <em>precise</em> (PF_RING's hash rule: its VLAN is
/// the frame's, 0 for none, and it is found by one lookup); any other is a <em>wildcard</em> rule (addresses as prefixes,
/// ports as ranges), tried in order. Written one a line (<see cref="Parse"/>):
/// <c>drop proto udp dport 53</c>, <c>kernel ether arp</c>, <c>reflect eth2 src 10.0.0.0/8 dport 1000-2000</c>,
/// <c>pass vlan 10 proto tcp src 192.0.2.1 sport 80 dst 198.51.100.7 dport 40000</c>.
/// </summary>
public sealed record Rule
{
    public RuleAction Action { get; init; }

    /// <summary>The interface a <see cref="RuleAction.Reflect"/> rule sends out of.</summary>
    public string? ReflectTo { get; init; }

    /// <summary>The EtherType after any VLAN tags (0x0806 for ARP).</summary>
    public ushort? EtherType { get; init; }

    /// <summary>The outer VLAN id.</summary>
    public ushort? Vlan { get; init; }

    /// <summary>The IP protocol (IPv6: the header after the extension headers).</summary>
    public byte? Protocol { get; init; }

    public IPNetwork? Source { get; init; }

    public IPNetwork? Destination { get; init; }

    /// <summary>Source ports, both ends included; a packet without ports (not TCP, UDP or SCTP, or a later fragment) matches no port range.</summary>
    public (ushort Low, ushort High)? SourcePorts { get; init; }

    public (ushort Low, ushort High)? DestinationPorts { get; init; }

    /// <summary>True for a rule of the exact 6-tuple kind, found by one hash lookup.</summary>
    public bool IsPrecise => EtherType is null && Protocol is not null
        && Source is { } s && s.PrefixLength == (s.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? 32 : 128)
        && Destination is { } d && d.PrefixLength == (d.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? 32 : 128)
        && s.BaseAddress.AddressFamily == d.BaseAddress.AddressFamily
        && SourcePorts is { } sp && sp.Low == sp.High && DestinationPorts is { } dp && dp.Low == dp.High;

    /// <summary>
    /// A rule from its line: an action (<c>pass</c>, <c>drop</c>, <c>kernel</c>, <c>reflect &lt;interface&gt;</c>), then any of
    /// <c>ether &lt;type|arp|ip|ip6&gt;</c>, <c>vlan &lt;id&gt;</c>, <c>proto &lt;tcp|udp|icmp|icmp6|sctp|number&gt;</c>,
    /// <c>src &lt;address[/length]&gt;</c>, <c>dst …</c>, <c>sport &lt;port[-port]&gt;</c>, <c>dport …</c>. A bad line is an
    /// <see cref="ArgumentException"/> that says what was wrong.
    /// </summary>
    public static Rule Parse(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        string[] w = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        ArgumentException Bad(string why) => new($"rule '{line.Trim()}': {why}", nameof(line));
        if (w.Length == 0) throw Bad("empty: a rule starts with pass, drop, kernel or reflect <interface>");
        var rule = new Rule
        {
            Action = w[0] switch
            {
                "pass" => RuleAction.ToApplication,
                "drop" => RuleAction.Drop,
                "kernel" => RuleAction.ToKernel,
                "reflect" => RuleAction.Reflect,
                _ => throw Bad($"'{w[0]}' is not an action: pass, drop, kernel or reflect <interface>"),
            },
        };
        int i = 1;
        if (rule.Action == RuleAction.Reflect)
        {
            if (w.Length < 2 || w[1].Length > 15) throw Bad("reflect names the interface to send out of: reflect eth2 …");
            rule = rule with { ReflectTo = w[1] };
            i = 2;
        }
        for (; i < w.Length; i += 2)
        {
            if (i + 1 >= w.Length) throw Bad($"'{w[i]}' needs a value");
            string v = w[i + 1];
            rule = w[i] switch
            {
                "ether" => rule with { EtherType = v switch { "arp" => 0x0806, "ip" => 0x0800, "ip6" => 0x86DD, _ => Number(v, 0xFFFF, hexOk: true) ?? throw Bad($"ether takes an EtherType (0x0806, arp, ip, ip6), not '{v}'") } },
                "vlan" => rule with { Vlan = Number(v, 4095) ?? throw Bad($"vlan takes an id from 0 to 4095, not '{v}'") },
                "proto" => rule with { Protocol = (byte)(v switch { "tcp" => 6, "udp" => 17, "icmp" => 1, "icmp6" => 58, "sctp" => 132, "gre" => 47, _ => Number(v, 255) ?? throw Bad($"proto takes tcp, udp, icmp, icmp6, sctp, gre or a number to 255, not '{v}'") }) },
                "src" => rule with { Source = Network(v) ?? throw Bad($"src takes an address or a prefix (10.0.0.0/8, 2001:db8::/32), not '{v}'") },
                "dst" => rule with { Destination = Network(v) ?? throw Bad($"dst takes an address or a prefix, not '{v}'") },
                "sport" => rule with { SourcePorts = Ports(v) ?? throw Bad($"sport takes a port or a range (1000-2000), not '{v}'") },
                "dport" => rule with { DestinationPorts = Ports(v) ?? throw Bad($"dport takes a port or a range (1000-2000), not '{v}'") },
                _ => throw Bad($"unknown field '{w[i]}' (ether, vlan, proto, src, dst, sport, dport)"),
            };
        }
        if (rule.Source is { } s && rule.Destination is { } d && s.BaseAddress.AddressFamily != d.BaseAddress.AddressFamily)
            throw Bad("src and dst are of different IP versions");
        return rule;
    }

    private static ushort? Number(string v, int max, bool hexOk = false)
    {
        bool hex = hexOk && v.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
        return int.TryParse(hex ? v[2..] : v, hex ? NumberStyles.HexNumber : NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n <= max ? (ushort)n : null;
    }

    private static IPNetwork? Network(string v)
    {
        if (IPNetwork.TryParse(v, out IPNetwork n)) return n;
        return IPAddress.TryParse(v, out IPAddress? a) ? new IPNetwork(a, a.AddressFamily == AddressFamily.InterNetwork ? 32 : 128) : null;
    }

    private static (ushort, ushort)? Ports(string v)
    {
        string[] p = v.Split('-', 2);
        ushort? low = Number(p[0], 65535), high = p.Length == 2 ? Number(p[1], 65535) : low;
        return low is ushort l && high is ushort h && l <= h ? (l, h) : null;
    }

    /// <summary>The rule as a line that <see cref="Parse"/> reads back.</summary>
    public override string ToString()
    {
        var parts = new List<string>
        {
            Action switch { RuleAction.ToApplication => "pass", RuleAction.Drop => "drop", RuleAction.ToKernel => "kernel", _ => $"reflect {ReflectTo}" },
        };
        if (EtherType is ushort e) parts.Add($"ether 0x{e:x4}");
        if (Vlan is ushort vlan) parts.Add($"vlan {vlan}");
        if (Protocol is byte proto) parts.Add($"proto {proto}");
        if (Source is { } s) parts.Add($"src {s}");
        if (Destination is { } d) parts.Add($"dst {d}");
        if (SourcePorts is { } sp) parts.Add(sp.Low == sp.High ? $"sport {sp.Low}" : $"sport {sp.Low}-{sp.High}");
        if (DestinationPorts is { } dp) parts.Add(dp.Low == dp.High ? $"dport {dp.Low}" : $"dport {dp.Low}-{dp.High}");
        return string.Join(' ', parts);
    }
}

/// <summary>
/// What a frame offers the rules, read the one way both back ends read it (user space here, the kernel's XDP program in
/// <see cref="KernelRules"/>): up to two VLAN tags (the outer's id kept), the EtherType after them; IPv4 (its header whole,
/// options skipped) or IPv6 (up to three extension headers: hop-by-hop, routing, destination options, fragment);
/// TCP, UDP or SCTP ports when the first four bytes of the transport header are there and the packet is not a later
/// fragment. A frame cut short offers what lies before the cut.
/// </summary>
internal struct RuleFields
{
    public ushort EtherType, Vlan;
    public bool Tagged, IsIp, HasPorts;
    public byte Version, Protocol;
    public ushort SourcePort, DestinationPort;
    public UInt128 Source, Destination;   // as the bytes lie, big-endian; IPv4 in the top 32 bits

    public static RuleFields Read(ReadOnlySpan<byte> f, Parsing.LinkType link = Parsing.LinkType.Ethernet)
    {
        var r = default(RuleFields);
        int l3;
        ushort type;
        switch (link)
        {
            case Parsing.LinkType.Ethernet:
            {
                if (f.Length < 14) return r;
                int at = 12;
                type = BinaryPrimitives.ReadUInt16BigEndian(f[at..]);
                for (int tag = 0; tag < 2 && type is 0x8100 or 0x88A8 or 0x9100; tag++)
                {
                    if (f.Length < at + 6) { r.EtherType = type; return r; }
                    if (tag == 0)
                    {
                        r.Vlan = (ushort)(BinaryPrimitives.ReadUInt16BigEndian(f[(at + 2)..]) & 0x0FFF);
                        r.Tagged = true;
                    }
                    at += 4;
                    type = BinaryPrimitives.ReadUInt16BigEndian(f[at..]);
                }
                l3 = at + 2;
                break;
            }
            // The cooked headers of Linux's any (v1 and v2) give the EtherType; a raw IP frame has only its version.
            case Parsing.LinkType.LinuxSll2:
                if (f.Length < 20) return r;
                (type, l3) = (BinaryPrimitives.ReadUInt16BigEndian(f), 20);
                break;
            case Parsing.LinkType.LinuxSll:
                if (f.Length < 16) return r;
                (type, l3) = (BinaryPrimitives.ReadUInt16BigEndian(f[14..]), 16);
                break;
            case Parsing.LinkType.Raw:
                if (f.Length < 1) return r;
                (type, l3) = (f[0] >> 4 == 6 ? (ushort)0x86DD : (ushort)0x0800, 0);
                break;
            default:
                return r;
        }
        r.EtherType = type;
        int l4;
        if (type == 0x0800)
        {
            if (f.Length < l3 + 20 || f[l3] >> 4 != 4 || (f[l3] & 0x0F) < 5) return r;
            r.IsIp = true;
            r.Version = 4;
            r.Protocol = f[l3 + 9];
            r.Source = (UInt128)BinaryPrimitives.ReadUInt32BigEndian(f[(l3 + 12)..]) << 96;
            r.Destination = (UInt128)BinaryPrimitives.ReadUInt32BigEndian(f[(l3 + 16)..]) << 96;
            if ((BinaryPrimitives.ReadUInt16BigEndian(f[(l3 + 6)..]) & 0x1FFF) != 0) return r;
            l4 = l3 + (f[l3] & 0x0F) * 4;
        }
        else if (type == 0x86DD)
        {
            if (f.Length < l3 + 40 || f[l3] >> 4 != 6) return r;
            r.IsIp = true;
            r.Version = 6;
            r.Source = BinaryPrimitives.ReadUInt128BigEndian(f[(l3 + 8)..]);
            r.Destination = BinaryPrimitives.ReadUInt128BigEndian(f[(l3 + 24)..]);
            byte next = f[l3 + 6];
            l4 = l3 + 40;
            for (int ext = 0; ext < 3 && next is 0 or 43 or 60 or 44; ext++)
            {
                if (f.Length < l4 + 8) { r.Protocol = next; return r; }
                if (next == 44)
                {
                    bool later = (BinaryPrimitives.ReadUInt16BigEndian(f[(l4 + 2)..]) & 0xFFF8) != 0;
                    next = f[l4];
                    l4 += 8;
                    if (later) { r.Protocol = next; return r; }
                }
                else
                {
                    int length = (f[l4 + 1] + 1) * 8;
                    next = f[l4];
                    l4 += length;
                }
            }
            r.Protocol = next;
        }
        else
        {
            return r;
        }
        if (r.Protocol is 6 or 17 or 132 && f.Length >= l4 + 4)
        {
            r.HasPorts = true;
            r.SourcePort = BinaryPrimitives.ReadUInt16BigEndian(f[l4..]);
            r.DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(f[(l4 + 2)..]);
        }
        return r;
    }
}

/// <summary>
/// PF_RING's filtering rules as one model with two back ends: evaluated here, in user space, for any device
/// (<see cref="Decide(ReadOnlySpan{byte}, int, out int)"/>), and in the kernel for an AF_XDP device (<see cref="KernelRules"/>), with the same decision for every
/// frame. Precise rules are found by one lookup and come first; then the wildcard rules, in the order added; a frame no rule
/// matches gets <see cref="DefaultAction"/>. Rules are added and removed while packets flow (a reader sees the set before
/// or after a change, never half of it); each counts the packets and bytes it matched here. Ids are small numbers, reused
/// after a remove, at most <see cref="MaxRules"/> at once.
/// </summary>
public sealed class Rules
{
    /// <summary>Rules held at once, precise and wildcard together.</summary>
    public const int MaxRules = 65536;

    /// <summary>Wildcard rules held at once (the kernel walks them for every packet no precise rule took).</summary>
    public const int MaxWildcards = 64;

    internal sealed class Entry(int id, Rule rule)
    {
        public readonly int Id = id;
        public readonly Rule Rule = rule;
        public ulong Packets, Bytes;
        public ulong GonePackets, GoneBytes;   // counted by kernel programs that have gone since (their devices closed)
    }

    internal readonly record struct PreciseKey(byte Version, byte Protocol, ushort Vlan, ushort SourcePort, ushort DestinationPort, UInt128 Source, UInt128 Destination);

    private readonly Lock _lock = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<PreciseKey, Entry> _precise = new();
    private readonly Entry?[] _byId = new Entry?[MaxRules];
    private Entry[] _wildcards = [];
    private readonly Stack<int> _freeIds = new();
    private int _nextId;
    private ulong _defaultPackets, _defaultBytes, _goneDefaultPackets, _goneDefaultBytes;

    public Rules(RuleAction defaultAction = RuleAction.ToApplication, BpfFilter? filter = null) => (DefaultAction, Filter) = (defaultAction, filter);

    /// <summary>What a frame no rule matches gets.</summary>
    public RuleAction DefaultAction { get; }

    /// <summary>
    /// A filter in tcpdump's syntax in front of the application: a frame to go to the application that it rejects goes to
    /// the kernel instead. For an AF_XDP device it is translated into the device's XDP program (<see cref="ClassicToEbpf"/>),
    /// so a filtered capture copies only what passes; elsewhere it runs in user space.
    /// </summary>
    public BpfFilter? Filter { get; }

    /// <summary>
    /// A back end that keeps its own copy (the kernel's maps): told of every rule held now, then of each add (before it
    /// takes effect here: a follower that throws refuses it) and each remove, with the wildcard rules as they are after it.
    /// </summary>
    internal delegate void Follower(int id, Rule rule, bool added, Entry[] wildcards);

    private Follower? _followers;

    internal void Follow(Follower follower)
    {
        lock (_lock)
        {
            foreach (Entry? e in _byId)
                if (e is not null && e.Rule.IsPrecise) follower(e.Id, e.Rule, true, _wildcards);
            for (int i = 0; i < _wildcards.Length; i++) follower(_wildcards[i].Id, _wildcards[i].Rule, true, _wildcards[..(i + 1)]);
            _followers += follower;
        }
    }

    internal void Unfollow(Follower follower)
    {
        lock (_lock) _followers -= follower;
    }

    // Back ends' reasons to refuse a rule, asked before anything changes (Add, Replace); null from each that takes it.
    private Func<Rule, string?>[] _refusers = [];

    internal void RefuseWith(Func<Rule, string?> refuses, bool add)
    {
        lock (_lock) _refusers = add ? [.. _refusers, refuses] : [.. _refusers.Where(r => r != refuses)];
    }

    // Why the rule cannot be added whatever else is held, or null.
    private string? Refusal(Rule rule)
    {
        if (rule.Action == RuleAction.Reflect && string.IsNullOrEmpty(rule.ReflectTo)) return $"rule '{rule}': reflect names an interface";
        if (rule.Source is { } s && rule.Destination is { } d && s.BaseAddress.AddressFamily != d.BaseAddress.AddressFamily)
            return $"rule '{rule}': src and dst are of different IP versions";
        foreach (Func<Rule, string?> refuses in _refusers)
            if (refuses(rule) is string why) return why;
        return null;
    }

    /// <summary>
    /// Adds a rule and returns its id. A precise rule for a 6-tuple that one has already, one too many, or one a back end
    /// refuses (the kernel's map full, an interface to reflect to that is not there) is refused, and the rules stay as they were.
    /// </summary>
    public int Add(Rule rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        lock (_lock)
        {
            if (Refusal(rule) is string why) throw new ArgumentException(why, nameof(rule));
            if (_freeIds.Count == 0 && _nextId == MaxRules) throw new InvalidOperationException($"rule '{rule}': {MaxRules} rules are held already");
            if (!rule.IsPrecise && _wildcards.Length == MaxWildcards) throw new InvalidOperationException($"rule '{rule}': {MaxWildcards} wildcard rules are held already (precise rules have room for more)");
            if (rule.IsPrecise && _precise.TryGetValue(KeyOf(rule), out Entry? there))
                throw new ArgumentException($"rule '{rule}': a precise rule for this 6-tuple is there already (id {there.Id})", nameof(rule));
            int id = _freeIds.Count > 0 ? _freeIds.Peek() : _nextId;
            var entry = new Entry(id, rule);
            Entry[] wildcards = rule.IsPrecise ? _wildcards : [.. _wildcards, entry];
            _followers?.Invoke(id, rule, true, wildcards);
            if (_freeIds.Count > 0) _freeIds.Pop();
            else _nextId++;
            if (rule.IsPrecise) _precise[KeyOf(rule)] = entry;
            else _wildcards = wildcards;
            _byId[id] = entry;
            return id;
        }
    }

    /// <summary>Removes rule <paramref name="id"/>; false when there is none.</summary>
    public bool Remove(int id)
    {
        lock (_lock)
        {
            if ((uint)id >= MaxRules || _byId[id] is not { } entry) return false;
            if (entry.Rule.IsPrecise) _precise.TryRemove(KeyOf(entry.Rule), out _);
            else _wildcards = [.. _wildcards.Where(e => e != entry)];
            _byId[id] = null;
            _freeIds.Push(id);
            _followers?.Invoke(id, entry.Rule, false, _wildcards);
            return true;
        }
    }

    /// <summary>The rules held, by id: precise rules first, then the wildcard rules in the order they are tried.</summary>
    public IReadOnlyList<(int Id, Rule Rule)> List()
    {
        lock (_lock)
            return [.. _byId.Where(e => e is not null && e.Rule.IsPrecise).Select(e => (e!.Id, e.Rule)).Concat(_wildcards.Select(e => (e.Id, e.Rule)))];
    }

    internal Rule? this[int id] => (uint)id < MaxRules ? _byId[id]?.Rule : null;

    internal Entry[] Wildcards => Volatile.Read(ref _wildcards);

    private Func<int, (ulong, ulong)>[] _kernelCounters = [];

    /// <summary>A back end that counts in the kernel, added to what <see cref="Counters"/> sums.</summary>
    internal void CountAlso(Func<int, (ulong, ulong)> counters, bool add)
    {
        lock (_lock)
        {
            if (!add)
            {
                // What a kernel program counted stays counted once it goes (its device closed): the totals outlive the device.
                foreach (Entry? e in _byId)
                    if (e is not null) (e.GonePackets, e.GoneBytes) = Sum((e.GonePackets, e.GoneBytes), counters(e.Id));
                (_goneDefaultPackets, _goneDefaultBytes) = Sum((_goneDefaultPackets, _goneDefaultBytes), counters(-1));
            }
            _kernelCounters = add ? [.. _kernelCounters, counters] : [.. _kernelCounters.Where(c => c != counters)];
        }
    }

    private static (ulong, ulong) Sum((ulong Packets, ulong Bytes) a, (ulong Packets, ulong Bytes) b) => (a.Packets + b.Packets, a.Bytes + b.Bytes);

    /// <summary>Packets and bytes that rule <paramref name="id"/> (-1: the default) matched, here and in the kernel (<see cref="UserSpaceCounters"/>: here).</summary>
    public (ulong Packets, ulong Bytes) Counters(int id)
    {
        (ulong, ulong) total = UserSpaceCounters(id);
        lock (_lock)
        {
            if (id < 0) total = Sum(total, (_goneDefaultPackets, _goneDefaultBytes));
            else if ((uint)id < MaxRules && _byId[id] is { } e) total = Sum(total, (e.GonePackets, e.GoneBytes));
            foreach (Func<int, (ulong, ulong)> kernel in _kernelCounters) total = Sum(total, kernel(id));
        }
        return total;
    }

    /// <summary>Packets and bytes that rule <paramref name="id"/> (-1: the default) matched in user space.</summary>
    public (ulong Packets, ulong Bytes) UserSpaceCounters(int id)
    {
        if (id < 0) return (Volatile.Read(ref _defaultPackets), Volatile.Read(ref _defaultBytes));
        return (uint)id < MaxRules && _byId[id] is { } e ? (Volatile.Read(ref e.Packets), Volatile.Read(ref e.Bytes)) : (0, 0);
    }

    /// <summary>
    /// Makes the rules those of <paramref name="rules"/> (a file read again on SIGUSR1): precise rules there before and still
    /// wanted are kept, with their counters; the others are removed, and the wildcard rules replaced, in the new order.
    /// Between the removes and the adds a packet may meet neither set. Returns the ids, in the order given.
    /// </summary>
    public int[] Replace(IEnumerable<Rule> rules)
    {
        Rule[] wanted = [.. rules];
        lock (_lock)
        {
            // Whatever would refuse one of them refuses the set before anything changes.
            foreach (Rule rule in wanted)
                if (Refusal(rule) is string why) throw new ArgumentException(why, nameof(rules));
            if (wanted.Length > MaxRules) throw new InvalidOperationException($"{wanted.Length:N0} rules: {MaxRules:N0} are held at most");
            int wildcards = wanted.Count(r => !r.IsPrecise);
            if (wildcards > MaxWildcards) throw new InvalidOperationException($"{wildcards} wildcard rules: {MaxWildcards} are held at most");
            if (wanted.Where(r => r.IsPrecise).GroupBy(KeyOf).FirstOrDefault(g => g.Count() > 1) is { } twice)
                throw new ArgumentException($"rules '{twice.First()}' and '{twice.Skip(1).First()}' are precise rules for one 6-tuple", nameof(rules));
            var keep = new Dictionary<Rule, int>();
            foreach (Entry? e in _byId)
                if (e is not null && e.Rule.IsPrecise && wanted.Contains(e.Rule)) keep[e.Rule] = e.Id;
            foreach (Entry? e in _byId.ToArray())
                if (e is not null && !keep.ContainsValue(e.Id)) Remove(e.Id);
            return [.. wanted.Select(r => keep.TryGetValue(r, out int id) ? id : Add(r))];
        }
    }

    /// <summary>
    /// The decision for a frame of <paramref name="wireLength"/> bytes (0: as captured), counted: the action, and in
    /// <paramref name="id"/> the rule that gave it (-1 for the default).
    /// </summary>
    public RuleAction Decide(ReadOnlySpan<byte> frame, int wireLength, out int id) => Decide(frame, wireLength, Parsing.LinkType.Ethernet, out id);

    /// <summary>The decision for a frame that starts with a header of type <paramref name="link"/> (<c>any</c>'s cooked frames, raw IP).</summary>
    public RuleAction Decide(ReadOnlySpan<byte> frame, int wireLength, Parsing.LinkType link, out int id)
    {
        Entry? e = Match(frame, link);
        ulong bytes = (ulong)Math.Max(wireLength, frame.Length);
        if (e is null)
        {
            id = -1;
            Interlocked.Increment(ref _defaultPackets);
            Interlocked.Add(ref _defaultBytes, bytes);
            return DefaultAction;
        }
        id = e.Id;
        Interlocked.Increment(ref e.Packets);
        Interlocked.Add(ref e.Bytes, bytes);
        return e.Rule.Action;
    }

    private Entry? Match(ReadOnlySpan<byte> frame, Parsing.LinkType link)
    {
        RuleFields f = RuleFields.Read(frame, link);
        if (f.IsIp && f.HasPorts && !_precise.IsEmpty
            && _precise.TryGetValue(new PreciseKey(f.Version, f.Protocol, f.Tagged ? f.Vlan : (ushort)0, f.SourcePort, f.DestinationPort, f.Source, f.Destination), out Entry? precise))
            return precise;
        foreach (Entry e in Volatile.Read(ref _wildcards))
            if (Matches(e.Rule, f)) return e;
        return null;
    }

    private static bool Matches(Rule r, in RuleFields f)
    {
        if (r.EtherType is ushort type && type != f.EtherType) return false;
        if (r.Vlan is ushort vlan && (!f.Tagged || vlan != f.Vlan)) return false;
        if (r.Protocol is null && r.Source is null && r.Destination is null && r.SourcePorts is null && r.DestinationPorts is null) return true;
        if (!f.IsIp) return false;
        if (r.Protocol is byte proto && proto != f.Protocol) return false;
        if (r.Source is { } s && !InPrefix(s, f.Version, f.Source)) return false;
        if (r.Destination is { } d && !InPrefix(d, f.Version, f.Destination)) return false;
        if (r.SourcePorts is { } sp && (!f.HasPorts || f.SourcePort < sp.Low || f.SourcePort > sp.High)) return false;
        if (r.DestinationPorts is { } dp && (!f.HasPorts || f.DestinationPort < dp.Low || f.DestinationPort > dp.High)) return false;
        return true;
    }

    private static bool InPrefix(IPNetwork n, byte version, UInt128 address)
    {
        (UInt128 value, UInt128 mask) = Prefix(n);
        return version == (n.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? 4 : 6) && (address & mask) == value;
    }

    /// <summary>A prefix as the 128 bits it matches and its mask, IPv4 in the top 32 bits as <see cref="RuleFields"/> holds it.</summary>
    internal static (UInt128 Value, UInt128 Mask) Prefix(IPNetwork n)
    {
        Span<byte> bytes = stackalloc byte[16];
        bytes.Clear();
        n.BaseAddress.TryWriteBytes(bytes, out _);
        UInt128 value = BinaryPrimitives.ReadUInt128BigEndian(bytes);
        UInt128 mask = n.PrefixLength == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - n.PrefixLength);
        return (value & mask, mask);
    }

    internal static PreciseKey KeyOf(Rule r)
    {
        bool v4 = r.Source!.Value.BaseAddress.AddressFamily == AddressFamily.InterNetwork;
        return new PreciseKey((byte)(v4 ? 4 : 6), r.Protocol!.Value, r.Vlan ?? 0, r.SourcePorts!.Value.Low, r.DestinationPorts!.Value.Low, Prefix(r.Source.Value).Value, Prefix(r.Destination!.Value).Value);
    }

    /// <summary>The file the rules are read from (<see cref="ReadFrom"/>), or null.</summary>
    public string? SourceFile { get; private set; }

    private static readonly List<WeakReference<Rules>> s_files = [];
    private static PosixSignalRegistration? s_reread;

    /// <summary>
    /// Makes the rules those of <paramref name="path"/> (<see cref="Load"/>, <see cref="Replace"/>) and reads it again each
    /// time the process gets SIGUSR1, for as long as the rules are in use: a file that no longer reads, or holds a rule a
    /// device refuses, leaves the rules as they were. Each reading again says so in a line on standard error. Returns this.
    /// </summary>
    public Rules ReadFrom(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Replace(Load(path));
        lock (s_files)
        {
            if (SourceFile is null) s_files.Add(new WeakReference<Rules>(this));
            SourceFile = path;
            s_files.RemoveAll(w => !w.TryGetTarget(out _));
            s_reread ??= PosixSignalRegistration.Create((PosixSignal)10 /* SIGUSR1 */, ReadAllAgain);
        }
        return this;
    }

    private static void ReadAllAgain(PosixSignalContext signal)
    {
        signal.Cancel = true;
        List<Rules> live = [];
        lock (s_files)
            foreach (WeakReference<Rules> w in s_files)
                if (w.TryGetTarget(out Rules? r)) live.Add(r);
        foreach (Rules rules in live)
        {
            string path = rules.SourceFile!;
            try
            {
                rules.Replace(Load(path));
                Console.Error.WriteLine($"rules read again from {path}: {rules.List().Count}");
            }
            catch (Exception e) when (e is ArgumentException or IOException or InvalidOperationException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"warning: {path} not taken: {e.Message}; the rules stay as they were");
            }
        }
    }

    /// <summary>
    /// Reads rules from a file, one a line (<see cref="Rule.Parse"/>; <c>#</c> starts a comment). The first bad line is an
    /// <see cref="ArgumentException"/> naming the file and the line.
    /// </summary>
    public static IReadOnlyList<Rule> Load(string path)
    {
        var rules = new List<Rule>();
        int number = 0;
        foreach (string raw in File.ReadLines(path))
        {
            number++;
            string line = raw.Split('#', 2)[0].Trim();
            if (line.Length == 0) continue;
            try { rules.Add(Rule.Parse(line)); }
            catch (ArgumentException e) { throw new ArgumentException($"{path}:{number}: {e.Message}", nameof(path), e); }
        }
        return rules;
    }
}
