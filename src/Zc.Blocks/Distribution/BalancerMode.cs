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
        "0 round-robin, 1 IP hash, 2 fan-out to every queue, 3 fan-out to the first queue and round-robin over the rest, " +
        "4 GTP (GTP-C by sequence number, GTP-U by inner IPs and ports, else outer IPs and ports), " +
        "5 GRE (inner IPs, else outer IPs and ports), 6 input device i to queue i, " +
        "7 VLAN id under EtherType -Y to the queue -M names (other EtherTypes to queue 0), 8 symmetric 5-tuple";

    /// <summary>Modes that spread over the queues of several applications (<c>-n 2,3</c>); the others feed one.</summary>
    public static bool AllowsApplications(HashMode mode) => mode is HashMode.RoundRobin or HashMode.IpHash or HashMode.Gtp or HashMode.Gre or HashMode.InterfaceIndex or HashMode.FiveTuple;

    /// <summary>The modes <see cref="AllowsApplications"/> allows, as messages name them.</summary>
    public const string ApplicationModes = "0, 1, 4, 5, 6 or 8";

    /// <summary>Why <paramref name="mode"/> cannot feed these applications, or null when it can: the one message for every place that takes both.</summary>
    internal static string? ApplicationsProblem(HashMode mode, IReadOnlyList<int> applications)
        => applications.Count > 1 && !AllowsApplications(mode)
            ? $"mode {(int)mode} feeds one application; several ({string.Join(',', applications)} queues) need mode {ApplicationModes}" : null;

    internal static void CheckApplications(HashMode mode, int[] applications, string parameter)
    {
        if (ApplicationsProblem(mode, applications) is { } problem) throw new ArgumentException(problem, parameter);
    }

    /// <summary>
    /// A balancer for <paramref name="mode"/> from <paramref name="inputs"/> to <paramref name="outputs"/>,
    /// which hold, in order, the queues of each application (<paramref name="queuesPerApplication"/>).
    /// Balancing modes pick one queue per application; modes 2 and 3 fan out over all the queues.
    /// </summary>
    internal static IBalancer Create(HashMode mode, BufferOwner pool, IReadOnlyList<IPacketSource> inputs, IReadOnlyList<EgressQueue> outputs,
        int[] queuesPerApplication, bool lossless = false, BalancerModeOptions? options = null)
    {
        options ??= new BalancerModeOptions();
        if (queuesPerApplication.Sum() != outputs.Count)
            throw new ArgumentException($"the applications have {queuesPerApplication.Sum()} queues, but {outputs.Count} were given", nameof(queuesPerApplication));
        CheckApplications(mode, queuesPerApplication, nameof(queuesPerApplication));
        if (options.GtpControl is { } control && (mode != HashMode.Gtp || (uint)control.Queue >= (uint)outputs.Count))
            throw new ArgumentException(mode != HashMode.Gtp ? "a GTP-C queue (-G) is for mode 4" : $"the GTP-C queue (-G) is {control.Queue}, but the queues are 0 to {outputs.Count - 1}", nameof(options));
        IBalancer Each<T>(T d) where T : struct, IDistribution
            => new Balancer<PerApplication<T>>(pool, inputs, outputs, new PerApplication<T>(queuesPerApplication, d), lossless);
        IBalancer All<T>(T d) where T : struct, IDistribution
            => new Balancer<T>(pool, inputs, outputs, d, lossless);
        return mode switch
        {
            HashMode.RoundRobin => Each(new RoundRobin()),
            HashMode.IpHash => Each(new IpHash()),
            HashMode.FanOutAll => All(new FanOutAll()),
            HashMode.FanOutFirstRoundRobinRest => All(new FanOutFirstRoundRobinRest()),
            HashMode.Gtp when options.GtpControl is { } gtpc => new Balancer<PerApplication<GtpHash>>(pool, inputs, outputs,
                new PerApplication<GtpHash>(queuesPerApplication, GtpPerApplication(queuesPerApplication, gtpc)), lossless),
            HashMode.Gtp => Each(new GtpHash()),
            HashMode.Gre => Each(new GreHash()),
            HashMode.InterfaceIndex => Each(new InterfaceIndex()),
            HashMode.Vlan => All(VlanBalancer(options, outputs.Count)),
            HashMode.FiveTuple => Each(new FiveTupleHash()),
            _ => throw new ArgumentOutOfRangeException(nameof(mode), (int)mode, $"hash modes are 0 to 8: {Help}"),
        };
    }

    // -G q:v: the application that owns queue q sends GTP-C v there alone; the others balance it as any GTP-C.
    private static GtpHash[] GtpPerApplication(int[] queuesPerApplication, (int Queue, int Version) control)
    {
        var inner = new GtpHash[queuesPerApplication.Length];
        for (int a = 0, first = 0; a < inner.Length; first += queuesPerApplication[a++])
            if (control.Queue >= first && control.Queue < first + queuesPerApplication[a]) inner[a] = new GtpHash(control.Queue - first, control.Version);
        return inner;
    }

    private static VlanMap VlanBalancer(BalancerModeOptions options, int queues)
    {
        var map = new VlanMap(options.VlanQueues, options.VlanEtherType);
        if (map.Queues != queues)
            throw new ArgumentException($"mode 7 has queue 0 and one queue for each VLAN id (-M): {map.Queues} queues, but {queues} were given", nameof(options));
        return map;
    }
}

/// <summary>What some <see cref="BalancerMode"/> modes need beyond their number.</summary>
internal sealed record BalancerModeOptions
{
    /// <summary>Mode 7 (<c>-M</c>): the VLAN id of queue 1, 2, and so on.</summary>
    public IReadOnlyList<int> VlanQueues { get; init; } = [];

    /// <summary>Mode 7 (<c>-Y</c>): the EtherType of the frames whose VLAN tag picks the queue.</summary>
    public ushort VlanEtherType { get; init; } = VlanMap.DefaultEtherType;

    /// <summary>Mode 4 (<c>-G queue:version</c>): GTP-C of this version goes to this queue (an index among all the queues), which takes nothing else.</summary>
    public (int Queue, int Version)? GtpControl { get; init; }
}
