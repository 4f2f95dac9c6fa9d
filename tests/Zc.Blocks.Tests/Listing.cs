using System.Diagnostics;
using ZcFlow.Ipc;

namespace ZcFlow.Tests;

/// <summary>Waiting, through the host's cluster listing, for what a Balancer process does: with a deadline, and the listing in the failure.</summary>
internal static class Listing
{
    public static ClusterInfo WaitFor(uint cluster, Func<ClusterInfo, bool> condition, string what, int seconds = 120)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            ClusterInfo? info = ClusterDirectory.List().SingleOrDefault(c => c.Id == cluster);
            if (info is { Problem: null } && condition(info)) return info;
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(seconds), $"timed out waiting for {what}; the listing says {info}: " +
                $"queues {string.Join("; ", info?.Queues ?? [])}, pools {string.Join("; ", info?.Pools ?? [])}, devices {string.Join("; ", info?.Devices ?? [])}");
            Thread.Sleep(50);
        }
    }

    /// <summary>The cluster once the Balancer has listed its input devices, its last step before it runs.</summary>
    public static ClusterInfo WaitForRunning(uint cluster, ChildProcess balancer, int seconds = 30)
        => WaitFor(cluster, i => i.Devices.Count > 0, $"cluster {cluster} to run (the Balancer printed: {balancer.Output})", seconds);
}
