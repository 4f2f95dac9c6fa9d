using ZcFlow.Buffers;

namespace ZcFlow.Distribution;

/// <summary>
/// Decides where a packet goes: the set of output queues, bit i for queue i; 0 drops it.
/// Implement it on a struct and pass it as a generic argument: the JIT specialises the worker
/// for it and inlines the call, so no delegate or interface call is paid per packet.
/// </summary>
public interface IDistribution
{
    /// <summary>Where <paramref name="packet"/> goes among <paramref name="queues"/> outputs (1 to 64).</summary>
    ulong Route(in PacketHandle packet, int queues);
}
