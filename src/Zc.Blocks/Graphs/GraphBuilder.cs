using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Filters;
using ZcFlow.Queues;
using ZcFlow.Workers;

namespace ZcFlow.Graphs;

/// <summary>
/// The graph of PF_RING's documentation in a few lines: a cluster, devices aggregated into a
/// balancer, queues for one or several applications, a distribution, pinned workers.
/// <code>
/// using Graph graph = GraphBuilder.Cluster(99)
///     .Input("gen:64", "pcap:trace.pcap")      // aggregated into one balancer
///     .Applications(2, 1)                      // two queues for one application, one for another
///     .Balance(new FiveTupleHash(), core: 1);  // runs; consumers attach to zc:99@0, @1, @2
/// </code>
/// Each <see cref="Input"/> makes one balancer, with its own worker, pool and queues. What it is given is a
/// <see cref="BalancerOptions"/>, checked and built as that is (the same checks, the same messages); this is its fluent
/// form, with distributions of your own.
/// </summary>
public sealed class GraphBuilder
{
    private readonly uint _id;
    private readonly List<string[]> _inputs = [];
    private ClusterOptions _options = new();
    private int[] _applications = [1];
    private int _slots = Topology.DefaultQueueSlots;
    private bool _lossless;    // zbalance_ipc's: a full queue drops (Topology's graphs wait instead)
    private bool _activeWait;
    private TimeSpan _delay;
    private int? _consumerBuffers;
    private BpfFilter? _filter;
    private VlanAllowList? _vlans;
    private IpRules? _rules;
    private int? _timePulseCore;
    private long _timePulseResolutionNs;
    private readonly Dictionary<int, BpfFilter> _outputFilters = [];
    private readonly List<(int Output, string Device)> _egress = [];

    private GraphBuilder(uint id) => _id = id;

    public static GraphBuilder Cluster(uint id) => new(id);

    /// <summary>Buffer size and count, hugepages and the rest (the buffer count is shared by the balancers).</summary>
    public GraphBuilder Options(ClusterOptions options) { _options = options; return this; }

    /// <summary>
    /// Devices aggregated into one balancer; call again for another balancer. <c>Q</c> (zbalance_ipc's
    /// <c>-i Q</c>) is an ingress queue that another process sends into (<c>Send -i zc:&lt;cluster&gt;@&lt;queue&gt;</c>):
    /// as in zbalance_ipc, a balancer's ingress queues take the first queue ids, then come its output queues.
    /// </summary>
    public GraphBuilder Input(params string[] devices)
    {
        if (devices.Length == 0) throw new ArgumentException("an input needs at least one device", nameof(devices));
        _inputs.Add(devices);
        return this;
    }

    /// <summary>Queues per application (zbalance_ipc's <c>-n 2,1</c>); one application with one queue by default.</summary>
    public GraphBuilder Applications(params int[] queuesPerApplication)
    {
        ApplicationQueues.Check(queuesPerApplication, nameof(queuesPerApplication));
        _applications = [.. queuesPerApplication];
        return this;
    }

    /// <summary>Slots of each queue (<see cref="Topology.DefaultQueueSlots"/> unless set).</summary>
    public GraphBuilder QueueSlots(int slots) { _slots = slots; return this; }

    /// <summary>zbalance_ipc's <c>-b</c>: each consumer may hold this many buffers beyond its queue, and the cluster is sized from it (<see cref="BalancerOptions.ConsumerBuffers"/>).</summary>
    public GraphBuilder ConsumerBuffers(int buffers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(buffers);
        _consumerBuffers = buffers;
        return this;
    }

    /// <summary>Never drop at a full queue: leave the inputs unread until there is room (see <see cref="Balancer{T}"/>).</summary>
    public GraphBuilder Lossless(bool lossless = true) { _lossless = lossless; return this; }

    /// <summary>Busy-poll when idle (zbalance_ipc's <c>-a</c>).</summary>
    public GraphBuilder ActiveWait(bool active = true) { _activeWait = active; return this; }

    /// <summary>Creates the queues, then waits this long before processing, so consumers can attach (<c>-W</c>).</summary>
    public GraphBuilder DelayStart(TimeSpan delay) { _delay = delay; return this; }

    /// <summary>Only packets that pass <paramref name="filter"/> are balanced (zbalance_ipc's <c>-f</c>); see <see cref="IBalancer.Filter"/> to swap it later.</summary>
    public GraphBuilder Filter(BpfFilter? filter) { _filter = filter; return this; }

    /// <summary>Only packets with one of these VLAN ids in a tag are balanced (zbalance_ipc's <c>-x</c>), apart from <see cref="Filter"/>.</summary>
    public GraphBuilder Vlans(VlanAllowList? vlans) { _vlans = vlans; return this; }

    /// <summary>
    /// Only packets that pass <paramref name="filter"/> go to output <paramref name="output"/> of each balancer
    /// (zbalance_ipc's <c>-f file@output</c>; with one balancer and no ingress queue, the output is the queue id).
    /// </summary>
    public GraphBuilder OutputFilter(int output, BpfFilter filter)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(output);
        _outputFilters[output] = filter ?? throw new ArgumentNullException(nameof(filter));
        return this;
    }

    /// <summary>Pass or drop by IP address (zbalance_ipc's <c>-Z</c>); see <see cref="IBalancer.Rules"/> to swap them later.</summary>
    public GraphBuilder Rules(IpRules? rules) { _rules = rules; return this; }

    /// <summary>Stamps every packet with the time it is taken in, from a <see cref="Workers.TimePulse"/> thread on <paramref name="core"/> (<c>-S core -R ns</c>).</summary>
    public GraphBuilder TimePulse(int core, long resolutionNs = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(resolutionNs);
        (_timePulseCore, _timePulseResolutionNs) = (core, resolutionNs);
        return this;
    }

    /// <summary>What goes to output <paramref name="output"/> (a queue id) is sent out of <paramref name="device"/> instead (zbalance_ipc's <c>-r 0:eth1</c>; one input, as there).</summary>
    public GraphBuilder Egress(int output, string device)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(output);
        ArgumentException.ThrowIfNullOrEmpty(device);
        _egress.Add((output, device));
        return this;
    }

    /// <summary>Builds and runs the graph with a distribution of your own (a struct: no call per packet is virtual).</summary>
    public Graph Balance<T>(T distribution, params int[] cores) where T : struct, IDistribution
        => Build((pool, inputs, outputs, lossless) => new Balancer<PerApplication<T>>(pool, inputs, outputs, new PerApplication<T>(_applications, distribution), lossless), cores);

    /// <summary>
    /// Builds and runs the graph for two applications (<c>Applications(4, 2)</c>), each with a distribution of its own:
    /// both get every packet, the first spread over its queues by <paramref name="first"/>, the second over its own by
    /// <paramref name="second"/> (<see cref="Applications{TFirst, TRest}"/>).
    /// </summary>
    public Graph Balance<TFirst, TSecond>(TFirst first, TSecond second, params int[] cores)
        where TFirst : struct, IDistribution where TSecond : struct, IDistribution
    {
        RequireApplications(2);
        var distribution = new Applications<TFirst, TSecond>(first, _applications[0], second);
        return Build((pool, inputs, outputs, lossless) => new Balancer<Applications<TFirst, TSecond>>(pool, inputs, outputs, distribution, lossless), cores);
    }

    /// <summary>As the two-application form, for three applications (<c>Applications(4, 2, 1)</c>): nProbe, Suricata and Zeek on one link.</summary>
    public Graph Balance<TFirst, TSecond, TThird>(TFirst first, TSecond second, TThird third, params int[] cores)
        where TFirst : struct, IDistribution where TSecond : struct, IDistribution where TThird : struct, IDistribution
    {
        RequireApplications(3);
        var distribution = new Applications<TFirst, Applications<TSecond, TThird>>(first, _applications[0],
            new Applications<TSecond, TThird>(second, _applications[1], third));
        return Build((pool, inputs, outputs, lossless) => new Balancer<Applications<TFirst, Applications<TSecond, TThird>>>(pool, inputs, outputs, distribution, lossless), cores);
    }

    private void RequireApplications(int distributions)
    {
        if (_applications.Length != distributions)
            throw new ArgumentException($"{distributions} distributions, one per application, but the graph has {_applications.Length} application{(_applications.Length == 1 ? "" : "s")}: "
                + $"give each its queues first, as in Applications({string.Join(", ", Enumerable.Range(0, distributions).Select(a => a == 0 ? 4 : 2))})");
    }

    /// <summary>Builds and runs the graph with a zbalance_ipc <c>-m</c> mode (<see cref="BalancerMode"/>).</summary>
    public Graph Balance(HashMode mode, params int[] cores) => ToOptions(cores, mode).Start();

    // With a zbalance_ipc mode and what it needs (-M, -Y, -G).
    internal Graph Balance(HashMode mode, BalancerModeOptions extra, params int[] cores) => ToOptions(cores, mode, extra).Start();

    /// <summary>The name of an ingress queue among a balancer's devices.</summary>
    public const string IngressQueue = "Q";

    /// <summary>Buffers set aside for each input device, when the cluster is sized from the quotas (<see cref="ConsumerBuffers"/>).</summary>
    public const int BuffersPerDevice = 4096;

    private Graph Build(Func<BufferOwner, IPacketSource[], EgressQueue[], bool, IBalancer> make, int[] cores) => ToOptions(cores).Build(make);

    // What this builder was given, as the one options model; checked there, with its messages.
    private BalancerOptions ToOptions(int[] cores, HashMode mode = HashMode.RoundRobin, BalancerModeOptions? extra = null)
    {
        if (_inputs.Count == 0) throw new InvalidOperationException("the graph has no input: call Input(\"gen:64\") or name a device");
        return new BalancerOptions
        {
            ClusterId = _id,
            Cluster = _options,
            Inputs = _inputs,
            Applications = _applications,
            Mode = mode,
            Cores = cores,
            QueueSlots = _slots,
            ConsumerBuffers = _consumerBuffers,
            Filter = _filter,
            OutputFilters = _outputFilters,
            Vlans = _vlans,
            Rules = _rules,
            VlanQueues = extra?.VlanQueues ?? [],
            VlanEtherType = extra?.VlanEtherType ?? VlanMap.DefaultEtherType,
            GtpControl = extra?.GtpControl,
            TimePulseCore = _timePulseCore,
            TimePulseResolutionNs = _timePulseResolutionNs,
            Egress = _egress,
            Lossless = _lossless,
            ActiveWait = _activeWait,
            DelayStart = _delay,
        };
    }
}
