using System.Runtime.CompilerServices;
using System.Threading.Channels;
using ZcFlow.Buffers;
using ZcFlow.Queues;

namespace ZcFlow.Perf;

/// <summary>
/// Our SPSC queue, single-item and in bursts of 32, against DPDK's rte_ring (SP/SC, C, built here), a C ring with no
/// checks at all (the limit of the design), and <see cref="Channel{T}"/> bounded and unbounded (single reader, single
/// writer): the same two pinned cores, the same item counts. Each run measures our single-item row beside the peers'
/// single-item rows, then our burst row beside theirs, alternating which goes first, so that the host's swings (seconds
/// long here) touch each pair alike. Each row is the median of the runs, with the slowest and the fastest; a ratio is the
/// median of the ratios within each run, with the lowest and highest.
/// </summary>
internal static class QueueScenario
{
    private const int Slots = 4096;
    private const int Burst = 32;
    private const long SingleItems = 50_000_000, BurstItems = 300_000_000, ChannelItems = 10_000_000;
    private const int MaxQueues = 64;

    public static void Run(PerfOptions options)
    {
        using ZcCluster cluster = ZcCluster.Create((uint)(900_000 + Environment.ProcessId % 100_000), new ClusterOptions
        {
            BufferCount = Slots, BufferSize = 64, MaxQueues = MaxQueues, Warn = _ => { },
        });
        BufferPool pool = cluster.CreatePool(Slots);
        var handles = new PacketHandle[Slots];
        pool.GetBurst(handles);
        using var peers = new Peers();

        // name, items, how to measure once (seconds and bytes allocated): our row, then its peers, kind by kind
        bool rte = peers.RteRingMissing is null;
        var rows = new List<(string Name, long Items, Func<PinnedPair.Result> Once)>
        {
            ("zc_queue_single", SingleItems, () => Single(Fresh(cluster, pool), handles, SingleItems)),
        };
        if (rte) rows.Add(("rte_ring_single", SingleItems, () => Peer(peers, "rte_ring", SingleItems, 1)));
        rows.Add(("plain_ring_single", SingleItems, () => Peer(peers, "plain", SingleItems, 1)));
        rows.Add(("zc_queue_burst32", BurstItems, () => Bursts(Fresh(cluster, pool), handles, BurstItems)));
        if (rte) rows.Add(("rte_ring_burst32", BurstItems, () => Peer(peers, "rte_ring", BurstItems, Burst)));
        rows.Add(("plain_ring_burst32", BurstItems, () => Peer(peers, "plain", BurstItems, Burst)));
        rows.Add(("channel_bounded", ChannelItems, () => Channel(handles, ChannelItems, bounded: true)));
        rows.Add(("channel_unbounded", ChannelItems, () => Channel(handles, ChannelItems, bounded: false)));
        var groups = rows.GroupBy(r => Kind(r.Name)).Select(g => g.ToList()).ToList();
        Single(Fresh(cluster, pool), handles, SingleItems / 10);   // warm-up: the JIT's tiers settle
        Bursts(Fresh(cluster, pool), handles, BurstItems / 10);
        var runs = rows.ToDictionary(r => r.Name, _ => new List<PinnedPair.Result>());
        // The host's speed swings within seconds here: each of our rows runs right beside its peers, first on one run and
        // last on the next, and a ratio is taken within each run before its median over the runs.
        for (int run = 0; run < options.Runs; run++)
            foreach (var group in groups)
                foreach (var row in run % 2 == 0 ? group : Enumerable.Reverse(group))
                {
                    PinnedPair.Result r = row.Once();
                    runs[row.Name].Add(r);
                    Console.Error.WriteLine($"zcperf: queue run {run + 1}/{options.Runs}: {row.Name} {row.Items / r.Seconds / 1e6:F1} Mops");
                }

        var report = new Report(options);
        double Mops(string name, PinnedPair.Result r) => rows.Single(x => x.Name == name).Items / r.Seconds / 1e6;
        double Median(string name) => Report.Median(runs[name].Select(r => Mops(name, r)));
        // The median over the runs of this row's rate over the other's in the same run, with the lowest and highest.
        void Ratio(Dictionary<string, object> fields, string field, string name, string other)
        {
            double[] r = [.. runs[name].Zip(runs[other], (a, b) => Mops(name, a) / Mops(other, b))];
            fields[field] = Math.Round(Report.Median(r), 2);
            fields[field + "_min_max"] = $"{r.Min():F2}-{r.Max():F2}";
        }
        foreach (var row in rows)
        {
            var results = runs[row.Name];
            double mops = Median(row.Name);
            var fields = new Dictionary<string, object>
            {
                ["scenario"] = "queue",
                ["name"] = row.Name,
                ["mops"] = Math.Round(mops, 2),
                ["mops_min"] = Math.Round(results.Min(r => Mops(row.Name, r)), 2),
                ["mops_max"] = Math.Round(results.Max(r => Mops(row.Name, r)), 2),
                ["items"] = row.Items,
                ["runs"] = results.Count,
                ["alloc_bytes_per_item"] = Math.Round((double)results.Max(r => r.AllocatedBytes) / row.Items, 4),
            };
            string kind = Kind(row.Name);
            if (row.Name.StartsWith("zc_", StringComparison.Ordinal))
            {
                fields["ratio_vs_channel"] = Math.Round(mops / Median("channel_bounded"), 2);
                if (peers.RteRingMissing is string missing) fields["ratio_vs_rte_ring"] = missing;
                else Ratio(fields, "ratio_vs_rte_ring", row.Name, $"rte_ring_{kind}");
            }
            if (!row.Name.StartsWith("channel", StringComparison.Ordinal) && !row.Name.StartsWith("plain", StringComparison.Ordinal))
                Ratio(fields, "ratio_vs_plain_ring", row.Name, $"plain_ring_{kind}");
            report.Row(fields);
        }
    }

    private static string Kind(string row) => row.EndsWith("single", StringComparison.Ordinal) ? "single" : row.EndsWith("burst32", StringComparison.Ordinal) ? "burst32" : "channel";

    // A C peer's run as a result: its own wall time (it allocates nothing of ours).
    private static PinnedPair.Result Peer(Peers peers, string peer, long items, int burst) => new(peers.Seconds(peer, items, burst), 0);

    // A queue of its own for each measurement, reclaimed by the pool its buffers come from, as a balancer's are. The
    // consumer here moves indices and gives no buffer back, so the queue's quota of held buffers (which crash safety keeps,
    // and every send counts down) is set beyond what one run sends.
    private static EgressQueue Fresh(ZcCluster cluster, BufferPool pool)
    {
        if (cluster.Queues.Count == MaxQueues) throw new InvalidOperationException($"ZcPerf queue makes a queue a run: --runs {MaxQueues / 2 - 1} at most");
        EgressQueue queue = cluster.CreateQueue(Slots);
        queue.Quota = int.MaxValue;
        pool.ReclaimFrom(queue);
        return queue;
    }

    // Each side's loop is a method compiled at once with full optimisation (AggressiveOptimization), as the C peers are
    // compiled with -O3: a loop in a method called once otherwise runs as the JIT's on-stack-replacement variant, which
    // keeps its locals on the stack. A worker calling DoWork turn after turn gets the JIT's full tier anyway.
    private static PinnedPair.Result Single(EgressQueue queue, PacketHandle[] handles, long items)
        => PinnedPair.Run(() => SendSingles(queue, handles, items), () => ReceiveSingles(queue.Consumer, items));

    private static PinnedPair.Result Bursts(EgressQueue queue, PacketHandle[] handles, long items)
        => PinnedPair.Run(() => SendBursts(queue, handles, items), () => Receive(queue.Consumer, items));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SendSingles(EgressQueue queue, PacketHandle[] handles, long items)
    {
        for (long i = 0; i < items; i++)
            while (!queue.TrySend(handles[i & (Slots - 1)])) Thread.SpinWait(1);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ReceiveSingles(QueueConsumer queue, long items)
    {
        long got = 0, sum = 0;
        while (got < items)
        {
            if (queue.TryReceive(out PacketHandle p)) { sum += p.Index; got++; }
            else Thread.SpinWait(1);
        }
        GC.KeepAlive(sum);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SendBursts(EgressQueue queue, PacketHandle[] handles, long items)
    {
        for (long i = 0; i < items; i += Burst)
            queue.SendBurst(handles.AsSpan((int)(i & (Slots - 1)), Burst), QueueWait.Active);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Receive(QueueConsumer queue, long items)
    {
        var burst = new PacketHandle[Burst];
        long got = 0, sum = 0;
        while (got < items)
        {
            int n = queue.ReceiveBurst(burst);
            if (n == 0) { Thread.SpinWait(1); continue; }
            for (int k = 0; k < n; k++) sum += burst[k].Index;
            got += n;
        }
        GC.KeepAlive(sum);
    }

    private static PinnedPair.Result Channel(PacketHandle[] handles, long items, bool bounded)
    {
        Channel<PacketHandle> channel = bounded
            ? System.Threading.Channels.Channel.CreateBounded<PacketHandle>(new BoundedChannelOptions(Slots)
            { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait })
            : System.Threading.Channels.Channel.CreateUnbounded<PacketHandle>(new UnboundedChannelOptions
            { SingleReader = true, SingleWriter = true });
        ChannelWriter<PacketHandle> writer = channel.Writer;
        ChannelReader<PacketHandle> reader = channel.Reader;
        return PinnedPair.Run(
            () =>
            {
                for (long i = 0; i < items; i++)
                    while (!writer.TryWrite(handles[i & (Slots - 1)])) Thread.SpinWait(1);
            },
            () =>
            {
                long got = 0, sum = 0;
                while (got < items)
                {
                    if (reader.TryRead(out PacketHandle p)) { sum += p.Index; got++; }
                    else Thread.SpinWait(1);
                }
                GC.KeepAlive(sum);
            });
    }
}
