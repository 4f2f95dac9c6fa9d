using ZcFlow.Buffers;
using ZcFlow.Distribution;

namespace ZcFlow.Tests;

public sealed class DistributionTests : IDisposable
{
    private readonly ZcCluster _cluster = TestClusters.Create(buffers: 64, bufferSize: 2048);
    private readonly BufferPool _pool;

    public DistributionTests() => _pool = _cluster.CreatePool(64);

    public void Dispose() => _cluster.Dispose();

    private PacketHandle Packet(byte[] frame, uint device = 0)
    {
        Assert.True(_pool.TryGet(out PacketHandle p));
        frame.CopyTo(p.Buffer);
        p.Length = frame.Length;
        p.DeviceIndex = device;
        return p;
    }

    private static byte[] Udp(uint src, uint dst, ushort sport, ushort dport, ushort? vlan = null)
    {
        Frames f = vlan is ushort v ? Frames.Ethernet(0x8100).Vlan(v, 0x0800) : Frames.Ethernet(0x0800);
        return f.Ipv4(src, dst, 17, 8).Udp(sport, dport, 0).ToArray();
    }

    [Fact]
    public void RoundRobin_VisitsEachQueueInTurn()
    {
        var rr = new RoundRobin();
        PacketHandle p = Packet(Udp(1, 2, 3, 4));
        Assert.Equal([1UL, 2, 4, 1, 2], Enumerable.Range(0, 5).Select(_ => rr.Route(p, 3)).ToArray());
    }

    [Fact]
    public void FanOuts_ReachEveryQueue_OrTheFirstAndOneOfTheRestInTurn()
    {
        PacketHandle p = Packet(Udp(1, 2, 3, 4));
        Assert.Equal(0b1111UL, new FanOutAll().Route(p, 4));
        var first = new FanOutFirstRoundRobinRest();
        Assert.Equal([0b0011UL, 0b0101, 0b1001, 0b0011], Enumerable.Range(0, 4).Select(_ => first.Route(p, 4)).ToArray());
    }

    [Fact]
    public void IpAndFiveTupleHashes_SendBothDirectionsToOneQueue_AndSpreadFlows()
    {
        var queues = new HashSet<ulong>();
        for (uint flow = 0; flow < 200; flow++)
        {
            PacketHandle there = Packet(Udp(0x0A000000 + flow, 0x0B000000, (ushort)(1000 + flow), 53));
            PacketHandle back = Packet(Udp(0x0B000000, 0x0A000000 + flow, 53, (ushort)(1000 + flow)));
            Assert.Equal(new FiveTupleHash().Route(there, 8), new FiveTupleHash().Route(back, 8));
            Assert.Equal(new IpHash().Route(there, 8), new IpHash().Route(back, 8));
            queues.Add(new FiveTupleHash().Route(there, 8));
            _pool.Release(there);
            _pool.Release(back);
        }
        Assert.Equal(8, queues.Count);
    }

    [Fact]
    public void GtpHash_FollowsTheInnerFlow_NotTheTunnel()
    {
        byte[] Gtp(uint teid, uint innerSrc, uint innerDst)
        {
            byte[] inner = new Frames().Ipv4(innerSrc, innerDst, 6, 20).Tcp(5000, 80).ToArray();
            return Frames.Ethernet(0x0800).Ipv4(1, 2, 17, 16 + inner.Length).Udp(2152, 2152, 8 + inner.Length)
                .Add(0x30, 255).U16((ushort)inner.Length).U32(teid).Add(inner).ToArray();
        }
        var matches = 0;
        for (uint i = 0; i < 64; i++)
        {
            // Same inner flow in two tunnels (and both directions): one queue.
            PacketHandle one = Packet(Gtp(i, 0xC0A80000 + i, 0xC0A90000)), other = Packet(Gtp(i + 1000, 0xC0A90000, 0xC0A80000 + i));
            ulong a = new GtpHash().Route(one, 16);
            Assert.Equal(a, new GtpHash().Route(other, 16));
            if (a == new IpHash().Route(one, 16)) matches++;
            _pool.Release(one);
            _pool.Release(other);
        }
        Assert.True(matches < 64, "the GTP hash should not just follow the outer addresses");
    }

    [Fact]
    public void InterfaceIndexAndVlanMap_PickTheQueueTheySay()
    {
        Assert.Equal(1UL << 2, new InterfaceIndex().Route(Packet(Udp(1, 2, 3, 4), device: 6), 4));
        var map = new VlanMap([10, 20]);
        Assert.Equal(3, map.Queues);
        Assert.Equal(1UL << 0, map.Route(Packet(Udp(1, 2, 3, 4, vlan: 10)), 3));   // 802.1Q is not the mapped EtherType
        PacketHandle tagged = Packet(Frames.Ethernet(0x8585).Vlan(20, 0x0800).Ipv4(1, 2, 17, 8).Udp(3, 4, 0).ToArray());
        Assert.Equal(1UL << 2, map.Route(tagged, 3));
        Assert.Equal(0x8100, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(tagged.Data[12..]));
        Assert.Equal(0UL, map.Route(Packet(Frames.Ethernet(0x8585).Vlan(30, 0x0800).ToArray()), 3));
        Assert.Equal(0UL, map.Route(Packet(Frames.Ethernet(0x8585).Add(0, 10).ToArray()), 3));   // cut short under the EtherType
        Assert.Throws<ArgumentException>(() => new VlanMap([10, 10]));
    }

    [Fact]
    public void PerApplication_GivesEveryApplicationThePacketOnItsOwnQueues()
    {
        var apps = new PerApplication<FiveTupleHash>([2, 3], new FiveTupleHash());
        for (uint flow = 0; flow < 50; flow++)
        {
            PacketHandle p = Packet(Udp(flow, 99, 1, 2));
            ulong mask = apps.Route(p, 5);
            Assert.Equal(1, System.Numerics.BitOperations.PopCount(mask & 0b00011));
            Assert.Equal(1, System.Numerics.BitOperations.PopCount(mask & 0b11100));
            _pool.Release(p);
        }
    }

    [Fact]
    public void PerApplication_RoundRobin_TurnsWithinEachApplicationOnItsOwn()
    {
        var apps = new PerApplication<RoundRobin>([2, 1, 3], new RoundRobin());
        PacketHandle p = Packet(Udp(1, 2, 3, 4));
        ulong[] masks = [.. Enumerable.Range(0, 6).Select(_ => apps.Route(p, 6))];
        // application 0 owns queues 0-1, application 1 queue 2, application 2 queues 3-5
        Assert.Equal([0b001101UL, 0b010110, 0b100101, 0b001110, 0b010101, 0b100110], masks);
        _pool.Release(p);
    }
}
