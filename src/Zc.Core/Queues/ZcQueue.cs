using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ZcFlow.Buffers;
using ZcFlow.Ipc;
using ZcFlow.Memory;

namespace ZcFlow.Queues;

/// <summary>
/// A lock-free single-producer single-consumer queue of packets living in a cluster's arena,
/// PF_RING ZC's queue. Only buffer indices move; the bytes stay where the device wrote them.
///
/// One thread sends, one thread (of this process or, attached with <see cref="AttachedQueue"/>,
/// of another) receives. Each packet the consumer receives is its to read and must be given
/// back with <see cref="Release"/>: released buffers travel back to their pool on a recycle
/// ring of their own, so no free list is ever shared and nothing the consumer writes is
/// trusted. The sending side is the cluster owner's: it runs on the thread that owns the
/// pools of the buffers it sends, which records which queues hold each buffer.
///
/// Sends are batched: <c>flush: false</c> writes slots without publishing them, and
/// <see cref="Flush"/> publishes everything written so far with one release store.
/// A receive publishes the freed slots at once.
/// </summary>
public sealed unsafe class ZcQueue
{
    private const int PassiveSliceMs = 50;

    private readonly SpscRing _ring;     // packets, producer -> consumer
    private readonly SpscRing _recycle;  // buffers done with, consumer -> pool
    private readonly BufferRegion _buffers;
    private ulong[]? _holders;          // the owner's record of which queues hold each buffer; null on a consumer's view
    private readonly ulong _bit;
    private readonly OwnerWatch? _owner; // a consumer's watch on the owner; null in the owner's process
    private readonly Arena? _memory;     // the owner's: the rings' memory, handed to the consumer that attaches
    private readonly QueueEntry* _entry; // the owner's: this queue's entry in the directory, which only it writes
    private HeldCount _q;                  // owner: buffers held, and the most it may hold

    /// <summary>
    /// The owner's count of the buffers this queue may still take, written on every send: alone on its pair of
    /// cache lines, so that a consumer thread of the same process, which reads this object's other
    /// fields on every receive, never has them invalidated by it.
    /// </summary>
    [StructLayout(LayoutKind.Explicit, Size = 2 * ArenaLayout.CacheLinePair)]
    private struct HeldCount
    {
        [FieldOffset(ArenaLayout.CacheLinePair)] public int Left;        // Limit - buffers held: one field to test and count down per send
        [FieldOffset(ArenaLayout.CacheLinePair + 4)] public int Limit;
    }

    // The owner's record of the consumer process at the other end, kept by the cluster's socket thread.
    internal const int Free = 0, Attached = 1, Leaving = 2, Internal = 3;   // Internal: consumed by a relay of this process, never attached
    internal int ConsumerState;
    internal int AttachedPid;
    private ulong _lastHead;
    private int _lastHeld;
    private long _lastProgress;
    private bool _stuck;

    internal ZcQueue(int id, QueueRole role, SpscRing ring, SpscRing recycle, BufferRegion buffers, ulong[]? holders, OwnerWatch? owner,
        Arena? memory = null, QueueEntry* entry = null)
    {
        Id = id;
        Role = role;
        _ring = ring;
        _recycle = recycle;
        _buffers = buffers;
        _holders = holders;
        _bit = 1UL << id;
        _owner = owner;
        _memory = memory;
        _entry = entry;
        _q.Limit = _q.Left = 2 * ring.Capacity;
        _lastProgress = System.Diagnostics.Stopwatch.GetTimestamp();
    }

    /// <summary>The queue's number in its cluster: the <c>0</c> of <c>zc:99@0</c>.</summary>
    public int Id { get; }

    /// <summary>Which way it carries packets: owner to application, or application to owner.</summary>
    public QueueRole Role { get; }

    /// <summary>How many packets it holds when full.</summary>
    public int Capacity => _ring.Capacity;

    // This process writes the forward ring when it owns an egress queue or feeds an ingress one.
    private bool SendsForward => (_holders is not null) == (Role == QueueRole.Egress);

    /// <summary>
    /// The counters as this process keeps them, readable from any thread: nothing here is read
    /// back from shared memory that the other end could have written, except the other end's
    /// progress, which is checked (a consumer's view shows its producer's drops as the producer said).
    /// </summary>
    public QueueStats Stats
    {
        get
        {
            // What was taken out is read before what was put in, so that a snapshot taken while packets flow never shows more
            // received than sent (read the other way round, the consumer could pass the sent count in between).
            if (SendsForward)
            {
                ulong received = _ring.ObservedHead;
                return new QueueStats(_ring.Published, received, _ring.Dropped, _ring.Errors + _recycle.Errors);
            }
            ulong consumed = _ring.Consumed;
            return new QueueStats(_ring.ObservedTail, consumed, Volatile.Read(ref _ring.Control->Dropped), _ring.Errors + _recycle.Errors);
        }
    }

    /// <summary>No published packet is waiting, as this process last saw it.</summary>
    public bool IsEmpty => SendsForward ? _ring.Count == 0 : _ring.Available(1) == 0;

    /// <summary>The producer cannot send now. Producer side only.</summary>
    public bool IsFull => _ring.LooksFull || (_holders is not null && Role == QueueRole.Egress && _q.Left <= 0);

    /// <summary>The producer can send <paramref name="packets"/> now without a drop. Producer side only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool HasRoom(int packets) => Room(packets) == packets;

    /// <summary>How many of <paramref name="want"/> packets the producer can send now: free slots, within the quota. Producer side only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Room(int want)
    {
        if (_holders is not null && Role == QueueRole.Egress && _q.Left < want) want = Math.Min(want, QuotaLeftSlow());
        return want <= 0 ? 0 : _ring.Claim(want);
    }

    // Near the quota: what the consumer released may not have been taken back yet; take it now.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int QuotaLeftSlow()
    {
        ReturnsTo?.Drain(this);
        return _q.Left;
    }

    /// <summary>The pool this queue's consumer returns buffers to (<see cref="BufferPool.ReclaimFrom"/>).</summary>
    internal BufferPool? ReturnsTo;

    /// <summary>
    /// Owner of an egress queue: the most buffers the queue may hold at once, queued or received
    /// and not yet released (default: twice its slots). A consumer that hoards reaches it, and the
    /// queue then drops, so the rest of the pool stays for the other queues (zbalance_ipc's <c>-b</c>).
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

    /// <summary>Owner: buffers the queue holds now (queued, or received and not yet released).</summary>
    public int Held => _q.Limit - Volatile.Read(ref _q.Left);

    /// <summary>
    /// Owner: its consumer has left the queue without room for a burst of 32 (in slots or in quota) and
    /// taken or released nothing for a second. A lossless balancer stops waiting for such a queue: it
    /// drops, and counts it. Cleared as soon as the consumer makes progress again.
    /// </summary>
    public bool IsStuck => _stuck;

    /// <summary>
    /// Owner: whether a sender that must not lose packets should wait for room in this queue. Not when
    /// the consumer process attached through the socket has gone (nor while the queue waits for the next
    /// one), nor when its consumer is stuck (<see cref="IsStuck"/>); a queue consumed in this process,
    /// or not yet consumed at all, is waited for until it is stuck.
    /// </summary>
    public bool IsWaitedFor => Volatile.Read(ref ConsumerState) switch
    {
        Attached or Internal => !_stuck,
        Free => !HadRemoteConsumer && !_stuck,
        _ => false,
    };

    /// <summary>Set by the socket thread when a consumer process attaches: from then on the queue has a consumer only while one is attached.</summary>
    internal bool HadRemoteConsumer;

    /// <summary>Owner: the consumer process attached through the cluster's socket has gone, and what it held is not yet taken back.</summary>
    public bool ConsumerGone => Volatile.Read(ref ConsumerState) == Leaving;

    internal SpscRing ForwardRing => _ring;

    internal SpscRing RecycleRing => _recycle;

    internal BufferRegion Buffers => _buffers;

    internal ulong Bit => _bit;

    internal Arena? Memory => _memory;

    /// <summary>The pid of the consumer process attached to it as the owner's socket saw it, 0 when none. Owner's process.</summary>
    public int ConsumerPid => Volatile.Read(ref ConsumerState) == Attached ? Volatile.Read(ref AttachedPid) : 0;

    internal void BuffersReturned(int n) => _q.Left += n;

    /// <summary>
    /// A relay that sends into this queue keeps the record of which of its queues hold each buffer apart from the cluster's,
    /// which the threads before it write. Before anything is sent.
    /// </summary>
    internal void RecordHoldersIn(ulong[] holders)
    {
        if (_holders is null || Role != QueueRole.Egress) throw new InvalidOperationException($"queue {Id}: only the owner's egress queues are sent into by a relay");
        if (_ring.Published != 0 || Held != 0) throw new InvalidOperationException($"queue {Id} has been sent into already: a relay takes a queue before it is used");
        _holders = holders;
    }

    /// <summary>
    /// Owner: the most of a burst of <paramref name="burst"/> packets this queue can ever have room for,
    /// its slots and its quota considered; less room than this is a queue waiting for its consumer.
    /// </summary>
    public int BurstLimit(int burst) => Math.Min(burst, Math.Min(_ring.Capacity, _q.Limit));

    private const int StuckBurst = 32;

    /// <summary>
    /// The owner's pool thread, every tenth of a second: notes whether the consumer made progress,
    /// and whether it is stuck (has left less room than a burst and taken or released nothing for a second).
    /// </summary>
    internal void Maintain(long now)
    {
        ulong head = Role == QueueRole.Egress ? _ring.ObservedHead : _recycle.ObservedHead;
        int held = Held;
        if (head != _lastHead || held < _lastHeld) _lastProgress = now;
        _lastHead = head;
        _lastHeld = held;
        int burst = BurstLimit(StuckBurst);
        bool blocked = Role == QueueRole.Egress && (_q.Left < burst || _ring.Claim(burst) < burst);
        bool hadConsumer = head != 0 || HadRemoteConsumer;   // a queue nobody ever read waits for its first consumer
        _stuck = blocked && hadConsumer && now - _lastProgress > System.Diagnostics.Stopwatch.Frequency;
        if (Role == QueueRole.Egress) _ring.WakeIfWaiting();
    }

    /// <summary>
    /// Owner: the queue carries packets between two stages of this process's graph, to a relay (<see cref="ZcCluster.CreateRelay"/>)
    /// that consumes it here. No process may attach to it: a consumer there would take the graph's packets.
    /// </summary>
    public bool IsInternal => Volatile.Read(ref ConsumerState) == Internal;

    /// <summary>Marks the queue internal; false when a consumer process is attached to it, or was.</summary>
    internal bool MakeInternal()
    {
        // A consumer that attached before the check set HadRemoteConsumer; one that attaches after it finds the queue internal.
        if (HadRemoteConsumer || Interlocked.CompareExchange(ref ConsumerState, Internal, Free) is not (Free or Internal)) return false;
        Publish();
        return true;
    }

    /// <summary>The owner's socket thread: copies this queue's counters into its directory entry for the listing.</summary>
    internal void Publish()
    {
        if (_entry is null) return;
        QueueStats s = Stats;
        int pid = ConsumerPid;
        Volatile.Write(ref _entry->Sent, s.Sent);
        Volatile.Write(ref _entry->Received, s.Received);
        Volatile.Write(ref _entry->Dropped, s.Dropped);
        Volatile.Write(ref _entry->Errors, s.Errors);
        Volatile.Write(ref _entry->Held, (uint)Math.Max(0, Held));
        Volatile.Write(ref _entry->Quota, (uint)_q.Limit);
        Volatile.Write(ref _entry->ConsumerPid, pid);
        Volatile.Write(ref _entry->Flags, (pid != 0 ? QueueEntry.FlagAttached : 0) | (_stuck ? QueueEntry.FlagStuck : 0) | (IsInternal ? QueueEntry.FlagInternal : 0));
    }

    // ---- producer side ----

    /// <summary>
    /// Puts <paramref name="packet"/> in the queue; with <paramref name="flush"/> the consumer sees
    /// it at once. Returns false when the queue is full: the drop is counted and the packet stays
    /// the caller's to release or retry.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TrySend(in PacketHandle packet, bool flush = true)
    {
        ulong[]? holders = Role == QueueRole.Egress ? _holders ?? ThrowNotOwner() : null;
        // A free slot, and (an egress queue) a buffer left in its quota: one compare on the common path.
        if (_ring.Claim(1) == 0 || (holders is not null && _q.Left <= 0 && QuotaLeftSlow() <= 0))
        {
            _ring.CountDropped(1);
            return false;
        }
        uint index = packet.Index;
        _ring.Put(0, index);
        if (holders is not null)
        {
            holders[index] |= _bit;
            _q.Left--;
        }
        _ring.Advance(1);
        if (flush) _ring.Flush();
        return true;
    }

    /// <summary>
    /// Sends as many of <paramref name="packets"/> as fit, in order, and returns how many.
    /// The rest are counted as dropped and stay the caller's.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int SendBurst(ReadOnlySpan<PacketHandle> packets, bool flush = true)
    {
        int n = SendSome(packets);
        if (n < packets.Length) _ring.CountDropped(packets.Length - n);
        if (flush) _ring.Flush();
        return n;
    }

    /// <summary>
    /// Sends all of <paramref name="packets"/>, waiting for room as <paramref name="wait"/> says
    /// (<see cref="QueueWait.None"/> behaves as <see cref="SendBurst(ReadOnlySpan{PacketHandle}, bool)"/>).
    /// Returns fewer only when cancelled; those are counted as dropped and stay the caller's.
    /// </summary>
    public int SendBurst(ReadOnlySpan<PacketHandle> packets, QueueWait wait, CancellationToken cancel = default)
    {
        if (wait == QueueWait.None) return SendBurst(packets);
        int sent = 0;
        while (true)
        {
            sent += SendSome(packets[sent..]);
            _ring.Flush();
            if (sent == packets.Length || !WaitForRoom(packets.Length - sent, wait, cancel)) break;
        }
        if (sent < packets.Length) _ring.CountDropped(packets.Length - sent);
        return sent;
    }

    /// <summary>
    /// Waits, as <paramref name="wait"/> says, until <paramref name="want"/> slots are free (the whole queue at most) and
    /// the quota allows at least one more packet; false if cancelled first. Publishes what was sent without a flush before
    /// waiting: the consumer cannot make room otherwise. Waiting for the slots of a whole burst, not the first free one,
    /// keeps a full queue's sends whole: taken slot by slot, every packet would cost a publication, and the queue would
    /// run at the speed of the cores passing its index. Slots come free as the consumer receives; the quota only as it
    /// releases, which it may do only when more packets come, so that part is not waited for in bulk.
    /// </summary>
    internal bool WaitForRoom(int want, QueueWait wait, CancellationToken cancel)
    {
        want = Math.Clamp(want, 1, _ring.Capacity);
        if (_ring.Claim(want) == want && Room(1) != 0) return true;
        _ring.Flush();
        var backoff = new SpinWait();
        while (_ring.Claim(want) < want || Room(1) == 0)
        {
            if (cancel.IsCancellationRequested) return false;
            if (wait == QueueWait.Active) Thread.SpinWait(1);
            else backoff.SpinOnce(sleep1Threshold: 40);
        }
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int SendSome(ReadOnlySpan<PacketHandle> packets)
    {
        int n;
        if (Role == QueueRole.Egress)
        {
            ulong[] holders = _holders ?? ThrowNotOwner();
            n = Room(packets.Length);
            uint* slots = _ring.Slots;
            ulong mask = _ring.Mask, at = _ring.ProducerPosition, bit = _bit;
            for (int i = 0; i < n; i++)
            {
                uint index = packets[i].Index;
                slots[(at + (ulong)i) & mask] = index;
                holders[index] |= bit;
            }
            _q.Left -= n;
        }
        else
        {
            n = _ring.Claim(packets.Length);
            for (int i = 0; i < n; i++) _ring.Put(i, packets[i].Index);
        }
        _ring.Advance(n);
        return n;
    }

    private ulong[] ThrowNotOwner() => throw new InvalidOperationException(
        $"queue {Id} is an egress queue attached from another process: it receives and releases; only the cluster's owner sends into it");

    // ---- application side of an ingress queue ----

    /// <summary>
    /// Takes up to <c>spares.Length</c> empty buffers the owner stocked for this ingress queue and
    /// returns how many: fill them and send them. 0 when the owner has not stocked any yet.
    /// </summary>
    public int TakeSpares(Span<PacketHandle> spares)
    {
        if (Role != QueueRole.Ingress) throw new InvalidOperationException($"queue {Id} is an egress queue: spare buffers come with ingress queues");
        int n = _recycle.Available(spares.Length);
        int got = 0;
        for (int i = 0; i < n; i++)
        {
            uint index = _recycle.Get(i);
            if (_buffers.Contains(index)) spares[got++] = _buffers.At(index);
            else _recycle.CountConsumerError();
        }
        if (n != 0) _recycle.Consume(n);
        else _owner?.Check();
        return got;
    }

    // ---- owner side of an ingress queue ----

    /// <summary>
    /// The owner's check of an index an application sent on an ingress queue: it must name a
    /// spare this queue was given and has not sent yet. The owner then holds the buffer.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Accept(uint index)
    {
        if (!_buffers.Contains(index)) return false;
        if (Role == QueueRole.Egress || _holders is null) return true;
        ref ulong holders = ref _holders[index];
        if ((holders & _bit) == 0) return false;
        holders &= ~_bit;
        SparesOut--;
        return true;
    }

    /// <summary>Owner side of an ingress queue: spares stocked and not yet come back filled.</summary>
    internal int SparesOut;

    /// <summary>
    /// The owner, acting for a consumer that is gone: puts fresh memory under the rings (whoever
    /// kept a mapping of the old now writes where nobody reads), drops every published packet not
    /// yet received, so that the next consumer starts on an empty queue. The caller takes the
    /// buffers back (their holder bit for this queue is still set).
    /// </summary>
    internal void DiscardQueuedForGoneConsumer()
    {
        _memory?.Renew();
        _q.Left = _q.Limit;
        _lastProgress = System.Diagnostics.Stopwatch.GetTimestamp();
        _stuck = false;
        if (Role == QueueRole.Egress)
        {
            _ring.Flush();
            _ring.ResetConsumerSide();
            _recycle.ResetProducerSide();
        }
        else
        {
            // The application was the sender and the spares' consumer: the owner is the other end of each.
            _ring.ResetProducerSide();
            _recycle.Flush();
            _recycle.ResetConsumerSide();
            SparesOut = 0;
        }
    }

    /// <summary>Publishes every packet sent with <c>flush: false</c>. Cheap when there is none.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Flush() => _ring.Flush();

    // ---- consumer side ----

    /// <summary>Takes the next packet if there is one; returns false at once when the queue is empty.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReceive(out PacketHandle packet)
    {
        while (_ring.Available(1) != 0)
        {
            uint index = _ring.Get(0);
            _ring.Consume(1);
            if (Accept(index))
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

    /// <summary>
    /// Takes up to <c>packets.Length</c> packets, in order, and returns how many; 0 at once when the
    /// queue is empty. A slot holding an index outside the cluster is skipped and counted as an error.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int ReceiveBurst(Span<PacketHandle> packets)
    {
        int n = _ring.Available(packets.Length);
        int got = 0;
        // The slots and the buffers' bounds in locals, which the JIT keeps in registers; every index is checked against the
        // cluster's buffers, and the owner of an ingress queue also checks that it names a spare it gave out (Accept).
        uint* slots = _ring.Slots;
        ulong mask = _ring.Mask, at = _ring.ConsumerPosition;
        BufferRegion buffers = _buffers;
        bool spares = Role == QueueRole.Ingress && _holders is not null;
        for (int i = 0; i < n; i++)
        {
            uint index = slots[(at + (ulong)i) & mask];
            if (spares ? Accept(index) : buffers.Contains(index)) packets[got++] = buffers.At(index);
            else _ring.CountConsumerError();
        }
        if (n != 0) _ring.Consume(n);
        else _owner?.Check();
        return got;
    }

    /// <summary>
    /// As <see cref="ReceiveBurst(Span{PacketHandle})"/>, but when the queue is empty waits as
    /// <paramref name="wait"/> says until a packet comes or <paramref name="cancel"/> is signalled
    /// (a passive wait notices the token within 50 ms). Returns 0 only when cancelled.
    /// </summary>
    public int ReceiveBurst(Span<PacketHandle> packets, QueueWait wait, CancellationToken cancel = default)
    {
        int n = ReceiveBurst(packets);
        return n != 0 || wait == QueueWait.None ? n : ReceiveWaiting(packets, wait, cancel);
    }

    /// <summary>Takes the next packet, waiting as <paramref name="wait"/> says; false only when cancelled or, without a wait, when empty.</summary>
    public bool Receive(out PacketHandle packet, QueueWait wait, CancellationToken cancel = default)
    {
        packet = default;
        return ReceiveBurst(new Span<PacketHandle>(ref packet), wait, cancel) == 1;
    }

    /// <summary>
    /// Consumer: a descriptor to wait on with poll, select or epoll (libpcap's selectable descriptor), readable while
    /// packets wait once <see cref="PrepareToWait"/> has been called; it stays the same for as long as the queue lasts.
    /// </summary>
    public int WaitDescriptor => (_ring.Wakeup ?? throw new InvalidOperationException($"queue {Id}: only the receiving end of a queue waits")).Descriptor;

    /// <summary>
    /// Consumer, each time before its event loop waits on <see cref="WaitDescriptor"/>: true when no packet waits, and the
    /// descriptor becomes readable when one comes; false when packets wait, and the descriptor is readable already.
    /// <paramref name="packetsInHand"/>: the consumer holds received packets it has not handed on yet, which wait as much.
    /// Costs the producer nothing while the consumer is busy: it looks for a waiting consumer with a read of a line the
    /// consumer writes only here.
    /// </summary>
    public bool PrepareToWait(bool packetsInHand = false)
    {
        Wakeup wakeup = _ring.Wakeup ?? throw new InvalidOperationException($"queue {Id}: only the receiving end of a queue waits");
        _ = wakeup.Descriptor;   // made on first use: the eventfd SignalSelf writes is part of it
        if (!packetsInHand && _ring.Available(1) == 0 && _ring.Arm()) return true;
        wakeup.SignalSelf();
        return false;
    }

    /// <summary>
    /// Consumer: sleeps until a packet may have come, <paramref name="timeoutMs"/> passes, or a signal handler runs in this
    /// thread, whichever is first; it uses no CPU meanwhile. The caller receives and looks again either way.
    /// </summary>
    public void Wait(int timeoutMs)
    {
        if (_ring.Available(1) == 0) _ring.WaitForData(Math.Max(0, timeoutMs));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private int ReceiveWaiting(Span<PacketHandle> packets, QueueWait wait, CancellationToken cancel)
    {
        int spins = 0;
        while (!cancel.IsCancellationRequested)
        {
            // Active: look again after one pause, so a packet waits for the poll no longer than that. Passive: spin a
            // little longer between looks, some 64 times, then sleep until woken.
            if (wait == QueueWait.Active) Thread.SpinWait(1);
            else if (++spins < 64) Thread.SpinWait(32);
            else _ring.WaitForData(PassiveSliceMs);
            int n = ReceiveBurst(packets);
            if (n != 0) return n;
        }
        return 0;
    }

    /// <summary>
    /// Gives back a packet this consumer received from an egress queue (a packet received from an
    /// ingress queue is the owner's: send it on or release it to its pool). Its buffer returns to its pool once every
    /// queue it was sent to (one, or several after a fan-out) has given it back.
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

    // Writes the index into the next recycle slot (the caller advances). The recycle ring has a
    // slot for every buffer of the cluster and a queue holds a buffer once, so it is full only
    // if something released a buffer twice: that is counted.
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
