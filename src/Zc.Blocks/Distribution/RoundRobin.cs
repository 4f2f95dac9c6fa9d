using System.Runtime.CompilerServices;
using ZcFlow.Buffers;

namespace ZcFlow.Distribution;

/// <summary><c>-m 0</c>: packets in turn to each queue.</summary>
public struct RoundRobin : IDistribution
{
    private uint _next;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Route(in PacketHandle packet, int queues)
    {
        uint q = _next;
        _next = q + 1 == (uint)queues ? 0 : q + 1;
        return 1UL << (int)q;
    }
}
