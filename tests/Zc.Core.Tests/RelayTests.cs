using System.Buffers.Binary;
using ZcFlow.Buffers;
using ZcFlow.Ipc;
using ZcFlow.Queues;

namespace ZcFlow.Tests;

/// <summary>A relay: a stage on a thread of its own between queues, handing every buffer back to the queue it came from.</summary>
public class RelayTests
{
    // A queue between two stages is the relay's: no process may attach to it (it would take the graph's packets); the
    // listing marks it internal; a queue the graph ends in is attachable as ever; a queue a consumer attached to first
    // cannot become a relay's.
    [Fact]
    public void ARelaysInputQueue_IsInternal_RefusedToConsumers_AndListedSo()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 256, maxQueues: 4);
        EgressQueue q1 = cluster.CreateQueue(64), q2 = cluster.CreateQueue(32), q3 = cluster.CreateQueue(32);
        cluster.CreatePool(256).ReclaimFrom(q1);
        cluster.CreateRelay([q1]).ReclaimFrom(q2);
        Assert.True(q1.IsInternal);
        var refused = Assert.Throws<ArgumentException>(() => AttachedQueue.Attach($"zc:{cluster.Id}@0"));
        Assert.StartsWith($"queue 0 of cluster {cluster.Id} is internal: it carries packets between two stages of its owner's graph", refused.Message);
        using (AttachedQueue end = AttachedQueue.Attach($"zc:{cluster.Id}@1")) Assert.Equal(1, end.Queue.Id);
        Wait.Until(() => ClusterDirectory.List().Single(c => c.Id == cluster.Id).Queues[0].Internal, "the listing to mark queue 0 internal");
        Assert.False(ClusterDirectory.List().Single(c => c.Id == cluster.Id).Queues[1].Internal);

        using AttachedQueue taken = AttachedQueue.Attach($"zc:{cluster.Id}@2");
        Assert.Contains("has been attached to by a consumer process", Assert.Throws<InvalidOperationException>(() => cluster.CreateRelay([q3])).Message);
    }

    private const int Total = 200_000;

    // Thread A fills numbered packets from its pool into q1; thread B relays: every packet to q3, the even ones also to q2,
    // multiples of 7 dropped; thread C reads q2 and q3 and releases. Every buffer ends back in A's pool, with no error.
    [Fact]
    public void ThreeThreads_DeliverEveryPacketInOrder_AndEveryBufferGoesHome()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 256, maxQueues: 4);
        BufferPool pool = cluster.CreatePool(256);
        EgressQueue q1 = cluster.CreateQueue(64), q2 = cluster.CreateQueue(32), q3 = cluster.CreateQueue(32);
        pool.ReclaimFrom(q1);
        BufferRelay relay = cluster.CreateRelay([q1]);
        relay.ReclaimFrom(q2);
        relay.ReclaimFrom(q3);
        var both = new MultiQueue(q2, q3);
        CancellationToken cancel = TestContext.Current.CancellationToken;

        var producer = new Thread(() =>
        {
            var burst = new PacketHandle[16];
            for (int sent = 0; sent < Total;)
            {
                int n = pool.GetBurst(burst.AsSpan(0, Math.Min(burst.Length, Total - sent)));
                for (int i = 0; i < n; i++)
                {
                    burst[i].Length = 64;
                    BinaryPrimitives.WriteInt32LittleEndian(burst[i].Buffer, sent + i);
                }
                sent += q1.SendBurst(burst.AsSpan(0, n), QueueWait.Passive, cancel);
            }
        });
        int relayed = 0;
        var stage = new Thread(() =>
        {
            var burst = new PacketHandle[16];
            while (relayed < Total && !cancel.IsCancellationRequested)
            {
                int n = relay.ReceiveFrom(0, burst);
                for (int i = 0; i < n; i++)
                {
                    int number = BinaryPrimitives.ReadInt32LittleEndian(burst[i].Data);
                    if (number % 7 == 0) relay.Release(burst[i]);
                    else both.Send(burst[i], number % 2 == 0 ? 0b11UL : 0b10UL, QueueWait.Passive, flush: false, cancel);
                }
                both.Flush();
                relayed += n;
                if (n == 0) relay.Reclaim();
            }
        });
        producer.Start();
        stage.Start();

        int expected2 = Enumerable.Range(0, Total).Count(i => i % 7 != 0 && i % 2 == 0), expected3 = Enumerable.Range(0, Total).Count(i => i % 7 != 0);
        int got2 = 0, got3 = 0, last2 = -1, last3 = -1;
        var received = new PacketHandle[16];
        while ((got2 < expected2 || got3 < expected3) && !cancel.IsCancellationRequested)
        {
            foreach ((EgressQueue q, bool even) in new[] { (q2, true), (q3, false) })
            {
                int n = q.Consumer.ReceiveBurst(received);
                for (int i = 0; i < n; i++)
                {
                    int number = BinaryPrimitives.ReadInt32LittleEndian(received[i].Data);
                    Assert.True(number % 7 != 0 && (!even || number % 2 == 0), $"packet {number} on queue {q.Id}");
                    ref int last = ref even ? ref last2 : ref last3;
                    Assert.True(number > last, $"packet {number} after {last} on queue {q.Id}");
                    last = number;
                }
                q.Consumer.ReleaseBurst(received.AsSpan(0, n));
                if (even) got2 += n; else got3 += n;
            }
        }
        producer.Join();
        stage.Join();
        Assert.Equal((expected2, expected3), (got2, got3));

        relay.Reclaim();
        Wait.Until(() => pool.Reclaim() >= 0 && pool.Available == pool.Capacity, "every buffer back in the pool", 5);
        Assert.Equal(0UL, pool.Errors);
        Assert.Equal(0UL, relay.Errors);
        Assert.Equal(0, q1.Held + q2.Held + q3.Held);
    }

    // Thread A sends every packet both to a consumer's queue and to the relay's input; thread B relays into its own queue;
    // thread C reads both. A's and B's records of who holds a buffer are written at the same time for the same buffer:
    // kept apart, no update is lost, and every buffer comes home.
    [Fact]
    public void AFanOutToAConsumerAndARelay_LosesNoBuffer_WhileBothThreadsTrackTheSameBuffers()
    {
        const int Packets = 300_000;
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, maxQueues: 4);
        BufferPool pool = cluster.CreatePool(4096);
        EgressQueue direct = cluster.CreateQueue(1024), q1 = cluster.CreateQueue(1024), q2 = cluster.CreateQueue(1024);
        pool.ReclaimFrom(direct);
        pool.ReclaimFrom(q1);
        BufferRelay relay = cluster.CreateRelay([q1]);
        relay.ReclaimFrom(q2);
        var both = new MultiQueue(direct, q1);
        CancellationToken cancel = TestContext.Current.CancellationToken;
        var producer = new Thread(() =>
        {
            for (int sent = 0; sent < Packets && !cancel.IsCancellationRequested;)
            {
                if (!pool.TryGet(out PacketHandle p)) continue;
                p.Length = 60;
                both.Send(p, 0b11, QueueWait.Passive, flush: true, cancel);
                sent++;
            }
        });
        var stage = new Thread(() =>
        {
            var burst = new PacketHandle[16];
            for (int relayed = 0; relayed < Packets && !cancel.IsCancellationRequested;)
            {
                int n = relay.ReceiveFrom(0, burst);
                relayed += q2.SendBurst(burst.AsSpan(0, n), QueueWait.Passive, cancel);
                if (n == 0) relay.Reclaim();
            }
        });
        producer.Start();
        stage.Start();
        var received = new PacketHandle[16];
        long got = 0;
        while (got < 2L * Packets && !cancel.IsCancellationRequested)
            foreach (EgressQueue q in new[] { direct, q2 })
            {
                int n = q.Consumer.ReceiveBurst(received);
                q.Consumer.ReleaseBurst(received.AsSpan(0, n));
                got += n;
            }
        producer.Join();
        stage.Join();
        relay.Reclaim();
        Wait.Until(() => pool.Reclaim() >= 0 && pool.Available == pool.Capacity, "every buffer back in the pool", 5);
        Assert.Equal(0UL, pool.Errors + relay.Errors);
    }

    // A consumer of the relay's queue releases a buffer twice and one it never had: the relay counts both and passes neither on.
    [Fact]
    public void ForgedAndDoubleReleases_AreCountedByTheRelay_AndNeverReachThePool()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 64, maxQueues: 2);
        BufferPool pool = cluster.CreatePool(64);
        EgressQueue q1 = cluster.CreateQueue(16), q2 = cluster.CreateQueue(16);
        pool.ReclaimFrom(q1);
        BufferRelay relay = cluster.CreateRelay([q1]);
        relay.ReclaimFrom(q2);

        var burst = new PacketHandle[4];
        Assert.Equal(4, pool.GetBurst(burst));
        Assert.Equal(4, q1.SendBurst(burst));
        Assert.Equal(4, relay.ReceiveFrom(0, burst));
        Assert.Equal(4, q2.SendBurst(burst));
        Assert.Equal(4, q2.Consumer.ReceiveBurst(burst));
        q2.Consumer.ReleaseBurst(burst);
        q2.Consumer.Release(burst[0]);                   // twice
        Assert.True(pool.TryAt(40, out PacketHandle never));
        q2.Consumer.Release(never);                      // never sent
        relay.Reclaim();
        Assert.Equal(2UL, relay.Errors);
        Assert.Equal(4, pool.Reclaim());
        Assert.Equal(0UL, pool.Errors);
        Assert.Equal(pool.Capacity, pool.Available);
    }

    [Fact]
    public void Relay_RefusesToSendIntoItsInput_AndQueuesOfAnotherCluster()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 64, maxQueues: 2);
        using ZcCluster other = TestClusters.Create(buffers: 64, maxQueues: 1);
        EgressQueue q1 = cluster.CreateQueue(16);
        BufferRelay relay = cluster.CreateRelay([q1]);
        Assert.Contains("receives from", Assert.Throws<ArgumentException>(() => relay.ReclaimFrom(q1)).Message);
        Assert.Contains("not one of cluster", Assert.Throws<ArgumentException>(() => cluster.CreateRelay([other.CreateQueue(8)])).Message);
        // A relay hands out no buffers (no TryGet) and a pool receives from no queue (no ReceiveFrom): the types say so.
    }
}
