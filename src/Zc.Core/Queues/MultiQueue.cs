using System.Numerics;
using System.Runtime.CompilerServices;
using ZcFlow.Buffers;

namespace ZcFlow.Queues;

/// <summary>
/// One send reaching several queues without copying the packet, PF_RING ZC's multi-queue:
/// each queue that takes it holds the buffer, and it returns to its pool when the last of
/// them has given it back. Up to 64 queues; the owner's sending thread only.
/// </summary>
public sealed class MultiQueue
{
    private readonly EgressQueue[] _queues;
    private readonly ulong _all;

    public MultiQueue(params EgressQueue[] queues)
    {
        ArgumentNullException.ThrowIfNull(queues);
        if (queues.Length is 0 or > 64) throw new ArgumentOutOfRangeException(nameof(queues), queues.Length, "a multi-queue spans 1 to 64 queues");
        _queues = (EgressQueue[])queues.Clone();
        _all = queues.Length == 64 ? ulong.MaxValue : (1UL << queues.Length) - 1;
    }

    public int Count => _queues.Length;

    /// <summary>The mask that names every queue.</summary>
    public ulong All => _all;

    /// <summary>The queue at bit <paramref name="i"/> of a mask.</summary>
    public EgressQueue this[int i] => _queues[i];

    /// <summary>
    /// Sends <paramref name="packet"/>, which the caller holds, to every queue whose bit is set in
    /// <paramref name="mask"/> (bits past <see cref="Count"/> are ignored) and returns how many took
    /// it; a full queue counts a drop. If none did, the packet is still the caller's to release;
    /// otherwise the caller's hold passes to the queues.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Send(in PacketHandle packet, ulong mask, bool flush = true)
    {
        mask &= _all;
        int taken = 0;
        for (ulong m = mask; m != 0; m &= m - 1)
            if (_queues[BitOperations.TrailingZeroCount(m)].TrySend(packet, flush: false)) taken++;
        if (flush && taken != 0)
            for (ulong m = mask; m != 0; m &= m - 1)
                _queues[BitOperations.TrailingZeroCount(m)].Flush();
        return taken;
    }

    /// <summary>
    /// As <see cref="Send(in PacketHandle, ulong, bool)"/>, but first waits, as <paramref name="wait"/>
    /// says, until every selected queue has room, so that each of them takes the packet. Returns
    /// fewer than selected only when cancelled.
    /// </summary>
    public int Send(in PacketHandle packet, ulong mask, QueueWait wait, bool flush = true, CancellationToken cancel = default)
    {
        if (wait != QueueWait.None)
            for (ulong m = mask & _all; m != 0; m &= m - 1)
                if (!_queues[BitOperations.TrailingZeroCount(m)].WaitForRoom(1, wait, cancel)) break;
        return Send(packet, mask, flush);
    }

    /// <summary>Publishes what was sent with <c>flush: false</c> on every queue.</summary>
    public void Flush()
    {
        foreach (EgressQueue q in _queues) q.Flush();
    }
}
