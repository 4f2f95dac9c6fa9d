using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Parsing;

namespace ZcFlow.Distribution;

// The built-in distributions, zbalance_ipc's -m modes. Each is a small struct; the hashing
// ones are symmetric, so both directions of a conversation reach the same queue.

/// <summary><c>-m 0</c>: packets in turn to each queue.</summary>
public struct RoundRobin : IDistribution
{
    private uint _next;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Route(in PacketHandle packet, int queues)
    {
        uint q = _next;
        _next = q + 1 == (uint)queues ? 0 : q + 1;
        return 1UL << (int)q;
    }
}

/// <summary><c>-m 1</c>: by source and destination IP (MAC addresses for non-IP frames).</summary>
public struct IpHash : IDistribution
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Route(in PacketHandle packet, int queues)
    {
        PacketParser.Parse(packet.Data, out PacketInfo info);
        uint h = info.Outer.IpVersion != 0 ? FlowHash.Addresses(info.Outer) : FlowHash.Macs(info);
        return 1UL << (int)(h % (uint)queues);
    }
}

/// <summary>A symmetric 5-tuple hash: addresses, ports and protocol of the outer IP layer.</summary>
public struct FiveTupleHash : IDistribution
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Route(in PacketHandle packet, int queues)
    {
        PacketParser.Parse(packet.Data, out PacketInfo info);
        uint h = info.Outer.IpVersion != 0 ? FlowHash.FiveTuple(info.Outer) : FlowHash.Macs(info);
        return 1UL << (int)(h % (uint)queues);
    }
}

/// <summary><c>-m 2</c>: every packet to every queue.</summary>
public struct FanOutAll : IDistribution
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Route(in PacketHandle packet, int queues) => queues == 64 ? ulong.MaxValue : (1UL << queues) - 1;
}

/// <summary><c>-m 3</c>: every packet to the first queue, and in turn to one of the others.</summary>
public struct FanOutFirstRoundRobinRest : IDistribution
{
    private uint _next;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Route(in PacketHandle packet, int queues)
    {
        if (queues == 1) return 1;
        uint q = _next;
        _next = q + 1 == (uint)(queues - 1) ? 0 : q + 1;
        return 1UL | 1UL << (int)(q + 1);
    }
}

/// <summary><c>-m 4</c>: GTP: by the inner IP flow, else by tunnel id (or sequence), else by the outer addresses.</summary>
public struct GtpHash : IDistribution
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Route(in PacketHandle packet, int queues)
    {
        PacketParser.Parse(packet.Data, out PacketInfo info);
        uint h;
        if (info.Tunnel is TunnelKind.GtpU or TunnelKind.GtpC && info.Inner.IpVersion != 0) h = FlowHash.FiveTuple(info.Inner);
        else if (info.Tunnel is TunnelKind.GtpU or TunnelKind.GtpC) h = FlowHash.Mix(info.TunnelId != 0 ? info.TunnelId : info.TunnelSequence);
        else h = info.Outer.IpVersion != 0 ? FlowHash.Addresses(info.Outer) : FlowHash.Macs(info);
        return 1UL << (int)(h % (uint)queues);
    }
}

/// <summary><c>-m 5</c>: GRE: by the inner IP flow, else by the outer addresses.</summary>
public struct GreHash : IDistribution
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Route(in PacketHandle packet, int queues)
    {
        PacketParser.Parse(packet.Data, out PacketInfo info);
        uint h = info.Tunnel == TunnelKind.Gre && info.Inner.IpVersion != 0 ? FlowHash.FiveTuple(info.Inner)
            : info.Outer.IpVersion != 0 ? FlowHash.Addresses(info.Outer) : FlowHash.Macs(info);
        return 1UL << (int)(h % (uint)queues);
    }
}

/// <summary><c>-m 6</c>: the input device's index picks the queue (index modulo the queue count).</summary>
public struct InterfaceIndex : IDistribution
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Route(in PacketHandle packet, int queues) => 1UL << (int)(packet.DeviceIndex % (uint)queues);
}

/// <summary>
/// <c>-m 7</c>: the outer VLAN id picks the queue through a map (without one, <c>default</c>:
/// VLAN id modulo the queue count); VLANs not in the map, and untagged frames, go by IP hash.
/// </summary>
public struct VlanMap : IDistribution
{
    private readonly sbyte[] _queueOfVlan;

    /// <param name="map">VLAN id (0 to 4095) to queue (0 to 63).</param>
    public VlanMap(IReadOnlyDictionary<int, int> map)
    {
        _queueOfVlan = new sbyte[4096];
        Array.Fill(_queueOfVlan, (sbyte)-1);
        foreach ((int vlan, int queue) in map)
        {
            if ((uint)vlan > 4095) throw new ArgumentOutOfRangeException(nameof(map), vlan, "a VLAN id is 0 to 4095");
            if ((uint)queue > 63) throw new ArgumentOutOfRangeException(nameof(map), queue, "a queue is 0 to 63");
            _queueOfVlan[vlan] = (sbyte)queue;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Route(in PacketHandle packet, int queues)
    {
        PacketParser.Parse(packet.Data, out PacketInfo info);
        int q = info.VlanCount == 0 ? -1 : _queueOfVlan is null ? info.VlanId % queues : _queueOfVlan[info.VlanId];
        if (q >= 0 && q < queues) return 1UL << q;
        uint h = info.Outer.IpVersion != 0 ? FlowHash.Addresses(info.Outer) : FlowHash.Macs(info);
        return 1UL << (int)(h % (uint)queues);
    }
}
