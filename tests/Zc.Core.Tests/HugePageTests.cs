using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Memory;

namespace ZcFlow.Tests;

public class HugePageTests
{
    private static ClusterOptions Small(bool require = true) => new()
    {
        BufferCount = 1024, BufferSize = 256, MaxQueues = 2, RequireHugePages = require,
        Warn = w => Assert.Fail($"unexpected warning: {w}"),
    };

    [Fact]
    public void Create_WithFreeHugePages_PutsTheBuffersOnThem_AndGivesThemBackOnDispose()
    {
        using HostHugePages? host = HostHugePages.TryCreate(pages: 8, out string reason);
        if (host is null) Assert.Skip(reason);

        long free = HugePages.FreePages;
        using (ZcCluster cluster = ZcCluster.Create(TestClusters.NextId(), Small()))
        {
            Assert.True(cluster.OnHugePages);
            Assert.Equal(0UL, cluster.ArenaSize % ArenaLayout.HugePageSize);
            Assert.Equal(free - (long)(cluster.ArenaSize / ArenaLayout.HugePageSize), HugePages.FreePages);

            BufferPool pool = cluster.CreatePool(1024);
            var queue = cluster.CreateQueue(64);
            Assert.True(pool.TryGet(out PacketHandle p));
            "on hugepages"u8.CopyTo(p.Buffer);
            p.Length = 12;
            Assert.True(queue.TrySend(p));
            Assert.True(queue.Consumer.TryReceive(out PacketHandle q));
            Assert.Equal("on hugepages"u8.ToArray(), q.Data.ToArray());
        }
        Assert.Equal(free, HugePages.FreePages);
    }

    [Fact]
    public void IngressSpares_OnHugePages_AreHugePagesOfTheirOwn_TheClusterKeepsNoCopy_AndAnApplicationFillsThem()
    {
        using HostHugePages? host = HostHugePages.TryCreate(pages: 8, out string reason);
        if (host is null) Assert.Skip(reason);

        long free = HugePages.FreePages;
        // 5 MiB of buffers: the pool's own up to the first 2 MiB edge, then a hugepage of spares; the rest of the last
        // hugepage, after the spares, is used by nobody
        using ZcCluster cluster = ZcCluster.Create(TestClusters.NextId(), Small() with { BufferCount = 16384, MaxQueues = 2 });
        long pages = (long)(cluster.ArenaSize / ArenaLayout.HugePageSize);
        Queues.IngressQueue ingress = cluster.CreateIngressQueue(256);
        BufferPool pool = cluster.CreatePool(16384, [ingress], sparesEach: 4000);
        Assert.InRange(pool.Capacity, 16384 - 2 * (int)ArenaLayout.HugePageSize / ArenaLayout.BufferStride(256), 16384);
        // The spares' memory took hugepages of its own, and the cluster memory gave back as many where they are.
        Assert.Equal(free - pages, HugePages.FreePages);

        using ChildProcess injector = ChildProcess.Start("inject", [cluster.Id, 0, 3000, 0, 1]);
        injector.WaitFor("attached");
        Injected.ReceiveInOrder(pool, ingress, 3000);   // and the forged index before every 1000th, refused
        injector.WaitFor("sent 3000");
        Assert.Equal(0, injector.WaitForExit());
    }

    [Fact]
    public void Create_WithoutRequiring_TakesHugePagesWhenThePoolHasThem()
    {
        using HostHugePages? host = HostHugePages.TryCreate(pages: 8, out string reason);
        if (host is null) Assert.Skip(reason);

        using ZcCluster cluster = ZcCluster.Create(TestClusters.NextId(), Small(require: false));
        Assert.True(cluster.OnHugePages);
    }

    [Fact]
    public void Create_RequiringMoreHugePagesThanAreFree_SaysHowToReserveThem()
    {
        long pages = HugePages.FreePages + 2;
        int buffers = (int)Math.Min(1 << 30, pages * (long)ArenaLayout.HugePageSize / ArenaLayout.BufferStride(256));
        var e = Assert.ThrowsAny<Exception>(() => ZcCluster.Create(TestClusters.NextId(), new ClusterOptions { BufferCount = buffers, BufferSize = 256, RequireHugePages = true }));
        Assert.Contains("nr_hugepages", e.Message);
    }

    [Fact]
    public void OwnerKilled_ItsHugePagesComeBack_OnceItsLastConsumerHasGoneToo()
    {
        using HostHugePages? host = HostHugePages.TryCreate(pages: 8, out string reason);
        if (host is null) Assert.Skip(reason);

        long free = HugePages.FreePages;
        uint id = TestClusters.NextId();
        using ChildProcess owner = ChildProcess.Start("own", [id, 1, "huge"]);
        owner.WaitFor("ready");
        Assert.True(HugePages.FreePages < free);
        using ChildProcess consumer = ChildProcess.Start("hold", [id, 0, 0]);   // attaches, then sleeps: it never looks at its owner
        consumer.WaitFor("holding 0");

        owner.Kill();
        // The consumer still maps the memory: it stays for as long as the consumer does.
        Assert.True(HugePages.FreePages < free);
        consumer.Kill();
        var clock = Stopwatch.StartNew();
        while (HugePages.FreePages != free)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"{free - HugePages.FreePages} hugepages still taken after both processes died");
            Thread.Sleep(10);
        }
        Assert.DoesNotContain(Directory.GetFiles("/dev/shm", ZcCluster.FileName(id) + "*"), f => new FileInfo(f).Length > 0);
    }
}
