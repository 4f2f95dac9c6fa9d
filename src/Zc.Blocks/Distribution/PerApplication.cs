using System.Runtime.CompilerServices;
using ZcFlow.Buffers;

namespace ZcFlow.Distribution;

/// <summary>
/// zbalance_ipc's <c>-n 2,3</c>: several applications, each with its own queues. Every packet
/// reaches every application, and within each the inner distribution picks its queue(s).
/// Application a owns the queues from the sum of the counts before it, and has a copy of the
/// inner distribution of its own, so that state such as a round-robin turn is per application.
/// </summary>
internal struct PerApplication<TInner> : IDistribution where TInner : struct, IDistribution
{
    private readonly int[] _counts;
    private readonly TInner[] _inner;

    public PerApplication(int[] queuesPerApplication, TInner inner)
        : this(queuesPerApplication, [.. queuesPerApplication.Select(_ => inner)])
    {
    }

    /// <summary>Each application with a distribution of its own (<paramref name="inner"/>, one per application).</summary>
    public PerApplication(int[] queuesPerApplication, TInner[] inner)
    {
        ApplicationQueues.Check(queuesPerApplication, nameof(queuesPerApplication));
        if (inner.Length != queuesPerApplication.Length)
            throw new ArgumentException($"{queuesPerApplication.Length} applications, but {inner.Length} distributions", nameof(inner));
        _counts = [.. queuesPerApplication];
        _inner = [.. inner];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Route(in PacketHandle packet, int queues)
    {
        if (_counts.Length == 1) return _inner[0].Route(packet, _counts[0]);
        ulong mask = 0;
        int first = 0;
        for (int a = 0; a < _counts.Length; a++)
        {
            mask |= _inner[a].Route(packet, _counts[a]) << first;
            first += _counts[a];
        }
        return mask;
    }
}

/// <summary>What every way of giving applications their queues checks.</summary>
internal static class ApplicationQueues
{
    /// <summary>At least one application, each with at least one queue, and at most ClusterOptions.QueueLimit queues in all.</summary>
    public static void Check(int[] queuesPerApplication, string parameter)
    {
        ArgumentNullException.ThrowIfNull(queuesPerApplication, parameter);
        if (queuesPerApplication.Length == 0 || queuesPerApplication.Any(c => c < 1) || queuesPerApplication.Sum() > ClusterOptions.QueueLimit)
            throw new ArgumentException($"each application has at least one queue, and there are at most {ClusterOptions.QueueLimit} in all", parameter);
    }
}
