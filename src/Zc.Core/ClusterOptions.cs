namespace ZcFlow;

/// <summary>How a cluster is sized and where its memory comes from. The defaults suit a 10 GbE link with a 1500-byte MTU.</summary>
public sealed record ClusterOptions
{
    /// <summary>Bytes of packet each buffer holds (PF_RING's <c>max_pkt_len</c>); see <see cref="BufferSizeForMtu"/>.</summary>
    public int BufferSize { get; init; } = 1536;

    /// <summary>Buffers in the cluster, shared out among its pools.</summary>
    public int BufferCount { get; init; } = 32768;

    /// <summary>Queues the cluster can hold, up to <see cref="QueueLimit"/>; each costs two rings sized for every buffer, 8 bytes a buffer.</summary>
    public int MaxQueues { get; init; } = 32;

    /// <summary>The most queues any cluster can hold (a balancer's outputs included): 64.</summary>
    public const int QueueLimit = Memory.ArenaLayout.MaxQueues;

    /// <summary>
    /// True: the buffers must be on 2 MiB hugepages, or creation fails saying how to reserve them.
    /// False (the default): hugepages when the kernel's pool has enough free, else normal shared
    /// pages with a one-line warning. Hugepages come from the pool (<c>/proc/sys/vm/nr_hugepages</c>)
    /// directly: no hugetlbfs mount is needed.
    /// </summary>
    public bool RequireHugePages { get; init; }

    /// <summary>False uses normal shared pages even when hugepages are free.</summary>
    public bool UseHugePages { get; init; } = true;

    /// <summary>Lock the arena in RAM with <c>mlock</c> (unneeded on hugepages, which never swap).</summary>
    public bool LockMemory { get; init; }

    /// <summary>
    /// A group id whose members may attach: the cluster's socket is then 0660 and that group's;
    /// otherwise it is 0600, for its owner's user alone.
    /// </summary>
    public int? GroupId { get; init; }

    /// <summary>Where one-line warnings go (no hugepages, say); standard error when null.</summary>
    public Action<string>? Warn { get; init; }

    /// <summary>The buffer size for an MTU: Ethernet header, two VLAN tags and the payload, rounded up to 64 bytes.</summary>
    public static int BufferSizeForMtu(int mtu)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(mtu, 68);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(mtu, 65535);
        return (mtu + 14 + 2 * 4 + 63) / 64 * 64;
    }
}
