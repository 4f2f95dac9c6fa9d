using ZcFlow.Devices;
using ZcFlow.Queues;

namespace ZcFlow.Ipc;

/// <summary>What the host's listing says of one cluster. <see cref="Problem"/> is set when its arena could not be read.</summary>
public sealed record ClusterInfo(
    uint Id, string Path, int OwnerPid, bool Live, ulong Generation, bool OnHugePages,
    int BufferCount, int BufferSize, IReadOnlyList<QueueInfo> Queues, IReadOnlyList<DeviceInfo> Devices, string? Problem);

/// <summary>One queue of a listed cluster: its direction, the application process at its other end (0 when none) and its counters.</summary>
public sealed record QueueInfo(int Id, QueueRole Role, int Capacity, int ConsumerPid, QueueStats Stats);

/// <summary>One device of a listed cluster, by the name it was opened with, and its counters as the owner last wrote them.</summary>
public sealed record DeviceInfo(int Id, string Name, DeviceStats Stats);
