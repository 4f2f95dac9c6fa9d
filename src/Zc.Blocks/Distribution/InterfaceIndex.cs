using System.Runtime.CompilerServices;
using ZcFlow.Buffers;

namespace ZcFlow.Distribution;

/// <summary><c>-m 6</c>: the input device's index picks the queue (index modulo the queue count).</summary>
public struct InterfaceIndex : IDistribution
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Route(in PacketHandle packet, int queues) => 1UL << (int)(packet.DeviceIndex % (uint)queues);
}
