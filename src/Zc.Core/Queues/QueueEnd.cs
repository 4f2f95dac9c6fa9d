using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Ipc;

namespace ZcFlow.Queues;

/// <summary>
/// One end of a cluster's queue, PF_RING ZC's queue: a lock-free single-producer single-consumer ring of buffer indices
/// in the cluster's memory, with a second ring that carries the buffers back. Only indices move; the bytes stay where
/// the device wrote them. Each end is a type of its own, exposing only what that end may do:
/// <list type="bullet">
/// <item><see cref="EgressQueue"/>: the owner sends to an application; <see cref="QueueConsumer"/>: that application
/// (a thread of the owner's process, <see cref="EgressQueue.Consumer"/>, or another process, <see cref="AttachedQueue"/>)
/// receives and releases.</item>
/// <item><see cref="IngressSender"/>: an application fills spare buffers the owner stocked and sends them into the cluster;
/// <see cref="IngressQueue"/>: the owner receives them, checked, and holds them like buffers of its own pool.</item>
/// </list>
/// Every end of one queue shares the one ring implementation, in threads of one process or across processes alike.
/// </summary>
public abstract unsafe class QueueEnd
{
    private protected readonly SpscRing _ring;      // packets, producer -> consumer
    private protected readonly SpscRing _recycle;   // buffers going back: consumer -> pool, or the owner's spares -> application
    private protected readonly BufferRegion _buffers;
    private protected readonly OwnerWatch? _owner;  // an end attached from another process: its watch on the owner

    private protected QueueEnd(int id, QueueRole role, SpscRing ring, SpscRing recycle, BufferRegion buffers, OwnerWatch? owner)
    {
        Id = id;
        Role = role;
        _ring = ring;
        _recycle = recycle;
        _buffers = buffers;
        _owner = owner;
    }

    /// <summary>The queue's number in its cluster: the <c>0</c> of <c>zc:99@0</c>.</summary>
    public int Id { get; }

    /// <summary>Which way the queue carries packets: owner to application, or application to owner.</summary>
    public QueueRole Role { get; }

    /// <summary>How many packets it holds when full.</summary>
    public int Capacity => _ring.Capacity;

    /// <summary>
    /// The counters as this end keeps them, readable from any thread: nothing here is read back from shared memory that
    /// the other end could have written, except the other end's progress, which is checked (a receiving end shows its
    /// producer's drops as the producer said).
    /// </summary>
    public abstract QueueStats Stats { get; }

    /// <summary>No published packet is waiting, as this end last saw it.</summary>
    public abstract bool IsEmpty { get; }

    internal SpscRing ForwardRing => _ring;

    internal SpscRing RecycleRing => _recycle;

    internal BufferRegion Buffers => _buffers;

    internal ulong Bit => 1UL << Id;

    /// <summary>The owner's record of the consumer process at the other end of a queue it owns; null on the other ends.</summary>
    internal virtual ConsumerLink? Link => null;

    /// <summary>A queue the owner owns: copies its counters into its directory entry, for the listing (the socket thread).</summary>
    internal virtual void Publish()
    {
    }
}

/// <summary>
/// The end of a queue that sends: the owner's end of an <see cref="EgressQueue"/>, or an application's end of an ingress
/// queue (<see cref="IngressSender"/>). Sends are batched: <c>flush: false</c> writes slots without publishing them, and
/// <see cref="Flush"/> publishes everything written so far with one release store.
/// </summary>
public abstract class QueueSender : QueueEnd
{
    private protected QueueSender(int id, QueueRole role, SpscRing ring, SpscRing recycle, BufferRegion buffers, OwnerWatch? owner)
        : base(id, role, ring, recycle, buffers, owner)
    {
    }

    public override QueueStats Stats
    {
        get
        {
            // What was taken out is read before what was put in, so that a snapshot taken while packets flow never shows
            // more received than sent (read the other way round, the consumer could pass the sent count in between).
            ulong received = _ring.ObservedHead;
            return new QueueStats(_ring.Published, received, _ring.Dropped, _ring.Errors + _recycle.Errors);
        }
    }

    public override bool IsEmpty => _ring.Count == 0;

    /// <summary>This end cannot send now.</summary>
    public virtual bool IsFull => _ring.LooksFull;

    /// <summary>This end can send <paramref name="packets"/> now without a drop.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool HasRoom(int packets) => Room(packets) == packets;

    /// <summary>How many of <paramref name="want"/> packets this end can send now.</summary>
    public virtual int Room(int want) => want <= 0 ? 0 : _ring.Claim(want);

    /// <summary>
    /// Puts <paramref name="packet"/> in the queue; with <paramref name="flush"/> the consumer sees it at once. Returns
    /// false when the queue is full: the drop is counted and the packet stays the caller's to release or retry.
    /// </summary>
    public abstract bool TrySend(in PacketHandle packet, bool flush = true);

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

    /// <summary>Publishes every packet sent with <c>flush: false</c>. Cheap when there is none.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Flush() => _ring.Flush();

    /// <summary>Writes as many of <paramref name="packets"/> as there is room for, unpublished, and returns how many.</summary>
    private protected abstract int SendSome(ReadOnlySpan<PacketHandle> packets);

    /// <summary>
    /// Waits, as <paramref name="wait"/> says, until <paramref name="want"/> slots are free (the whole queue at most) and
    /// there is room for at least one more packet; false if cancelled first. Publishes what was sent without a flush before
    /// waiting: the consumer cannot make room otherwise. Waiting for the slots of a whole burst, not the first free one,
    /// keeps a full queue's sends whole: taken slot by slot, every packet would cost a publication, and the queue would
    /// run at the speed of the cores passing its index. Slots come free as the consumer receives; an egress queue's quota
    /// only as it releases, which it may do only when more packets come, so that part is not waited for in bulk.
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
}

/// <summary>
/// The end of a queue that receives: an application's end of an egress queue (<see cref="QueueConsumer"/>), or the owner's
/// end of an ingress queue (<see cref="IngressQueue"/>). A receive publishes the freed slots at once.
/// </summary>
public abstract class QueueReceiver : QueueEnd
{
    private const int PassiveSliceMs = 50;

    private protected QueueReceiver(int id, QueueRole role, SpscRing ring, SpscRing recycle, BufferRegion buffers, OwnerWatch? owner)
        : base(id, role, ring, recycle, buffers, owner)
    {
    }

    public override QueueStats Stats
    {
        get
        {
            ulong consumed = _ring.Consumed;
            return new QueueStats(_ring.ObservedTail, consumed, _ring.Dropped, _ring.Errors + _recycle.Errors);
        }
    }

    public override bool IsEmpty => _ring.Available(1) == 0;

    /// <summary>Takes the next packet if there is one; returns false at once when the queue is empty.</summary>
    public abstract bool TryReceive(out PacketHandle packet);

    /// <summary>
    /// Takes up to <c>packets.Length</c> packets, in order, and returns how many; 0 at once when the queue is empty. A slot
    /// holding an index this end may not take (outside the cluster, or for an ingress queue's owner not a spare it gave
    /// out) is skipped and counted as an error.
    /// </summary>
    public abstract int ReceiveBurst(Span<PacketHandle> packets);

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
    /// A descriptor to wait on with poll, select or epoll (libpcap's selectable descriptor), readable while packets wait
    /// once <see cref="PrepareToWait"/> has been called; it stays the same for as long as the queue lasts.
    /// </summary>
    public int WaitDescriptor => Wakeup.Descriptor;

    private Wakeup Wakeup => _ring.Wakeup ?? throw new InvalidOperationException($"queue {Id} has no wake-up of its own here");

    /// <summary>
    /// Each time before an event loop waits on <see cref="WaitDescriptor"/>: true when no packet waits, and the
    /// descriptor becomes readable when one comes; false when packets wait, and the descriptor is readable already.
    /// <paramref name="packetsInHand"/>: the caller holds received packets it has not handed on yet, which wait as much.
    /// Costs the producer nothing while the consumer is busy: it looks for a waiting consumer with a read of a line the
    /// consumer writes only here.
    /// </summary>
    public bool PrepareToWait(bool packetsInHand = false)
    {
        Wakeup wakeup = Wakeup;
        _ = wakeup.Descriptor;   // made on first use: the eventfd SignalSelf writes is part of it
        if (!packetsInHand && _ring.Available(1) == 0 && _ring.Arm()) return true;
        wakeup.SignalSelf();
        return false;
    }

    /// <summary>
    /// Sleeps until a packet may have come, <paramref name="timeoutMs"/> passes, or a signal handler runs in this thread,
    /// whichever is first; it uses no CPU meanwhile. The caller receives and looks again either way.
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
}
