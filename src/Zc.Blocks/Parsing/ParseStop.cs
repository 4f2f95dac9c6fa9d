namespace ZcFlow.Parsing;

/// <summary>Why parsing stopped where it did. <see cref="Complete"/> means every header the parser knows was read.</summary>
public enum ParseStop : byte
{
    Complete,
    /// <summary>The frame ended inside a header.</summary>
    Truncated,
    /// <summary>A header had an impossible value (an IPv4 header length under 20, say).</summary>
    Malformed,
    /// <summary>A protocol the parser does not look into (ARP, an unknown EtherType, an unknown link type).</summary>
    Unsupported,
    /// <summary>A non-first IP fragment: it has no transport header.</summary>
    Fragment,
}
