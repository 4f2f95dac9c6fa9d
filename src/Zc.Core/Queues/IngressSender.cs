using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Ipc;

namespace ZcFlow.Queues;

/// <summary>
/// An application's end of an ingress queue (<see cref="IngressQueue"/>): it takes the empty buffers the owner stocked
/// for it (<see cref="TakeSpares"/>), fills them, and sends them. Another process has it as
/// <see cref="AttachedQueue.Sender"/>, and may write those spares and no other buffer of the cluster; the owner checks
/// every index that comes back.
/// </summary>
public sealed class IngressSender : QueueSender
{
    internal IngressSender(int id, SpscRing ring, SpscRing spares, BufferRegion buffers, OwnerWatch? owner)
        : base(id, QueueRole.Ingress, ring, spares, buffers, owner)
    {
    }

    /// <summary>
    /// Takes up to <c>spares.Length</c> empty buffers the owner stocked for this queue and returns how many: fill them and
    /// send them. 0 when the owner has not stocked any yet.
    /// </summary>
    public int TakeSpares(Span<PacketHandle> spares)
    {
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override bool TrySend(in PacketHandle packet, bool flush = true)
    {
        if (_ring.Claim(1) == 0)
        {
            _ring.CountDropped(1);
            return false;
        }
        _ring.Put(0, packet.Index);
        _ring.Advance(1);
        if (flush) _ring.Flush();
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private protected override int SendSome(ReadOnlySpan<PacketHandle> packets)
    {
        int n = _ring.Claim(packets.Length);
        for (int i = 0; i < n; i++) _ring.Put(i, packets[i].Index);
        _ring.Advance(n);
        return n;
    }
}
