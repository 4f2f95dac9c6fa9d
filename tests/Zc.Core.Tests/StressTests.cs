using ZcFlow.Buffers;
using ZcFlow.Queues;

namespace ZcFlow.Tests;

/// <summary>
/// Sequence-numbered packets through real threads, checked one by one: none lost, none
/// duplicated, none reordered, every buffer back in its pool at the end.
/// </summary>
public class StressTests(ITestOutputHelper output)
{
    private const int Seed = 7;

    [Fact]
    public void Queue_100_000_000_SequencedPackets_AcrossTwoThreads_ArriveOnceEachInOrder()
    {
        const long Total = 100_000_000;
        using ZcCluster cluster = TestClusters.Create(buffers: 8192, bufferSize: 64);
        BufferPool pool = cluster.CreatePool(8192);
        EgressQueue queue = cluster.CreateQueue(4096);
        pool.ReclaimFrom(queue);
        CancellationToken cancel = TestDeadline.Token;

        string? failure = null;
        long received = 0;
        var consumer = new Thread(() =>
        {
            var burst = new PacketHandle[32];
            long expected = 0;
            while (expected < Total && failure is null && !cancel.IsCancellationRequested)
            {
                int n = queue.Consumer.ReceiveBurst(burst, QueueWait.Passive, cancel);
                for (int k = 0; k < n; k++)
                {
                    long seq = BitConverter.ToInt64(burst[k].Data);
                    if (seq != expected) { failure = $"expected packet {expected}, got {seq}"; break; }
                    expected++;
                }
                queue.Consumer.ReleaseBurst(burst.AsSpan(0, n));
            }
            received = expected;
        })
        { Name = "consumer" };
        consumer.Start();

        var random = new Random(Seed);
        var send = new PacketHandle[32];
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (long seq = 0; seq < Total && failure is null;)
        {
            // Burst sizes from 1 to 32, so single sends and wrap-arounds are exercised too.
            int want = (int)Math.Min(random.Next(1, 33), Total - seq);
            int n = pool.GetBurst(send.AsSpan(0, want));
            if (n == 0) { Thread.Yield(); continue; }
            for (int k = 0; k < n; k++)
            {
                BitConverter.TryWriteBytes(send[k].Buffer, seq++);
                send[k].Length = 8;
            }
            Assert.Equal(n, queue.SendBurst(send.AsSpan(0, n), QueueWait.Passive, cancel));
        }
        consumer.Join();
        output.WriteLine($"seed {Seed}: {Total:N0} packets in {clock.Elapsed.TotalSeconds:F1} s");

        Assert.Null(failure);
        Assert.Equal(Total, received);
        Assert.Equal(new QueueStats((ulong)Total, (ulong)Total, 0, 0), queue.Stats);
        pool.Reclaim();
        Assert.Equal(pool.Capacity, pool.Available);
        Assert.Equal(0UL, pool.Errors);
    }

    [Fact]
    public void MultiQueue_100_000_000_SequencedPackets_ToThreeConsumers_EachGetsItsShareOnceInOrder()
    {
        const long Total = 100_000_000;
        const int Consumers = 3;
        // Packet s goes to the consumers named by the bits of (s % 7) + 1: every non-empty subset in turn.
        static ulong MaskOf(long seq) => (ulong)(seq % 7) + 1;

        using ZcCluster cluster = TestClusters.Create(buffers: 8192, bufferSize: 64);
        BufferPool pool = cluster.CreatePool(8192);
        var queues = new EgressQueue[Consumers];
        for (int i = 0; i < Consumers; i++) pool.ReclaimFrom(queues[i] = cluster.CreateQueue(2048));
        var multi = new MultiQueue(queues);
        CancellationToken cancel = TestDeadline.Token;

        var failures = new string?[Consumers];
        var counts = new long[Consumers];
        var threads = Enumerable.Range(0, Consumers).Select(i => new Thread(() =>
        {
            EgressQueue queue = queues[i];
            long expected = Total; // the first seq with our bit, below
            long share = 0;
            for (long s = 0; s < 7; s++) if ((MaskOf(s) & (1UL << i)) != 0) { expected = s; break; }
            for (long s = 0; s < Total % 7; s++) if ((MaskOf(s) & (1UL << i)) != 0) share++;
            share += Total / 7 * 4;
            var burst = new PacketHandle[32];
            long got = 0;
            while (got < share && failures[i] is null && !cancel.IsCancellationRequested)
            {
                int n = queue.Consumer.ReceiveBurst(burst, QueueWait.Passive, cancel);
                for (int k = 0; k < n; k++)
                {
                    long seq = BitConverter.ToInt64(burst[k].Data);
                    if (seq != expected) { failures[i] = $"consumer {i}: expected packet {expected}, got {seq}"; break; }
                    got++;
                    do expected++; while ((MaskOf(expected) & (1UL << i)) == 0);
                }
                queue.Consumer.ReleaseBurst(burst.AsSpan(0, n));
            }
            counts[i] = got;
            if (got != share && failures[i] is null) failures[i] = $"consumer {i}: got {got} of {share}";
        })
        { Name = $"consumer {i}" }).ToArray();
        foreach (Thread t in threads) t.Start();

        var clock = System.Diagnostics.Stopwatch.StartNew();
        long deliveries = 0;
        for (long seq = 0; seq < Total && failures.All(f => f is null);)
        {
            if (!pool.TryGet(out PacketHandle p)) { Thread.Yield(); continue; }
            BitConverter.TryWriteBytes(p.Buffer, seq);
            p.Length = 8;
            ulong mask = MaskOf(seq++);
            int taken = multi.Send(p, mask, QueueWait.Passive, flush: seq % 32 == 0, cancel);
            Assert.Equal(System.Numerics.BitOperations.PopCount(mask), taken);
            deliveries += taken;
        }
        multi.Flush();
        foreach (Thread t in threads) t.Join();
        output.WriteLine($"{Total:N0} packets, {deliveries:N0} deliveries in {clock.Elapsed.TotalSeconds:F1} s");

        Assert.All(failures, f => Assert.Null(f));
        Assert.Equal(deliveries, counts.Sum());
        pool.Reclaim();
        Assert.Equal(pool.Capacity, pool.Available);
        Assert.Equal(0UL, pool.Errors);
    }
}
