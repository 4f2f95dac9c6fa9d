using System.Runtime.CompilerServices;
using ZcFlow.Memory;
using ZcFlow.Queues;

namespace ZcFlow.Buffers;

/// <summary>
/// A fixed set of a cluster's buffers, handed out (<see cref="TryGet"/>, <see cref="GetBurst"/>) and taken back by one
/// owning thread: PF_RING ZC's buffer pool. What it shares with a relay (releases, reclaiming, the checks of what
/// consumers give back, gone consumers) is <see cref="BufferOwner"/>'s. It also stocks ingress queues with spares for
/// their applications to fill (<see cref="Replenish"/>).
/// </summary>
public sealed unsafe class BufferPool : BufferOwner
{
    private readonly uint[] _free;
    private readonly PoolEntry* _entry;  // the directory's view of the pool, for the listing
    private readonly uint _ownEnd;       // the pool's own buffers are [_first, _ownEnd); ingress queues' spares are after them
    private readonly Spares[] _spares;
    private IngressQueue[] _stocked = [];   // the ingress queues it stocks with spares
    private int _top;

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
        : base(buffers, first, count, holders)
    {
        _entry = entry;
        Id = id;
        _ownEnd = ownEnd ?? first + count;
        _spares = spares ?? [];
        _free = FreeList(first, _ownEnd);
        _top = _free.Length;
    }

    /// <summary>The pool's number in its cluster's directory.</summary>
    public int Id { get; }

    /// <summary>
    /// The cluster's buffers as one range of memory, for a device that writes packets into
    /// buffers itself (AF_XDP registers it as its UMEM): it starts a page before the first buffer,
    /// page aligned, and ends after the last. <see cref="DataOffset"/> and <see cref="TryAtDataOffset"/>
    /// translate between this pool's packets and offsets in it.
    /// </summary>
    internal unsafe (nint Start, ulong Length) DeviceRegion => ((nint)_buffers.DeviceRegionStart, _buffers.DeviceRegionLength);

    /// <summary>
    /// The lowest buffer index of this pool: the buffers it hands out are <c>FirstBuffer</c> on, those of its ingress queues'
    /// spares (<see cref="ZcCluster.CreatePool"/>) after them.
    /// </summary>
    internal uint FirstBuffer => _first;

    /// <summary>Offset in <see cref="DeviceRegion"/> of the packet's data.</summary>
    internal ulong DataOffset(in PacketHandle packet) => _buffers.DataOffset(packet.Index);

    /// <summary>The buffer of this pool whose data starts at <paramref name="offset"/> in <see cref="DeviceRegion"/>; false for any other offset.</summary>
    internal bool TryAtDataOffset(ulong offset, out PacketHandle packet)
    {
        if (_buffers.TryIndexAt(offset, out uint index)) return TryAt(index, out packet);
        packet = default;
        return false;
    }

    /// <summary>
    /// The buffer with index <paramref name="index"/> (<see cref="PacketHandle.Index"/>) if it is one this pool hands out;
    /// false for any other, its ingress queues' spares included (a device never has those).
    /// </summary>
    internal bool TryAt(uint index, out PacketHandle packet)
    {
        if (index - _first < (uint)_free.Length)
        {
            packet = _buffers.At(index);
            return true;
        }
        packet = default;
        return false;
    }

    /// <summary>Buffers in the pool, free or not: its own and its ingress queues' spares.</summary>
    public int Capacity => _free.Length + _spares.Sum(s => s.Free.Length);

    /// <summary>Buffers free without draining a recycle ring: its own, ready to hand out, and spares not yet stocked.</summary>
    public int Available => _top + _spares.Sum(s => s.Top);

    /// <summary>Takes a buffer, length 0. False when none is free even after reclaiming.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(out PacketHandle packet)
    {
        if (_top == 0 && (Reclaim() == 0 || _top == 0))   // what came back may all be ingress queues' spares
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

    private protected override void Free(ReadOnlySpan<uint> indices)
    {
        foreach (uint index in indices)
        {
            if (index < _ownEnd) _free[_top++] = index;
            else FreeSpare(index);
        }
    }

    private void FreeSpare(uint index)
    {
        foreach (Spares s in _spares)
        {
            if (index - s.First < s.End - s.First)
            {
                s.Free[s.Top++] = index;
                return;
            }
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

    // Ingress queues whose application has gone give back what they held, and the listing shows the free count.
    private protected override void Checked()
    {
        foreach (IngressQueue queue in _stocked)
        {
            if (!queue.Link.IsLeaving) continue;
            queue.DiscardQueuedForGoneConsumer();
            TakeBackFromGone(queue);
        }
        if (_entry is not null) Volatile.Write(ref _entry->Free, (uint)_top);
    }
}
