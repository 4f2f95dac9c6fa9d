using System.Runtime.CompilerServices;
using ZcFlow.Buffers;

namespace ZcFlow.Distribution;

/// <summary><c>-m 3</c>: every packet to the first queue, and in turn to one of the others.</summary>
public struct FanOutFirstRoundRobinRest : IDistribution
{
    private uint _next;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Route(in PacketHandle packet, int queues)
    {
        if (queues == 1) return 1;
        uint q = _next;
        _next = q + 1 == (uint)(queues - 1) ? 0 : q + 1;
        return 1UL | 1UL << (int)(q + 1);
    }
}
