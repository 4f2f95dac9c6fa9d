namespace ZcFlow.Flows;

/// <summary>Why a flow was exported: the values of IPFIX's flowEndReason (RFC 7011's information element 136).</summary>
public enum FlowEnd : byte
{
    /// <summary>No packet for the idle timeout.</summary>
    Idle = 1,
    /// <summary>Older than the active timeout: exported, and counted again from zero.</summary>
    Active = 2,
    /// <summary>TCP RST, or FIN from both sides.</summary>
    EndOfFlow = 3,
    /// <summary>The table was emptied (end of input, shutdown).</summary>
    Forced = 4,
    /// <summary>The table was full: the least recently seen flow made room.</summary>
    LackOfResources = 5,
}

/// <summary>
/// One flow, both directions: the source is the side that sent its first packet. Addresses as in
/// <see cref="Parsing.FlowKey"/> (an IPv4 address in the low 32 bits, read big-endian).
/// Byte counts are of the IP packets (their total length), as NetFlow and IPFIX count them.
/// </summary>
public struct FlowRecord
{
    // The key first, so that a lookup reads one cache line.
    public UInt128 SourceAddress;
    public UInt128 DestinationAddress;
    public ushort SourcePort;
    public ushort DestinationPort;
    public ushort Vlan;
    public byte Protocol;
    public byte IpVersion;
    /// <summary>The TCP flags seen in each direction, ORed.</summary>
    public byte TcpFlags;
    public byte ReverseTcpFlags;
    public FlowEnd End;
    public ulong Packets;
    public ulong Bytes;
    /// <summary>Times of the first and last packet of each direction, nanoseconds since the Unix epoch (0: none).</summary>
    public long FirstNs;
    public long LastNs;
    public ulong ReversePackets;
    public ulong ReverseBytes;
    public long ReverseFirstNs;
    public long ReverseLastNs;
}
