using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Ipc;
using ZcFlow.Queues;
using ZcFlow.Workers;

namespace ZcFlow.Perf;

/// <summary>
/// One producer pushing bursts of 32 pool buffers through a queue to a consumer that reads
/// each packet's first bytes and releases it: the consumer once as a thread of this process,
/// once as another process attached with <c>zc:&lt;cluster&gt;@0</c>, in the same run, the same
/// two cores. The clock runs from the first send until the owner sees the last packet received.
/// </summary>
internal static class IpcScenario
{
    private const long Items = 100_000_000;
    private const int Burst = 32;

    public static void Run(PerfOptions options)
    {
        int[] cores = CpuAffinity.AllowedCores();
        double best(Func<double> run) => Enumerable.Range(0, options.Runs).Select(_ => run()).Max();

        double inProcess = best(() => Measure(cores, (cluster, queue) =>
        {
            var consumer = new Thread(() =>
            {
                CpuAffinity.PinCurrentThread(cores[^1]);
                Consume(queue.Consumer, Items);
            })
            { Name = "consumer" };
            consumer.Start();
            return consumer.Join;
        }));
        double crossProcess = best(() => Measure(cores, (cluster, queue) =>
        {
            var child = Process.Start(new ProcessStartInfo("dotnet")
            {
                ArgumentList = { typeof(IpcScenario).Assembly.Location, "ipc-consumer", cluster.Id.ToString(), Items.ToString(), cores[^1].ToString() },
                RedirectStandardOutput = true,
            })!;
            if (child.StandardOutput.ReadLine() != "attached") throw new InvalidOperationException("the consumer process did not attach");
            return () => { child.WaitForExit(); child.Dispose(); };
        }));

        var report = new Report(options);
        report.Row(new Dictionary<string, object>
        {
            ["scenario"] = "ipc", ["name"] = "in_process_threads", ["mops"] = Math.Round(inProcess, 2), ["items"] = Items,
        });
        report.Row(new Dictionary<string, object>
        {
            ["scenario"] = "ipc", ["name"] = "cross_process", ["mops"] = Math.Round(crossProcess, 2), ["items"] = Items,
            ["ratio_vs_in_process"] = Math.Round(crossProcess / inProcess, 3),
        });
    }

    /// <summary>The consumer's side, in whichever process it runs: touch and release every packet.</summary>
    public static void Consume(QueueConsumer queue, long items)
    {
        var burst = new PacketHandle[Burst];
        long got = 0, sum = 0;
        while (got < items)
        {
            int n = queue.ReceiveBurst(burst, QueueWait.Active);
            for (int k = 0; k < n; k++) sum += burst[k].Data[0];
            queue.ReleaseBurst(burst.AsSpan(0, n));
            got += n;
        }
        GC.KeepAlive(sum);
    }

    /// <summary><c>ZcPerf ipc-consumer &lt;cluster&gt; &lt;items&gt; &lt;core&gt;</c>: the other process.</summary>
    public static int ConsumerProcess(string[] args)
    {
        CpuAffinity.PinCurrentThread(int.Parse(args[3]));
        using AttachedQueue attached = AttachedQueue.Attach(uint.Parse(args[1]), 0);
        Console.WriteLine("attached");
        Consume(attached.Queue, long.Parse(args[2]));
        return 0;
    }

    private static double Measure(int[] cores, Func<ZcCluster, EgressQueue, Action> startConsumer)
    {
        using ZcCluster cluster = ZcCluster.Create((uint)(600_000 + Environment.ProcessId % 100_000), new ClusterOptions
        {
            BufferCount = 8192, BufferSize = 128, MaxQueues = 1, Warn = _ => { },
        });
        BufferPool pool = cluster.CreatePool(8192);
        EgressQueue queue = cluster.CreateQueue(4096);
        pool.ReclaimFrom(queue);
        Action waitForConsumer = startConsumer(cluster, queue);

        double seconds = 0;
        var producer = new Thread(() =>
        {
            CpuAffinity.PinCurrentThread(cores[0]);
            var burst = new PacketHandle[Burst];
            var clock = Stopwatch.StartNew();
            for (long sent = 0; sent < Items;)
            {
                int n = pool.GetBurst(burst.AsSpan(0, (int)Math.Min(Burst, Items - sent)));
                for (int k = 0; k < n; k++) { burst[k].Buffer[0] = (byte)k; burst[k].Length = 64; }
                sent += queue.SendBurst(burst.AsSpan(0, n), QueueWait.Active);
            }
            while (queue.Stats.Received < Items) Thread.SpinWait(16);
            seconds = clock.Elapsed.TotalSeconds;
        })
        { Name = "producer" };
        producer.Start();
        producer.Join();
        waitForConsumer();
        return Items / seconds / 1e6;
    }
}
