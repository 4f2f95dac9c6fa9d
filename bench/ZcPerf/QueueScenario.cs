using System.Threading.Channels;
using ZcFlow.Buffers;
using ZcFlow.Queues;

namespace ZcFlow.Perf;

/// <summary>
/// Our SPSC queue, single-item and in bursts of 32, against <see cref="Channel{T}"/> bounded and
/// unbounded (single reader, single writer), the same handles moving between the same two
/// pinned cores in the same run. Each row is the best of the runs.
/// </summary>
internal static class QueueScenario
{
    private const int Slots = 4096;
    private const int Burst = 32;

    public static void Run(PerfOptions options)
    {
        using ZcCluster cluster = ZcCluster.Create((uint)(900_000 + Environment.ProcessId % 100_000), new ClusterOptions
        {
            BufferCount = Slots, BufferSize = 64, MaxQueues = 2, Warn = _ => { },
        });
        BufferPool pool = cluster.CreatePool(Slots);
        var handles = new PacketHandle[Slots];
        pool.GetBurst(handles);

        var report = new Report(options);
        var rows = new List<(string Name, long Items, PinnedPair.Result Result)>
        {
            Best("channel_bounded", 10_000_000, options, n => Channel(handles, n, bounded: true)),
            Best("channel_unbounded", 10_000_000, options, n => Channel(handles, n, bounded: false)),
            Best("zc_queue_single", 50_000_000, options, n => Single(cluster.CreateQueueOnce(0), handles, n)),
            Best("zc_queue_burst32", 300_000_000, options, n => Bursts(cluster.CreateQueueOnce(1), handles, n)),
        };
        double bounded = Mops(rows[0]), unbounded = Mops(rows[1]);
        foreach (var row in rows)
        {
            var fields = new Dictionary<string, object>
            {
                ["scenario"] = "queue",
                ["name"] = row.Name,
                ["mops"] = Math.Round(Mops(row), 2),
                ["items"] = row.Items,
                ["seconds"] = Math.Round(row.Result.Seconds, 4),
                ["alloc_bytes_per_item"] = Math.Round((double)row.Result.AllocatedBytes / row.Items, 4),
            };
            if (row.Name.StartsWith("zc_", StringComparison.Ordinal))
            {
                fields["ratio_vs_channel"] = Math.Round(Mops(row) / bounded, 2);
                fields["ratio_vs_channel_unbounded"] = Math.Round(Mops(row) / unbounded, 2);
            }
            report.Row(fields);
        }
    }

    private static double Mops((string, long Items, PinnedPair.Result Result) row) => row.Items / row.Result.Seconds / 1e6;

    private static (string, long, PinnedPair.Result) Best(string name, long items, PerfOptions options, Func<long, PinnedPair.Result> run)
    {
        run(items / 10); // warm-up: JIT tiers settle
        PinnedPair.Result best = run(items);
        for (int i = 1; i < options.Runs; i++)
        {
            PinnedPair.Result r = run(items);
            if (r.Seconds < best.Seconds) best = r;
        }
        return (name, items, best);
    }

    private static ZcQueue CreateQueueOnce(this ZcCluster cluster, int id)
        => id < cluster.Queues.Count ? cluster.Queues[id] : cluster.CreateQueue(Slots);

    private static PinnedPair.Result Single(ZcQueue queue, PacketHandle[] handles, long items) => PinnedPair.Run(
        () =>
        {
            for (long i = 0; i < items; i++)
                while (!queue.TrySend(handles[i & (Slots - 1)])) Thread.SpinWait(1);
        },
        () =>
        {
            long got = 0, sum = 0;
            while (got < items)
            {
                if (queue.TryReceive(out PacketHandle p)) { sum += p.Index; got++; }
                else Thread.SpinWait(1);
            }
            GC.KeepAlive(sum);
        });

    private static PinnedPair.Result Bursts(ZcQueue queue, PacketHandle[] handles, long items) => PinnedPair.Run(
        () =>
        {
            for (long i = 0; i < items; i += Burst)
                queue.SendBurst(handles.AsSpan((int)(i & (Slots - 1)), Burst), QueueWait.Active);
        },
        () =>
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
        });

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
