using ZcFlow.Buffers;
using ZcFlow.Memory;
using ZcFlow.Queues;

namespace ZcFlow.Tests;

/// <summary>Whatever is written into a queue's shared memory, reads stay inside the cluster and errors are counted.</summary>
public sealed unsafe class CorruptionTests : IDisposable
{
    private const int Seed = 20261125;
    private readonly ZcCluster _cluster = TestClusters.Create(buffers: 128);
    private readonly BufferPool _pool;
    private readonly EgressQueue _queue;

    private readonly ITestOutputHelper _output;

    public CorruptionTests(ITestOutputHelper output)
    {
        _output = output;
        _pool = _cluster.CreatePool(128);
        _queue = _cluster.CreateQueue(32);
        _pool.ReclaimFrom(_queue);
    }

    public void Dispose() => _cluster.Dispose();

    private RingControl* Forward => _queue.ForwardRing.Control;
    private RingControl* Recycle => _queue.RecycleRing.Control;
    private static uint* Slots(RingControl* ring) => (uint*)(ring + 1);

    private void SendFresh(int n)
    {
        var burst = new PacketHandle[n];
        Assert.Equal(n, _pool.GetBurst(burst));
        Assert.Equal(n, _queue.SendBurst(burst));
    }

    [Fact]
    public void TheListing_ShowsWhatTheOwnerCounted_NotWhatTheConsumerWroteIntoItsRings()
    {
        SendFresh(4);
        Forward->Dropped = 123_456;   // the consumer can write its queue's rings, counters included
        Forward->ProducerErrors = 999;
        Forward->Tail = 77;
        Assert.Equal(new QueueStats(4, 0, 0, 0), _queue.Stats);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        ZcFlow.Ipc.QueueInfo q;
        do
        {
            q = Assert.Single(Assert.Single(ZcFlow.Ipc.ClusterDirectory.List(), c => c.Id == _cluster.Id).Queues);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the listing still says {q}");
        }
        while (q.Stats.Sent != 4);
        Assert.Equal(new QueueStats(4, 0, 0, 0), q.Stats);
        Assert.Equal(4, q.Held);
    }

    [Fact]
    public void Receive_OfASlotNamingABufferOutsideTheCluster_SkipsItAndCountsAnError()
    {
        SendFresh(4);
        uint[] sent = [Slots(Forward)[0], Slots(Forward)[2], Slots(Forward)[3]];
        Slots(Forward)[1] = 0xFFFF_FFF0;
        var got = new PacketHandle[8];
        Assert.Equal(3, _queue.Consumer.ReceiveBurst(got));
        Assert.Equal(sent, got.Take(3).Select(p => p.Index));   // the others, in order
        Assert.Equal(1UL, _queue.Stats.Errors);
    }

    [Fact]
    public void Receive_WhenTailClaimsMoreThanTheRingHolds_ReturnsNothingAndCountsAnError()
    {
        Forward->Tail = 1_000_000;
        Assert.Equal(0, _queue.Consumer.ReceiveBurst(new PacketHandle[8]));
        Assert.False(_queue.Consumer.TryReceive(out _));
        Assert.True(_queue.Stats.Errors >= 1);
    }

    [Fact]
    public void Send_WhenHeadRunsAheadOfWhatWasSent_RefusesAndCountsAnError()
    {
        SendFresh(32); // fills the ring, so the next send must look at Head
        Forward->Head = 5_000;
        Assert.True(_pool.TryGet(out PacketHandle p));
        Assert.False(_queue.TrySend(p));
        Assert.True(_queue.Stats.Errors >= 1);
    }

    [Fact]
    public void RandomBytesOverTheForwardRing_NeverYieldAHandleOutsideTheCluster()
    {
        var random = new Random(Seed);
        var got = new PacketHandle[64];
        for (int round = 0; round < 1000; round++)
        {
            random.NextBytes(new Span<byte>(Forward, ArenaLayout.RingControlSize + 4 * _queue.Capacity));
            for (int i = 0; i < 4; i++)
            {
                int n = _queue.Consumer.ReceiveBurst(got);
                for (int k = 0; k < n; k++) Assert.True(got[k].Index < (uint)_cluster.BufferCount);
                if (_queue.Consumer.TryReceive(out PacketHandle one)) Assert.True(one.Index < (uint)_cluster.BufferCount);
            }
        }
        _output.WriteLine($"seed {Seed}: {_queue.Stats.Errors} errors counted");
        Assert.True(_queue.Stats.Errors > 0);
    }

    [Fact]
    public void RandomBytesOverTheRecycleRing_NeverMakeThePoolHandOutABufferTwice()
    {
        var random = new Random(Seed);
        var held = new HashSet<uint>();
        int slots = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)_cluster.BufferCount);
        for (int round = 0; round < 1000; round++)
        {
            // Garbage indices behind a Tail that is plausible in odd rounds and garbage in even ones.
            random.NextBytes(new Span<byte>(Slots(Recycle), 4 * slots));
            if (round % 2 == 1)
            {
                for (int i = 0; i < slots; i++) if (random.Next(2) == 0) Slots(Recycle)[i] %= (uint)_cluster.BufferCount;
                Recycle->Tail = Recycle->Head + (ulong)random.Next(slots + 1);
            }
            else
            {
                Recycle->Tail = (ulong)random.NextInt64();
            }
            while (_pool.TryGet(out PacketHandle p))
            {
                Assert.True(held.Add(p.Index), $"buffer {p.Index} handed out twice (seed {Seed}, round {round})");
                Assert.InRange(p.Index, 0u, (uint)_cluster.BufferCount - 1);
            }
            // Give a few back honestly so there is something to hand out next round.
            foreach (uint index in held.Take(3).ToArray())
            {
                held.Remove(index);
                _pool.Release(_queue.Buffers.At(index));
            }
        }
        _output.WriteLine($"seed {Seed}: the pool refused {_pool.Errors} returned indices; the queue counted {_queue.Stats.Errors} errors");
        Assert.True(_pool.Errors > 0);
        Assert.True(_queue.Stats.Errors > 0);
    }

}
