namespace ZcFlow.Parsing;

/// <summary>The tunnel a packet was found to carry, the ones PF_RING balances on.</summary>
public enum TunnelKind : byte
{
    None,
    GtpU,
    GtpC,
    Gre,
    Vxlan,
}
