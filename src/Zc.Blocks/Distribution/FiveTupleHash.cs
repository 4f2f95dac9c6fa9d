using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Parsing;

namespace ZcFlow.Distribution;

/// <summary>A symmetric 5-tuple hash: addresses, ports and protocol of the outer IP layer.</summary>
public struct FiveTupleHash : IDistribution
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Route(in PacketHandle packet, int queues)
    {
        PacketParser.Parse(packet, out PacketInfo info);
        uint h = info.Outer.IpVersion != 0 ? FlowHash.FiveTuple(info.Outer) : FlowHash.Macs(info);
        return FlowHash.Queue(h, queues);
    }
}
