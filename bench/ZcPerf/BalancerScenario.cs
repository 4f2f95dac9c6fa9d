using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Filters;
using ZcFlow.Graphs;
using ZcFlow.Ipc;
using ZcFlow.Queues;
using ZcFlow.Stages;
using ZcFlow.Workers;

namespace ZcFlow.Perf;

/// <summary>
/// The main job end to end: <c>gen:</c> 64-byte frames over 4096 flows, a balancer with the
/// symmetric 5-tuple hash pinned to one core, two queues, two consumers on the other core that
/// read every packet and release it: as threads of this process, then as two other processes,
/// in one run; and the same with 64 queues, one consumer thread serving them all, and with IMIX frames (<c>gen:imix</c>). Lossless, so the figure is what
/// reaches the consumers. Then the generator alone (64 bytes and IMIX), its buffers kept in flight as the queues keep
/// them, beside the balancer row with consumer processes and the plain C ring, run by run: the balancer's own cost is
/// the difference. Then a filter stage before the balancer, built with a <see cref="Topology"/> (the cost of a general graph),
/// and a capture file read at top speed into the pool, in Mpps and GB/s.
/// </summary>
internal static class BalancerScenario
{
    private const long Packets = 30_000_000;
    private const int Queues = 2;

    public static void Run(PerfOptions options)
    {
        int[] cores = CpuAffinity.AllowedCores();
        var report = new Report(options);
        foreach ((bool processes, int queues, string frames) in new[] { (false, Queues, "64"), (true, Queues, "64"), (false, 64, "64"), (false, Queues, "imix") })
        {
            double best = Enumerable.Range(0, options.Runs).Select(_ => Measure(cores, processes, queues, frames)).Max();
            // 10 GbE's packet rate for these frames: each takes its size, 4 bytes of CRC and 20 of preamble and gap on the wire.
            double averageFrame = frames == "imix" ? GeneratorDevice.Imix.ToArray().Average() : 60;
            double lineRateMpps = 10e9 / 8 / (averageFrame + 24) / 1e6;
            report.Row(new Dictionary<string, object>
            {
                ["scenario"] = "balancer",
                ["name"] = $"gen{frames}_5tuple_{queues}queues_consumer_{(processes ? "processes" : "threads")}",
                ["mpps"] = Math.Round(best, 2),
                ["gbps"] = Math.Round(best * averageFrame * 8 / 1e3, 2),
                ["ns_per_packet"] = Math.Round(1e3 / best, 1),
                ["ratio_vs_10gbe_line_rate"] = Math.Round(best / lineRateMpps, 2),
                ["packets"] = Packets,
            });
        }
        GeneratorCost(report, options, cores);
        Stages(report, options, cores);
        PcapRead(report, options);
    }

    // The generator's own cost, so that the balancer's is the difference: per run, the generator alone on the balancer's
    // core (its buffers kept in flight as long as two queues of 4096 keep them, then released), the balancer row with
    // consumer processes, and the plain C ring in bursts of 32, which tells the host's fast phase from its slow one.
    private static void GeneratorCost(Report report, PerfOptions options, int[] cores)
    {
        using var peers = new Peers();
        List<double> generator = [], imix = [], balancer = [], plain = [];
        for (int run = 0; run < options.Runs; run++)
        {
            plain.Add(peers.Mops("plain", 300_000_000, 32));
            generator.Add(MeasureGenerator(cores[0], "64"));
            imix.Add(MeasureGenerator(cores[0], "imix"));
            balancer.Add(Measure(cores, processes: true, Queues, "64"));
            Console.Error.WriteLine($"zcperf: balancer run {run + 1}/{options.Runs}: generator {generator[^1]:F1} Mpps (imix {imix[^1]:F1}), balancer {balancer[^1]:F1} Mpps, plain ring {plain[^1]:F0} M/s");
        }
        double[] ratios = [.. generator.Zip(balancer, (g, b) => g / b)];
        report.Row(new Dictionary<string, object>
        {
            ["scenario"] = "balancer",
            ["name"] = "gen64_generator_alone",
            ["mpps"] = Math.Round(Report.Median(generator), 2),
            ["mpps_min"] = Math.Round(generator.Min(), 2),
            ["mpps_max"] = Math.Round(generator.Max(), 2),
            ["ns_per_packet"] = Math.Round(1e3 / Report.Median(generator), 1),
            ["balancer_processes_mpps"] = string.Join("/", balancer.Select(b => b.ToString("F1", System.Globalization.CultureInfo.InvariantCulture))),
            ["plain_ring_burst32_mops"] = string.Join("/", plain.Select(b => b.ToString("F0", System.Globalization.CultureInfo.InvariantCulture))),
            ["ratio_vs_balancer_row"] = Math.Round(Report.Median(ratios), 2),
            ["ratio_min"] = Math.Round(ratios.Min(), 2),
            ["ratio_max"] = Math.Round(ratios.Max(), 2),
            ["balancer_ns_without_generator"] = Math.Round(1e3 / Report.Median(balancer) - 1e3 / Report.Median(generator), 1),
        });
        report.Row(new Dictionary<string, object>
        {
            ["scenario"] = "balancer",
            ["name"] = "genimix_generator_alone",
            ["mpps"] = Math.Round(Report.Median(imix), 2),
            ["mpps_min"] = Math.Round(imix.Min(), 2),
            ["mpps_max"] = Math.Round(imix.Max(), 2),
            ["gbps"] = Math.Round(Report.Median(imix) * GeneratorDevice.Imix.ToArray().Average() * 8 / 1e3, 2),
        });
    }

    private static double MeasureGenerator(int core, string frames)
    {
        using ZcCluster cluster = ZcCluster.Create((uint)(520_000 + Environment.ProcessId % 100_000), new ClusterOptions
        {
            BufferCount = 16384, BufferSize = frames == "imix" ? 2048 : 128, MaxQueues = 1, Warn = _ => { },
        });
        BufferPool pool = cluster.CreatePool(16384);
        using IPacketSource gen = Device.OpenSource($"gen:{frames}?flows=4096", pool, 0);
        const int Burst = 32, InFlight = 2 * 4096 / Burst;
        var bursts = new PacketHandle[InFlight][];
        for (int i = 0; i < InFlight; i++) bursts[i] = new PacketHandle[Burst];
        var counts = new int[InFlight];
        double mpps = 0;
        var thread = new Thread(() =>
        {
            CpuAffinity.PinCurrentThread(core);
            long packets = 0;
            Stopwatch clock = Stopwatch.StartNew();
            for (long turn = 0; packets < Packets; turn++)
            {
                int at = (int)(turn % InFlight);
                pool.ReleaseBurst(bursts[at].AsSpan(0, counts[at]));
                counts[at] = gen.ReceiveBurst(bursts[at]);
                packets += counts[at];
            }
            mpps = packets / clock.Elapsed.TotalSeconds / 1e6;
        });
        thread.Start();
        thread.Join();
        return mpps;
    }

    // The cost of generality: gen -> a filter stage -> the balancer -> two queues, against the balancer row (gen -> the
    // balancer -> two queues) and against the same topology without the stage, runs interleaved. The stage and the balancer
    // are given the same core, as the balancer row's balancer, so the topology fuses them: one thread, no queue between.
    // The filter is a struct predicate (IPv4), then a BPF filter ("ip"); both pass every packet the generator makes, so
    // every row delivers the same packets to the same consumers.
    private static void Stages(Report report, PerfOptions options, int[] cores)
    {
        List<double> balancer = [], topology = [], ipv4 = [], bpf = [];
        for (int run = 0; run < options.Runs; run++)
        {
            balancer.Add(Measure(cores, processes: false, Queues, "64"));
            topology.Add(MeasureStages(cores, gen => gen));
            ipv4.Add(MeasureStages(cores, gen => gen.Where(new Ipv4(), cores[0])));
            bpf.Add(MeasureStages(cores, gen => gen.Filter(BpfFilter.Compile("ip"), cores[0])));
        }
        foreach ((string name, List<double> mpps) in new[] { ("gen64_ipv4_stage_5tuple_2queues_consumer_threads", ipv4), ("gen64_bpf_stage_5tuple_2queues_consumer_threads", bpf) })
        {
            double median = Median(mpps);
            report.Row(new Dictionary<string, object>
            {
                ["scenario"] = "balancer",
                ["name"] = name,
                ["mpps"] = Math.Round(median, 2),
                ["mpps_min"] = Math.Round(mpps.Min(), 2),
                ["mpps_max"] = Math.Round(mpps.Max(), 2),
                ["balancer_row_mpps"] = Math.Round(Median(balancer), 2),
                ["ratio_vs_balancer_row"] = Math.Round(median / Median(balancer), 2),
                ["no_stage_mpps"] = Math.Round(Median(topology), 2),
                ["ratio_vs_no_stage"] = Math.Round(median / Median(topology), 2),
                ["ratio_vs_10gbe_line_rate"] = Math.Round(median / (10e9 / 8 / 84 / 1e6), 2),
                ["packets"] = Packets,
            });
        }
    }

    private readonly struct Ipv4 : IPacketPredicate
    {
        public bool Matches(in PacketHandle packet) => packet.Data is { Length: >= 14 } d && d[12] == 0x08 && d[13] == 0x00;
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    private static double MeasureStages(int[] cores, Func<PacketStream, PacketStream> stage)
    {
        Topology topology = Topology.Cluster((uint)(510_000 + Environment.ProcessId % 100_000))
            .Options(new ClusterOptions { BufferCount = 16384, BufferSize = 128, MaxQueues = 3, Warn = _ => { } })
            .QueueSlots(4096).ActiveWait();
        int[] ids = stage(topology.From($"gen:64?flows=4096&count={Packets}")).Balance(new FiveTupleHash(), Queues, cores[0]).ToQueues();
        using Graph graph = topology.Run();
        QueueConsumer[] queues = [.. ids.Select(graph.Consumer)];
        // Timed from here, as the balancer row is timed from its worker's start: what the queues received before counts out.
        var clock = Stopwatch.StartNew();
        long before = queues.Sum(q => (long)q.Stats.Received);
        using var done = new CancellationTokenSource();
        Thread consumers = ConsumerThread(cores[^1], queues, done.Token);
        while (queues.Sum(q => (long)q.Stats.Received) < Packets) Thread.Sleep(1);
        double seconds = clock.Elapsed.TotalSeconds;
        done.Cancel();
        consumers.Join();
        return (Packets - before) / seconds / 1e6;
    }

    private static double Measure(int[] cores, bool processes, int queueCount, string frames)
    {
        using ZcCluster cluster = ZcCluster.Create((uint)(500_000 + Environment.ProcessId % 100_000), new ClusterOptions
        {
            BufferCount = 16384, BufferSize = frames == "imix" ? 2048 : 128, MaxQueues = queueCount, Warn = _ => { },
        });
        BufferPool pool = cluster.CreatePool(16384);
        var queues = Enumerable.Range(0, queueCount).Select(_ => cluster.CreateQueue(4096)).ToArray();
        using IPacketSource gen = Device.OpenSource($"gen:{frames}?flows=4096&count={Packets}", pool, 0);
        var balancer = new Balancer<FiveTupleHash>(pool, [gen], queues, new FiveTupleHash(), lossless: true);

        var children = new List<Process>();
        Thread? consumers = null;
        using var done = new CancellationTokenSource();
        if (processes)
        {
            for (int q = 0; q < queueCount; q++)
            {
                var child = Process.Start(new ProcessStartInfo("dotnet")
                {
                    ArgumentList = { typeof(BalancerScenario).Assembly.Location, "balancer-consumer", cluster.Id.ToString(), q.ToString(), cores[^1].ToString() },
                    RedirectStandardOutput = true,
                })!;
                if (child.StandardOutput.ReadLine() != "attached") throw new InvalidOperationException("a consumer process did not attach");
                children.Add(child);
            }
        }
        else
        {
            consumers = ConsumerThread(cores[^1], [.. queues.Select(q => q.Consumer)], done.Token);
        }

        var clock = Stopwatch.StartNew();
        using (ZcWorker.Start("balancer", balancer.DoWork, new WorkerOptions { Core = cores[0], ActiveWait = true }))
            while (queues.Sum(q => (long)q.Stats.Received) < Packets) Thread.Sleep(1);
        double seconds = clock.Elapsed.TotalSeconds;
        done.Cancel();
        consumers?.Join();
        cluster.Dispose(); // consumer processes see the cluster closed and exit
        foreach (Process child in children) { child.WaitForExit(); child.Dispose(); }
        return Packets / seconds / 1e6;
    }

    // One thread on `core` consuming every queue in turn until cancelled.
    private static Thread ConsumerThread(int core, QueueConsumer[] queues, CancellationToken done)
    {
        var consumers = new Thread(() =>
        {
            CpuAffinity.PinCurrentThread(core);
            var burst = new PacketHandle[32];
            long sum = 0;
            while (!done.IsCancellationRequested)
                foreach (QueueConsumer q in queues) sum += Consume(q, burst);
            GC.KeepAlive(sum);
        })
        { Name = "consumers" };
        consumers.Start();
        return consumers;
    }

    /// <summary>Receives a burst, reads every packet's first bytes, releases the burst; returns a checksum.</summary>
    private static long Consume(QueueConsumer queue, PacketHandle[] burst)
    {
        int n = queue.ReceiveBurst(burst);
        long sum = 0;
        for (int k = 0; k < n; k++) sum += burst[k].Data[GeneratorDevice.SequenceOffset + 7];
        queue.ReleaseBurst(burst.AsSpan(0, n));
        return sum;
    }


    /// <summary><c>ZcPerf balancer-consumer &lt;cluster&gt; &lt;queue&gt; &lt;core&gt;</c>: a consumer process, until the cluster closes.</summary>
    public static int ConsumerProcess(string[] args)
    {
        CpuAffinity.PinCurrentThread(int.Parse(args[3]));
        using AttachedQueue attached = AttachedQueue.Attach(uint.Parse(args[1]), int.Parse(args[2]));
        Console.WriteLine("attached");
        var burst = new PacketHandle[32];
        try
        {
            // Two consumer processes share one core: an empty turn yields it to the other.
            while (true)
            {
                Consume(attached.Queue, burst);
                if (attached.Queue.IsEmpty) Thread.Yield();
            }
        }
        catch (ClusterGoneException)
        {
        }
        return 0;
    }

    private static void PcapRead(Report report, PerfOptions options)
    {
        string? path = CorpusFile();
        if (path is null) return;
        using ZcCluster cluster = ZcCluster.Create((uint)(400_000 + Environment.ProcessId % 100_000), new ClusterOptions
        {
            BufferCount = 4096, BufferSize = 2048, MaxQueues = 1, Warn = _ => { },
        });
        BufferPool pool = cluster.CreatePool(4096);
        var burst = new PacketHandle[32];
        double bestMpps = 0, bestGbs = 0;
        for (int run = 0; run < options.Runs; run++)
        {
            using IPacketSource file = Device.OpenSource($"pcap:{path}?loop", pool, 0);
            var clock = Stopwatch.StartNew();
            long packets = 0;
            while (clock.ElapsedMilliseconds < 1000)
            {
                int n = file.ReceiveBurst(burst);
                pool.ReleaseBurst(burst.AsSpan(0, n));
                packets += n;
            }
            double seconds = clock.Elapsed.TotalSeconds;
            bestMpps = Math.Max(bestMpps, file.Stats.Received / seconds / 1e6);
            bestGbs = Math.Max(bestGbs, file.Stats.Bytes / seconds / 1e9);
        }
        report.Row(new Dictionary<string, object>
        {
            ["scenario"] = "balancer", ["name"] = "pcap_read_" + Path.GetFileName(path), ["mpps"] = Math.Round(bestMpps, 2), ["gbytes_per_s"] = Math.Round(bestGbs, 2),
        });
    }

    // The largest capture of the corpus beside the checkout, if it is there.
    private static string? CorpusFile()
    {
        string? corpus = Tests.Tools.Repository is string repository ? Path.Combine(repository, "..", "shared", "corpus", "tcpdump-tests") : null;
        return corpus is not null && Directory.Exists(corpus)
            ? Directory.GetFiles(corpus, "*.pcap").OrderByDescending(f => new FileInfo(f).Length).First()
            : null;
    }
}
