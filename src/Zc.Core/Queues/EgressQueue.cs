using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ZcFlow.Buffers;
using ZcFlow.Memory;

namespace ZcFlow.Queues;

/// <summary>
/// The owner's end of a queue to an application (zbalance_ipc's egress queues), made with
/// <see cref="ZcCluster.CreateQueue"/>: the thread that owns the pools of the buffers it sends sends here, and the
/// queue records which queues hold each buffer, so that a gone consumer's buffers are found and taken back and a forged
/// release is refused. The application receives and releases at <see cref="Consumer"/> (a thread of this process) or at
/// <c>zc:&lt;cluster&gt;@&lt;id&gt;</c> through <see cref="Ipc.AttachedQueue"/> (another process).
/// </summary>
public sealed class EgressQueue : QueueSender
{
    private const int StuckBurst = 32;

    private readonly ConsumerLink _link;
    private ulong[] _holders;   // which queues hold each buffer: the cluster's record, or a relay's own
    private readonly uint[] _sent;   // the owner's own copy of every slot it wrote, by position: what is marked in _holders comes from here, never from the slots
    private readonly ulong _bit;
    private HeldCount _q;
    private ulong _lastHead;
    private int _lastHeld;
    private long _lastProgress;
    private bool _stuck;

    /// <summary>
    /// What the owner writes as it sends: the count of the buffers this queue may still take, and how far the holders
    /// record is marked. Alone on its pair of cache lines, so that a consumer thread of the same process, which reads this
    /// object's other fields on every receive, never has them invalidated by it.
    /// </summary>
    [StructLayout(LayoutKind.Explicit, Size = 2 * ArenaLayout.CacheLinePair)]
    private struct HeldCount
    {
        [FieldOffset(ArenaLayout.CacheLinePair)] public int Left;        // Limit - buffers held: one field to test and count down per send
        [FieldOffset(ArenaLayout.CacheLinePair + 4)] public int Limit;
        [FieldOffset(ArenaLayout.CacheLinePair + 8)] public ulong Marked;   // positions below it are marked in _holders
    }

    internal EgressQueue(int id, SpscRing ring, SpscRing recycle, BufferRegion buffers, ulong[] holders, ConsumerLink link)
        : base(id, QueueRole.Egress, ring, recycle, buffers, owner: null)
    {
        _holders = holders;
        _link = link;
        _bit = 1UL << id;
        _sent = new uint[ring.Capacity];
        _q.Limit = _q.Left = 2 * ring.Capacity;
        _q.Marked = ring.ProducerPosition;
        _lastProgress = Stopwatch.GetTimestamp();
        Consumer = new QueueConsumer(id, ring, recycle, buffers, owner: null);
    }

    /// <summary>The receiving end, for a consumer thread of this process (another process attaches through the socket instead).</summary>
    public QueueConsumer Consumer { get; }

    internal override ConsumerLink Link => _link;

    /// <summary>
    /// The pool this queue's consumer returns buffers to (<see cref="BufferOwner.ReclaimFrom"/>). It marks what was sent in
    /// the holders record before it reads the record (<see cref="MarkHolders"/>), so a send only notes it; a queue nobody
    /// reclaims from is marked as it sends.
    /// </summary>
    internal BufferOwner? ReturnsTo;

    /// <summary>
    /// The most buffers the queue may hold at once, queued or received and not yet released (default: twice its slots).
    /// A consumer that hoards reaches it, and the queue then drops, so the rest of the pool stays for the other queues
    /// (zbalance_ipc's <c>-b</c>).
    /// </summary>
    public int Quota
    {
        get => _q.Limit;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1, nameof(Quota));
            _q.Left += value - _q.Limit;
            _q.Limit = value;
        }
    }

    /// <summary>Buffers the queue holds now (queued, or received and not yet released).</summary>
    public int Held => _q.Limit - Volatile.Read(ref _q.Left);

    /// <summary>
    /// Its consumer has left the queue without room for a burst of 32 (in slots or in quota) and taken or released nothing
    /// for a second. A lossless balancer stops waiting for such a queue: it drops, and counts it. Cleared as soon as the
    /// consumer makes progress again.
    /// </summary>
    public bool IsStuck => _stuck;

    /// <summary>
    /// Whether a sender that must not lose packets should wait for room in this queue. Not when the consumer process
    /// attached through the socket has gone (nor while the queue waits for the next one), nor when its consumer is stuck
    /// (<see cref="IsStuck"/>); a queue consumed in this process, or not yet consumed at all, is waited for until it is stuck.
    /// </summary>
    public bool IsWaitedFor => _link.Current switch
    {
        ConsumerLink.State.Attached or ConsumerLink.State.Internal => !_stuck,
        ConsumerLink.State.Free => !_link.HadProcess && !_stuck,
        _ => false,
    };

    /// <summary>The consumer process attached through the cluster's socket has gone, and what it held is not yet taken back.</summary>
    public bool ConsumerGone => _link.IsLeaving;

    /// <summary>The pid of the consumer process attached to it as the owner's socket saw it, 0 when none.</summary>
    public int ConsumerPid => _link.Pid;

    /// <summary>
    /// The queue carries packets between two stages of this process's graph, to a relay (<see cref="ZcCluster.CreateRelay"/>)
    /// that consumes it here. No process may attach to it: a consumer there would take the graph's packets.
    /// </summary>
    public bool IsInternal => _link.IsInternal;

    public override bool IsFull => _ring.LooksFull || _q.Left <= 0;

    /// <summary>How many of <paramref name="want"/> packets can be sent now: free slots, within the quota.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override int Room(int want)
    {
        if (_q.Left < want) want = Math.Min(want, QuotaLeftSlow());
        return want <= 0 ? 0 : _ring.Claim(want);
    }

    /// <summary>
    /// The most of a burst of <paramref name="burst"/> packets this queue can ever have room for, its slots and its quota
    /// considered; less room than this is a queue waiting for its consumer.
    /// </summary>
    public int BurstLimit(int burst) => Math.Min(burst, Math.Min(_ring.Capacity, _q.Limit));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override bool TrySend(in PacketHandle packet, bool flush = true)
    {
        // A free slot and a buffer left in the quota: one compare each on the common path.
        if (_ring.Claim(1) == 0 || (_q.Left <= 0 && QuotaLeftSlow() <= 0))
        {
            _ring.CountDropped(1);
            return false;
        }
        uint index = packet.Index;
        ulong at = _ring.ProducerPosition;
        if (at - _q.Marked == (ulong)_sent.Length) MarkHolders();
        _sent[at & _ring.Mask] = index;
        _ring.Put(0, index);
        _q.Left--;
        _ring.Advance(1);
        Sent(at);
        if (flush) _ring.Flush();
        return true;
    }

    // The burst's indices go into the owner's record first, then into the slots with one copy: a few wide stores to the
    // lines the consumer reads, where a store per index would queue up behind their misses.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private protected override unsafe int SendSome(ReadOnlySpan<PacketHandle> packets)
    {
        int n = Room(packets.Length);
        ulong at = _ring.ProducerPosition;
        if (at + (ulong)n - _q.Marked > (ulong)_sent.Length) MarkHolders();
        int first = (int)(at & _ring.Mask), before = Math.Min(n, _sent.Length - first);
        uint* slots = _ring.Slots;
        fixed (uint* record = _sent)
        fixed (PacketHandle* from = packets)
        {
            for (int i = 0; i < before; i++) record[first + i] = from[i].Index;
            for (int i = before; i < n; i++) record[i - before] = from[i].Index;
            Copy(slots + first, record + first, before);
            if (n > before) Copy(slots, record, n - before);
        }
        _q.Left -= n;
        _ring.Advance(n);
        Sent(at);
        return n;
    }

    // Eight slots a store: inline, where a copy of a length known only at run time is a call.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Copy(uint* to, uint* from, int n)
    {
        int i = 0;
        for (; i + Vector256<uint>.Count <= n; i += Vector256<uint>.Count) Vector256.Store(Vector256.Load(from + i), to + i);
        for (; i < n; i++) to[i] = from[i];
    }

    // After a send from position at: the owner learns that there is something to mark once, with the first send after a marking.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Sent(ulong at)
    {
        if (ReturnsTo is not { } owner) MarkHolders();
        else if (at == _q.Marked) owner.Unmarked = true;
    }

    /// <summary>
    /// Marks in the holders record every buffer sent since the last time, from the owner's own copy of what it sent: the
    /// sending thread, before anything reads the record (the owner's checks of a release, of a consumer gone) and before
    /// its copy would be written over.
    /// </summary>
    internal unsafe void MarkHolders()
    {
        ulong end = _ring.ProducerPosition, mask = _ring.Mask, bit = _bit;
        if (end == _q.Marked) return;
        ulong[] holders = _holders;
        fixed (uint* sent = _sent)
        {
            for (ulong p = _q.Marked; p < end; p++) holders[sent[p & mask]] |= bit;
        }
        _q.Marked = end;
    }

    // Near the quota: what the consumer released may not have been taken back yet; take it now.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int QuotaLeftSlow()
    {
        ReturnsTo?.Drain(this);
        return _q.Left;
    }

    internal void BuffersReturned(int n) => _q.Left += n;

    /// <summary>
    /// A relay that sends into this queue keeps the record of which of its queues hold each buffer apart from the
    /// cluster's, which the threads before it write. Before anything is sent.
    /// </summary>
    internal void RecordHoldersIn(ulong[] holders)
    {
        if (_ring.Published != 0 || Held != 0) throw new InvalidOperationException($"queue {Id} has been sent into already: a relay takes a queue before it is used");
        _holders = holders;
    }

    /// <summary>Marks the queue internal; false when a consumer process is attached to it, or was.</summary>
    internal bool MakeInternal()
    {
        if (!_link.MakeInternal()) return false;
        Publish();
        return true;
    }

    /// <summary>
    /// The owner's pool thread, every tenth of a second: notes whether the consumer made progress, and whether it is stuck
    /// (has left less room than a burst and taken or released nothing for a second).
    /// </summary>
    internal void Maintain(long now)
    {
        ulong head = _ring.ObservedHead;
        int held = Held;
        if (head != _lastHead || held < _lastHeld) _lastProgress = now;
        _lastHead = head;
        _lastHeld = held;
        int burst = BurstLimit(StuckBurst);
        bool blocked = _q.Left < burst || _ring.Claim(burst) < burst;
        bool hadConsumer = head != 0 || _link.HadProcess;   // a queue nobody ever read waits for its first consumer
        _stuck = blocked && hadConsumer && now - _lastProgress > Stopwatch.Frequency;
        _ring.WakeIfWaiting();
    }

    /// <summary>The owner's socket thread: copies this queue's counters into its directory entry for the listing.</summary>
    internal override void Publish() => _link.Publish(Stats, Held, _q.Limit, _stuck);

    /// <summary>
    /// The owner, acting for a consumer that is gone: puts fresh memory under the rings (whoever kept a mapping of the old
    /// now writes where nobody reads) and drops every published packet not yet received, so that the next consumer starts
    /// on an empty queue. The caller takes the buffers back (their holder bit for this queue is still set).
    /// </summary>
    internal void DiscardQueuedForGoneConsumer()
    {
        _link.Memory.Renew();
        _q.Left = _q.Limit;
        _lastProgress = Stopwatch.GetTimestamp();
        _stuck = false;
        _ring.Flush();
        _ring.ResetConsumerSide();
        _recycle.ResetProducerSide();
    }
}
