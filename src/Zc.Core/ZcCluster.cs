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
/// A numeric id and the shared memory holding all of a cluster's buffers and queues, PF_RING
/// ZC's cluster. The process that creates it owns it: it carves pools and queues out of it,
/// and serves it on a unix socket (<c>/dev/shm/zcflow-&lt;id&gt;.sock</c>) through which other
/// processes attach to its queues and are handed just the memory they need.
///
/// The memory has no name a process could open: when the owner and every consumer are gone,
/// however they ended, so is the memory. Disposing the cluster closes the socket (attached
/// consumers are told at once) and unmaps. Stop every worker that touches the cluster before
/// disposing it. Creating and carving are not thread-safe; do them before the packets flow.
/// </summary>
public sealed unsafe class ZcCluster : IDisposable
{
    private readonly Arena _arena;
    private readonly BufferRegion _buffers;
    private readonly ClusterLock _lock;
    private readonly ClusterServer _server;
    private readonly ulong[] _holders; // which queues hold each buffer: this process's record, never shared
    private readonly uint _recycleCapacity;
    private readonly int _maxQueues;
    private QueueEnd[] _queues = [];   // the owner's ends: EgressQueue and IngressQueue, by id
    private uint _buffersAssigned, _poolCount, _deviceCount; // the owner's own record; the header's copies are for others to read
    // The header and directories as the owner keeps them, in its own memory (every write of the owner goes here), and
    // what it last copied into the cluster memory, to tell a change made by someone else from its own.
    private readonly SafeMapping _record, _published;
    private readonly Lock _publishing = new();
    private (ulong Offset, Arena Memory, IngressQueue Queue)[] _spares = [];   // the memory of each ingress queue's spares, by address
    private ulong _repairs;
    private int _disposed;

    private ZcCluster(uint id, Arena arena, ClusterLock clusterLock, uint stride, uint count, uint capacity, uint recycle, int maxQueues, ClusterOptions options)
    {
        Id = id;
        _arena = arena;
        _lock = clusterLock;
        _buffers = new BufferRegion(arena.Base + ArenaLayout.BuffersOffset, stride, count, capacity);
        _holders = new ulong[count];
        _recycleCapacity = recycle;
        _maxQueues = maxQueues;
        Generation = (ulong)Random.Shared.NextInt64() | 1;
        _record = PrivateMemory(ArenaLayout.DirectoriesSize);
        _published = PrivateMemory(ArenaLayout.DirectoriesSize);
        ref ArenaHeader h = ref Header;
        h.Magic = ArenaLayout.Magic;
        h.Version = ArenaLayout.Version;
        h.HeaderSize = ArenaLayout.HeaderSize;
        h.ClusterId = id;
        h.Generation = Generation;
        h.StartTimeUnixNs = (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
        h.TotalSize = arena.Size;
        h.BuffersOffset = ArenaLayout.BuffersOffset;
        h.BufferStride = stride;
        h.BufferCapacity = capacity;
        h.BufferCount = count;
        h.RecycleCapacity = recycle;
        h.Flags = arena.OnHugePages ? ArenaHeader.FlagHugePages : 0;
        PublishRecord();
        _server = new ClusterServer(this, clusterLock, options.GroupId);
    }

    // Zeroed memory of this process alone, which faults (rather than corrupts the heap) if written after the cluster is gone.
    private static SafeMapping PrivateMemory(int size)
    {
        nint p = Libc.Mmap(0, (nuint)size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS, -1, 0);
        if (p == Libc.MAP_FAILED) throw ErrnoException.FromLastError($"mmap of {size} bytes");
        return new SafeMapping(p, (nuint)size);
    }

    /// <summary>
    /// Copies the owner's record of the header and directories into the cluster memory. If what is there is not what it
    /// copied last (a process with write access, or one writing through <c>/proc</c>, changed it), that counts as a repair
    /// (<see cref="Repairs"/>): the listing reads the copy, and nothing else is built on it. The cluster's socket thread calls
    /// it every tenth of a second; carving calls it at once.
    /// </summary>
    internal void PublishRecord()
    {
        lock (_publishing)
        {
            if (Volatile.Read(ref _disposed) != 0) return;
            var shared = new Span<byte>(_arena.Base, ArenaLayout.DirectoriesSize);
            var published = new Span<byte>(_published.Pointer, ArenaLayout.DirectoriesSize);
            if (!shared.SequenceEqual(published)) Volatile.Write(ref Header.Repairs, ++_repairs);
            new ReadOnlySpan<byte>(_record.Pointer, ArenaLayout.DirectoriesSize).CopyTo(published);
            published.CopyTo(shared);
        }
    }

    /// <summary>Times the owner found its cluster memory's header or directories changed by someone else, and put them back.</summary>
    public ulong Repairs => Volatile.Read(ref _repairs);

    public uint Id { get; }

    /// <summary>Random per creation: what consumers compare to tell a restarted owner from the one they attached to.</summary>
    public ulong Generation { get; }

    /// <summary>Bytes of packet a buffer holds.</summary>
    public int BufferSize => (int)_buffers.Capacity;

    /// <summary>Buffers in the cluster.</summary>
    public int BufferCount => (int)_buffers.Count;

    /// <summary>Buffers not yet given to a pool.</summary>
    internal int UnassignedBuffers => (int)(_buffers.Count - _buffersAssigned);

    /// <summary>True when the memory is 2 MiB hugepages.</summary>
    public bool OnHugePages => _arena.OnHugePages;

    /// <summary>The socket other processes attach through.</summary>
    public string SocketPath => _lock.SocketPath;

    /// <summary>
    /// Gives the cluster's files (its socket and lock file) to another user, before this process takes that
    /// user's identity (a daemon dropping its privileges): that user may then remove them when the cluster goes.
    /// </summary>
    public void GiveFilesTo(uint uid, uint gid)
    {
        ThrowIfDisposed();
        foreach (string path in (string[])[SocketPath, ClusterLock.LockPathOf(Id)])
            if (Libc.Chown(path, (int)uid, (int)gid) != 0) throw ErrnoException.FromLastError($"chown {path}");
    }

    /// <summary>Bytes of the cluster memory (header, directories, buffers).</summary>
    internal ulong ArenaSize => _arena.Size;

    /// <summary>The queues created so far, by id.</summary>
    public IReadOnlyList<QueueEnd> Queues => Volatile.Read(ref _queues);

    internal Arena Memory => _arena;

    /// <summary>The memory of each ingress queue's spares (<see cref="CreatePool"/>), in the order of their addresses.</summary>
    internal (ulong Offset, Arena Memory, IngressQueue Queue)[] Spares => Volatile.Read(ref _spares);

    private ref ArenaHeader Header => ref Record<ArenaHeader>(0);

    private ref T Record<T>(ulong offset) where T : unmanaged => ref *(T*)(_record.Pointer + offset);

    /// <summary>The name of cluster <paramref name="id"/>'s socket and lock files, and the label of its memory.</summary>
    internal static string FileName(uint id) => $"zcflow-{id}";

    /// <summary>
    /// Creates cluster <paramref name="id"/>. A cluster of that id whose owner is alive is an error
    /// naming that owner's pid; what a dead owner left is replaced. Two processes creating the same
    /// id at once cannot both succeed: the id is taken by a lock the kernel drops when its holder dies,
    /// and the socket appears only once the memory is complete.
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
        uint count = (uint)options.BufferCount;
        uint recycle = BitOperations.RoundUpToPowerOf2(Math.Max(count, 2));
        ulong total = ArenaLayout.ClusterSize(stride, count);

        ClusterLock.RemoveStale();   // what owners that were killed left: a 0-byte socket and lock file each
        ClusterLock clusterLock = ClusterLock.Acquire(id);
        Arena? arena = null;
        try
        {
            arena = CreateMemory(id, total, options);
            if (options.LockMemory) arena.Lock();
            return new ZcCluster(id, arena, clusterLock, stride, count, (uint)options.BufferSize, recycle, options.MaxQueues, options);
        }
        catch
        {
            arena?.Dispose();
            clusterLock.Dispose();
            throw;
        }
    }

    private static Arena CreateMemory(uint id, ulong size, ClusterOptions options)
    {
        long pages = (long)(ArenaLayout.AlignUp(size, ArenaLayout.HugePageSize) / ArenaLayout.HugePageSize);
        if (options.RequireHugePages) return Arena.Create(FileName(id), size, hugePages: true);
        if (options.UseHugePages && HugePages.FreePages >= pages)
        {
            try
            {
                return Arena.Create(FileName(id), size, hugePages: true);
            }
            catch (ErrnoException)
            {
                // taken meanwhile by another process: fall through to normal pages, with the warning
            }
        }
        if (options.UseHugePages)
            (options.Warn ?? Console.Error.WriteLine)(
                $"zcflow: cluster {id}: fewer than {pages} free 2 MiB hugepages, using normal shared pages; to enable hugepages, {HugePages.EnableHint}");
        return Arena.Create(FileName(id), size, hugePages: false);
    }

    /// <summary>
    /// Gives <paramref name="buffers"/> of the cluster's unassigned buffers to a new pool. With <paramref name="ingress"/>,
    /// the pool also stocks those ingress queues with spares (<see cref="BufferPool.Replenish"/>): each gets
    /// <paramref name="sparesEach"/> of the pool's buffers (default: an equal share with the pool's own use) in memory of
    /// their own, whole pages of it, so that the application that attaches to that queue is given those buffers, and only
    /// those, to write. (The buffers that straddle the edges of that memory are used by nobody.)
    /// </summary>
    public BufferPool CreatePool(int buffers, IReadOnlyList<IngressQueue>? ingress = null, int? sparesEach = null)
    {
        ThrowIfDisposed();
        uint left = _buffers.Count - _buffersAssigned;
        if (buffers < 1 || (uint)buffers > left)
            throw new ArgumentOutOfRangeException(nameof(buffers), buffers, $"cluster {Id} has {left} of {_buffers.Count} buffers left to give to a pool");
        if (_poolCount >= ArenaLayout.MaxPools)
            throw new InvalidOperationException($"cluster {Id} already has the maximum of {ArenaLayout.MaxPools} pools");
        ingress ??= [];
        foreach (IngressQueue q in ingress)
        {
            if (Array.IndexOf(_queues, q) < 0) throw new ArgumentException($"queue {q.Id} is not an ingress queue of cluster {Id}", nameof(ingress));
            if (_spares.Any(s => s.Queue == q) || ingress.Count(x => x == q) > 1) throw new ArgumentException($"ingress queue {q.Id} already has its spares", nameof(ingress));
        }
        int each = sparesEach ?? buffers / (ingress.Count + 1);
        if (ingress.Count != 0 && (each < 1 || (long)each * ingress.Count > buffers))
            throw new ArgumentOutOfRangeException(nameof(sparesEach), each, $"a pool of {buffers} buffers cannot give {ingress.Count} ingress queues {each} spares each");
        // The ingress queues' spares from the end of the pool's buffers, each in whole pages; the pool's own before them.
        uint stride = (uint)ArenaLayout.BufferStride(BufferSize), first = _buffersAssigned;
        ulong page = _arena.OnHugePages ? ArenaLayout.HugePageSize : ArenaLayout.PageSize;
        ulong Address(uint index) => ArenaLayout.BuffersOffset + (ulong)index * stride;
        ulong end = Address(first + (uint)buffers) / page * page;
        var carved = new (ulong Offset, ulong Length, uint First, uint End, IngressQueue Queue)[ingress.Count];
        for (int k = ingress.Count - 1; k >= 0; k--)
        {
            // Room for `each` whole buffers, in whole pages; no further down than the pool's first whole page (a pool that is
            // all spares gives each what fits).
            ulong need = (ulong)(each + 1) * stride, floor = ArenaLayout.AlignUp(Address(first), page);
            ulong start = Math.Max(end > need ? (end - need) / page * page : 0, floor);
            uint from = (uint)((start - ArenaLayout.BuffersOffset + stride - 1) / stride), to = end > start ? (uint)((end - ArenaLayout.BuffersOffset) / stride) : 0;
            if (to <= from)
                throw new ArgumentOutOfRangeException(nameof(buffers), buffers,
                    $"a pool of {buffers} buffers of {stride} bytes has no room for {ingress.Count} ingress queues' spares of {each} buffers each in memory of their own, in pages of {page} bytes");
            carved[k] = (start, end - start, from, to, ingress[k]);   // the buffers wholly inside [start, end)
            end = start;
        }
        uint ownEnd = ingress.Count == 0 ? first + (uint)buffers : (uint)((end - ArenaLayout.BuffersOffset) / stride);
        var partitions = new BufferPool.Spares[ingress.Count];
        for (int k = 0; k < carved.Length; k++)
        {
            Arena piece = _arena.Carve($"{FileName(Id)}@{carved[k].Queue.Id}-spares", carved[k].Offset, carved[k].Length);
            _spares = [.. _spares, (carved[k].Offset, piece, carved[k].Queue)];
            partitions[k] = new BufferPool.Spares(carved[k].Queue, carved[k].First, carved[k].End);
        }
        int id = (int)_poolCount;
        ref PoolEntry e = ref Record<PoolEntry>(ArenaLayout.PoolDirectoryOffset + (ulong)id * ArenaLayout.EntrySize);
        e.FirstBuffer = _buffersAssigned;
        e.Count = (uint)buffers;
        e.Free = (uint)buffers;
        Volatile.Write(ref e.State, PoolEntry.Ready);
        var pool = new BufferPool(id, _buffers, _buffersAssigned, (uint)buffers, _holders, (PoolEntry*)Unsafe.AsPointer(ref e), ownEnd, partitions);
        _buffersAssigned += (uint)buffers;
        _poolCount++;
        Volatile.Write(ref Header.BuffersAssigned, _buffersAssigned);
        Volatile.Write(ref Header.PoolCount, _poolCount);
        PublishRecord();
        return pool;
    }

    /// <summary>
    /// Makes a relay (<see cref="BufferRelay"/>): buffers of no pool of its own, for a stage on a thread of its
    /// own that receives from <paramref name="inputs"/> (queues of this cluster, each fed by another thread of this process)
    /// and sends into queues it reclaims from (<see cref="BufferOwner.ReclaimFrom"/>). Each input's quota is raised to the
    /// cluster's buffer count: what the stages after it hold counts against it, and the pool it comes from bounds that.
    /// </summary>
    public BufferRelay CreateRelay(IReadOnlyList<EgressQueue> inputs)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Count is 0 or > 256) throw new ArgumentOutOfRangeException(nameof(inputs), inputs.Count, "a relay receives from 1 to 256 queues");
        foreach (EgressQueue q in inputs)
            if (Array.IndexOf(_queues, q) < 0) throw new ArgumentException($"queue {q.Id} is not one of cluster {Id}'s", nameof(inputs));
        // A relay's inputs are internal: refused to any process that asks to attach (one that did already makes this an error).
        foreach (EgressQueue q in inputs)
        {
            if (!q.MakeInternal())
                throw new InvalidOperationException($"queue {q.Id} of cluster {Id} has been attached to by a consumer process: a relay takes its queues before they are served");
            q.Quota = Math.Max(q.Quota, BufferCount);
        }
        return new BufferRelay(_buffers, [.. inputs.Select(q => q.Consumer)]);
    }

    /// <summary>
    /// Creates a queue to an application, of at least <paramref name="slots"/> packets (rounded up to a power of two, at
    /// most the cluster's buffer count rounded up). Its id is the next free one, from 0. Its rings are memory of their own,
    /// which only the consumer that attaches to it is given.
    /// </summary>
    public EgressQueue CreateQueue(int slots) => AddQueue(slots, QueueRole.Egress,
        (id, ring, recycle, link) => new EgressQueue(id, ring, recycle, _buffers, _holders, link));

    /// <summary>
    /// Creates a queue from an application into the cluster, of at least <paramref name="slots"/> packets, numbered with
    /// the others: the pool made with it (<see cref="CreatePool"/>) stocks it with spares, which the application fills.
    /// </summary>
    public IngressQueue CreateIngressQueue(int slots) => AddQueue(slots, QueueRole.Ingress,
        (id, ring, spares, link) => new IngressQueue(id, ring, spares, _buffers, _holders, link));

    private T AddQueue<T>(int slots, QueueRole role, Func<int, SpscRing, SpscRing, ConsumerLink, T> make) where T : QueueEnd
    {
        ThrowIfDisposed();
        if (slots < 1 || (uint)slots > _recycleCapacity)
            throw new ArgumentOutOfRangeException(nameof(slots), slots, $"a queue of cluster {Id} holds 1 to {_recycleCapacity} packets");
        QueueEnd[] queues = _queues;
        if (queues.Length >= _maxQueues)
            throw new InvalidOperationException($"cluster {Id} already has its maximum of {queues.Length} queues (ClusterOptions.MaxQueues)");
        uint capacity = (uint)QueueCapacity(slots);
        int id = queues.Length;
        Arena memory = Arena.Create($"{FileName(Id)}@{id}", ArenaLayout.QueueSize(capacity, _recycleCapacity), hugePages: false);
        ref QueueEntry e = ref Record<QueueEntry>(ArenaLayout.QueueDirectoryOffset + (ulong)id * ArenaLayout.QueueEntrySize);
        e.Capacity = capacity;
        e.Role = (uint)role;
        T queue = make(id,
            new SpscRing((RingControl*)memory.Base, capacity, Wakeup.Create()),
            new SpscRing((RingControl*)(memory.Base + ArenaLayout.RingSize(capacity)), _recycleCapacity, wakeup: null),
            new ConsumerLink(memory, (QueueEntry*)Unsafe.AsPointer(ref e)));
        queue.Publish();
        Volatile.Write(ref e.State, QueueEntry.Ready);
        Volatile.Write(ref _queues, [.. queues, queue]);
        Volatile.Write(ref Header.QueueCount, (uint)id + 1);
        PublishRecord();
        return queue;
    }

    /// <summary>The capacity a queue asked for <paramref name="slots"/> gets: a power of two, at least 2.</summary>
    internal static int QueueCapacity(int slots) => (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(slots, 2));

    /// <summary>
    /// Lists a device in the cluster under <paramref name="name"/> (cut to 56 bytes), so that the
    /// cluster listing (<see cref="ClusterDirectory.List"/>) shows its counters once
    /// <see cref="PublishDeviceStats"/> has written them, with the kernel ring it reads (<paramref name="ringBytes"/>) and
    /// the AF_PACKET fanout group it is in (<paramref name="fanoutGroup"/>, -1 for none; <paramref name="fanoutMode"/> the
    /// group's <c>PACKET_FANOUT_*</c> type). Returns the device's entry id.
    /// </summary>
    internal int AddDevice(string name, long ringBytes = 0, int fanoutGroup = -1, int fanoutMode = 0)
    {
        ThrowIfDisposed();
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (_deviceCount >= ArenaLayout.MaxDevices)
            throw new InvalidOperationException($"cluster {Id} already lists the maximum of {ArenaLayout.MaxDevices} devices");
        int id = (int)_deviceCount;
        ref DeviceEntry e = ref Device(id);
        int length = System.Text.Encoding.UTF8.GetBytes(name.AsSpan(0, Math.Min(name.Length, DeviceEntry.MaxName)), new Span<byte>(Unsafe.AsPointer(ref e.Name[0]), DeviceEntry.MaxName));
        e.NameLength = (uint)length;
        (e.RingBytes, e.FanoutGroup, e.FanoutMode) = ((ulong)Math.Max(ringBytes, 0), fanoutGroup, fanoutMode);
        Volatile.Write(ref e.State, DeviceEntry.Ready);
        _deviceCount++;
        Volatile.Write(ref Header.DeviceCount, _deviceCount);
        PublishRecord();
        return id;
    }

    /// <summary>Writes device <paramref name="device"/>'s counters where the listing reads them (from any one thread at a time).</summary>
    internal void PublishDeviceStats(int device, DeviceStats stats)
    {
        ThrowIfDisposed();
        if ((uint)device >= _deviceCount) throw new ArgumentOutOfRangeException(nameof(device), device, $"cluster {Id} lists {_deviceCount} devices");
        ref DeviceEntry e = ref Device(device);
        Volatile.Write(ref e.Received, stats.Received);
        Volatile.Write(ref e.Bytes, stats.Bytes);
        Volatile.Write(ref e.DroppedNoBuffer, stats.DroppedNoBuffer);
        Volatile.Write(ref e.DroppedKernel, stats.DroppedKernel);
        Volatile.Write(ref e.Sent, stats.Sent);
        Volatile.Write(ref e.SendFailed, stats.SendFailed);
    }

    private ref DeviceEntry Device(int id) => ref Record<DeviceEntry>(ArenaLayout.DeviceDirectoryOffset + (ulong)id * ArenaLayout.DeviceEntrySize);

    private void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0) ThrowHelper.Disposed($"cluster {Id}");
    }

    /// <summary>
    /// Tells attached consumers the cluster is closed, closes its socket, unmaps the memory and
    /// frees the id. The memory itself goes when the last consumer lets go of it. Idempotent.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _server.Dispose();
        foreach (QueueEnd q in _queues)
        {
            q.Link!.Memory.Dispose();
            q.ForwardRing.DisposeWakeup();
        }
        foreach ((_, Arena memory, _) in _spares) memory.Dispose();
        _arena.Dispose();
        _lock.Dispose();
        lock (_publishing)
        {
            _record.Dispose();
            _published.Dispose();
        }
    }
}
