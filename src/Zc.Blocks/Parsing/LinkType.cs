namespace ZcFlow.Parsing;

/// <summary>Link-layer types a frame may start with: the pcap LINKTYPE values the parser knows.</summary>
public enum LinkType : uint
{
    Null = 0,
    Ethernet = 1,
    Raw = 101,
    Loop = 108,
    LinuxSll = 113,
    LinuxSll2 = 276,
}
