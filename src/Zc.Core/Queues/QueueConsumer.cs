using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using ZcFlow.Buffers;
using ZcFlow.Ipc;

namespace ZcFlow.Queues;

/// <summary>
/// The application's end of an egress queue: it receives packets and gives each back with <see cref="Release"/>. Released
/// buffers travel back to their pool on a recycle ring of their own, so no free list is ever shared and nothing the
/// consumer writes is trusted. A thread of the owner's process has it as <see cref="EgressQueue.Consumer"/>; another
/// process, as <see cref="AttachedQueue.Queue"/>, where a receive that finds the queue empty also notices an owner that
/// has gone (<see cref="ClusterGoneException"/>).
/// </summary>
public sealed class QueueConsumer : QueueReceiver
{
    internal QueueConsumer(int id, SpscRing ring, SpscRing recycle, BufferRegion buffers, OwnerWatch? owner)
        : base(id, QueueRole.Egress, ring, recycle, buffers, owner)
    {
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override bool TryReceive(out PacketHandle packet)
    {
        while (_ring.Available(1) != 0)
        {
            uint index = _ring.Get(0);
            _ring.Consume(1);
            if (_buffers.Contains(index))
            {
                packet = _buffers.At(index);
                return true;
            }
            _ring.CountConsumerError();
        }
        _owner?.Check();
        packet = default;
        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override unsafe int ReceiveBurst(Span<PacketHandle> packets)
    {
        int n = _ring.Available(packets.Length);
        if (n == 0)
        {
            _owner?.Check();
            return 0;
        }
        // The slots and the buffers' bounds in locals, which the JIT keeps in registers. Every index is checked against the
        // cluster's buffers, all of the burst's at once: a handle made of a bad index is never used, for then the burst is
        // made again, without it.
        uint* slots = _ring.Slots;
        ulong mask = _ring.Mask, at = _ring.ConsumerPosition;
        BufferRegion buffers = _buffers;
        Span<PacketHandle> burst = packets[..n];
        long last = buffers.Count - 1L;
        ulong bad = 0;
        int i = 0;
        if (Avx2.IsSupported)
        {
            // Four handles at a time from slots in a row (the ring's end breaks a run): the same handles, in two stores.
            int run = (int)Math.Min((ulong)n, (ulong)_ring.Capacity - (at & mask)) & ~3;
            if (run != 0) bad = buffers.AtFour(slots + (at & mask), run, burst);
            i = run;
        }
        for (; i < burst.Length; i++)
        {
            uint index = slots[(at + (ulong)i) & mask];
            bad |= (ulong)(last - index);   // negative, its top bit set, when the index is past the last buffer
            burst[i] = buffers.At(index);
        }
        int got = bad >> 63 == 0 ? n : WithoutBad(burst, slots, mask, at);
        _ring.Consume(n);
        return got;
    }

    // A burst with indices that are not the cluster's: the others, in order, each bad one counted.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe int WithoutBad(Span<PacketHandle> burst, uint* slots, ulong mask, ulong at)
    {
        int got = 0;
        for (int i = 0; i < burst.Length; i++)
        {
            uint index = slots[(at + (ulong)i) & mask];
            if (_buffers.Contains(index)) burst[got++] = _buffers.At(index);
            else _ring.CountConsumerError();
        }
        return got;
    }

    /// <summary>
    /// Gives back a packet this consumer received. Its buffer returns to its pool once every queue it was sent to (one, or
    /// several after a fan-out) has given it back.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Release(in PacketHandle packet)
    {
        if (PutBack(packet.Index)) _recycle.Advance(1);
        _recycle.Flush();
    }

    /// <summary>Gives back a burst of received packets with one publication.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ReleaseBurst(ReadOnlySpan<PacketHandle> packets)
    {
        foreach (ref readonly PacketHandle p in packets)
            if (PutBack(p.Index)) _recycle.Advance(1);
        _recycle.Flush();
    }

    /// <summary>
    /// Gives back received packets named by their buffer indices (<see cref="PacketHandle.Index"/>), as a consumer
    /// outside .NET names them, with one publication. An index that is not one of the cluster's is counted as an error.
    /// </summary>
    public void ReleaseBurst(ReadOnlySpan<uint> buffers)
    {
        foreach (uint index in buffers)
            if (PutBack(index)) _recycle.Advance(1);
        _recycle.Flush();
    }

    /// <summary>A relay of this process, the consumer of this queue: gives a buffer back, published with <see cref="FlushReleases"/>.</summary>
    internal void ReleaseUpstream(uint index)
    {
        if (PutBack(index)) _recycle.Advance(1);
    }

    internal void FlushReleases() => _recycle.Flush();

    // Writes the index into the next recycle slot (the caller advances). The recycle ring has a slot for every buffer of
    // the cluster and a queue holds a buffer once, so it is full only if something released a buffer twice: that is counted.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool PutBack(uint index)
    {
        if (!_buffers.Contains(index))
        {
            _recycle.CountProducerError();
            return false;
        }
        if (_recycle.Claim(1) == 0)
        {
            _recycle.CountDropped(1);
            return false;
        }
        _recycle.Put(0, index);
        return true;
    }
}
