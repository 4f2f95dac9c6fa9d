using System.Diagnostics;
using System.Globalization;
using ZcFlow.Buffers;
using ZcFlow.Graphs;
using ZcFlow.Ipc;
using ZcFlow.Queues;
using ZcFlow.Workers;

namespace ZcFlow.Perf;

/// <summary>
/// One-way latency, producer to consumer: a packet every few microseconds, stamped when sent and timed when received, so
/// each one finds its queue empty and the figure is what crossing costs, not queueing. Our queue between two pinned threads
/// and to a consumer process, each with the consumer busy-polling (active) and sleeping (passive); the Balancer's whole
/// path (gen: stamps, balancer, queue) to a consumer process; DPDK's rte_ring and the plain C ring in the same harness; and
/// the floor, half a cache line's round trip between the two cores. Nanoseconds: p50, p99, p99.9, max; the median of the
/// runs for each.
/// </summary>
internal static class LatencyScenario
{
    private const int Samples = 100_000;
    private const int GapNs = 10_000;
    private const int Slots = 4096;

    public static void Run(PerfOptions options)
    {
        using var peers = new Peers();
        int[] cores = CpuAffinity.AllowedCores();
        var report = new Report(options);
        var floor = Enumerable.Range(0, options.Runs).Select(_ => peers.RoundTripNs(2_000_000) / 2).ToList();
        report.Row(new Dictionary<string, object>
        {
            ["scenario"] = "latency", ["name"] = "cache_line_one_way", ["ns"] = Math.Round(Report.Median(floor), 1),
        });
        var rows = new List<(string Name, Func<long[]> Once)>
        {
            ("zc_queue_threads_active", () => Threads(cores, QueueWait.Active)),
            ("zc_queue_threads_passive", () => Threads(cores, QueueWait.Passive)),
            ("zc_queue_process_active", () => Process(cores, QueueWait.Active)),
            ("zc_queue_process_passive", () => Process(cores, QueueWait.Passive)),
            ("balancer_to_process_passive", () => Balancer(cores)),
        };
        foreach ((string name, Func<long[]> once) in rows)
        {
            long[][] runs = [.. Enumerable.Range(0, options.Runs).Select(_ => once())];
            report.Row(Percentiles("latency", name, runs.Select(r => Summary(r)).ToList(), Report.Median(floor)));
        }
        if (peers.RteRingMissing is not null)
            report.Row(new Dictionary<string, object> { ["scenario"] = "latency", ["name"] = "rte_ring_active", ["missing"] = peers.RteRingMissing });
        foreach (string peer in peers.RteRingMissing is null ? new[] { "rte_ring", "plain" } : ["plain"])
        {
            var runs = Enumerable.Range(0, options.Runs).Select(_ => peers.Latency(peer, Samples, GapNs)).Select(j =>
                (j.GetProperty("p50_ns").GetDouble(), j.GetProperty("p99_ns").GetDouble(), j.GetProperty("p999_ns").GetDouble(), j.GetProperty("max_ns").GetDouble())).ToList();
            report.Row(Percentiles("latency", $"{peer}_active", runs, Report.Median(floor)));
        }
    }

    private static (double P50, double P99, double P999, double Max) Summary(long[] ns)
    {
        Array.Sort(ns);
        return (ns[ns.Length / 2], ns[ns.Length * 99 / 100], ns[ns.Length * 999 / 1000], ns[^1]);
    }

    private static Dictionary<string, object> Percentiles(string scenario, string name, List<(double P50, double P99, double P999, double Max)> runs, double floorNs) => new()
    {
        ["scenario"] = scenario,
        ["name"] = name,
        ["p50_ns"] = Math.Round(Report.Median(runs.Select(r => r.P50)), 0),
        ["p99_ns"] = Math.Round(Report.Median(runs.Select(r => r.P99)), 0),
        ["p999_ns"] = Math.Round(Report.Median(runs.Select(r => r.P999)), 0),
        ["max_ns"] = Math.Round(Report.Median(runs.Select(r => r.Max)), 0),
        ["p50_vs_cache_line_one_way"] = Math.Round(Report.Median(runs.Select(r => r.P50)) / floorNs, 2),
        ["samples"] = Samples,
        ["gap_ns"] = GapNs,
        ["runs"] = runs.Count,
    };

    // A queue of the cluster, its quota beyond what a run sends (the consumer gives nothing back: the producer reuses the buffers in turn).
    private static (ZcCluster Cluster, EgressQueue Queue, PacketHandle[] Handles) Queue(uint id)
    {
        var cluster = ZcCluster.Create(id, new ClusterOptions { BufferCount = Slots, BufferSize = 64, MaxQueues = 1, Warn = _ => { } });
        BufferPool pool = cluster.CreatePool(Slots);
        var handles = new PacketHandle[Slots];
        pool.GetBurst(handles);
        EgressQueue queue = cluster.CreateQueue(Slots);
        queue.Quota = int.MaxValue;
        return (cluster, queue, handles);
    }

    // The producer: one packet every GapNs, its time (the monotonic clock, as Stopwatch reads it) in its header.
    private static void Produce(EgressQueue queue, PacketHandle[] handles, int core)
    {
        CpuAffinity.PinCurrentThread(core);
        long next = Stopwatch.GetTimestamp();
        long gap = GapNs * Stopwatch.Frequency / 1_000_000_000;
        for (int i = 0; i < Samples; i++)
        {
            next += gap;
            while (Stopwatch.GetTimestamp() < next) Thread.SpinWait(1);
            PacketHandle p = handles[i & (Slots - 1)];
            p.TimestampNs = Stopwatch.GetTimestamp();
            while (!queue.TrySend(p)) Thread.SpinWait(1);
        }
    }

    private static long[] Consume(QueueConsumer queue, QueueWait wait, bool realtime)
    {
        var ns = new long[Samples];
        for (int i = 0; i < Samples;)
        {
            if (!queue.Receive(out PacketHandle p, wait)) continue;
            long now = realtime ? (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100 : Stopwatch.GetTimestamp();
            ns[i++] = (now - p.TimestampNs) * (realtime ? 1 : 1_000_000_000 / Stopwatch.Frequency);
            if (realtime) queue.Release(p);   // the Balancer's generator needs its buffers back; our producer reuses its own
        }
        return ns;
    }

    private static long[] Threads(int[] cores, QueueWait wait)
    {
        (ZcCluster cluster, EgressQueue queue, PacketHandle[] handles) = Queue(0x5FB00000 + (uint)Environment.ProcessId % 0x100000);
        using (cluster)
        {
            long[] ns = [];
            var consumer = new Thread(() => { CpuAffinity.PinCurrentThread(cores[^1]); ns = Consume(queue.Consumer, wait, realtime: false); });
            consumer.Start();
            Produce(queue, handles, cores[0]);
            consumer.Join();
            return ns;
        }
    }

    private static long[] Process(int[] cores, QueueWait wait)
    {
        (ZcCluster cluster, EgressQueue queue, PacketHandle[] handles) = Queue(0x5FB00000 + (uint)Environment.ProcessId % 0x100000);
        using (cluster)
        {
            using Process child = Child(cluster.Id, cores[^1], wait, realtime: false);
            Attached(child);
            var producer = new Thread(() => Produce(queue, handles, cores[0]));
            producer.Start();
            producer.Join();
            return Read(child);
        }
    }

    private static long[] Balancer(int[] cores)
    {
        uint id = 0x5FB00000 + (uint)Environment.ProcessId % 0x100000;
        // The consumer first, waiting for the cluster; the balancer holds back until it has attached, so no packet waits in the queue.
        using Process child = Child(id, cores[^1], QueueWait.Passive, realtime: true);
        using Graph graph = GraphBuilder.Cluster(id).Options(new ClusterOptions { Warn = _ => { } })
            .Input($"gen:64?flows=64&rate={1_000_000_000L / GapNs}&count={Samples}").Applications(1).Lossless()
            .DelayStart(TimeSpan.FromSeconds(1)).ActiveWait().Balance(Distribution.HashMode.RoundRobin, cores[0]);
        Attached(child);
        return Read(child);
    }

    private static Process Child(uint cluster, int core, QueueWait wait, bool realtime)
    {
        var child = System.Diagnostics.Process.Start(new ProcessStartInfo("dotnet")
        {
            ArgumentList = { typeof(LatencyScenario).Assembly.Location, "latency-consumer", cluster.ToString(CultureInfo.InvariantCulture), core.ToString(CultureInfo.InvariantCulture), wait.ToString(), realtime ? "realtime" : "monotonic" },
            RedirectStandardOutput = true,
        })!;
        return child;
    }

    private static void Attached(Process child)
    {
        if (child.StandardOutput.ReadLine() != "attached") throw new InvalidOperationException("the latency consumer did not attach");
    }

    private static long[] Read(Process child)
    {
        long[] ns = [.. child.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(long.Parse)];
        child.WaitForExit();
        if (ns.Length != Samples) throw new InvalidOperationException($"the latency consumer timed {ns.Length} packets, not {Samples}");
        return ns;
    }

    /// <summary><c>ZcPerf latency-consumer &lt;cluster&gt; &lt;core&gt; Active|Passive monotonic|realtime</c>: times every packet of queue 0, prints each latency.</summary>
    public static int ConsumerProcess(string[] args)
    {
        CpuAffinity.PinCurrentThread(int.Parse(args[2], CultureInfo.InvariantCulture));
        using AttachedQueue attached = AttachedQueue.Attach(uint.Parse(args[1], CultureInfo.InvariantCulture), 0, TimeSpan.FromSeconds(30), waitForOwner: true);
        Console.WriteLine("attached");
        long[] ns = Consume(attached.Queue, Enum.Parse<QueueWait>(args[3]), args[4] == "realtime");
        Console.WriteLine(string.Join('\n', ns));
        return 0;
    }
}
