using ZcFlow.Buffers;
using ZcFlow.Workers;

namespace ZcFlow.Tests;

/// <summary>The README's example, as written there, does what it says.</summary>
public class ReadmeExampleTests
{
    [Fact]
    public void ReadmeExample_DeliversThePacketToThePinnedConsumer_AndTheBufferComesBack()
    {
        string? seen = null;
        using var arrived = new ManualResetEventSlim();
        int core = CpuAffinity.AllowedCores()[^1];

        using var cluster = ZcCluster.Create(TestClusters.NextId(), new ClusterOptions { BufferCount = 8192, UseHugePages = false, Warn = _ => { } });
        BufferPool pool = cluster.CreatePool(4096);
        ZcFlow.Queues.EgressQueue queue = cluster.CreateQueue(1024);
        pool.ReclaimFrom(queue);
        var burst = new PacketHandle[32];
        using (var consumer = ZcWorker.Start("consumer", () =>
        {
            int n = queue.Consumer.ReceiveBurst(burst);
            for (int i = 0; i < n; i++) { seen = System.Text.Encoding.ASCII.GetString(burst[i].Data); arrived.Set(); }
            queue.Consumer.ReleaseBurst(burst.AsSpan(0, n));
            return n;
        }, new WorkerOptions { Core = core }))
        {
            if (pool.TryGet(out PacketHandle p)) { "hello"u8.CopyTo(p.Buffer); p.Length = 5; queue.TrySend(p); }
            Assert.True(arrived.Wait(TimeSpan.FromSeconds(10), TestDeadline.Token));
        }
        Assert.Equal("hello", seen);
        pool.Reclaim();
        Assert.Equal(4096, pool.Available);
    }
}
