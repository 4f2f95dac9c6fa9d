using System.Runtime.CompilerServices;
using ZcFlow.Buffers;

namespace ZcFlow.Distribution;

/// <summary>
/// Several applications, each with a distribution of its own type: every packet reaches the first application,
/// on one of its <c>firstQueues</c> queues as <typeparamref name="TFirst"/> says, and every packet reaches the
/// rest (the next queues), as <typeparamref name="TRest"/> says: nest it for a third application. So nProbe
/// can take every packet spread by 5-tuple over 4 queues while Suricata takes every packet by IP pair over 2:
/// <code>new Applications&lt;FiveTupleHash, IpHash&gt;(new(), 4, new())</code> over 6 queues
/// (<see cref="Graphs.GraphBuilder"/>'s <c>Applications(4, 2).Balance(new FiveTupleHash(), new IpHash())</c>).
/// Both are structs, so the worker is specialised for the pair: nothing per packet is a virtual call.
/// Each keeps its own state (a round-robin turn is per application).
/// </summary>
public struct Applications<TFirst, TRest> : IDistribution
    where TFirst : struct, IDistribution
    where TRest : struct, IDistribution
{
    private TFirst _first;
    private TRest _rest;
    private readonly int _firstQueues;
    private readonly ulong _firstMask;

    /// <param name="first">The first application's distribution.</param>
    /// <param name="firstQueues">Its queues: the first ones (1 to 63; the rest take the queues after them).</param>
    /// <param name="rest">The next applications' distribution, over the remaining queues.</param>
    public Applications(TFirst first, int firstQueues, TRest rest)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(firstQueues, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(firstQueues, 63);
        _first = first;
        _rest = rest;
        _firstQueues = firstQueues;
        _firstMask = (1UL << firstQueues) - 1;
    }

    /// <summary>The queues the first application owns; the rest own the ones after them.</summary>
    public readonly int FirstQueues => _firstQueues;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Route(in PacketHandle packet, int queues)
        => (_first.Route(packet, _firstQueues) & _firstMask) | _rest.Route(packet, queues - _firstQueues) << _firstQueues;
}
