namespace ZcFlow.Tests;

internal static class TestClusters
{
    private static int _next;

    /// <summary>
    /// An id no other test can be using: this assembly's range is [2e9, 3e9) (Zc.Core.Tests has [1e9, 2e9)),
    /// a thousand ids per test process, so neither two assemblies nor two runs side by side collide.
    /// </summary>
    public static uint NextId()
    {
        uint id = (uint)(2_000_000_000 + Environment.ProcessId % 1_000_000 * 1000 + Interlocked.Increment(ref _next) % 1000);
        lock (Given)
        {
            if (Given.Count == 0) AppDomain.CurrentDomain.ProcessExit += (_, _) => RemoveStatsFiles();
            Given.Add(id);
        }
        return id;
    }

    private static readonly List<uint> Given = [];

    // A Balancer a test killed (SIGKILL, or its ChildProcess disposed while it ran) leaves its stats file: gone with the tests.
    private static void RemoveStatsFiles()
    {
        lock (Given)
            foreach (uint id in Given)
                try { File.Delete($"/run/zcflow/stats/{id}"); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    public static ZcCluster Create(int buffers = 1024, int bufferSize = 2048, int maxQueues = 8)
        => ZcCluster.Create(NextId(), new ClusterOptions
        {
            BufferCount = buffers, BufferSize = bufferSize, MaxQueues = maxQueues, UseHugePages = false, Warn = _ => { },
        });
}
