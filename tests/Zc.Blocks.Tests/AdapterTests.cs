using System.Buffers.Binary;
using System.Threading.Tasks.Dataflow;
using ZcFlow.Adapters;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Queues;

namespace ZcFlow.Tests;

public sealed class AdapterTests : IDisposable
{
    private const int Count = 20_000;
    private readonly ZcCluster _cluster = TestClusters.Create(buffers: 4096, bufferSize: 128);
    private readonly BufferPool _pool;
    private readonly EgressQueue _queue;
    private readonly Thread _producer;

    public AdapterTests()
    {
        _pool = _cluster.CreatePool(4096);
        _queue = _cluster.CreateQueue(1024);
        _pool.ReclaimFrom(_queue);
        // Generated packets into the queue, waiting for room: every one must come out, in order.
        _producer = new Thread(() =>
        {
            using IPacketSource gen = Device.OpenSource($"gen:64?count={Count}", _pool, 0);
            var burst = new PacketHandle[32];
            while (!gen.IsExhausted)
            {
                int n = gen.ReceiveBurst(burst);
                _queue.SendBurst(burst.AsSpan(0, n), QueueWait.Passive);
            }
        });
        _producer.Start();
    }

    public void Dispose()
    {
        _producer.Join();
        _cluster.Dispose();
    }

    private static long Sequence(PacketHandle p) => BinaryPrimitives.ReadInt64BigEndian(p.Data[GeneratorDevice.SequenceOffset..]);

    [Fact]
    public async Task ReadAllAsync_YieldsEveryPacketInOrder_AndReleasesEach()
    {
        long expected = 0;
        await foreach (PacketHandle p in _queue.Consumer.ReadAllAsync(TestDeadline.Token))
        {
            Assert.Equal(expected++, Sequence(p));
            if (expected == Count) break;
        }
        _producer.Join();
        Assert.Equal(Count, expected);
    }

    [Fact]
    public async Task ChannelReader_CarriesWhatSelectMadeOfEachPacket()
    {
        using var stop = new CancellationTokenSource();
        var reader = _queue.Consumer.ToChannelReader(Sequence, cancel: stop.Token);
        for (long expected = 0; expected < Count; expected++)
            Assert.Equal(expected, await reader.ReadAsync(TestDeadline.Token));
        stop.Cancel();
        await reader.Completion.WaitAsync(TimeSpan.FromSeconds(10), TestDeadline.Token);
    }

    [Fact]
    public async Task SourceBlock_FeedsADataflowPipeline()
    {
        using var stop = new CancellationTokenSource();
        long sum = 0, seen = 0;
        var sink = new ActionBlock<long>(s => { sum += s; seen++; });
        _queue.Consumer.ToSourceBlock(Sequence, cancel: stop.Token).LinkTo(sink, new DataflowLinkOptions { PropagateCompletion = true });
        while (Interlocked.Read(ref seen) < Count) await Task.Delay(5, TestDeadline.Token);
        stop.Cancel();
        await sink.Completion.WaitAsync(TimeSpan.FromSeconds(10), TestDeadline.Token);
        Assert.Equal((long)Count * (Count - 1) / 2, sum);
    }
}
