using System.Diagnostics;
using System.Runtime.CompilerServices;
using ZcFlow.Queues;

namespace ZcFlow.Buffers;

/// <summary>
/// The buffers one thread owns and sends into queues: a <see cref="BufferPool"/> (buffers of its own, handed out) or a
/// <see cref="BufferRelay"/> (buffers received from the queues of an earlier stage). Not thread-safe by design: buffers
/// that consumers (threads or processes) are done with come back through the recycle rings of the queues named with
/// <see cref="ReclaimFrom"/>, drained by the owning thread. So no free list is ever shared and no lock is ever taken.
///
/// The owner keeps, in its own process's memory, which queues hold each of its buffers. A buffer comes back from a queue
/// only if that queue holds it, and is free again when no queue does: an index that is forged, out of range or returned
/// twice is counted in <see cref="Errors"/> and never used, whatever a consumer writes into shared memory. What is free
/// again goes where the kind of owner says: a pool's free list, or back up to the queue a relay received it from.
/// </summary>
public abstract class BufferOwner
{
    private protected readonly BufferRegion _buffers;
    private protected readonly uint _first;     // the lowest buffer index it may hold: _out and the checks are by index - _first
    private protected readonly bool[] _out;      // held and not yet free, by index - _first
    private protected readonly ulong[] _holders; // queues holding each buffer, by cluster index: the cluster's record, or a relay's own
    private protected EgressQueue[] _returns = [];   // the queues whose consumers' releases come back here
    private protected ulong _errors;
    // A queue that returns here has sent since its holders were last marked: they are marked before the record is read.
    internal bool Unmarked;
    private long _freed;                         // buffers made free so far, for the counts Reclaim and CheckConsumers return
    // Buffers made free and not yet handed to Free: the kind of owner is asked once per batch, not once per buffer.
    private readonly uint[] _freeing = new uint[FreeBatch];
    private int _freeingCount;
    private const int FreeBatch = 256;

    private protected BufferOwner(BufferRegion buffers, uint first, uint count, ulong[] holders)
    {
        _buffers = buffers;
        _first = first;
        _out = new bool[count];
        _holders = holders;
    }

    /// <summary>Bytes of packet each buffer holds.</summary>
    public int BufferCapacity => (int)_buffers.Capacity;

    /// <summary>Returned indices that were not this owner's to take back, or received twice (owner thread).</summary>
    public ulong Errors => _errors;

    /// <summary>
    /// Makes this owner take back the buffers that <paramref name="queue"/>'s consumer releases.
    /// A queue returns to one owner; call it on the owning thread before packets flow.
    /// </summary>
    public void ReclaimFrom(EgressQueue queue)
    {
        ArgumentNullException.ThrowIfNull(queue);
        Adopt(queue);
        queue.MarkHolders();   // what it sent before is marked: from now on this owner marks it
        if (Array.IndexOf(_returns, queue) < 0) _returns = [.. _returns, queue];
        queue.ReturnsTo = this;
    }

    // What a kind of owner checks or sets up for a queue it is to reclaim from.
    private protected virtual void Adopt(EgressQueue queue)
    {
    }

    /// <summary>Gives back, on the owning thread, a buffer it holds and has not sent (a packet dropped, say).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Release(in PacketHandle packet)
    {
        Check(packet);
        FlushFrees();
    }

    /// <summary>Gives back a burst of buffers on the owning thread.</summary>
    public void ReleaseBurst(ReadOnlySpan<PacketHandle> packets)
    {
        foreach (ref readonly PacketHandle p in packets) Check(p);
        FlushFrees();
    }

    // For a loop over a burst (the balancer's drops): each is checked and noted as it comes, and the burst's are handed
    // on together by EndRelease, so a dropped packet costs no call to the kind of owner.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void ReleaseLater(in PacketHandle packet) => Check(packet);

    internal void EndRelease() => FlushFrees();

    // A buffer given back by the owning thread: its own, held, and in no queue.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Check(in PacketHandle packet)
    {
        if (Unmarked) MarkHolders();
        uint index = packet.Index, local = index - _first;
        if (local >= (uint)_out.Length) ThrowHelper.ForeignBuffer(index);
        if (!_out[local] || _holders[index] != 0) ThrowHelper.NotOwned(index);
        MakeFree(index, local);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private protected void MakeFree(uint index, uint local)
    {
        _out[local] = false;
        _freeing[_freeingCount++] = index;
        if (_freeingCount == FreeBatch) FlushFrees();
    }

    // Hands what was made free to the kind of owner, once per batch; every public entry point ends with it.
    private protected void FlushFrees()
    {
        if (_freeingCount == 0) return;
        Free(_freeing.AsSpan(0, _freeingCount));
        _freed += _freeingCount;
        _freeingCount = 0;
    }

    // Buffers no queue holds any more: to the free list, or back up to the queues they came from (and on their way).
    private protected abstract void Free(ReadOnlySpan<uint> indices);

    /// <summary>Drains every recycle ring; returns how many buffers are free again.</summary>
    public int Reclaim()
    {
        long before = _freed;
        MarkHolders();
        foreach (EgressQueue queue in _returns) DrainMarked(queue);
        return (int)(_freed - before);
    }

    // What the queues that return here sent, into the holders record: once before the record is read, for all of them,
    // since a buffer is free only when none holds it.
    private void MarkHolders()
    {
        if (!Unmarked) return;
        Unmarked = false;
        foreach (EgressQueue queue in _returns) queue.MarkHolders();
    }

    internal void Drain(EgressQueue queue)
    {
        MarkHolders();
        DrainMarked(queue);
    }

    private void DrainMarked(EgressQueue queue)
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
                if ((_holders[index] &= ~bit) == 0) MakeFree(index, local);
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
            FlushFrees();
        }
    }

    /// <summary>
    /// Looks after the consumers of the queues this owner reclaims from. For each queue whose consumer process has gone
    /// (its connection to the cluster's socket closed: the kernel says so, whatever the process wrote anywhere), takes back
    /// every buffer that queue held (received and not released, or still queued), gives the queue fresh memory, empties it
    /// and makes it free for a new consumer. Also takes back what was released and notes which consumers are stuck.
    /// Returns the buffers free again. Call it from the owning thread every so often (a tenth of a second is plenty); it
    /// makes no system call unless a consumer has gone.
    /// </summary>
    public int CheckConsumers()
    {
        long before = _freed;
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
        Checked();
        FlushFrees();
        return (int)(_freed - before);
    }

    // The rest of a check, for a kind of owner: a pool's ingress queues and its listing.
    private protected virtual void Checked()
    {
    }

    // Every buffer the gone consumer's queue held is taken back; then the queue is free for the next one.
    private protected void TakeBackFromGone(QueueEnd queue)
    {
        MarkHolders();
        ulong bit = queue.Bit;
        for (uint local = 0; local < (uint)_out.Length; local++)
        {
            uint index = _first + local;
            if ((_holders[index] & bit) != 0 && (_holders[index] &= ~bit) == 0) MakeFree(index, local);
        }
        FlushFrees();
        queue.Link!.Freed();
    }
}
