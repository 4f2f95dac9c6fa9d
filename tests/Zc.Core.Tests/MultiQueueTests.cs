using ZcFlow.Buffers;
using ZcFlow.Queues;

namespace ZcFlow.Tests;

public sealed class MultiQueueTests : IDisposable
{
    private readonly ZcCluster _cluster = TestClusters.Create(buffers: 64);
    private readonly BufferPool _pool;
    private readonly EgressQueue[] _queues;
    private readonly MultiQueue _multi;

    public MultiQueueTests()
    {
        _pool = _cluster.CreatePool(64);
        _queues = [_cluster.CreateQueue(4), _cluster.CreateQueue(4), _cluster.CreateQueue(4)];
        foreach (EgressQueue q in _queues) _pool.ReclaimFrom(q);
        _multi = new MultiQueue(_queues);
    }

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public void Send_ReachesEverySelectedQueueWithoutACopy_AndTheLastReleaseFreesTheBuffer()
    {
        Assert.True(_pool.TryGet(out PacketHandle p));
        p.Buffer[0] = 7;
        p.Length = 1;
        int before = _pool.Available;
        Assert.Equal(2, _multi.Send(p, 0b101));

        Assert.True(_queues[0].Consumer.TryReceive(out PacketHandle a));
        Assert.False(_queues[1].Consumer.TryReceive(out _));
        Assert.True(_queues[2].Consumer.TryReceive(out PacketHandle c));
        Assert.Equal(p.Index, a.Index);
        Assert.Equal(p.Index, c.Index);
        Assert.Equal(7, c.Data[0]);

        _queues[0].Consumer.Release(a);
        Assert.Equal(0, _pool.Reclaim());
        _queues[2].Consumer.Release(c);
        Assert.Equal(1, _pool.Reclaim());
        Assert.Equal(before + 1, _pool.Available);
    }

    [Fact]
    public void Send_WhenOneQueueIsFull_CountsOnlyTheQueuesThatTookIt()
    {
        for (int i = 0; i < 4; i++)
        {
            Assert.True(_pool.TryGet(out PacketHandle filler));
            Assert.True(_queues[1].TrySend(filler));
        }
        Assert.True(_pool.TryGet(out PacketHandle p));
        Assert.Equal(2, _multi.Send(p, _multi.All));
        Assert.Equal(1UL, _queues[1].Stats.Dropped);
        // Held by queues 0 and 2: it comes back after both release it, and queue 1 cannot return it.
        Assert.True(_queues[0].Consumer.TryReceive(out PacketHandle a));
        Assert.True(_queues[2].Consumer.TryReceive(out PacketHandle c));
        _queues[1].Consumer.Release(a);
        _queues[0].Consumer.Release(a);
        Assert.Equal(0, _pool.Reclaim());
        Assert.Equal(1UL, _pool.Errors);
        _queues[2].Consumer.Release(c);
        Assert.Equal(1, _pool.Reclaim());
    }

    [Fact]
    public void Send_ThatNoQueueTakes_LeavesThePacketWithTheCaller()
    {
        Assert.True(_pool.TryGet(out PacketHandle p));
        Assert.Equal(0, _multi.Send(p, 0));
        Assert.Equal(0, _multi.Send(p, 1UL << 40));
        _pool.Release(p);
    }

    [Fact]
    public void Constructor_RefusesMoreThan64Queues()
        => Assert.Throws<ArgumentOutOfRangeException>(() => new MultiQueue(Enumerable.Repeat(_queues[0], 65).ToArray()));
}
