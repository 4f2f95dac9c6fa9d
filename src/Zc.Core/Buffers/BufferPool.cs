using System.Diagnostics;
using System.Runtime.CompilerServices;
using ZcFlow.Memory;
using ZcFlow.Queues;

namespace ZcFlow.Buffers;

/// <summary>
/// A fixed set of a cluster's buffers, handed out and taken back by one owning thread,
/// PF_RING ZC's buffer pool. Not thread-safe by design: buffers that consumers (threads or
/// processes) are done with come back through the recycle rings of the queues named with
/// <see cref="ReclaimFrom"/>, which the pool drains when it runs dry. So no free list is
/// ever shared and no lock is ever taken. The thread that owns the pool is the one that
/// sends its buffers into queues.
///
/// The pool keeps, in its own process's memory, which queues hold each of its buffers. A
/// buffer comes back from a queue only if that queue holds it, and is free again when no
/// queue does: an index that is forged, out of range or returned twice is counted in
/// <see cref="Errors"/> and never used, whatever a consumer writes into shared memory.
///
/// A relay (<see cref="ZcCluster.CreateRelay"/>) is a pool with no buffers of its own, for a stage
/// that receives from queues of this process (<see cref="ReceiveFrom"/>) and sends into others: it
/// holds what it receives as a pool holds what it hands out, takes back what its own queues'
/// consumers release with the same checks, and gives each buffer back to the queue it came from
/// once none of its queues holds it. So stages chain across threads, and every queue's producer
/// looks after its consumers, gone ones included, with no buffer ever owned by two threads.
/// </summary>
public sealed unsafe class BufferPool
{
    private readonly BufferRegion _buffers;
    private readonly uint _first;
    private readonly uint[] _free;
    private readonly bool[] _out;      // handed out and not yet back, by local index
    private readonly ulong[] _holders; // queues holding each buffer, by cluster index: the cluster's record, or a relay's own
    private readonly PoolEntry* _entry;  // the directory's view of the pool, for the listing
    private readonly QueueConsumer[]? _inputs; // a relay's: the queues it receives from, to which each buffer goes back
    private readonly byte[]? _origin;    // a relay's with several inputs: which of them each buffer came from, by cluster index
    private readonly uint _ownEnd;       // the pool's own buffers are [_first, _ownEnd); ingress queues' spares are after them
    private readonly Spares[] _spares;
    private EgressQueue[] _returns = [];    // the queues whose consumers' releases come back here
    private IngressQueue[] _stocked = [];   // the ingress queues it stocks with spares
    private int _top;
    private ulong _errors;

    /// <summary>The spares of one ingress queue: buffers [First, End) of the pool, in memory of their own, and those of them free.</summary>
    internal sealed class Spares(IngressQueue queue, uint first, uint end)
    {
        public IngressQueue Queue { get; } = queue;
        public uint First { get; } = first;
        public uint End { get; } = end;
        public readonly uint[] Free = FreeList(first, end);
        public int Top = (int)(end - first);
    }

    // Buffers [first, end) as a free list with the lowest index on top, so that they are handed out in address order.
    private static uint[] FreeList(uint first, uint end)
    {
        var free = new uint[end - first];
        for (uint i = 0; i < free.Length; i++) free[i] = end - 1 - i;
        return free;
    }

    internal BufferPool(int id, BufferRegion buffers, uint first, uint count, ulong[] holders, PoolEntry* entry = null, uint? ownEnd = null, Spares[]? spares = null)
    {
        _entry = entry;
        Id = id;
        _buffers = buffers;
        _first = first;
        _holders = holders;
        _ownEnd = ownEnd ?? first + count;
        _spares = spares ?? [];
        _free = FreeList(first, _ownEnd);
        _out = new bool[count];
        _top = _free.Length;
    }

    // A relay: no free buffers, a record of every cluster buffer it may hold, and a record of its own of which of its queues
    // hold each. Its own: the thread a buffer came from keeps writing its own queues' bits meanwhile (a fan-out may have
    // sent the buffer to a consumer's queue too), and two threads must never write one word.
    internal BufferPool(BufferRegion buffers, QueueConsumer[] inputs)
    {
        Id = -1;
        _spares = [];
        _buffers = buffers;
        _holders = new ulong[buffers.Count];
        _free = [];
        _out = new bool[buffers.Count];
        _inputs = inputs;
        if (inputs.Length > 1) _origin = new byte[buffers.Count];
    }

    /// <summary>True for a relay (<see cref="ZcCluster.CreateRelay"/>), which has no buffers of its own.</summary>
    public bool IsRelay => _inputs is not null;

    /// <summary>The pool's number in its cluster's directory; -1 for a relay, which is not listed.</summary>
    public int Id { get; }

    /// <summary>
    /// The cluster's buffers as one range of memory, for a device that writes packets into
    /// buffers itself (AF_XDP registers it as its UMEM): it starts a page before the first buffer,
    /// page aligned, and ends after the last. <see cref="DataOffset"/> and <see cref="TryAtDataOffset"/>
    /// translate between this pool's packets and offsets in it.
    /// </summary>
    public unsafe (nint Start, ulong Length) DeviceRegion => ((nint)_buffers.DeviceRegionStart, _buffers.DeviceRegionLength);

    /// <summary>
    /// The lowest buffer index of this pool: the buffers it hands out are <c>FirstBuffer</c> on, those of its ingress queues'
    /// spares (<see cref="ZcCluster.CreatePool"/>) after them.
    /// </summary>
    public uint FirstBuffer => _first;

    /// <summary>Offset in <see cref="DeviceRegion"/> of the packet's data.</summary>
    public ulong DataOffset(in PacketHandle packet) => _buffers.DataOffset(packet.Index);

    /// <summary>The buffer of this pool whose data starts at <paramref name="offset"/> in <see cref="DeviceRegion"/>; false for any other offset.</summary>
    public bool TryAtDataOffset(ulong offset, out PacketHandle packet)
    {
        if (_buffers.TryIndexAt(offset, out uint index)) return TryAt(index, out packet);
        packet = default;
        return false;
    }

    /// <summary>
    /// The buffer with index <paramref name="index"/> (<see cref="PacketHandle.Index"/>) if it is one this pool hands out;
    /// false for any other, its ingress queues' spares included (a device never has those).
    /// </summary>
    public bool TryAt(uint index, out PacketHandle packet)
    {
        if (index - _first < (uint)_free.Length)
        {
            packet = _buffers.At(index);
            return true;
        }
        packet = default;
        return false;
    }

    /// <summary>Bytes of packet each buffer holds.</summary>
    public int BufferCapacity => (int)_buffers.Capacity;

    /// <summary>Buffers in the pool, free or not: its own and its ingress queues' spares.</summary>
    public int Capacity => _free.Length + _spares.Sum(s => s.Free.Length);

    /// <summary>Buffers free without draining a recycle ring: its own, ready to hand out, and spares not yet stocked.</summary>
    public int Available => _top + _spares.Sum(s => s.Top);

    /// <summary>Returned indices that were not the pool's to take back (owner thread).</summary>
    public ulong Errors => _errors;

    /// <summary>
    /// Makes the pool take back the buffers that <paramref name="queue"/>'s consumer releases.
    /// A queue returns to one pool; call it on the owning thread before packets flow.
    /// </summary>
    public void ReclaimFrom(EgressQueue queue)
    {
        ArgumentNullException.ThrowIfNull(queue);
        if (Array.IndexOf(_returns, queue) < 0) _returns = [.. _returns, queue];
        if (_inputs is not null)
        {
            if (Array.IndexOf(_inputs, queue.Consumer) >= 0) throw new ArgumentException($"queue {queue.Id} is one this relay receives from: it cannot also send into it", nameof(queue));
            queue.RecordHoldersIn(_holders);
        }
        queue.ReturnsTo = this;
    }

    /// <summary>Takes a buffer, length 0. False when none is free even after reclaiming.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(out PacketHandle packet)
    {
        if (_top == 0 && Reclaim() == 0)
        {
            packet = default;
            return false;
        }
        packet = Take(_free[--_top]);
        return true;
    }

    /// <summary>Fills <paramref name="packets"/> with as many free buffers as there are, up to its length; returns how many.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int GetBurst(Span<PacketHandle> packets)
    {
        if (_top < packets.Length) Reclaim();
        int n = Math.Min(_top, packets.Length);
        for (int i = 0; i < n; i++) packets[i] = Take(_free[--_top]);
        return n;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private PacketHandle Take(uint index)
    {
        _out[index - _first] = true;
        PacketHandle packet = _buffers.At(index);
        packet.Length = 0;
        return packet;
    }

    /// <summary>Gives back, on the owning thread, a buffer it holds and has not sent (a packet dropped, say).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Release(in PacketHandle packet)
    {
        uint index = packet.Index, local = index - _first;
        if (local >= (uint)_out.Length) ThrowHelper.ForeignBuffer(index);
        if (!_out[local] || _holders[index] != 0) ThrowHelper.NotOwned(index);
        Free(index, local);
        if (_inputs is not null) FlushInputs();
    }

    /// <summary>Gives back a burst of buffers on the owning thread.</summary>
    public void ReleaseBurst(ReadOnlySpan<PacketHandle> packets)
    {
        foreach (ref readonly PacketHandle p in packets) Release(p);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Free(uint index, uint local)
    {
        _out[local] = false;
        if (_inputs is not null) _inputs[_origin is null ? 0 : _origin[index]].ReleaseUpstream(index);
        else if (index < _ownEnd) _free[_top++] = index;
        else FreeSpare(index);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FreeSpare(uint index)
    {
        Spares[] spares = _spares;
        for (int i = 0; i < spares.Length; i++)
        {
            Spares s = spares[i];
            if (index - s.First < s.End - s.First)
            {
                s.Free[s.Top++] = index;
                return;
            }
        }
    }

    private void FlushInputs()
    {
        foreach (QueueConsumer input in _inputs!) input.FlushReleases();
    }

    /// <summary>
    /// A relay's: receives up to <c>packets.Length</c> packets from its input <paramref name="input"/> (a queue of
    /// this process, named when the relay was made) and holds them, as a pool holds the buffers it hands out:
    /// send them on, or <see cref="Release"/> them, and each goes back to that queue once none of the relay's queues holds it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int ReceiveFrom(int input, Span<PacketHandle> packets)
    {
        QueueConsumer[] inputs = _inputs ?? throw new InvalidOperationException("a pool with buffers of its own hands them out (TryGet, GetBurst): ReceiveFrom is a relay's");
        int n = inputs[input].ReceiveBurst(packets), got = 0;
        byte[]? origin = _origin;
        bool[] held = _out;
        for (int i = 0; i < n; i++)
        {
            uint index = packets[i].Index;
            if (held[index])
            {
                // Received while this relay still holds it: a producer sent it twice. Counted, never held twice.
                _errors++;
                continue;
            }
            held[index] = true;
            if (origin is not null) origin[index] = (byte)input;
            packets[got++] = packets[i];
        }
        return got;
    }

    /// <summary>Drains every recycle ring into the free list; returns how many buffers came back.</summary>
    public int Reclaim()
    {
        int before = _top;
        foreach (EgressQueue queue in _returns) Drain(queue);
        return _top - before;
    }

    internal void Drain(EgressQueue queue)
    {
        SpscRing ring = queue.RecycleRing;
        ulong bit = queue.Bit;
        int n = ring.Available(int.MaxValue), returned = 0;
        for (int i = 0; i < n; i++)
        {
            uint index = ring.Get(i);
            uint local = index - _first;
            // Ours, and held by this queue: anything else is forged or returned twice.
            if (local < (uint)_out.Length && (_holders[index] & bit) != 0)
            {
                returned++;
                if ((_holders[index] &= ~bit) == 0) Free(index, local);
            }
            else
            {
                _errors++;
                ring.CountConsumerError();
            }
        }
        if (n != 0)
        {
            ring.Consume(n);
            queue.BuffersReturned(returned);
            if (_inputs is not null) FlushInputs();
        }
    }

    /// <summary>
    /// Stocks the ingress queue <paramref name="ingress"/> with spare buffers for its application
    /// to fill, so that it has the queue's capacity of them out (stocked, or taken and not yet
    /// sent back): an application cannot hoard more. Returns how many were added. Call it from
    /// the owning thread each turn of the loop that receives from that queue: it is cheap when
    /// the stock is full.
    /// </summary>
    public int Replenish(IngressQueue ingress)
    {
        ArgumentNullException.ThrowIfNull(ingress);
        if (Array.IndexOf(_stocked, ingress) < 0) _stocked = [.. _stocked, ingress];
        // From the queue's own spares; a queue the pool was made without takes the pool's own buffers, and no application
        // of another process can attach to it (it would be given no memory to write).
        Spares? own = null;
        foreach (Spares s in _spares)
            if (s.Queue == ingress) own = s;
        uint[] free = own?.Free ?? _free;
        ref int top = ref own is null ? ref _top : ref own.Top;
        SpscRing spares = ingress.RecycleRing;
        int n = spares.Claim(Math.Min(top, ingress.Capacity - ingress.SparesOut));
        ingress.SparesOut += n;
        ulong bit = ingress.Bit;
        for (int i = 0; i < n; i++)
        {
            uint index = free[--top];
            _out[index - _first] = true;
            _holders[index] |= bit;
            spares.Put(i, index);
        }
        spares.Advance(n);
        spares.Flush();
        return n;
    }

    /// <summary>
    /// Looks after the consumers of the queues this pool reclaims from. For each queue whose
    /// consumer process has gone (its connection to the cluster's socket closed: the kernel says
    /// so, whatever the process wrote anywhere), takes back every buffer of this pool that queue
    /// held (received and not released, or still queued), gives the queue fresh memory, empties it
    /// and makes it free for a new consumer. Also takes back what was released, notes which
    /// consumers are stuck and publishes the pool's free count for the listing. Returns the buffers taken back. Call it from the
    /// owning thread every so often (a tenth of a second is plenty); it makes no system call
    /// unless a consumer has gone.
    /// </summary>
    public int CheckConsumers()
    {
        int before = _top;
        long now = Stopwatch.GetTimestamp();
        Reclaim();   // so that what was released shows, in the quotas and the free count, even while nothing is sent
        foreach (EgressQueue queue in _returns)
        {
            queue.Maintain(now);
            if (!queue.Link.IsLeaving) continue;
            Drain(queue);
            queue.DiscardQueuedForGoneConsumer();
            TakeBackFromGone(queue);
        }
        foreach (IngressQueue queue in _stocked)
        {
            if (!queue.Link.IsLeaving) continue;
            queue.DiscardQueuedForGoneConsumer();
            TakeBackFromGone(queue);
        }
        if (_entry is not null) Volatile.Write(ref _entry->Free, (uint)_top);
        if (_inputs is not null) FlushInputs();
        return _top - before;
    }

    // Every buffer of this pool the gone consumer's queue held is taken back; then the queue is free for the next one.
    private void TakeBackFromGone(QueueEnd queue)
    {
        ulong bit = queue.Bit;
        for (uint local = 0; local < (uint)_out.Length; local++)
        {
            uint index = _first + local;
            if ((_holders[index] & bit) != 0 && (_holders[index] &= ~bit) == 0) Free(index, local);
        }
        queue.Link!.Freed();
    }
}
