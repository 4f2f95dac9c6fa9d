using ZcFlow.Filters;

namespace ZcFlow.Tests;

/// <summary>zbalance_ipc's -x: a frame passes when any of its stacked tags carries a listed VLAN id.</summary>
public class VlanAllowListTests
{
    // Ethernet header with the given stack of (tag type, VLAN id), then IPv4's ethertype and a few bytes.
    private static byte[] Frame(params (ushort Type, int Id)[] tags)
    {
        var f = new List<byte> { 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1 };
        foreach ((ushort type, int id) in tags) f.AddRange([(byte)(type >> 8), (byte)type, (byte)(0x20 | id >> 8), (byte)id]);
        f.AddRange([0x08, 0x00, 0x45, 0, 0, 20]);
        return [.. f];
    }

    [Theory]
    [InlineData(new int[0], false)]                 // untagged
    [InlineData(new[] { 20 }, true)]                // single tag: the second id of "-x 10,20" (BPF "vlan 10 or vlan 20" drops it)
    [InlineData(new[] { 10 }, true)]
    [InlineData(new[] { 30 }, false)]
    [InlineData(new[] { 100, 10 }, true)]           // QinQ: the inner tag is listed
    [InlineData(new[] { 20, 999 }, true)]           // QinQ: the outer tag is listed
    [InlineData(new[] { 100, 200 }, false)]
    public void AnyStackedTagWithAListedId_Passes(int[] stack, bool passes)
    {
        var list = VlanAllowList.Parse("10,20");
        var tags = stack.Select((id, i) => ((ushort)(i == 0 && stack.Length > 1 ? 0x88A8 : 0x8100), id)).ToArray();
        Assert.Equal(passes, list.Matches(Frame(tags)));
    }

    [Fact]
    public void TheOld9100Type_AndId4095_Count()
        => Assert.True(VlanAllowList.Parse("4095").Matches(Frame((0x9100, 1), (0x8100, 4095))));

    [Theory]
    [InlineData("4096")]
    [InlineData("10,,20")]
    [InlineData("-1")]
    [InlineData("")]
    public void BadLists_AreRefused(string list) => Assert.Throws<ArgumentException>(() => VlanAllowList.Parse(list));

    [Fact]
    public void ATruncatedFrame_IsReadNoFurtherThanItsEnd()
    {
        var list = VlanAllowList.Parse("10");
        byte[] frame = Frame((0x8100, 10));
        Assert.False(list.Matches(frame.AsSpan(0, 15)));   // the tag is cut
        Assert.True(list.Matches(frame.AsSpan(0, 16)));
        Assert.False(list.Matches([]));
    }

    [Fact]
    public void ABalancerWithAnAllowList_CountsWhatItKeepsOut_AndSendsNoneOfIt()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 256, bufferSize: 128);
        ZcFlow.Buffers.BufferPool pool = cluster.CreatePool(256);
        ZcFlow.Queues.EgressQueue queue = cluster.CreateQueue(64);
        using ZcFlow.Devices.IPacketSource gen = ZcFlow.Devices.Device.OpenSource("gen:64?flows=4&count=1000", pool, 0);   // untagged frames
        var balancer = new ZcFlow.Workers.Balancer<ZcFlow.Distribution.RoundRobin>(pool, [gen], [queue], default) { Vlans = VlanAllowList.Parse("10") };
        while (!gen.IsExhausted) balancer.DoWork();
        Assert.Equal(1000UL, balancer.Received);
        Assert.Equal(1000UL, balancer.Filtered);
        Assert.Equal(0UL, queue.Stats.Sent);
        Assert.Equal(pool.Capacity, pool.Available);
    }
}
