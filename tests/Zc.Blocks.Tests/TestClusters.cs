namespace ZcFlow.Tests;

internal static class TestClusters
{
    private static int _next;

    public static ZcCluster Create(int buffers = 1024, int bufferSize = 2048, int maxQueues = 8)
        => ZcCluster.Create((uint)(2_000_000 + Environment.ProcessId % 100_000 * 100 + Interlocked.Increment(ref _next)), new ClusterOptions
        {
            BufferCount = buffers, BufferSize = bufferSize, MaxQueues = maxQueues, UseHugePages = false, Warn = _ => { },
        });
}
