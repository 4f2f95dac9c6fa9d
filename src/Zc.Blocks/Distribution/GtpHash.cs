using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Parsing;

namespace ZcFlow.Distribution;

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
        return FlowHash.Queue(h, queues);
    }
}
