using System.Collections.Concurrent;
using System.Threading.Channels;
using System.Threading.Tasks.Dataflow;
using BenchmarkDotNet.Attributes;
using ZcFlow.Buffers;
using ZcFlow.Queues;
using ZcFlow.Workers;

namespace ZcFlow.Benchmarks;

/// <summary>
/// Handles moving from the benchmark thread to a consumer thread on another core: our queue
/// single-item and in bursts, against the .NET single-producer single-consumer options. Our queue's
/// items make the whole round a buffer makes: taken from the pool, sent, received, released by the
/// consumer, reclaimed by the pool (the holder tracking and checks of crash safety included).
/// One operation is one item; each invocation moves <see cref="Items"/> and waits until the
/// consumer has taken them all.
/// </summary>
[MemoryDiagnoser]
public class QueueBenchmarks
{
    private const int Items = 1 << 20;
    private const int Slots = 4096;

    [Params(1, 32)]
    public int Burst { get; set; }

    private ZcCluster _cluster = null!;
    private EgressQueue _queue = null!;
    private BufferPool _pool = null!;
    private PacketHandle[] _handles = null!;
    private Channel<PacketHandle> _bounded = null!, _unbounded = null!;
    private ConcurrentQueue<PacketHandle> _concurrent = null!;
    private BufferBlock<PacketHandle> _block = null!;
    private Thread? _consumer;
    private volatile bool _running;
    // The consumer's count, alone on its cache lines: it must not share one with the fields the producer reads.
    private readonly long[] _consumedCell = new long[48];
    private ref long _consumed => ref _consumedCell[24];
    private int[] _cores = null!;

    [GlobalSetup]
    public void Setup()
    {
        _cluster = ZcCluster.Create((uint)(800_000 + Environment.ProcessId % 100_000), new ClusterOptions
        {
            BufferCount = Slots, BufferSize = 64, MaxQueues = 1, Warn = _ => { },
        });
        _handles = new PacketHandle[Slots];
        _pool = _cluster.CreatePool(Slots);
        _pool.GetBurst(_handles);
        _queue = _cluster.CreateQueue(Slots);
        _bounded = Channel.CreateBounded<PacketHandle>(new BoundedChannelOptions(Slots) { SingleReader = true, SingleWriter = true });
        _unbounded = Channel.CreateUnbounded<PacketHandle>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        _concurrent = new ConcurrentQueue<PacketHandle>();
        _block = new BufferBlock<PacketHandle>(new DataflowBlockOptions { BoundedCapacity = Slots });
        // Read the cores before pinning: a thread inherits its creator's affinity.
        _cores = CpuAffinity.AllowedCores();
        CpuAffinity.PinCurrentThread(_cores[0]);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        StopConsumer();
        _cluster.Dispose();
    }

    private void StartConsumer(Func<int> drain)
    {
        StopConsumer();
        _running = true;
        _consumer = new Thread(() =>
        {
            CpuAffinity.PinCurrentThread(_cores[^1]);
            while (_running)
            {
                int n = drain();
                if (n == 0) Thread.SpinWait(1);
                else Volatile.Write(ref _consumed, Volatile.Read(ref _consumed) + n);
            }
        })
        { IsBackground = true };
        _consumer.Start();
    }

    private void StopConsumer()
    {
        _running = false;
        _consumer?.Join();
    }

    private void AwaitConsumed(long target)
    {
        while (Volatile.Read(ref _consumed) < target) Thread.SpinWait(1);
    }

    [GlobalSetup(Target = nameof(ZcQueue))]
    public void SetupZcQueue()
    {
        Setup();
        // The buffers go round: the pool hands them out, the consumer releases them, the pool takes them back.
        _pool.ReleaseBurst(_handles);
        _pool.ReclaimFrom(_queue);
        var burst = new PacketHandle[32];
        StartConsumer(() =>
        {
            int n = _queue.Consumer.ReceiveBurst(burst.AsSpan(0, Burst));
            _queue.Consumer.ReleaseBurst(burst.AsSpan(0, n));
            return n;
        });
    }

    [Benchmark(OperationsPerInvoke = Items)]
    public void ZcQueue()
    {
        long target = Volatile.Read(ref _consumed) + Items;
        Span<PacketHandle> burst = _handles.AsSpan(0, Burst);
        for (int sent = 0; sent < Items;)
        {
            int n = _pool.GetBurst(burst);
            if (n == 0)
            {
                Thread.SpinWait(1);
                continue;
            }
            if (Burst == 1)
                while (!_queue.TrySend(burst[0])) Thread.SpinWait(1);
            else
                _queue.SendBurst(burst[..n], QueueWait.Active);
            sent += n;
        }
        AwaitConsumed(target);
    }

    [GlobalSetup(Target = nameof(ChannelBounded))]
    public void SetupBounded()
    {
        Setup();
        StartConsumer(() => _bounded.Reader.TryRead(out _) ? 1 : 0);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Items)]
    public void ChannelBounded()
    {
        long target = Volatile.Read(ref _consumed) + Items;
        for (int i = 0; i < Items; i++)
            while (!_bounded.Writer.TryWrite(_handles[i & (Slots - 1)])) Thread.SpinWait(1);
        AwaitConsumed(target);
    }

    [GlobalSetup(Target = nameof(ChannelUnbounded))]
    public void SetupUnbounded()
    {
        Setup();
        StartConsumer(() => _unbounded.Reader.TryRead(out _) ? 1 : 0);
    }

    [Benchmark(OperationsPerInvoke = Items)]
    public void ChannelUnbounded()
    {
        long target = Volatile.Read(ref _consumed) + Items;
        for (int i = 0; i < Items; i++) _unbounded.Writer.TryWrite(_handles[i & (Slots - 1)]);
        AwaitConsumed(target);
    }

    [GlobalSetup(Target = nameof(ConcurrentQueue))]
    public void SetupConcurrent()
    {
        Setup();
        StartConsumer(() => _concurrent.TryDequeue(out _) ? 1 : 0);
    }

    [Benchmark(OperationsPerInvoke = Items)]
    public void ConcurrentQueue()
    {
        long target = Volatile.Read(ref _consumed) + Items;
        for (int i = 0; i < Items; i++) _concurrent.Enqueue(_handles[i & (Slots - 1)]);
        AwaitConsumed(target);
    }

    [GlobalSetup(Target = nameof(DataflowBufferBlock))]
    public void SetupBlock()
    {
        Setup();
        StartConsumer(() => _block.TryReceive(out _) ? 1 : 0);
    }

    [Benchmark(OperationsPerInvoke = Items)]
    public void DataflowBufferBlock()
    {
        long target = Volatile.Read(ref _consumed) + Items;
        for (int i = 0; i < Items; i++)
            while (!_block.Post(_handles[i & (Slots - 1)])) Thread.SpinWait(1);
        AwaitConsumed(target);
    }
}
