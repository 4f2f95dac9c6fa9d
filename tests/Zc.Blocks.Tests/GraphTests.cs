using ZcFlow.Buffers;
using ZcFlow.Distribution;
using ZcFlow.Graphs;

namespace ZcFlow.Tests;

public class GraphTests
{
    [Fact]
    public void TheReadmeGraph_GivesEachApplicationEveryPacket_SpreadOverItsQueues()
    {
        string pcap = Path.Combine(Path.GetTempPath(), $"zcflow-graph-{Environment.ProcessId}.pcap");
        using (var writer = new Devices.CaptureWriter(pcap))
            for (int i = 0; i < 1000; i++) writer.Write(Frames.Ethernet(0x0800).Ipv4((uint)i, 7, 17, 8).Udp(1, 2, 0).ToArray(), i);
        const int Generated = 10_000, Total = Generated + 1000;
        try
        {
            using Graph graph = GraphBuilder.Cluster(TestClusters.NextId())
                .Options(new ClusterOptions { BufferCount = 8192, UseHugePages = false, Warn = _ => { } })
                .Input($"gen:64?flows=4096&count={Generated}", "pcap:" + pcap)
                .Applications(2, 1)
                .Lossless()
                .Balance(new FiveTupleHash(), CpuAffinity());
            var counts = new long[3];
            var burst = new PacketHandle[32];
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (counts[0] + counts[1] < Total || counts[2] < Total)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), $"got {string.Join(", ", counts)}");
                for (int q = 0; q < 3; q++)
                {
                    int n = graph.Queues[q].ReceiveBurst(burst);
                    graph.Queues[q].ReleaseBurst(burst.AsSpan(0, n));
                    counts[q] += n;
                }
            }
            Assert.Equal(Total, counts[0] + counts[1]);
            Assert.Equal(Total, counts[2]);
            Assert.True(counts[0] > 0 && counts[1] > 0);
            Assert.True(graph.InputsExhausted);
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Fact]
    public void AGraphWithoutInput_OrWithABadDevice_SaysWhy_AndLeavesNoCluster()
    {
        uint id = TestClusters.NextId();
        Assert.Throws<InvalidOperationException>(() => GraphBuilder.Cluster(id).Balance(0));
        var e = Assert.Throws<ArgumentException>(() => GraphBuilder.Cluster(id).Options(new ClusterOptions { BufferCount = 256, UseHugePages = false, Warn = _ => { } })
            .Input("gen:64", "nosuch0").Balance(1));
        Assert.Contains("nosuch0", e.Message);
        Assert.Null(ZcFlow.Ipc.ClusterDirectory.Find(id));
    }

    private static int CpuAffinity() => ZcFlow.Workers.CpuAffinity.AllowedCores()[^1];
}
