using System.Numerics;
using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Ipc;
using ZcFlow.Memory;
using ZcFlow.Native;
using ZcFlow.Queues;

namespace ZcFlow;

/// <summary>
/// A numeric id and one shared arena holding all of a cluster's buffers and queues,
/// PF_RING ZC's cluster. The process that creates it owns it: it carves pools and queues
/// out of the arena, and disposing the cluster unmaps the arena and removes its file.
/// Stop every worker that touches the cluster before disposing it.
///
/// Creating and carving are not thread-safe; do them before the packets flow.
/// </summary>
public sealed unsafe class ZcCluster : IDisposable
{
    private readonly Arena _arena;
    private readonly BufferRegion _buffers;
    private readonly List<ZcQueue> _queues = [];
    private readonly ulong[] _holders; // which queues hold each buffer: this process's record, never shared
    private int _disposed;

    private ZcCluster(uint id, Arena arena)
    {
        Id = id;
        _arena = arena;
        ref ArenaHeader h = ref Header;
        _buffers = new BufferRegion(arena.Base + h.BuffersOffset, h.BufferStride, h.BufferCount, h.BufferCapacity);
        _holders = new ulong[h.BufferCount];
    }

    public uint Id { get; }

    /// <summary>Bytes of packet a buffer holds.</summary>
    public int BufferSize => (int)_buffers.Capacity;

    /// <summary>Buffers in the cluster.</summary>
    public int BufferCount => (int)_buffers.Count;

    /// <summary>Buffers not yet given to a pool.</summary>
    public int UnassignedBuffers => (int)(Header.BufferCount - Header.BuffersAssigned);

    /// <summary>True when the arena is on 2 MiB hugepages.</summary>
    public bool OnHugePages => _arena.OnHugePages;

    /// <summary>The arena's file, which other processes map to attach.</summary>
    public string ArenaPath => _arena.Path;

    /// <summary>Bytes the arena maps.</summary>
    public ulong ArenaSize => _arena.Size;

    /// <summary>The queues created so far, by id.</summary>
    public IReadOnlyList<ZcQueue> Queues => _queues;

    private ref ArenaHeader Header => ref _arena.At<ArenaHeader>(0);

    /// <summary>The arena file's name for a cluster id, in whichever directory holds it.</summary>
    public static string FileName(uint id) => $"zcflow-{id}";

    /// <summary>
    /// Creates cluster <paramref name="id"/>. A cluster of that id whose owner is still alive is an
    /// error naming that owner's pid; one left behind by a dead owner is replaced.
    /// </summary>
    public static ZcCluster Create(uint id, ClusterOptions? options = null)
    {
        options ??= new ClusterOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BufferSize, 64, nameof(options.BufferSize));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.BufferSize, 1 << 20, nameof(options.BufferSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BufferCount, 1, nameof(options.BufferCount));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.BufferCount, 1 << 30, nameof(options.BufferCount));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxQueues, 1, nameof(options.MaxQueues));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.MaxQueues, ArenaLayout.MaxQueues, nameof(options.MaxQueues));

        uint stride = (uint)ArenaLayout.BufferStride(options.BufferSize);
        uint recycle = BitOperations.RoundUpToPowerOf2((uint)Math.Max(options.BufferCount, 2));
        ulong buffersBytes = ArenaLayout.AlignUp((ulong)stride * (ulong)options.BufferCount, ArenaLayout.PageSize);
        ulong queueArea = (ulong)options.MaxQueues * 2 * ArenaLayout.RingSize(recycle);
        ulong total = ArenaLayout.BuffersOffset + buffersBytes + queueArea;

        ClusterDirectory.RemoveStale(id);
        Arena arena = OpenArena(id, total, options);
        try
        {
            if (options.LockMemory) arena.Lock();
            ref ArenaHeader h = ref arena.At<ArenaHeader>(0);
            h.Version = ArenaLayout.Version;
            h.HeaderSize = ArenaLayout.HeaderSize;
            h.ClusterId = id;
            h.OwnerPid = Environment.ProcessId;
            h.Generation = (ulong)Random.Shared.NextInt64() | 1;
            h.StartTimeUnixNs = (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
            h.TotalSize = arena.Size;
            h.BuffersOffset = ArenaLayout.BuffersOffset;
            h.BufferStride = stride;
            h.BufferCapacity = (uint)options.BufferSize;
            h.BufferCount = (uint)options.BufferCount;
            h.QueueAreaOffset = ArenaLayout.BuffersOffset + buffersBytes;
            h.QueueAreaSize = queueArea;
            h.RecycleCapacity = recycle;
            h.Flags = arena.OnHugePages ? ArenaHeader.FlagHugePages : 0;
            h.State = ArenaHeader.Running;
            // The magic goes last: an attacher that sees it sees a complete header.
            Volatile.Write(ref h.Magic, ArenaLayout.Magic);
            return new ZcCluster(id, arena);
        }
        catch
        {
            arena.Dispose();
            throw;
        }
    }

    private static Arena OpenArena(uint id, ulong size, ClusterOptions options)
    {
        uint mode = options.GroupId is null ? 0x180u /* 0600 */ : 0x1B0u /* 0660 */;
        int group = options.GroupId ?? -1;
        long pages = (long)(ArenaLayout.AlignUp(size, ArenaLayout.HugePageSize) / ArenaLayout.HugePageSize);
        if (options.HugePagesMount is { } mount)
        {
            if (!HugePages.Mounts().Contains(mount.TrimEnd('/')))
                throw new InvalidOperationException($"{mount} is not a hugetlbfs mount with 2 MiB pages: {HugePages.EnableHint}");
            return Arena.CreateNew(Path.Combine(mount, FileName(id)), size, hugePages: true, mode, group);
        }
        if (options.UseHugePages && HugePages.FindMountWithFreePages(pages) is { } found)
            return Arena.CreateNew(Path.Combine(found, FileName(id)), size, hugePages: true, mode, group);
        if (options.UseHugePages)
            (options.Warn ?? Console.Error.WriteLine)(
                $"zcflow: cluster {id}: no hugetlbfs mount with {pages} free 2 MiB pages, using {Arena.ShmDirectory} with normal pages; to enable hugepages, {HugePages.EnableHint}");
        return Arena.CreateNew(Path.Combine(Arena.ShmDirectory, FileName(id)), size, hugePages: false, mode, group);
    }

    /// <summary>Gives <paramref name="buffers"/> of the cluster's unassigned buffers to a new pool.</summary>
    public BufferPool CreatePool(int buffers)
    {
        ThrowIfDisposed();
        ref ArenaHeader h = ref Header;
        if (buffers < 1 || (uint)buffers > h.BufferCount - h.BuffersAssigned)
            throw new ArgumentOutOfRangeException(nameof(buffers), buffers,
                $"cluster {Id} has {h.BufferCount - h.BuffersAssigned} of {h.BufferCount} buffers left to give to a pool");
        if (h.PoolCount >= ArenaLayout.MaxPools)
            throw new InvalidOperationException($"cluster {Id} already has the maximum of {ArenaLayout.MaxPools} pools");
        int id = (int)h.PoolCount;
        ref PoolEntry e = ref _arena.At<PoolEntry>(ArenaLayout.PoolDirectoryOffset + (ulong)id * ArenaLayout.EntrySize);
        e.FirstBuffer = h.BuffersAssigned;
        e.Count = (uint)buffers;
        Volatile.Write(ref e.State, PoolEntry.Ready);
        var pool = new BufferPool(id, _buffers, h.BuffersAssigned, (uint)buffers, _holders);
        h.BuffersAssigned += (uint)buffers;
        Volatile.Write(ref h.PoolCount, h.PoolCount + 1);
        return pool;
    }

    /// <summary>
    /// Creates a queue of at least <paramref name="slots"/> packets (rounded up to a power of two,
    /// at most the cluster's buffer count rounded up). Its id is the next free one, from 0.
    /// An <see cref="QueueRole.Ingress"/> queue carries packets from an application into the cluster.
    /// </summary>
    public ZcQueue CreateQueue(int slots, QueueRole role = QueueRole.Egress)
    {
        ThrowIfDisposed();
        ref ArenaHeader h = ref Header;
        if (slots < 1 || (uint)slots > h.RecycleCapacity)
            throw new ArgumentOutOfRangeException(nameof(slots), slots, $"a queue of cluster {Id} holds 1 to {h.RecycleCapacity} packets");
        if (_queues.Count >= (int)((h.QueueAreaSize) / (2 * ArenaLayout.RingSize(h.RecycleCapacity))))
            throw new InvalidOperationException($"cluster {Id} already has its maximum of {_queues.Count} queues (ClusterOptions.MaxQueues)");
        uint capacity = BitOperations.RoundUpToPowerOf2((uint)Math.Max(slots, 2));
        int id = _queues.Count;
        ulong forward = h.QueueAreaOffset + h.QueueAreaUsed;
        ulong recycle = forward + ArenaLayout.RingSize(capacity);
        h.QueueAreaUsed += ArenaLayout.RingSize(capacity) + ArenaLayout.RingSize(h.RecycleCapacity);

        ref QueueEntry e = ref _arena.At<QueueEntry>(ArenaLayout.QueueDirectoryOffset + (ulong)id * ArenaLayout.EntrySize);
        e.Capacity = capacity;
        e.Role = (uint)role;
        e.RecycleCapacity = h.RecycleCapacity;
        e.ForwardOffset = forward;
        e.RecycleOffset = recycle;
        Volatile.Write(ref e.State, QueueEntry.Ready);
        Volatile.Write(ref h.QueueCount, (uint)id + 1);

        var queue = new ZcQueue(id, role,
            new SpscRing((RingControl*)(_arena.Base + forward), capacity, wakeable: true),
            new SpscRing((RingControl*)(_arena.Base + recycle), h.RecycleCapacity, wakeable: false),
            _buffers, (QueueEntry*)Unsafe.AsPointer(ref e), _holders, owner: null);
        _queues.Add(queue);
        return queue;
    }

    /// <summary>
    /// Lists a device in the arena under <paramref name="name"/> (cut to 56 bytes), so that the
    /// cluster listing (<see cref="ClusterDirectory.List"/>) shows its counters once
    /// <see cref="PublishDeviceStats"/> has written them. Returns the device's entry id.
    /// </summary>
    public int AddDevice(string name)
    {
        ThrowIfDisposed();
        ArgumentException.ThrowIfNullOrEmpty(name);
        ref ArenaHeader h = ref Header;
        if (h.DeviceCount >= ArenaLayout.MaxDevices)
            throw new InvalidOperationException($"cluster {Id} already lists the maximum of {ArenaLayout.MaxDevices} devices");
        int id = (int)h.DeviceCount;
        ref DeviceEntry e = ref Device(id);
        int length = System.Text.Encoding.UTF8.GetBytes(name.AsSpan(0, Math.Min(name.Length, DeviceEntry.MaxName)), new Span<byte>(Unsafe.AsPointer(ref e.Name[0]), DeviceEntry.MaxName));
        e.NameLength = (uint)length;
        Volatile.Write(ref e.State, DeviceEntry.Ready);
        Volatile.Write(ref h.DeviceCount, (uint)id + 1);
        return id;
    }

    /// <summary>Writes device <paramref name="device"/>'s counters where the listing reads them (from any one thread at a time).</summary>
    public void PublishDeviceStats(int device, DeviceStats stats)
    {
        ThrowIfDisposed();
        if ((uint)device >= Header.DeviceCount) throw new ArgumentOutOfRangeException(nameof(device), device, $"cluster {Id} lists {Header.DeviceCount} devices");
        ref DeviceEntry e = ref Device(device);
        Volatile.Write(ref e.Received, stats.Received);
        Volatile.Write(ref e.Bytes, stats.Bytes);
        Volatile.Write(ref e.DroppedNoBuffer, stats.DroppedNoBuffer);
        Volatile.Write(ref e.DroppedKernel, stats.DroppedKernel);
        Volatile.Write(ref e.Sent, stats.Sent);
        Volatile.Write(ref e.SendFailed, stats.SendFailed);
    }

    private ref DeviceEntry Device(int id) => ref _arena.At<DeviceEntry>(ArenaLayout.DeviceDirectoryOffset + (ulong)id * ArenaLayout.DeviceEntrySize);

    private void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0) ThrowHelper.Disposed($"cluster {Id}");
    }

    /// <summary>Marks the cluster closed for attached consumers, unmaps the arena and removes its file. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Volatile.Write(ref Header.State, ArenaHeader.Closed);
        _arena.Dispose();
    }
}
