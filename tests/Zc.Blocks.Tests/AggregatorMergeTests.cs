using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Queues;
using ZcFlow.Stages;
using ZcFlow.Workers;

namespace ZcFlow.Tests;

/// <summary>zfifo: inputs merged in timestamp order, even when one of them is live and has nothing at the moment.</summary>
public class AggregatorMergeTests
{
    [Fact]
    public void AMergeInTimeOrder_WaitsForAnIdleInputUpToItsBound_SoAPacedInputStillFallsInPlace()
    {
        // A: at its recorded pace, a packet every 100 ms (idle between); B: a file read at once, packets between A's.
        string a = Write("a", [0, 100, 200, 300]), b = Write("b", [50, 150, 250, 350]);
        try
        {
            long[] waited = Merge(a, b, TimeSpan.FromSeconds(1));
            Assert.Equal([0, 50, 100, 150, 200, 250, 300, 350], waited);
            // Without the wait, B's packets do not wait for A's: the output is not in time order (this test can tell).
            long[] eager = Merge(a, b, TimeSpan.Zero);
            Assert.Equal(8, eager.Length);
            Assert.NotEqual(waited, eager);
        }
        finally
        {
            File.Delete(a);
            File.Delete(b);
        }
        using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: 2048);
        Assert.Contains("idleWait is for a merge in time order", Assert.Throws<ArgumentException>(
            () => new Pipe<PassAll>(cluster.CreatePool(64), [null!], cluster.CreateQueue(8), mergeByTime: false, idleWait: TimeSpan.FromSeconds(1))).Message);
    }

    private static string Write(string name, long[] milliseconds)
    {
        string path = Path.Combine(Path.GetTempPath(), $"zcflow-fifo-{name}-{Environment.ProcessId}.pcap");
        using var writer = new CaptureWriter(path);
        foreach (long ms in milliseconds)
            writer.Write(Frames.Ethernet(0x0800).Ipv4(1, 2, 17, 8).Udp(1, 2, 0).ToArray(), 1_700_000_000_000_000_000 + ms * 1_000_000);
        return path;
    }

    // The merge's output times, in milliseconds from the first, once both inputs are exhausted.
    private static long[] Merge(string paced, string file, TimeSpan idleWait)
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 256, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(256);
        EgressQueue queue = cluster.CreateQueue(64);
        IPacketSource[] inputs = [Device.OpenSource($"pcap:{paced}?pace", pool, 0), Device.OpenSource("pcap:" + file, pool, 1)];
        var aggregator = new Pipe<PassAll>(pool, inputs, queue, mergeByTime: true, idleWait: idleWait);
        var times = new List<long>();
        var burst = new PacketHandle[32];
        using (ZcWorker worker = ZcWorker.Start("fifo", aggregator.DoWork))
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (times.Count < 8)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"only {times.Count} packets");
                int n = queue.Consumer.ReceiveBurst(burst);
                foreach (PacketHandle p in burst.AsSpan(0, n)) times.Add((p.TimestampNs - 1_700_000_000_000_000_000) / 1_000_000);
                queue.Consumer.ReleaseBurst(burst.AsSpan(0, n));
                if (n == 0) Thread.Sleep(1);
            }
        }
        foreach (IPacketSource input in inputs) input.Dispose();
        return [.. times];
    }
}
