using System.Buffers.Binary;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Filters;
using ZcFlow.Graphs;
using ZcFlow.Ipc;
using ZcFlow.Stages;
using ZcFlow.Workers;

namespace ZcFlow.Tests;

/// <summary>Graphs of any shape: stages on workers of their own, chained through queues, every buffer handed back up.</summary>
public class TopologyTests
{
    private static readonly ClusterOptions Small = new() { BufferCount = 4096, UseHugePages = false, Warn = _ => { } };

    // UDP packets numbered from `first` (payload at 42), one flow per (file, port), with a TCP packet after every third.
    private static (string Path, int Udp, int Tcp) Capture(string name, uint first, long timeNs = 0)
    {
        string path = Path.Combine(Path.GetTempPath(), $"zcflow-topology-{name}-{Environment.ProcessId}.pcap");
        int udp = 0, tcp = 0;
        using var writer = new CaptureWriter(path);
        for (uint i = 0; i < 3000; i++)
        {
            writer.Write(Frames.Ethernet(0x0800).Ipv4(0x0A000000u + first, 0x0B000001, 17, 12).Udp((ushort)(1000 + i % 40), 53, 4).U32(first + i).ToArray(), timeNs + i);
            udp++;
            if (i % 3 == 2)
            {
                writer.Write(Frames.Ethernet(0x0800).Ipv4(0x0A000000u + first, 0x0B000001, 6, 20).Tcp(80, 80).ToArray(), timeNs + i);
                tcp++;
            }
        }
        return (path, udp, tcp);
    }

    private static List<uint>[] Drain(Graph graph, int[] queues, int expected, Func<List<uint>[], bool>? enough = null, bool numbered = true)
    {
        var seen = queues.Select(_ => new List<uint>()).ToArray();
        var burst = new PacketHandle[32];
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (enough is null ? seen.Sum(q => q.Count) < expected : !enough(seen))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), $"got {string.Join(", ", seen.Select(q => q.Count))} of {expected}");
            Assert.True(graph.IsRunning, "a worker stopped");
            for (int q = 0; q < queues.Length; q++)
            {
                int n = graph.Consumer(queues[q]).ReceiveBurst(burst);
                foreach (PacketHandle p in burst.AsSpan(0, n))
                {
                    if (!numbered)
                    {
                        seen[q].Add(0);
                        continue;
                    }
                    Assert.Equal(17, p.Data[23]);   // UDP only
                    seen[q].Add(BinaryPrimitives.ReadUInt32BigEndian(p.Data[42..]));
                }
                graph.Consumer(queues[q]).ReleaseBurst(burst.AsSpan(0, n));
            }
        }
        return seen;
    }

    // Every pool's buffers all free again, as the cluster listing shows them: none lost between the stages.
    private static void EveryBufferBack(Graph graph)
    {
        Wait.Until(() => graph.InputsExhausted, "every stage finished");
        Wait.Until(() => ClusterDirectory.List().Single(c => c.Id == graph.Cluster.Id).Pools.All(p => p.Free == p.Count), "every buffer back in its pool");
    }

    // zbalance_DC_ipc: a filter on each input's own worker, their outputs merged by a balancer on a third, for two
    // applications each with a distribution of its own. Given one core, the filters are fused into the balancer.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FilterPerInput_ThenMergeAndTwoApplications_EachGetsEveryPacketThatPassedOnce_PerFlowInOrder(bool oneCore)
    {
        int? core = oneCore ? ZcFlow.Workers.CpuAffinity.AllowedCores()[^1] : null;
        var a = Capture("a", 0);
        var b = Capture("b", 1_000_000);
        try
        {
            var t = Topology.Cluster(TestClusters.NextId()).Options(Small).QueueSlots(256);
            PacketStream left = t.From("pcap:" + a.Path).Filter(BpfFilter.Compile("udp"), core);
            PacketStream right = t.From("pcap:" + b.Path).Filter(BpfFilter.Compile("udp"), core);
            int[] queues = t.Merge(left, right).Balance(new FiveTupleHash(), 3, new IpHash(), 2, core, "collector").ToQueues();
            Assert.Equal([0, 1, 2, 3, 4], queues);
            using Graph graph = t.Run();
            // Fused, the filters have no queue of their own: the collector reads them.
            Assert.Equal(oneCore ? 5 : 7, graph.Queues.Count);
            Assert.All(graph.Pipes, p => Assert.Equal(oneCore, p.Output is null));
            int udp = a.Udp + b.Udp;
            List<uint>[] seen = Drain(graph, queues, 2 * udp);

            uint[] expected = [.. Enumerable.Range(0, a.Udp).Select(i => (uint)i), .. Enumerable.Range(0, b.Udp).Select(i => 1_000_000u + (uint)i)];
            Assert.Equal(expected, seen.Take(3).SelectMany(q => q).Order());
            Assert.Equal(expected, seen.Skip(3).SelectMany(q => q).Order());
            foreach (List<uint> q in seen)
                foreach (var flow in q.GroupBy(s => (s >= 1_000_000, s % 1_000_000 % 40)))
                    Assert.True(flow.SequenceEqual(flow.Order()), $"flow {flow.Key} out of order");
            // The 5-tuple application spreads the flows of an IP pair; the IP-pair one keeps each pair on one queue.
            Assert.True(seen.Take(3).Count(q => q.Count != 0) > 1);
            Assert.Equal(1, seen.Skip(3).Count(q => q.Any(s => s < 1_000_000)));
            Assert.Equal((ulong)(a.Tcp + b.Tcp), graph.Pipes.Aggregate(0UL, (sum, p) => sum + p.Filtered));   // the filters' rejects: not a loss
            Assert.Equal(0UL, graph.Pipes.Aggregate(0UL, (sum, p) => sum + p.Dropped));
            EveryBufferBack(graph);
        }
        finally
        {
            File.Delete(a.Path);
            File.Delete(b.Path);
        }
    }

    private struct Rewrite : IStage
    {
        public readonly int Process(Span<PacketHandle> burst)
        {
            foreach (PacketHandle p in burst) p.Buffer[22] = 7;   // the TTL
            return burst.Length;
        }
    }

    private readonly struct Odd : IPacketPredicate
    {
        public bool Matches(in PacketHandle packet) => (BinaryPrimitives.ReadUInt32BigEndian(packet.Data[42..]) & 1) != 0;
    }

    // zpipeline: stages chained over three workers, the last a delay: every packet rewritten by the first, checked by
    // the second, and held until the delay after its timestamp.
    [Fact]
    public void ThreeStagesChained_WithADelay_RewriteFilterAndHoldEveryPacket_InOrder()
    {
        long stamp = TimePulse.WallClockNs();
        var file = Capture("pipeline", 0, stamp);
        try
        {
            var delay = TimeSpan.FromMilliseconds(400);
            var t = Topology.Cluster(TestClusters.NextId()).Options(Small);
            int queue = t.From("pcap:" + file.Path).Filter(BpfFilter.Compile("udp")).Stage(new Rewrite()).Where(new Odd()).Delay(delay).ToQueue();
            using Graph graph = t.Run();
            Assert.Equal(4, graph.Pipes.Count);
            var seen = new List<uint>();
            long last = 0;
            var burst = new PacketHandle[32];
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (seen.Count < file.Udp / 2)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"got {seen.Count}");
                int n = graph.Consumer(queue).ReceiveBurst(burst);
                long now = TimePulse.WallClockNs();
                foreach (PacketHandle p in burst.AsSpan(0, n))
                {
                    Assert.Equal(7, p.Data[22]);
                    Assert.True(now >= p.TimestampNs + delay.Ticks * 100, $"a packet {(p.TimestampNs + delay.Ticks * 100 - now) / 1000} µs early");
                    seen.Add(BinaryPrimitives.ReadUInt32BigEndian(p.Data[42..]));
                    last = now;
                }
                graph.Consumer(queue).ReleaseBurst(burst.AsSpan(0, n));
            }
            Assert.Equal(Enumerable.Range(0, file.Udp).Where(i => i % 2 == 1).Select(i => (uint)i), seen);
            Assert.True(last - stamp < 5_000_000_000, $"the last packet came {(last - stamp) / 1_000_000} ms after its time");
            EveryBufferBack(graph);
        }
        finally
        {
            File.Delete(file.Path);
        }
    }

    // zfifo with stages: two inputs each through a stage of its own, merged in time order by a third into one queue.
    [Fact]
    public void TwoStagesMergedInTimeOrder_ComeOutInTimeOrder()
    {
        var a = Capture("fifo-a", 0, 1_000);
        var b = Capture("fifo-b", 1_000_000, 1_500);
        try
        {
            var t = Topology.Cluster(TestClusters.NextId()).Options(Small);
            int queue = t.Merge(t.From("pcap:" + a.Path).Filter(BpfFilter.Compile("udp")), t.From("pcap:" + b.Path).Filter(BpfFilter.Compile("udp")))
                .InTimeOrder(TimeSpan.FromSeconds(2)).ToQueue();   // a stage may be off its core for a while on a busy host: wait long
            using Graph graph = t.Run();
            var times = new List<long>();
            var burst = new PacketHandle[32];
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (times.Count < a.Udp + b.Udp)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"got {times.Count}");
                int n = graph.Consumer(queue).ReceiveBurst(burst);
                foreach (PacketHandle p in burst.AsSpan(0, n)) times.Add(p.TimestampNs);
                graph.Consumer(queue).ReleaseBurst(burst.AsSpan(0, n));
            }
            Assert.Equal(times.Order(), times);
            EveryBufferBack(graph);
        }
        finally
        {
            File.Delete(a.Path);
            File.Delete(b.Path);
        }
    }

    // The plan is worked out before anything is created, and Run carries out that plan: the same threads, queue ids and pools.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ThePlan_SaysWhatRunsWhere_BeforeAnythingExists_AndRunMakesJustThat(bool oneCore)
    {
        uint id = TestClusters.NextId();
        int? core = oneCore ? ZcFlow.Workers.CpuAffinity.AllowedCores()[^1] : null;
        var t = Topology.Cluster(id).Options(Small).QueueSlots(512);
        PacketStream a = t.From("gen:64?count=3000").Filter(BpfFilter.Compile("udp"), core, "fa");
        PacketStream b = t.From("gen:64?count=3000").Filter(BpfFilter.Compile("udp"), core, "fb");
        int[] queues = t.Merge(a, b).Balance(new FiveTupleHash(), 3, core, "balancer").ToQueues();

        TopologyPlan plan = t.Plan();
        Assert.DoesNotContain(ClusterDirectory.List(), c => c.Id == id);
        Assert.Equal([0, 1, 2], queues);
        Assert.Equal([0, 1, 2], plan.ConsumerQueues);
        if (oneCore)
        {
            // One core: both filters fused into the balancer, which reads the devices into one pool; no queue between them.
            TopologyPlan.Stage balancer = Assert.Single(plan.Stages);
            Assert.Equal(["fa", "fb"], balancer.Fused.Select(f => f.Name));
            Assert.True(balancer.Reads);
            Assert.Equal(4096, balancer.PoolBuffers);
            Assert.Equal(3, plan.QueueCount);
            Assert.Equal(core, Assert.Single(plan.Threads).Core);
            Assert.Contains($"'balancer' reads gen:64?count=3000, gen:64?count=3000 into a pool of 4096 buffers, fused: 'fa', 'fb' -> zc:{id}@0, zc:{id}@1, zc:{id}@2", plan.ToString());
        }
        else
        {
            // No cores: three threads; each filter reads into half the buffers and feeds a queue the balancer's relay takes.
            Assert.Equal(["fa", "fb", "balancer"], plan.Stages.Select(s => s.Node.Name));
            Assert.Equal([2048, 2048, 0], plan.Stages.Select(s => s.PoolBuffers));
            Assert.Equal([[3], [4], [0, 1, 2]], plan.Stages.Select(s => s.OutputQueues));
            Assert.Equal([3, 4], plan.Stages[2].InputQueues);
            Assert.Equal(5, plan.QueueCount);
            Assert.Equal(3, plan.Threads.Length);
            Assert.Contains($"'balancer' takes zc:{id}@3, zc:{id}@4 (a relay) -> zc:{id}@0, zc:{id}@1, zc:{id}@2", plan.ToString());
        }
        Assert.Equal(512, plan.QueueSlots);

        using Graph graph = t.Run();
        ClusterInfo info = ClusterDirectory.List().Single(c => c.Id == id);
        Assert.Equal(plan.QueueCount, info.Queues.Count);
        Assert.All(info.Queues, q => Assert.Equal(512, q.Capacity));
        Assert.Equal(plan.Stages.Where(s => s.Reads).Select(s => s.PoolBuffers), info.Pools.Where(p => p.Count > 0).Select(p => p.Count));
        List<uint>[] seen = Drain(graph, queues, 2 * 3000, numbered: false);
        Assert.Equal(2 * 3000, seen.Sum(q => q.Count));
        Assert.Throws<InvalidOperationException>(() => t.Plan());   // run once
    }

    [Fact]
    public void AGraphThatDoesNotHoldTogether_IsRefusedBeforeAnythingRuns_NamingTheStage()
    {
        uint id = TestClusters.NextId();
        var t = Topology.Cluster(id).Options(Small);
        PacketStream filtered = t.From("gen:64").Filter(BpfFilter.Compile("udp"), name: "udp only");
        Assert.Contains("output 0 of 'udp only' goes nowhere", Assert.Throws<InvalidOperationException>(() => t.Run()).Message);
        filtered.ToQueue();
        Assert.Contains("output 0 of 'udp only' already goes to a queue", Assert.Throws<InvalidOperationException>(() => filtered.Stage(new PassAll())).Message);
        Assert.Contains("not both", Assert.Throws<ArgumentException>(() => t.Merge(t.From("gen:64"), t.From("gen:64").Stage(new PassAll()))).Message);
        PacketStream once = t.From("gen:64").Stage(new PassAll(), name: "once");
        Assert.Contains("already goes to a queue", Assert.Throws<InvalidOperationException>(() => t.Merge(once, filtered)).Message);
        once.ToQueue();   // the refused merge took nothing: it is still free
        Assert.Contains("arrival order", Assert.Throws<InvalidOperationException>(() => t.From("gen:64", "gen:64").InTimeOrder().Balance(new RoundRobin(), 2)).Message);
        Assert.Contains("core 4096", Assert.Throws<ArgumentOutOfRangeException>(() => t.From("gen:64").Stage(new PassAll(), core: 4096, name: "pinned")).Message);
        Assert.Null(ClusterDirectory.Find(id));

        var many = Topology.Cluster(id).Options(Small);
        many.From("gen:64").Balance(new RoundRobin(), 64).ToQueues();
        many.From("gen:64").ToQueue();
        Assert.Contains("65 queues", Assert.Throws<InvalidOperationException>(() => many.Run()).Message);
        Assert.Null(ClusterDirectory.Find(id));

        var bad = Topology.Cluster(id).Options(Small);
        bad.From("gen:64").Filter(BpfFilter.Compile("udp")).ToQueue();
        bad.From("nosuch0").Stage(new PassAll()).ToQueue();
        Assert.Contains("nosuch0", Assert.Throws<ArgumentException>(() => bad.Run()).Message);
        Assert.Null(ClusterDirectory.Find(id));
    }

    // A consumer process of a queue fed by a stage in the middle of the graph dies holding buffers: that stage takes
    // them back and hands them up, and the other queue goes on.
    [Fact]
    public void AConsumerOfAMiddleStageKilled_ItsBuffersGoBackUp_AndTheOtherQueueGoesOn()
    {
        uint id = TestClusters.NextId();
        var t = Topology.Cluster(id).Options(Small).QueueSlots(256);
        int[] queues = t.From("gen:64?flows=64&rate=20000&count=20000").Stage(new PassAll()).Balance(new RoundRobin(), 2).ToQueues();
        using Graph graph = t.Run();
        var held = (Queues.EgressQueue)graph.Queues[queues[0]];
        var read = (Queues.EgressQueue)graph.Queues[queues[1]];
        using (ChildProcess hoarder = ChildProcess.Start("hold", [id, queues[0], 100]))
        {
            hoarder.WaitFor("holding 100");
            hoarder.Kill();
        }
        Wait.Until(() => held.ConsumerPid == 0 && !held.ConsumerGone, "the killed consumer's queue free again");
        List<uint>[] seen = Drain(graph, [queues[1]], 0, _ => graph.InputsExhausted && read.IsEmpty, numbered: false);
        Assert.Equal(10_000, seen[0].Count);
        // What the consumer held is back; its queue keeps only what was queued for it, and every other buffer is free.
        Wait.Until(() => held.Held <= held.Capacity
            && ClusterDirectory.List().Single(c => c.Id == id).Pools.Sum(p => (long)p.Count - p.Free) == held.Held, "every buffer but the queued ones back in its pool");
    }
}
