using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Parsing;

namespace ZcFlow.Distribution;

/// <summary>
/// <c>-m 4</c>, as zbalance_ipc: GTP-C by its sequence number (a request and its response share it),
/// GTP-U by the inner IPs and ports (both directions alike), anything else by the outer IPs and ports.
/// With a control queue (<c>-G queue:version</c>), GTP-C of that version goes to that queue alone and
/// everything else is balanced over the other queues.
/// </summary>
public readonly struct GtpHash : IDistribution
{
    private readonly int _controlQueue;
    private readonly byte _controlVersion;

    /// <param name="controlQueue">The queue, among those this distribution is given, that GTP-C of <paramref name="controlVersion"/> goes to.</param>
    /// <param name="controlVersion">1 or 2.</param>
    public GtpHash(int controlQueue, int controlVersion)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(controlQueue);
        if (controlVersion is not (1 or 2)) throw new ArgumentOutOfRangeException(nameof(controlVersion), controlVersion, "GTP-C is version 1 or 2");
        _controlQueue = controlQueue;
        _controlVersion = (byte)controlVersion;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Route(in PacketHandle packet, int queues)
    {
        PacketParser.Parse(packet, out PacketInfo info);
        uint h = info.Tunnel == TunnelKind.GtpC ? FlowHash.Mix(info.TunnelSequence)
            : info.Tunnel == TunnelKind.GtpU && info.Inner.IpVersion != 0 ? FlowHash.FiveTuple(info.Inner)
            : info.Outer.IpVersion != 0 ? FlowHash.FiveTuple(info.Outer) : FlowHash.Macs(info);
        if (_controlVersion == 0 || _controlQueue >= queues) return FlowHash.Queue(h, queues);
        if (info.Tunnel == TunnelKind.GtpC && info.TunnelVersion == _controlVersion) return 1UL << _controlQueue;
        if (queues == 1) return 0;   // the application's only queue is the control queue
        ulong mask = FlowHash.Queue(h, queues - 1);
        return mask < 1UL << _controlQueue ? mask : mask << 1;   // the control queue is left out
    }
}
