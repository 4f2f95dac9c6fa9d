using System.Runtime.CompilerServices;
using ZcFlow.Buffers;

namespace ZcFlow.Queues;

/// <summary>
/// The owner's end of a queue from an application into the cluster (zbalance_ipc's <c>-i Q</c>), made with
/// <see cref="ZcCluster.CreateIngressQueue"/>. The owner stocks it with spare buffers (<see cref="BufferPool.Replenish"/>);
/// the application takes them, fills them and sends them (<see cref="IngressSender"/>: <see cref="Application"/> in this
/// process, or <see cref="Ipc.AttachedQueue.Sender"/> in another); the owner receives them here. Each index received must
/// name a spare this queue was given and has not sent yet, and is then the owner's, as a buffer of its pool: send it on,
/// or release it to the pool.
/// </summary>
public sealed class IngressQueue : QueueReceiver
{
    private readonly ConsumerLink _link;
    private readonly ulong[] _holders;   // the cluster's record: this queue's bit is set on the spares it was given
    private readonly ulong _bit;

    internal IngressQueue(int id, SpscRing ring, SpscRing spares, BufferRegion buffers, ulong[] holders, ConsumerLink link)
        : base(id, QueueRole.Ingress, ring, spares, buffers, owner: null)
    {
        _holders = holders;
        _link = link;
        _bit = 1UL << id;
        Application = new IngressSender(id, ring, spares, buffers, owner: null);
    }

    /// <summary>The application's end, for a thread of this process (another process attaches through the socket instead).</summary>
    public IngressSender Application { get; }

    internal override ConsumerLink Link => _link;

    /// <summary>The pid of the application process attached to it as the owner's socket saw it, 0 when none.</summary>
    public int ConsumerPid => _link.Pid;

    /// <summary>Spares stocked and not yet come back filled.</summary>
    internal int SparesOut;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override bool TryReceive(out PacketHandle packet)
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
        packet = default;
        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override int ReceiveBurst(Span<PacketHandle> packets)
    {
        int n = _ring.Available(packets.Length);
        int got = 0;
        for (int i = 0; i < n; i++)
        {
            uint index = _ring.Get(i);
            if (Accept(index)) packets[got++] = _buffers.At(index);
            else _ring.CountConsumerError();
        }
        if (n != 0) _ring.Consume(n);
        return got;
    }

    // An index the application sent must name a spare this queue was given and has not sent yet; the owner then holds it.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Accept(uint index)
    {
        if (!_buffers.Contains(index)) return false;
        ref ulong holders = ref _holders[index];
        if ((holders & _bit) == 0) return false;
        holders &= ~_bit;
        SparesOut--;
        return true;
    }

    /// <summary>The owner's socket thread: copies this queue's counters into its directory entry for the listing.</summary>
    internal override void Publish() => _link.Publish(Stats, held: 0, quota: 0, stuck: false);

    /// <summary>
    /// The owner, acting for an application that is gone: puts fresh memory under the rings and forgets what was sent and
    /// not received; the caller takes back the spares it held (their holder bit for this queue is still set).
    /// </summary>
    internal void DiscardQueuedForGoneConsumer()
    {
        _link.Memory.Renew();
        // The application was the sender and the spares' consumer: the owner is the other end of each.
        _ring.ResetProducerSide();
        _recycle.Flush();
        _recycle.ResetConsumerSide();
        SparesOut = 0;
    }
}
