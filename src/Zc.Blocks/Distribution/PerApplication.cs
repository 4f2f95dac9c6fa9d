using System.Runtime.CompilerServices;
using ZcFlow.Buffers;

namespace ZcFlow.Distribution;

/// <summary>
/// zbalance_ipc's <c>-n 2,3</c>: several applications, each with its own queues. Every packet
/// reaches every application, and within each the inner distribution picks its queue(s).
/// Application a owns the queues from the sum of the counts before it.
/// </summary>
public struct PerApplication<TInner> : IDistribution where TInner : struct, IDistribution
{
    private readonly int[] _counts;
    private TInner _inner;

    public PerApplication(int[] queuesPerApplication, TInner inner)
    {
        if (queuesPerApplication.Length == 0 || queuesPerApplication.Any(c => c < 1) || queuesPerApplication.Sum() > 64)
            throw new ArgumentException("each application has at least one queue, and there are at most 64 in all", nameof(queuesPerApplication));
        _counts = queuesPerApplication;
        _inner = inner;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Route(in PacketHandle packet, int queues)
    {
        if (_counts.Length == 1) return _inner.Route(packet, _counts[0]);
        ulong mask = 0;
        int first = 0;
        foreach (int count in _counts)
        {
            mask |= _inner.Route(packet, count) << first;
            first += count;
        }
        return mask;
    }
}
