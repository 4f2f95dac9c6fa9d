using System.Runtime.CompilerServices;
using ZcFlow.Buffers;

namespace ZcFlow.Distribution;

/// <summary><c>-m 2</c>: every packet to every queue.</summary>
public struct FanOutAll : IDistribution
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Route(in PacketHandle packet, int queues) => queues == 64 ? ulong.MaxValue : (1UL << queues) - 1;
}
