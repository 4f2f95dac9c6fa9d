using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.ObjectPool;
using ZcFlow.Buffers;

namespace ZcFlow.Benchmarks;

/// <summary>Taking and giving back packet buffers on one thread: our pool against Microsoft.Extensions.ObjectPool.</summary>
[MemoryDiagnoser]
public class BufferPoolBenchmarks
{
    private const int Rounds = 1024;

    [Params(1, 32)]
    public int Burst { get; set; }

    private ZcCluster _cluster = null!;
    private BufferPool _pool = null!;
    private ObjectPool<byte[]> _objects = null!;
    private readonly PacketHandle[] _handles = new PacketHandle[32];
    private readonly byte[][] _arrays = new byte[32][];

    private sealed class BufferPolicy : PooledObjectPolicy<byte[]>
    {
        public override byte[] Create() => new byte[1536];
        public override bool Return(byte[] obj) => true;
    }

    [GlobalSetup]
    public void Setup()
    {
        _cluster = ZcCluster.Create((uint)(700_000 + Environment.ProcessId % 100_000), new ClusterOptions
        {
            BufferCount = 1024, MaxQueues = 1, Warn = _ => { },
        });
        _pool = _cluster.CreatePool(1024);
        _objects = new DefaultObjectPool<byte[]>(new BufferPolicy(), 1024);
    }

    [GlobalCleanup]
    public void Cleanup() => _cluster.Dispose();

    [Benchmark(Baseline = true, OperationsPerInvoke = Rounds)]
    public void ObjectPool()
    {
        for (int r = 0; r < Rounds; r += Burst)
        {
            for (int i = 0; i < Burst; i++) _arrays[i] = _objects.Get();
            for (int i = 0; i < Burst; i++) _objects.Return(_arrays[i]);
        }
    }

    [Benchmark(OperationsPerInvoke = Rounds)]
    public void ZcBufferPool()
    {
        Span<PacketHandle> burst = _handles.AsSpan(0, Burst);
        for (int r = 0; r < Rounds; r += Burst)
        {
            _pool.GetBurst(burst);
            _pool.ReleaseBurst(burst);
        }
    }
}
