namespace ZcFlow.Parsing;

/// <summary>
/// The addresses, ports and protocol of one IP layer. IPv4 addresses sit in the low 32 bits
/// (network byte order read as a big-endian number); ports are 0 where the protocol has none
/// or the header was cut short.
/// </summary>
public struct FlowKey
{
    public UInt128 Source;
    public UInt128 Destination;
    public ushort SourcePort;
    public ushort DestinationPort;
    /// <summary>IP protocol number of the transport (6 TCP, 17 UDP, 132 SCTP, 1 ICMP, 58 ICMPv6…).</summary>
    public byte Protocol;
    /// <summary>4 or 6; 0 when there is no IP layer.</summary>
    public byte IpVersion;
    /// <summary>True when the transport header was read (ports are valid).</summary>
    public bool HasPorts;
}
