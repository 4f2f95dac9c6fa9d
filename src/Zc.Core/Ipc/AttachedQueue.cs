using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Memory;
using ZcFlow.Queues;

namespace ZcFlow.Ipc;

/// <summary>
/// A queue of a cluster owned by another process, attached by name the PF_RING way:
/// <c>zc:99@0</c> is queue 0 of cluster 99. <see cref="Queue"/> is the very same
/// <see cref="ZcQueue"/> the owner's threads use, over the same shared arena: packets are read
/// in place, released buffers go back to the owner on the queue's recycle ring.
///
/// One consumer process per queue. When the owner goes away, a receive that finds the queue
/// empty throws <see cref="ClusterGoneException"/> within a tenth of a second. Disposing
/// detaches: the owner takes back what this consumer still held and the queue is free for
/// the next one.
/// </summary>
public sealed unsafe class AttachedQueue : IDisposable
{
    private readonly Arena _arena;
    private readonly QueueEntry* _entry;
    private readonly int _pid = Environment.ProcessId;
    private int _disposed;

    private AttachedQueue(Arena arena, uint clusterId, ZcQueue queue, QueueEntry* entry, int ownerPid, ulong generation)
    {
        _arena = arena;
        ClusterId = clusterId;
        Queue = queue;
        _entry = entry;
        OwnerPid = ownerPid;
        Generation = generation;
    }

    public uint ClusterId { get; }

    /// <summary>The queue: receive, release, stats.</summary>
    public ZcQueue Queue { get; }

    public int OwnerPid { get; }

    public ulong Generation { get; }

    /// <summary>Parses <c>zc:&lt;cluster&gt;@&lt;queue&gt;</c>.</summary>
    public static bool TryParse(string name, out uint clusterId, out int queueId)
    {
        clusterId = 0;
        queueId = 0;
        if (!name.StartsWith("zc:", StringComparison.Ordinal)) return false;
        int at = name.IndexOf('@');
        return at > 3
               && uint.TryParse(name.AsSpan(3, at - 3), NumberStyles.None, CultureInfo.InvariantCulture, out clusterId)
               && int.TryParse(name.AsSpan(at + 1), NumberStyles.None, CultureInfo.InvariantCulture, out queueId);
    }

    /// <summary>Attaches to <paramref name="name"/>, <c>zc:&lt;cluster&gt;@&lt;queue&gt;</c>; see <see cref="Attach(uint, int, TimeSpan?)"/>.</summary>
    public static AttachedQueue Attach(string name, TimeSpan? wait = null)
    {
        if (!TryParse(name, out uint cluster, out int queue))
            throw new ArgumentException($"'{name}' is not a queue name: write zc:<cluster>@<queue>, for example zc:99@0", nameof(name));
        return Attach(cluster, queue, wait);
    }

    /// <summary>
    /// Maps cluster <paramref name="clusterId"/>, checks its layout and claims queue
    /// <paramref name="queueId"/> as its consumer. If the queue's last consumer left or died and
    /// the owner has not yet taken back what it held, waits up to <paramref name="wait"/>
    /// (default 2 s) for it.
    /// </summary>
    public static AttachedQueue Attach(uint clusterId, int queueId, TimeSpan? wait = null)
    {
        string path = ClusterDirectory.Find(clusterId)
            ?? throw new InvalidOperationException($"there is no cluster {clusterId} on this host (looked in {string.Join(", ", ClusterDirectory.CandidatePaths(clusterId))}): is its owner running?");
        Arena arena = Arena.Open(path);
        try
        {
            ref ArenaHeader h = ref ClusterDirectory.Check(arena, clusterId);
            int owner = h.OwnerPid;
            if (h.State != ArenaHeader.Running || !Processes.IsAlive(owner))
                throw new ClusterGoneException(clusterId, false, $"cluster {clusterId} is not served: its owner (pid {owner}) is gone");
            ref QueueEntry e = ref ClusterDirectory.CheckQueue(arena, clusterId, queueId);
            QueueEntry* entry = (QueueEntry*)Unsafe.AsPointer(ref e);
            Claim(entry, clusterId, queueId, owner, wait ?? TimeSpan.FromSeconds(2));

            var buffers = new BufferRegion(arena.Base + h.BuffersOffset, h.BufferStride, h.BufferCount, h.BufferCapacity);
            var queue = new ZcQueue(queueId, (QueueRole)e.Role,
                new SpscRing((RingControl*)(arena.Base + e.ForwardOffset), e.Capacity, wakeable: true),
                new SpscRing((RingControl*)(arena.Base + e.RecycleOffset), e.RecycleCapacity, wakeable: false),
                buffers, entry, holders: null, new OwnerWatch((ArenaHeader*)arena.Base, path, clusterId));
            return new AttachedQueue(arena, clusterId, queue, entry, owner, h.Generation);
        }
        catch
        {
            arena.Dispose();
            throw;
        }
    }

    private static void Claim(QueueEntry* entry, uint clusterId, int queueId, int owner, TimeSpan wait)
    {
        int me = Environment.ProcessId;
        var clock = Stopwatch.StartNew();
        while (true)
        {
            int holder = Interlocked.CompareExchange(ref entry->ConsumerPid, me, 0);
            if (holder == 0) return;
            if (holder > 0 && Processes.IsAlive(holder))
                throw new InvalidOperationException($"queue {queueId} of cluster {clusterId} already has a consumer, process {holder}");
            if (clock.Elapsed >= wait)
                throw new TimeoutException(
                    $"queue {queueId} of cluster {clusterId} still holds what its last consumer (pid {Math.Abs(holder)}) left; its owner (pid {owner}) takes that back when it next checks its consumers");
            Thread.Sleep(10);
        }
    }

    /// <summary>Detaches: the owner takes back what was not released and the queue is free for another consumer. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Interlocked.CompareExchange(ref _entry->ConsumerPid, -_pid, _pid);
        _arena.Dispose();
    }
}
