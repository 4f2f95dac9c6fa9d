using System.Runtime.CompilerServices;
using ZcFlow.Queues;

namespace ZcFlow.Buffers;

/// <summary>
/// A fixed set of a cluster's buffers, handed out and taken back by one owning thread,
/// PF_RING ZC's buffer pool. Not thread-safe by design: buffers that other threads or
/// processes are done with come back through the recycle rings of the queues named with
/// <see cref="ReclaimFrom"/>, which the pool drains when it runs dry. So no free list is
/// ever shared and no lock is ever taken.
///
/// Every index coming back is checked against the pool's range, its record of what it handed
/// out and the buffer's holder count: a forged or twice-returned index is counted in
/// <see cref="Errors"/>, never used. (A process that can write the arena can still forge all
/// three for a buffer it does not hold; it can spoil packets, not make the owner read or write
/// outside the arena.)
/// </summary>
public sealed class BufferPool
{
    private readonly BufferRegion _buffers;
    private readonly uint _first;
    private readonly uint[] _free;
    private readonly bool[] _out;
    private SpscRing[] _returns = [];
    private int _top;
    private ulong _errors;

    internal BufferPool(int id, BufferRegion buffers, uint first, uint count)
    {
        Id = id;
        _buffers = buffers;
        _first = first;
        _free = new uint[count];
        _out = new bool[count];
        // Lowest index on top, so a fresh pool hands out buffers in address order.
        for (uint i = 0; i < count; i++) _free[i] = first + count - 1 - i;
        _top = (int)count;
    }

    public int Id { get; }

    /// <summary>Buffers in the pool, free or not.</summary>
    public int Capacity => _free.Length;

    /// <summary>Buffers ready to hand out without draining a recycle ring.</summary>
    public int Available => _top;

    /// <summary>Returned indices that were not the pool's to take back (owner thread).</summary>
    public ulong Errors => _errors;

    /// <summary>
    /// Makes the pool take back the buffers that <paramref name="queue"/>'s consumer releases.
    /// A queue returns to one pool; call it on the owning thread before packets flow.
    /// </summary>
    public void ReclaimFrom(ZcQueue queue)
    {
        ArgumentNullException.ThrowIfNull(queue);
        if (Array.IndexOf(_returns, queue.RecycleRing) >= 0) return;
        _returns = [.. _returns, queue.RecycleRing];
    }

    /// <summary>Takes a buffer: length 0, one holder. False when none is free even after reclaiming.</summary>
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
        ref int holders = ref packet.RefCountRef;
        holders = 1;
        packet.Length = 0;
        return packet;
    }

    /// <summary>
    /// Gives back a buffer on the owning thread (a packet dropped before it was sent, say).
    /// It returns to the free list when its last holder lets go.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Release(in PacketHandle packet)
    {
        uint local = packet.Index - _first;
        if (local >= (uint)_out.Length) ThrowHelper.ForeignBuffer(packet.Index);
        if (!_out[local]) ThrowHelper.NotOwned(packet.Index);
        if (!packet.DropReference()) return;
        _out[local] = false;
        _free[_top++] = packet.Index;
    }

    /// <summary>Gives back a burst of buffers on the owning thread.</summary>
    public void ReleaseBurst(ReadOnlySpan<PacketHandle> packets)
    {
        foreach (ref readonly PacketHandle p in packets) Release(p);
    }

    /// <summary>Drains every recycle ring into the free list; returns how many buffers came back.</summary>
    public int Reclaim()
    {
        int before = _top;
        foreach (SpscRing ring in _returns)
        {
            int n = ring.Available(int.MaxValue);
            for (int i = 0; i < n; i++)
            {
                uint index = ring.Get(i);
                uint local = index - _first;
                // Ours, handed out, and let go by its last holder: anything else is forged or stale.
                if (local < (uint)_out.Length && _out[local] && Volatile.Read(ref _buffers.At(index).RefCountRef) == 0)
                {
                    _out[local] = false;
                    _free[_top++] = index;
                }
                else
                {
                    _errors++;
                    ring.CountConsumerError();
                }
            }
            if (n != 0) ring.Consume(n);
        }
        return _top - before;
    }
}
