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
                    int n = graph.Consumer(q).ReceiveBurst(burst);
                    graph.Consumer(q).ReleaseBurst(burst.AsSpan(0, n));
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
        Assert.Throws<InvalidOperationException>(() => GraphBuilder.Cluster(id).Balance(HashMode.RoundRobin));
        var e = Assert.Throws<ArgumentException>(() => GraphBuilder.Cluster(id).Options(new ClusterOptions { BufferCount = 256, UseHugePages = false, Warn = _ => { } })
            .Input("gen:64", "nosuch0").Balance(HashMode.IpHash));
        Assert.Contains("nosuch0", e.Message);
        Assert.Null(ZcFlow.Ipc.ClusterDirectory.Find(id));
    }

    [Fact]
    public void TwoApplicationsWithDifferentDistributions_EachGetEveryPacketOnce_SpreadTheirOwnWay()
    {
        // 16 IP pairs, 32 port pairs each, 8 packets a flow, every packet numbered in its payload.
        string pcap = Path.Combine(Path.GetTempPath(), $"zcflow-apps-{Environment.ProcessId}.pcap");
        uint seq = 0;
        using (var writer = new Devices.CaptureWriter(pcap))
            for (int round = 0; round < 8; round++)
                for (int pair = 0; pair < 16; pair++)
                    for (int port = 0; port < 32; port++, seq++)
                        writer.Write(Frames.Ethernet(0x0800).Ipv4(0x0A000000u + (uint)pair, 0x0B000000u + (uint)pair, 17, 12)
                            .Udp((ushort)(1000 + port), 53, 4).U32(seq).ToArray(), seq);
        int total = (int)seq;
        try
        {
            // nProbe by 5-tuple over 4 queues, Suricata by IP pair over 2, and a recorder on 1 that takes turns (of one).
            using Graph graph = GraphBuilder.Cluster(TestClusters.NextId())
                .Options(new ClusterOptions { BufferCount = 4096, UseHugePages = false, Warn = _ => { } })
                .Input("pcap:" + pcap)
                .Applications(4, 2, 1)
                .Lossless()
                .Balance(new FiveTupleHash(), new IpHash(), new RoundRobin(), CpuAffinity());
            var seen = Enumerable.Range(0, 7).Select(_ => new List<(uint Seq, uint Pair, int Port)>()).ToArray();
            var burst = new PacketHandle[32];
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (seen.Sum(q => q.Count) < 3 * total)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), $"got {string.Join(", ", seen.Select(q => q.Count))}");
                for (int q = 0; q < 7; q++)
                {
                    int n = graph.Consumer(q).ReceiveBurst(burst);
                    foreach (PacketHandle p in burst.AsSpan(0, n))
                    {
                        ReadOnlySpan<byte> d = p.Data;
                        seen[q].Add((System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(d[42..]), d[29], d[34] << 8 | d[35]));
                    }
                    graph.Consumer(q).ReleaseBurst(burst.AsSpan(0, n));
                }
            }
            void EveryPacketOnce(int first, int count, Func<(uint Seq, uint Pair, int Port), int> flow)
            {
                var queues = seen.Skip(first).Take(count).ToArray();
                Assert.Equal(Enumerable.Range(0, total).Select(i => (uint)i), queues.SelectMany(q => q.Select(x => x.Seq)).Order());
                Assert.All(queues, q => Assert.NotEmpty(q));
                // A flow stays on one queue, in order.
                var home = new Dictionary<int, int>();
                for (int q = 0; q < count; q++)
                {
                    Assert.True(queues[q].Select(x => x.Seq).SequenceEqual(queues[q].Select(x => x.Seq).Order()), $"queue {first + q} is out of order");
                    foreach (var x in queues[q]) Assert.Equal(q, home.TryAdd(flow(x), q) ? q : home[flow(x)]);
                }
            }
            EveryPacketOnce(0, 4, x => (int)x.Pair << 16 | x.Port);   // by 5-tuple
            EveryPacketOnce(4, 2, x => (int)x.Pair);                  // by IP pair
            EveryPacketOnce(6, 1, x => 0);
            // The first application spreads an IP pair's flows over its queues; the second keeps each pair on one.
            Assert.True(Enumerable.Range(0, 16).Count(pair => seen.Take(4).Count(q => q.Any(x => x.Pair == pair)) > 1) > 8);
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Fact]
    public void DistributionsForAnotherNumberOfApplications_AreRefused_SayingHowToGiveThem()
    {
        var e = Assert.Throws<ArgumentException>(() => GraphBuilder.Cluster(TestClusters.NextId()).Input("gen:64").Applications(2)
            .Balance(new FiveTupleHash(), new IpHash()));
        Assert.Contains("2 distributions, one per application, but the graph has 1 application", e.Message);
    }

    private static int CpuAffinity() => ZcFlow.Workers.CpuAffinity.AllowedCores()[^1];
}
