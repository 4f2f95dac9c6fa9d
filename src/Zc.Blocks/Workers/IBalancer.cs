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

    /// <summary>True once every input is exhausted and all that was taken from them has been sent on.</summary>
    bool Finished { get; }

    IReadOnlyList<IPacketSource> Inputs { get; }

    IReadOnlyList<EgressQueue> Outputs { get; }

    /// <summary>
    /// A filter every input packet must pass, or null for none. May be swapped while the
    /// balancer runs (zbalance_ipc reloads its <c>-f</c> file on SIGUSR1); the next packet uses the new one.
    /// </summary>
    Filters.BpfFilter? Filter { get; set; }

    /// <summary>
    /// VLAN ids an input packet must carry in one of its tags (zbalance_ipc's <c>-x</c>), or null for
    /// any; checked apart from <see cref="Filter"/>. May be swapped while the balancer runs.
    /// </summary>
    Filters.VlanAllowList? Vlans { get; set; }

    /// <summary>
    /// Rules by source and destination IP address (zbalance_ipc's <c>-Z</c>, set through ZeroMQ), or null
    /// for none; checked apart from <see cref="Filter"/>. May be swapped while the balancer runs.
    /// </summary>
    Filters.IpRules? Rules { get; set; }

    /// <summary>When set, every packet is stamped with its time as it is taken in (<c>-S</c>). Before the balancer runs.</summary>
    TimePulse? Clock { get; set; }

    /// <summary>A filter for one output: packets the distribution sends there go only if they pass. Before the balancer runs.</summary>
    void SetOutputFilter(int output, Filters.BpfFilter? filter);

    /// <summary>Sends what the distribution sends to <paramref name="output"/> out of a device instead of into its queue (<c>-r 0:eth1</c>). Before the balancer runs.</summary>
    void SetEgress(int output, IPacketSink sink);

    /// <summary>The devices set with <see cref="SetEgress"/>, by output (null where it is a queue).</summary>
    IReadOnlyList<IPacketSink?> Egress { get; }
}
