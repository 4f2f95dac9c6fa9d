using ZcFlow.Devices;
using ZcFlow.Queues;

namespace ZcFlow.Ipc;

/// <summary>What the host's listing says of one cluster. <see cref="Problem"/> is set when it could not be read, or its owner is gone.</summary>
public sealed class ClusterInfo
{
    internal ClusterInfo(uint id, string path, int ownerPid, bool live, ulong generation, bool onHugePages, int bufferCount, int bufferSize,
        IReadOnlyList<QueueInfo> queues, IReadOnlyList<DeviceInfo> devices, string? problem)
    {
        (Id, Path, OwnerPid, Live, Generation, OnHugePages) = (id, path, ownerPid, live, generation, onHugePages);
        (BufferCount, BufferSize, Queues, Devices, Problem) = (bufferCount, bufferSize, queues, devices, problem);
    }

    public uint Id { get; }

    /// <summary>The cluster's socket.</summary>
    public string Path { get; }

    public int OwnerPid { get; }

    /// <summary>The owner answered on the socket.</summary>
    public bool Live { get; }

    /// <summary>Changes each time the cluster is created again under this id.</summary>
    public ulong Generation { get; }

    public bool OnHugePages { get; }

    public int BufferCount { get; }

    public int BufferSize { get; }

    public IReadOnlyList<QueueInfo> Queues { get; }

    public IReadOnlyList<DeviceInfo> Devices { get; }

    /// <summary>Why the cluster could not be read; null when it was.</summary>
    public string? Problem { get; }

    /// <summary>The pools and how many of their buffers were free when their thread last looked after its consumers.</summary>
    public IReadOnlyList<PoolInfo> Pools { get; internal init; } = [];

    /// <summary>Times the owner found its header or directories written by someone else and put them back (<see cref="ZcCluster.Repairs"/>).</summary>
    public ulong Repairs { get; internal init; }
}

/// <summary>
/// One queue of a listed cluster, as its owner keeps it: its direction, the process at its other
/// end (0 when none), its counters, the buffers it holds and may hold, and whether its consumer is
/// stuck (has left its queue without room for a burst and taken or released nothing for a second).
/// </summary>
public sealed class QueueInfo
{
    internal QueueInfo(int id, QueueRole role, int capacity, int consumerPid, QueueStats stats)
        => (Id, Role, Capacity, ConsumerPid, Stats) = (id, role, capacity, consumerPid, stats);

    public int Id { get; }

    public QueueRole Role { get; }

    /// <summary>Slots.</summary>
    public int Capacity { get; }

    public int ConsumerPid { get; }

    public QueueStats Stats { get; }

    public int Held { get; internal init; }

    public int Quota { get; internal init; }

    public bool Stuck { get; internal init; }

    /// <summary>The queue carries packets between two stages of its owner's graph: no consumer can attach to it.</summary>
    public bool Internal { get; internal init; }

    /// <summary>The queue's id, role, consumer and counters, for messages.</summary>
    public override string ToString() => $"queue {Id} ({Role}, {Capacity} slots, consumer {ConsumerPid}, {Stats}, holds {Held} of {Quota}{(Stuck ? ", stuck" : "")}{(Internal ? ", internal" : "")})";
}

/// <summary>One pool of a listed cluster: its buffers and how many were free.</summary>
public sealed class PoolInfo
{
    internal PoolInfo(int id, int firstBuffer, int count, int free) => (Id, FirstBuffer, Count, Free) = (id, firstBuffer, count, free);

    public int Id { get; }

    public int FirstBuffer { get; }

    public int Count { get; }

    public int Free { get; }
}

/// <summary>One device of a listed cluster, by the name it was opened with, and its counters as the owner last wrote them.</summary>
public sealed class DeviceInfo
{
    private static readonly string[] FanoutModes = ["hash", "lb", "cpu", "rollover", "rnd", "qm", "cbpf", "ebpf"];

    internal DeviceInfo(int id, string name, DeviceStats stats, long ringBytes = 0, int fanoutGroup = -1, int fanoutMode = 0)
    {
        (Id, Name, Stats, RingBytes) = (id, name, stats, ringBytes);
        if (fanoutGroup is >= 0 and <= 0xFFFF)
        {
            FanoutGroup = fanoutGroup;
            FanoutMode = (uint)fanoutMode < FanoutModes.Length ? FanoutModes[fanoutMode] : $"mode {fanoutMode}";
        }
    }

    /// <summary>Bytes of the kernel ring the device reads (an AF_PACKET ring), 0 when it reads none.</summary>
    public long RingBytes { get; }

    /// <summary>The AF_PACKET fanout group the device is a member of (PF_RING's cluster id), or null.</summary>
    public int? FanoutGroup { get; }

    /// <summary>How its fanout group shares packets out (<c>hash</c>, <c>lb</c>, <c>cpu</c>, <c>rollover</c>, <c>rnd</c>, <c>qm</c>), or null.</summary>
    public string? FanoutMode { get; }

    public int Id { get; }

    public string Name { get; }

    public DeviceStats Stats { get; }
}
