namespace ZcFlow.Tests;

/// <summary>Clusters for tests: ids no other test process uses, in /dev/shm unless asked, warnings kept quiet.</summary>
internal static class TestClusters
{
    private static int _next;

    /// <summary>
    /// An id no other test can be using: this assembly's range is [1e9, 2e9) (Zc.Blocks.Tests has [2e9, 3e9)),
    /// a thousand ids per test process, so neither two assemblies nor two runs side by side collide.
    /// </summary>
    public static uint NextId() => (uint)(1_000_000_000 + Environment.ProcessId % 1_000_000 * 1000 + Interlocked.Increment(ref _next) % 1000);

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
