using ZcFlow.Buffers;
using ZcFlow.Parsing;

namespace ZcFlow.Filters;

/// <summary>
/// zbalance_ipc's <c>-Z</c> rules: pass or drop by IP address. A packet's source address is looked
/// up among the source rules first; if none names it, its destination address among the destination
/// rules; if none names that either (or the frame has no IP layer), the default decides. An immutable
/// set: whoever changes the rules builds a new one and swaps it in (<see cref="Workers.IBalancer.Rules"/>),
/// so the packet path reads without locks and allocates nothing.
/// </summary>
public sealed class IpRules
{
    private readonly Dictionary<UInt128, bool> _source4 = [], _source6 = [], _destination4 = [], _destination6 = [];

    /// <param name="acceptByDefault">What happens to a packet no rule names (<c>-A 1</c>: pass, <c>-A 0</c>: drop).</param>
    /// <param name="rules">The rules; a later rule for the same address and side replaces an earlier one.</param>
    public IpRules(bool acceptByDefault, IEnumerable<IpRule> rules)
    {
        AcceptByDefault = acceptByDefault;
        foreach (IpRule r in rules)
        {
            if (r.IpVersion is not (4 or 6)) throw new ArgumentException($"a rule is for IPv4 or IPv6, not version {r.IpVersion}", nameof(rules));
            if (r.IpVersion == 4 && r.Address > uint.MaxValue) throw new ArgumentException("an IPv4 address has 32 bits", nameof(rules));
            (r.Source ? r.IpVersion == 4 ? _source4 : _source6 : r.IpVersion == 4 ? _destination4 : _destination6)[r.Address] = r.Accept;
            Count++;
        }
    }

    public bool AcceptByDefault { get; }

    /// <summary>How many rules (an address on one side).</summary>
    public int Count { get; }

    /// <summary>Every rule, each address and side once (the later of two for one address and side).</summary>
    internal IEnumerable<IpRule> List()
    {
        foreach ((var map, byte version, bool source) in new[] { (_source4, (byte)4, true), (_source6, (byte)6, true), (_destination4, (byte)4, false), (_destination6, (byte)6, false) })
            foreach ((UInt128 address, bool accept) in map) yield return new IpRule(version, address, source, accept);
    }

    /// <summary>True when the packet passes.</summary>
    public bool Passes(in PacketHandle packet)
    {
        PacketParser.Parse(packet, out PacketInfo info);
        FlowKey k = info.Outer;
        bool accept;
        if (k.IpVersion == 4 && (_source4.TryGetValue(k.Source, out accept) || _destination4.TryGetValue(k.Destination, out accept))) return accept;
        if (k.IpVersion == 6 && (_source6.TryGetValue(k.Source, out accept) || _destination6.TryGetValue(k.Destination, out accept))) return accept;
        return AcceptByDefault;
    }
}

/// <summary>
/// One rule of <see cref="IpRules"/>: packets from (<paramref name="Source"/>) or to this address pass
/// (<paramref name="Accept"/>) or are dropped. An IPv4 address is its 32 bits read big-endian, as in <see cref="FlowKey"/>.
/// </summary>
public readonly record struct IpRule(byte IpVersion, UInt128 Address, bool Source, bool Accept);
