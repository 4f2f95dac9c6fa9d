using ZcFlow.Devices;
using ZcFlow.Queues;

namespace ZcFlow.Ipc;

/// <summary>What the host's listing says of one cluster. <see cref="Problem"/> is set when it could not be read, or its owner is gone.</summary>
public sealed record ClusterInfo(
    uint Id, string Path, int OwnerPid, bool Live, ulong Generation, bool OnHugePages,
    int BufferCount, int BufferSize, IReadOnlyList<QueueInfo> Queues, IReadOnlyList<DeviceInfo> Devices, string? Problem)
{
    /// <summary>The pools and how many of their buffers were free when their thread last looked after its consumers.</summary>
    public IReadOnlyList<PoolInfo> Pools { get; init; } = [];

    /// <summary>Times the owner found its header or directories written by someone else and put them back (<see cref="ZcCluster.Repairs"/>).</summary>
    public ulong Repairs { get; init; }
}

/// <summary>
/// One queue of a listed cluster, as its owner keeps it: its direction, the process at its other
/// end (0 when none), its counters, the buffers it holds and may hold, and whether its consumer is
/// stuck (has left its queue without room for a burst and taken or released nothing for a second).
/// </summary>
public sealed record QueueInfo(int Id, QueueRole Role, int Capacity, int ConsumerPid, QueueStats Stats)
{
    public int Held { get; init; }

    public int Quota { get; init; }

    public bool Stuck { get; init; }

    /// <summary>The queue carries packets between two stages of its owner's graph: no consumer can attach to it.</summary>
    public bool Internal { get; init; }
}

/// <summary>One pool of a listed cluster: its buffers and how many were free.</summary>
public sealed record PoolInfo(int Id, int FirstBuffer, int Count, int Free);

/// <summary>One device of a listed cluster, by the name it was opened with, and its counters as the owner last wrote them.</summary>
public sealed record DeviceInfo(int Id, string Name, DeviceStats Stats);
