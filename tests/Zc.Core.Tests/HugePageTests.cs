using ZcFlow.Buffers;
using ZcFlow.Memory;

namespace ZcFlow.Tests;

public class HugePageTests
{
    private static ClusterOptions Small(string? mount = null) => new()
    {
        BufferCount = 1024, BufferSize = 256, MaxQueues = 2, HugePagesMount = mount,
        Warn = w => Assert.Fail($"unexpected warning: {w}"),
    };

    [Fact]
    public void Create_OnAHugetlbfsMount_PutsTheArenaOnHugePages_AndGivesThemBackOnDispose()
    {
        using HostHugePages? host = HostHugePages.TryCreate(pages: 8, out string reason);
        if (host is null) Assert.Skip(reason);

        long free = HugePages.FreePages;
        using (ZcCluster cluster = ZcCluster.Create(TestClusters.NextId(), Small(host.Mount)))
        {
            Assert.True(cluster.OnHugePages);
            Assert.StartsWith(host.Mount + "/", cluster.ArenaPath);
            Assert.Equal(0UL, cluster.ArenaSize % ArenaLayout.HugePageSize);
            Assert.Equal(free - (long)(cluster.ArenaSize / ArenaLayout.HugePageSize), HugePages.FreePages);

            BufferPool pool = cluster.CreatePool(1024);
            var queue = cluster.CreateQueue(64);
            Assert.True(pool.TryGet(out PacketHandle p));
            "on hugepages"u8.CopyTo(p.Buffer);
            p.Length = 12;
            Assert.True(queue.TrySend(p));
            Assert.True(queue.TryReceive(out PacketHandle q));
            Assert.Equal("on hugepages"u8.ToArray(), q.Data.ToArray());
        }
        Assert.Equal(free, HugePages.FreePages);
    }

    [Fact]
    public void Create_WithoutAMountNamed_FindsTheHugetlbfsMountItself()
    {
        using HostHugePages? host = HostHugePages.TryCreate(pages: 8, out string reason);
        if (host is null) Assert.Skip(reason);

        using ZcCluster cluster = ZcCluster.Create(TestClusters.NextId(), Small());
        Assert.True(cluster.OnHugePages);
    }

    [Fact]
    public void Create_OnADirectoryThatIsNotHugetlbfs_SaysHowToMakeOne()
    {
        var e = Assert.Throws<InvalidOperationException>(() => ZcCluster.Create(TestClusters.NextId(), Small("/tmp")));
        Assert.Contains("mount -t hugetlbfs", e.Message);
    }
}
