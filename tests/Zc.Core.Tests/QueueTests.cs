using ZcFlow.Buffers;
using ZcFlow.Queues;

namespace ZcFlow.Tests;

public sealed class QueueTests : IDisposable
{
    private readonly ZcCluster _cluster = TestClusters.Create(buffers: 256);
    private readonly BufferPool _pool;
    private readonly EgressQueue _queue;

    public QueueTests()
    {
        _pool = _cluster.CreatePool(256);
        _queue = _cluster.CreateQueue(16);
        _pool.ReclaimFrom(_queue);
    }

    public void Dispose() => _cluster.Dispose();

    private PacketHandle Packet(byte tag)
    {
        Assert.True(_pool.TryGet(out PacketHandle p));
        p.Buffer[0] = tag;
        p.Length = 1;
        return p;
    }

    // The counters are read while packets flow, from a third thread, as every report reads them: never more received
    // than sent, never fewer sent than before, and at the end every packet both sent and received.
    [Fact]
    public void Stats_ReadWhilePacketsFlow_NeverShowMoreReceivedThanSent()
    {
        const int Total = 300_000;
        CancellationToken cancel = TestDeadline.Token;
        var consumer = new Thread(() =>
        {
            var burst = new PacketHandle[16];
            for (int got = 0; got < Total && !cancel.IsCancellationRequested;)
            {
                int n = _queue.Consumer.ReceiveBurst(burst, QueueWait.Active, cancel);
                _queue.Consumer.ReleaseBurst(burst.AsSpan(0, n));
                got += n;
            }
        });
        consumer.Start();
        var producer = new Thread(() =>
        {
            var burst = new PacketHandle[8];
            for (int sent = 0; sent < Total && !cancel.IsCancellationRequested;)
            {
                int n = _pool.GetBurst(burst.AsSpan(0, Math.Min(8, Total - sent)));
                for (int i = 0; i < n; i++) burst[i].Length = 60;
                sent += _queue.SendBurst(burst.AsSpan(0, n), QueueWait.Active, cancel);
            }
        });
        producer.Start();
        ulong lastSent = 0;
        long samples = 0;
        while (producer.IsAlive || consumer.IsAlive)
        {
            QueueStats s = _queue.Stats;
            Assert.True(s.Received <= s.Sent, $"received {s.Received} > sent {s.Sent}");
            Assert.True(s.Sent >= lastSent, "sent went back");
            lastSent = s.Sent;
            samples++;
        }
        producer.Join();
        consumer.Join();
        Assert.True(samples > 100, $"{samples} samples");
        Assert.Equal(new QueueStats(Total, Total, 0, 0), _queue.Stats);
    }

    [Fact]
    public void Receive_OnEmptyQueue_ReturnsZeroWithoutBlocking()
    {
        Assert.True(_queue.IsEmpty);
        Assert.False(_queue.Consumer.TryReceive(out _));
        Assert.Equal(0, _queue.Consumer.ReceiveBurst(new PacketHandle[8]));
        Assert.Equal(0, _queue.Consumer.ReceiveBurst(new PacketHandle[8], QueueWait.None, TestDeadline.Token));
    }

    [Fact]
    public void SendThenReceive_KeepsOrderAndBytes()
    {
        for (byte i = 0; i < 10; i++) Assert.True(_queue.TrySend(Packet(i)));
        var got = new PacketHandle[16];
        Assert.Equal(3, _queue.Consumer.ReceiveBurst(got.AsSpan(0, 3)));
        Assert.True(_queue.Consumer.TryReceive(out got[3]));
        Assert.Equal(6, _queue.Consumer.ReceiveBurst(got.AsSpan(4)));
        for (byte i = 0; i < 10; i++) Assert.Equal(i, got[i].Data[0]);
        Assert.Equal(new QueueStats(10, 10, 0, 0), _queue.Stats);
    }

    [Fact]
    public void SendWithoutFlush_IsInvisibleUntilFlush()
    {
        Assert.True(_queue.TrySend(Packet(1), flush: false));
        Assert.Equal(1, _queue.SendBurst([Packet(2)], flush: false));
        Assert.False(_queue.Consumer.TryReceive(out _));
        Assert.Equal(0UL, _queue.Stats.Sent);
        _queue.Flush();
        var got = new PacketHandle[4];
        Assert.Equal(2, _queue.Consumer.ReceiveBurst(got));
        Assert.Equal(1, got[0].Data[0]);
        Assert.Equal(2, got[1].Data[0]);
    }

    [Fact]
    public void Send_OnFullQueue_CountsTheDropAndLeavesThePacketWithTheCaller()
    {
        for (byte i = 0; i < 16; i++) Assert.True(_queue.TrySend(Packet(i)));
        Assert.True(_queue.IsFull);
        PacketHandle extra = Packet(99);
        Assert.False(_queue.TrySend(extra));
        var burst = new[] { Packet(100), Packet(101) };
        Assert.Equal(0, _queue.SendBurst(burst));
        Assert.Equal(new QueueStats(16, 0, 3, 0), _queue.Stats);
        _pool.Release(extra);
        _pool.ReleaseBurst(burst);
        Assert.True(_queue.Consumer.TryReceive(out PacketHandle first));
        Assert.Equal(0, first.Data[0]);
    }

    [Fact]
    public void SendBurst_IntoAPartlyFullQueue_SendsWhatFitsInOrder()
    {
        for (byte i = 0; i < 14; i++) Assert.True(_queue.TrySend(Packet(i)));
        var burst = new[] { Packet(14), Packet(15), Packet(16), Packet(17) };
        Assert.Equal(2, _queue.SendBurst(burst));
        Assert.Equal(2UL, _queue.Stats.Dropped);
        var got = new PacketHandle[16];
        Assert.Equal(16, _queue.Consumer.ReceiveBurst(got));
        for (byte i = 0; i < 16; i++) Assert.Equal(i, got[i].Data[0]);
    }

    [Fact]
    public void Release_ThroughTheQueue_ReturnsTheBufferToItsPool()
    {
        var sent = new PacketHandle[256];
        Assert.Equal(256, _pool.GetBurst(sent));
        Assert.False(_pool.TryGet(out _));
        Assert.Equal(16, _queue.SendBurst(sent.AsSpan(0, 16)));
        var got = new PacketHandle[16];
        Assert.Equal(16, _queue.Consumer.ReceiveBurst(got));
        _queue.Consumer.Release(got[0]);
        _queue.Consumer.ReleaseBurst(got.AsSpan(1));
        Assert.True(_pool.TryGet(out PacketHandle again));
        Assert.Contains(again.Index, sent.Take(16).Select(p => p.Index));
        Assert.Equal(15, _pool.Available);
        Assert.Equal(0UL, _pool.Errors);
    }

    [Fact]
    public void IngressQueue_CarriesFilledSparesToTheOwner_WhoThenHoldsThem()
    {
        IngressQueue ingress = _cluster.CreateIngressQueue(8);
        Assert.Equal(8, _pool.Replenish(ingress));
        Assert.Equal(0, _pool.Replenish(ingress));
        var spares = new PacketHandle[16];
        Assert.Equal(8, ingress.Application.TakeSpares(spares));
        for (byte i = 0; i < 3; i++) { spares[i].Buffer[0] = i; spares[i].Length = 1; }
        Assert.Equal(3, ingress.Application.SendBurst(spares.AsSpan(0, 3)));
        Assert.True(ingress.Application.TrySend(spares[0])); // the same buffer again: refused on arrival
        var got = new PacketHandle[8];
        Assert.Equal(3, ingress.ReceiveBurst(got));
        Assert.Equal(1UL, ingress.Stats.Errors);
        for (byte i = 0; i < 3; i++) Assert.Equal(i, got[i].Data[0]);
        _pool.ReleaseBurst(got.AsSpan(0, 3));
        Assert.Equal(3, _pool.Replenish(ingress));
    }

    [Fact]
    public void PassiveReceive_SleepsUntilTheProducerSends()
    {
        using var ready = new ManualResetEventSlim();
        PacketHandle received = default;
        var consumer = new Thread(() =>
        {
            ready.Set();
            _queue.Consumer.Receive(out received, QueueWait.Passive, TestDeadline.Token);
        });
        consumer.Start();
        ready.Wait(TestDeadline.Token);
        Assert.True(_queue.TrySend(Packet(42)));
        Assert.True(consumer.Join(TimeSpan.FromSeconds(10)));
        Assert.Equal(42, received.Data[0]);
    }

    [Theory]
    [InlineData(QueueWait.Active)]
    [InlineData(QueueWait.Passive)]
    public void WaitingReceive_ReturnsZeroWhenCancelled(QueueWait wait)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        Assert.Equal(0, _queue.Consumer.ReceiveBurst(new PacketHandle[4], wait, cancel.Token));
    }

    [Fact]
    public void WaitingSend_OnAFullQueue_GoesOnWhenTheConsumerMakesRoom()
    {
        for (byte i = 0; i < 16; i++) Assert.True(_queue.TrySend(Packet(i)));
        var more = new[] { Packet(16), Packet(17), Packet(18) };
        using var sending = new ManualResetEventSlim();
        int sent = 0;
        var producer = new Thread(() => { sending.Set(); sent = _queue.SendBurst(more, QueueWait.Passive); });
        producer.Start();
        sending.Wait(TestDeadline.Token);
        var got = new PacketHandle[19];
        int n = 0;
        while (n < 19) n += _queue.Consumer.ReceiveBurst(got.AsSpan(n), QueueWait.Passive, TestDeadline.Token);
        Assert.True(producer.Join(TimeSpan.FromSeconds(10)));
        Assert.Equal(3, sent);
        for (byte i = 0; i < 19; i++) Assert.Equal(i, got[i].Data[0]);
        Assert.Equal(0UL, _queue.Stats.Dropped);
    }
}
