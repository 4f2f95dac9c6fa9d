namespace ZcFlow.Tests;

/// <summary>Clusters for tests: ids no other test process uses, in /dev/shm unless asked, warnings kept quiet.</summary>
public static class TestClusters
{
    private static int _next;
    private static readonly List<uint> Given = [];

    /// <summary>
    /// An id no other test can be using: a thousand ids per test process, from 1e9, so neither the test assemblies (each
    /// its own process) nor two runs side by side collide. A Balancer a test killed leaves the stats file of its id: those
    /// go when the tests end.
    /// </summary>
    public static uint NextId()
    {
        uint id = (uint)(1_000_000_000 + Environment.ProcessId % 2_000_000 * 1000 + Interlocked.Increment(ref _next) % 1000);
        lock (Given)
        {
            if (Given.Count == 0) AppDomain.CurrentDomain.ProcessExit += (_, _) => RemoveStatsFiles();
            Given.Add(id);
        }
        return id;
    }

    private static void RemoveStatsFiles()
    {
        lock (Given)
            foreach (uint id in Given)
                try { File.Delete($"/run/zcflow/stats/{id}"); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    public static ZcCluster Create(int buffers = 1024, int bufferSize = 256, int maxQueues = 8, bool hugePages = false)
        => ZcCluster.Create(NextId(), new ClusterOptions
        {
            BufferCount = buffers, BufferSize = bufferSize, MaxQueues = maxQueues, UseHugePages = hugePages, Warn = _ => { },
        });
}
