using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Parsing;

namespace ZcFlow.Distribution;

/// <summary><c>-m 1</c>: by source and destination IP (MAC addresses for non-IP frames).</summary>
public struct IpHash : IDistribution
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Route(in PacketHandle packet, int queues)
    {
        PacketParser.Parse(packet, out PacketInfo info);
        uint h = info.Outer.IpVersion != 0 ? FlowHash.Addresses(info.Outer) : FlowHash.Macs(info);
        return FlowHash.Queue(h, queues);
    }
}
