using ZcFlow.Parsing;

namespace ZcFlow.Tests;

public class ParserTests
{
    private const uint A = 0x0A000001, B = 0x0A000002;

    [Fact]
    public void QinQTaggedTcp_GivesBothVlansAndTheFiveTuple()
    {
        byte[] f = Frames.Ethernet(0x88A8).Vlan(100, 0x8100).Vlan(200, 0x0800).Ipv4(A, B, 6, 20).Tcp(1234, 80).ToArray();
        PacketParser.Parse(f, out PacketInfo info);
        Assert.Equal(ParseStop.Complete, info.Stop);
        Assert.Equal((100, 200, 2), (info.VlanId, info.InnerVlanId, (int)info.VlanCount));
        Assert.Equal((UInt128)A, info.Outer.Source);
        Assert.Equal((UInt128)B, info.Outer.Destination);
        Assert.Equal((1234, 80, 6), (info.Outer.SourcePort, info.Outer.DestinationPort, (int)info.Outer.Protocol));
        Assert.Equal(22, info.L3Offset);
        Assert.Equal(42, info.L4Offset);
    }

    [Fact]
    public void Ipv4WithOptions_FindsTheTransportAfterThem()
    {
        byte[] f = Frames.Ethernet(0x0800).Ipv4(A, B, 17, 8, optionWords: 3).Udp(53, 5353, 0).ToArray();
        PacketParser.Parse(f, out PacketInfo info);
        Assert.Equal(14 + 32, info.L4Offset);
        Assert.Equal((53, 5353), (info.Outer.SourcePort, info.Outer.DestinationPort));
    }

    [Fact]
    public void MplsLabels_AreSkippedToTheIpInside()
    {
        byte[] f = Frames.Ethernet(0x8847).Add(0, 0x01, 0x00, 64).Add(0, 0x02, 0x01, 64).Ipv4(A, B, 17, 8).Udp(1, 2, 0).ToArray();
        PacketParser.Parse(f, out PacketInfo info);
        Assert.Equal(2, info.MplsLabels);
        Assert.Equal((1, 2), (info.Outer.SourcePort, info.Outer.DestinationPort));
    }

    [Fact]
    public void NonFirstFragment_StopsWithoutPorts_FirstFragmentHasThem()
    {
        byte[] later = Frames.Ethernet(0x0800).Ipv4(A, B, 17, 8, fragment: 10).Udp(1, 2, 0).ToArray();
        PacketParser.Parse(later, out PacketInfo info);
        Assert.Equal(ParseStop.Fragment, info.Stop);
        Assert.True(info.IsFragment);
        Assert.False(info.Outer.HasPorts);
        byte[] first = Frames.Ethernet(0x0800).Ipv4(A, B, 17, 8, fragment: 0x2000).Udp(1, 2, 0).ToArray();
        PacketParser.Parse(first, out info);
        Assert.True(info.IsFragment);
        Assert.True(info.Outer.HasPorts);
    }

    [Fact]
    public void Ipv6ExtensionHeaders_AreWalkedToTheTransport()
    {
        // hop-by-hop (8 bytes) -> destination options (16 bytes) -> TCP
        byte[] f = Frames.Ethernet(0x86DD).Ipv6(1, 2, 0, 8 + 16 + 20)
            .Add(60, 0, 1, 4, 0, 0, 0, 0).Add(6, 1, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0).Tcp(443, 50000).ToArray();
        PacketParser.Parse(f, out PacketInfo info);
        Assert.Equal(ParseStop.Complete, info.Stop);
        Assert.Equal(6, info.Outer.IpVersion);
        Assert.Equal(6, info.Outer.Protocol);
        Assert.Equal(14 + 40 + 24, info.L4Offset);
        Assert.Equal((443, 50000), (info.Outer.SourcePort, info.Outer.DestinationPort));
    }

    [Fact]
    public void GtpU_GivesTheTunnelIdAndTheInnerFlow()
    {
        byte[] inner = new Frames().Ipv4(0xC0A80001, 0xC0A80002, 6, 20).Tcp(5000, 80).ToArray();
        byte[] f = Frames.Ethernet(0x0800).Ipv4(A, B, 17, 8 + 8 + inner.Length).Udp(2152, 2152, 8 + inner.Length)
            .Add(0x30, 255).U16((ushort)inner.Length).U32(0xABCDEF).Add(inner).ToArray();
        PacketParser.Parse(f, out PacketInfo info);
        Assert.Equal(TunnelKind.GtpU, info.Tunnel);
        Assert.Equal(0xABCDEFu, info.TunnelId);
        Assert.Equal((UInt128)0xC0A80001, info.Inner.Source);
        Assert.Equal((5000, 80), (info.Inner.SourcePort, info.Inner.DestinationPort));
    }

    [Fact]
    public void GreWithKey_CarryingEthernet_GivesTheInnerFlow()
    {
        byte[] inner = Frames.Ethernet(0x0800).Ipv4(0x01020304, 0x05060708, 17, 8).Udp(7, 9, 0).ToArray();
        byte[] f = Frames.Ethernet(0x0800).Ipv4(A, B, 47, 8 + inner.Length).U16(0x2000).U16(0x6558).U32(42).Add(inner).ToArray();
        PacketParser.Parse(f, out PacketInfo info);
        Assert.Equal(TunnelKind.Gre, info.Tunnel);
        Assert.Equal(42u, info.TunnelId);
        Assert.Equal((UInt128)0x01020304, info.Inner.Source);
        Assert.Equal((7, 9), (info.Inner.SourcePort, info.Inner.DestinationPort));
    }

    [Fact]
    public void Vxlan_GivesTheNetworkIdAndTheInnerFlow()
    {
        byte[] inner = Frames.Ethernet(0x0800).Ipv4(0x01010101, 0x02020202, 6, 20).Tcp(1, 2).ToArray();
        byte[] f = Frames.Ethernet(0x0800).Ipv4(A, B, 17, 8 + 8 + inner.Length).Udp(40000, 4789, 8 + inner.Length)
            .Add(0x08, 0, 0, 0).U32(77 << 8).Add(inner).ToArray();
        PacketParser.Parse(f, out PacketInfo info);
        Assert.Equal(TunnelKind.Vxlan, info.Tunnel);
        Assert.Equal(77u, info.TunnelId);
        Assert.Equal((UInt128)0x02020202, info.Inner.Destination);
    }

    [Fact]
    public void EveryTruncationOfATunnelledFrame_ParsesAsFarAsItIsValid_AndNeverThrows()
    {
        byte[] inner = new Frames().Ipv4(0xC0A80001, 0xC0A80002, 6, 20).Tcp(5000, 80).ToArray();
        byte[] f = Frames.Ethernet(0x8100).Vlan(5, 0x0800).Ipv4(A, B, 17, 8 + 12 + inner.Length).Udp(2152, 2152, 12 + inner.Length)
            .Add(0x32, 255).U16((ushort)(inner.Length + 4)).U32(1).U16(9).Add(0, 0).Add(inner).ToArray();
        for (int length = 0; length < f.Length; length++)
        {
            PacketParser.Parse(f.AsSpan(0, length), out PacketInfo info);
            Assert.NotEqual(ParseStop.Complete, info.Stop);
            Assert.InRange(info.StopOffset, 0, length);
        }
        PacketParser.Parse(f, out PacketInfo whole);
        Assert.Equal(ParseStop.Complete, whole.Stop);
        Assert.Equal(9u, whole.TunnelSequence);
    }

    [Fact]
    public void RandomBytes_NeverThrow()
    {
        var random = new Random(11);
        var buffer = new byte[256];
        for (int i = 0; i < 200_000; i++)
        {
            random.NextBytes(buffer);
            // Steer some frames into the interesting paths.
            if (i % 2 == 0) { buffer[12] = 0x08; buffer[13] = 0; buffer[14] = 0x45; }
            if (i % 4 == 0) { buffer[23] = 17; buffer[36] = 0x08; buffer[37] = 0x68; }
            if (i % 8 == 0) buffer[23] = 6;
            var link = (LinkType)(i % 3 == 0 ? 1 : i % 3 == 1 ? 101 : 113);
            ReadOnlySpan<byte> frame = buffer.AsSpan(0, random.Next(buffer.Length));
            PacketParser.Parse(frame, out PacketInfo info, link);
            PacketParser.ParseLayers(frame, out PacketInfo general, link);
            Assert.Equal(general, info);
        }
    }

    [Fact]
    public void PlainTcpAndUdp_TakeTheFastPath_AndFindWhatTheGeneralPathFinds_AtEveryLengthAndEdge()
    {
        byte[][] frames =
        [
            Frames.Ethernet(0x0800).Ipv4(A, B, 6, 20).Tcp(1234, 80).ToArray(),
            Frames.Ethernet(0x0800).Ipv4(A, B, 17, 8 + 30).Udp(5353, 53, 30).Add(new byte[30]).ToArray(),
            Frames.Ethernet(0x0800).Ipv4(A, B, 17, 8).Udp(40000, 2152, 0).ToArray(),     // GTP-U's port: the general path
            Frames.Ethernet(0x0800).Ipv4(A, B, 17, 8).Udp(2123, 40000, 0).ToArray(),     // GTP-C's
            Frames.Ethernet(0x0800).Ipv4(A, B, 17, 8).Udp(40000, 4789, 0).ToArray(),     // VXLAN's
            Frames.Ethernet(0x0800).Ipv4(A, B, 6, 20).Tcp(1234, 80).Add(new byte[18]).ToArray(),   // Ethernet padding past the IP length
        ];
        foreach (byte[] whole in frames)
            for (int length = 0; length <= whole.Length; length++)
            {
                byte[] f = whole[..length];
                PacketParser.Parse(f, out PacketInfo info);
                PacketParser.ParseLayers(f, out PacketInfo general, LinkType.Ethernet);
                Assert.Equal(general, info);
                // And with an IP length that leaves the transport header out, or a fragment's offset.
                if (length < 34) continue;
                f[16] = 0; f[17] = 24;
                PacketParser.Parse(f, out info);
                PacketParser.ParseLayers(f, out general, LinkType.Ethernet);
                Assert.Equal(general, info);
                f[16] = whole[16]; f[17] = whole[17]; f[20] = 0x20;
                PacketParser.Parse(f, out info);
                PacketParser.ParseLayers(f, out general, LinkType.Ethernet);
                Assert.Equal(general, info);
            }
        PacketParser.Parse(frames[0], out PacketInfo tcp);
        Assert.Equal((ParseStop.Complete, (ushort)34, (ushort)1234, (ushort)80), (tcp.Stop, tcp.L4Offset, tcp.Outer.SourcePort, tcp.Outer.DestinationPort));
    }
}
