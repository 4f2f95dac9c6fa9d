namespace ZcFlow.Parsing;

/// <summary>
/// What <see cref="PacketParser"/> found in one frame: offsets of each layer (0 where absent),
/// the outer flow and, under a tunnel, the inner one. Filled in place; owns nothing.
/// </summary>
public struct PacketInfo
{
    public FlowKey Outer;
    public FlowKey Inner;
    public TunnelKind Tunnel;
    /// <summary>GTP tunnel endpoint id, or the GRE key; 0 when absent.</summary>
    public uint TunnelId;
    /// <summary>GTP sequence number when present.</summary>
    public uint TunnelSequence;
    /// <summary>The GTP version (1 or 2; GTP-U is always 1), 0 for other tunnels.</summary>
    public byte TunnelVersion;
    /// <summary>The first (outer) and second 802.1Q/802.1ad VLAN ids, 0 when absent.</summary>
    public ushort VlanId;
    public ushort InnerVlanId;
    public byte VlanCount;
    public byte MplsLabels;
    /// <summary>The EtherType after VLAN tags (0 for links without one).</summary>
    public ushort EtherType;
    public ushort L3Offset;
    public ushort L4Offset;
    public ushort InnerL3Offset;
    public ushort InnerL4Offset;
    /// <summary>Source and destination MAC folded into 32 bits each (for non-IP frames).</summary>
    public uint MacSourceHash;
    public uint MacDestinationHash;
    public bool IsFragment;
    public ParseStop Stop;
    /// <summary>The byte offset at which parsing stopped.</summary>
    public ushort StopOffset;

    /// <summary>The innermost IP flow: the inner one under a tunnel that carried IP, else the outer.</summary>
    public readonly FlowKey Innermost => Inner.IpVersion != 0 ? Inner : Outer;
}
