using System.Diagnostics;
using System.Globalization;
using ZcFlow.Buffers;
using ZcFlow.Memory;
using ZcFlow.Native;
using ZcFlow.Queues;

namespace ZcFlow.Ipc;

/// <summary>
/// A queue of a cluster owned by another process, attached by name the PF_RING way:
/// <c>zc:99@0</c> is queue 0 of cluster 99. An egress queue's end here is <see cref="Queue"/>, the very same
/// <see cref="QueueConsumer"/> a thread of the owner's process has: packets are read in place, released buffers go
/// back to the owner on the queue's recycle ring. An ingress queue's end is <see cref="Sender"/>.
///
/// Attaching connects to the cluster's socket; the owner hands over the cluster's memory
/// read-only (packets, header, directories: a stray write into a packet faults in this process
/// alone; an ingress queue's application may write its own spare buffers, and no others), this queue's rings read-write and the read end of its wake-up pipe, and nothing of any other queue. The connection is
/// how each side knows the other lives: when this process ends, however it ends, the owner
/// takes back what it held and the queue is free for the next consumer; when the owner ends, a
/// receive that finds the queue empty throws <see cref="ClusterGoneException"/> within a tenth
/// of a second. Disposing detaches.
/// </summary>
public sealed unsafe class AttachedQueue : IDisposable
{
    private readonly Arena _cluster;
    private readonly Arena _rings;
    private readonly OwnerWatch _watch;
    private readonly QueueEnd _end;
    private int _disposed;

    private AttachedQueue(uint clusterId, QueueEnd end, Arena cluster, Arena rings, OwnerWatch watch, int ownerPid, ulong generation)
    {
        ClusterId = clusterId;
        _end = end;
        _cluster = cluster;
        _rings = rings;
        _watch = watch;
        OwnerPid = ownerPid;
        Generation = generation;
    }

    public uint ClusterId { get; }

    /// <summary>The queue's number in its cluster.</summary>
    public int QueueId => _end.Id;

    /// <summary>Which way the queue carries packets: an egress queue is received from (<see cref="Queue"/>), an ingress queue sent into (<see cref="Sender"/>).</summary>
    public QueueRole Role => _end.Role;

    /// <summary>The consumer's end of an egress queue: receive, release, stats.</summary>
    public QueueConsumer Queue => _end as QueueConsumer ?? throw new InvalidOperationException(
        $"queue {_end.Id} of cluster {ClusterId} is an ingress queue: applications send into it (Sender), and its cluster's owner receives");

    /// <summary>The application's end of an ingress queue: take spares, fill them, send them.</summary>
    public IngressSender Sender => _end as IngressSender ?? throw new InvalidOperationException(
        $"queue {_end.Id} of cluster {ClusterId} is an egress queue: its consumer receives from it (Queue); packets go into a cluster through its ingress queues");

    /// <summary>The owner's pid, as this process's PID namespace sees it (0 when the owner is outside it).</summary>
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

    /// <summary>Attaches to <paramref name="name"/>, <c>zc:&lt;cluster&gt;@&lt;queue&gt;</c>; see <see cref="Attach(uint, int, TimeSpan?, bool)"/>.</summary>
    public static AttachedQueue Attach(string name, TimeSpan? wait = null, bool waitForOwner = false)
    {
        if (!TryParse(name, out uint cluster, out int queue))
            throw new ArgumentException($"'{name}' is not a queue name: write zc:<cluster>@<queue>, for example zc:99@0", nameof(name));
        return Attach(cluster, queue, wait, waitForOwner);
    }

    /// <summary>
    /// Attaches to queue <paramref name="queueId"/> of cluster <paramref name="clusterId"/> as its
    /// consumer. If the queue's last consumer has gone and the owner has not yet taken back what it
    /// held, waits up to <paramref name="wait"/> (default 2 s) for it. With
    /// <paramref name="waitForOwner"/>, a cluster that is not served (not yet, or no longer) is
    /// waited for too, for as long (<see cref="Timeout.InfiniteTimeSpan"/>: until it comes); without,
    /// it is an error at once.
    /// </summary>
    public static AttachedQueue Attach(uint clusterId, int queueId, TimeSpan? wait = null, bool waitForOwner = false)
    {
        TimeSpan limit = wait ?? TimeSpan.FromSeconds(2);
        var clock = Stopwatch.StartNew();
        bool TimeLeft() => limit == Timeout.InfiniteTimeSpan || clock.Elapsed < limit;
        string path = ClusterLock.SocketPathOf(clusterId);
        TimeSpan? noQueueSince = null;
        while (true)
        {
            SafeFileDescriptor? socket = ClusterSocket.Connect(path, out int errno);
            if (socket is null)
            {
                if (errno == Libc.EACCES)
                    throw new ErrnoException($"attaching to cluster {clusterId} ({path})", errno,
                        "the cluster was created owner-only: run as its owner's user, or have it created with a group you belong to (ClusterOptions.GroupId, the Balancer's group option)");
                if (waitForOwner && TimeLeft()) { Thread.Sleep(20); continue; }
                throw new InvalidOperationException($"there is no cluster {clusterId} on this host (nobody serves {path}): is its owner running?");
            }
            AttachedQueue? attached = TryAttach(socket, clusterId, queueId, out AttachReply refusal);
            if (attached is not null) return attached;
            if (refusal.Status is AttachReply.Draining or AttachReply.NotReady && TimeLeft()) { Thread.Sleep(10); continue; }
            // An owner that has just come may not have made its queues yet: while waiting for one, that is waited for
            // too, a little (an id it never makes is still an error, two seconds later).
            if (refusal.Status == AttachReply.NoQueue && waitForOwner && (noQueueSince ??= clock.Elapsed) > clock.Elapsed - TimeSpan.FromSeconds(2))
            {
                Thread.Sleep(20);
                continue;
            }
            throw refusal.Status switch
            {
                AttachReply.NoQueue => new ArgumentOutOfRangeException(nameof(queueId), queueId, refusal.Text),
                AttachReply.Draining or AttachReply.NotReady => new TimeoutException(refusal.Text),
                AttachReply.Busy => new QueueBusyException(refusal.Text),
                AttachReply.Internal => new ArgumentException(refusal.Text, nameof(queueId)),
                _ => new InvalidOperationException(refusal.Text),
            };
        }
    }

    // Asks for the queue on a connected socket (taking it); null with the owner's refusal when it says no.
    private static AttachedQueue? TryAttach(SafeFileDescriptor socket, uint clusterId, int queueId, out AttachReply reply)
    {
        var fds = new List<SafeFileDescriptor>();
        Arena? cluster = null, rings = null;
        Wakeup? wakeup = null;
        try
        {
            reply = ClusterSocket.Ask(socket, clusterId, AttachRequest.Attach, queueId, fds, 5000);
            if (reply.Status != AttachReply.Ok)
            {
                socket.Dispose();
                return null;
            }
            CheckLayout(reply, clusterId, fds.Count);
            var role = (QueueRole)reply.Role;
            bool huge = (reply.Flags & ArenaHeader.FlagHugePages) != 0;
            var pieces = new Arena.Piece[reply.PieceCount];
            for (int i = 0; i < pieces.Length; i++) pieces[i] = new Arena.Piece(reply.PieceOffset[i], reply.PieceLength[i], fds[3 + i], i == reply.WritablePiece);
            cluster = Arena.MapView(fds[0], reply.ClusterSize, reply.ClusterSize, huge, $"cluster {clusterId}", pieces);
            rings = Arena.Map(fds[1], reply.QueueSize, writable: true, hugePages: false, $"queue {queueId} of cluster {clusterId}");
            wakeup = Wakeup.Attach(fds[2]);
            fds.Clear();
            // Everything below is built from the owner's reply, checked above, never from the header in shared memory: that
            // is a copy for the listing, and whatever has been written into it must not keep a consumer out.

            int ownerPid = ClusterSocket.Credentials(socket).Pid;
            var buffers = new BufferRegion(cluster.Base + ArenaLayout.BuffersOffset, reply.BufferStride, reply.BufferCount, reply.BufferCapacity);
            var watch = new OwnerWatch(socket, clusterId, ownerPid);
            var ring = new SpscRing((RingControl*)rings.Base, reply.Capacity, wakeup);
            var recycle = new SpscRing((RingControl*)(rings.Base + ArenaLayout.RingSize(reply.Capacity)), reply.RecycleCapacity, wakeup: null);
            QueueEnd end = role == QueueRole.Ingress
                ? new IngressSender(queueId, ring, recycle, buffers, watch)
                : new QueueConsumer(queueId, ring, recycle, buffers, watch);
            return new AttachedQueue(clusterId, end, cluster, rings, watch, ownerPid, reply.Generation);
        }
        catch
        {
            foreach (SafeFileDescriptor f in fds) f.Dispose();
            wakeup?.Dispose();
            rings?.Dispose();
            cluster?.Dispose();
            socket.Dispose();
            throw;
        }
    }

    // What the owner says must describe memory this process can use safely: checked before any of it becomes an offset.
    private static void CheckLayout(in AttachReply r, uint clusterId, int fds)
    {
        string where = $"cluster {clusterId}";
        if (r.PieceCount is < 0 or > AttachReply.MaxPieces || fds != 3 + r.PieceCount)
            throw new InvalidDataException($"{where}'s owner handed over {fds} descriptors for {r.PieceCount} pieces of memory");
        if (r.WritablePiece < -1 || r.WritablePiece >= r.PieceCount || (r.WritablePiece >= 0) != (r.Role == (uint)QueueRole.Ingress))
            throw new InvalidDataException($"{where}'s owner described an ingress queue without spares of its own, or spares for an egress queue");
        if (r.BufferCapacity is < 64 or > 1 << 20 || r.BufferStride != ArenaLayout.BufferStride((int)r.BufferCapacity) || r.BufferCount is 0 or > 1 << 30)
            throw new InvalidDataException($"{where} has an impossible buffer size or count");
        if (r.ClusterSize < ArenaLayout.ClusterSize(r.BufferStride, r.BufferCount))
            throw new InvalidDataException($"{where}'s memory is too small for its buffers");
        if (r.Role > (uint)QueueRole.Ingress || r.Capacity < 2 || !System.Numerics.BitOperations.IsPow2(r.Capacity)
            || !System.Numerics.BitOperations.IsPow2(r.RecycleCapacity) || r.RecycleCapacity < r.BufferCount || r.Capacity > r.RecycleCapacity
            || r.QueueSize < ArenaLayout.QueueSize(r.Capacity, r.RecycleCapacity))
            throw new InvalidDataException($"{where} describes a queue of impossible size");
    }

    /// <summary>Detaches: the owner takes back what was not released and the queue is free for another consumer. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _watch.Dispose();
        _end.ForwardRing.DisposeWakeup();
        _rings.Dispose();
        _cluster.Dispose();
    }
}
