using ZcFlow.Devices;
using ZcFlow.Queues;

namespace ZcFlow.Workers;

/// <summary>A balancer whatever its distribution: what a graph and a stats printer need of it.</summary>
public interface IBalancer
{
    /// <summary>One turn; returns the packets it moved. Owner thread only.</summary>
    int DoWork();

    ulong Received { get; }

    ulong Filtered { get; }

    bool InputsExhausted { get; }

    IReadOnlyList<IPacketSource> Inputs { get; }

    IReadOnlyList<ZcQueue> Outputs { get; }
}
