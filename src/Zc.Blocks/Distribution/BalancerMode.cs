using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Queues;
using ZcFlow.Workers;

namespace ZcFlow.Distribution;

/// <summary>zbalance_ipc's <c>-m</c> modes, as balancers over the queues of one or several applications.</summary>
public static class BalancerMode
{
    /// <summary>What each mode does, for usage texts.</summary>
    public const string Help =
        "0 round-robin, 1 IP hash, 2 fan-out to every queue, 3 fan-out to the first application's queue and round-robin over the rest, " +
        "4 GTP (inner flow, else tunnel id, else outer IP), 5 GRE (inner, else outer), 6 input interface, 7 VLAN id, 8 symmetric 5-tuple";

    /// <summary>
    /// A balancer for <paramref name="mode"/> from <paramref name="inputs"/> to <paramref name="outputs"/>,
    /// which hold, in order, the queues of each application (<paramref name="queuesPerApplication"/>).
    /// Balancing modes pick one queue per application; modes 2 and 3 fan out over all the queues.
    /// </summary>
    public static IBalancer Create(int mode, BufferPool pool, IReadOnlyList<IPacketSource> inputs, IReadOnlyList<ZcQueue> outputs,
        int[] queuesPerApplication, bool lossless = false)
    {
        if (queuesPerApplication.Sum() != outputs.Count)
            throw new ArgumentException($"the applications have {queuesPerApplication.Sum()} queues, but {outputs.Count} were given", nameof(queuesPerApplication));
        IBalancer Each<T>(T d) where T : struct, IDistribution
            => new Balancer<PerApplication<T>>(pool, inputs, outputs, new PerApplication<T>(queuesPerApplication, d), lossless);
        IBalancer All<T>(T d) where T : struct, IDistribution
            => new Balancer<T>(pool, inputs, outputs, d, lossless);
        return mode switch
        {
            0 => Each(new RoundRobin()),
            1 => Each(new IpHash()),
            2 => All(new FanOutAll()),
            3 => All(new FanOutFirstRoundRobinRest()),
            4 => Each(new GtpHash()),
            5 => Each(new GreHash()),
            6 => Each(new InterfaceIndex()),
            7 => Each(default(VlanMap)),
            8 => Each(new FiveTupleHash()),
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, $"hash modes are 0 to 8: {Help}"),
        };
    }
}
