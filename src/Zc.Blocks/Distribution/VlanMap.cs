using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Parsing;

namespace ZcFlow.Distribution;

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
        return FlowHash.Queue(h, queues);
    }
}
