using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Parsing;

namespace ZcFlow.Distribution;

/// <summary><c>-m 5</c>, as zbalance_ipc: GRE by the inner IP addresses, anything else by the outer IPs and ports.</summary>
public struct GreHash : IDistribution
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Route(in PacketHandle packet, int queues)
    {
        PacketParser.Parse(packet, out PacketInfo info);
        uint h = info.Tunnel == TunnelKind.Gre && info.Inner.IpVersion != 0 ? FlowHash.Addresses(info.Inner)
            : info.Outer.IpVersion != 0 ? FlowHash.FiveTuple(info.Outer) : FlowHash.Macs(info);
        return FlowHash.Queue(h, queues);
    }
}
