namespace ZcFlow.Tests;

/// <summary>Clusters for tests: ids no other test process uses, in /dev/shm unless asked, warnings kept quiet.</summary>
internal static class TestClusters
{
    private static int _next;

    public static uint NextId() => (uint)(1_000_000 + Environment.ProcessId % 100_000 * 100 + Interlocked.Increment(ref _next));

    public static ZcCluster Create(int buffers = 1024, int bufferSize = 256, int maxQueues = 8, bool hugePages = false)
        => ZcCluster.Create(NextId(), new ClusterOptions
        {
            BufferCount = buffers,
            BufferSize = bufferSize,
            MaxQueues = maxQueues,
            UseHugePages = hugePages,
            Warn = _ => { },
        });
}
