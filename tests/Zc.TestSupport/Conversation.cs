using ZcFlow.Parsing;

namespace ZcFlow.Tests;

/// <summary>A conversation's name, the same for both directions: outer addresses and ports, lower end first.</summary>
public static class Conversation
{
    public static string Key(ReadOnlySpan<byte> frame)
    {
        PacketParser.Parse(frame, out PacketInfo info);
        FlowKey f = info.Outer;
        return f.Source < f.Destination ? $"{f.Source}:{f.SourcePort}-{f.Destination}:{f.DestinationPort}" : $"{f.Destination}:{f.DestinationPort}-{f.Source}:{f.SourcePort}";
    }
}
