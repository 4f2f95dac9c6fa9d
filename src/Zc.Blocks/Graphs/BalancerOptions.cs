using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Filters;
using ZcFlow.Queues;
using ZcFlow.Workers;

namespace ZcFlow.Graphs;

/// <summary>
/// zbalance_ipc's options as one record: each property is one option (its letter in the summary), each default is set
/// here once, and <see cref="Problems"/> is every check, with one message each. The Balancer sample fills it from a
/// command line and <c>ZcFlow.Hosting</c> from configuration; each names a problem's option in its own words
/// (<c>-M</c>, <c>Balancer:VlanQueues</c>). <see cref="Start"/> builds and starts the graph; <see cref="GraphBuilder"/>
/// is the fluent form of the same options, for distributions of your own.
/// <code>
/// using Graph graph = new BalancerOptions { ClusterId = 99, Applications = [2, 1], Mode = HashMode.IpHash }.Start();
/// </code>
/// </summary>
public sealed class BalancerOptions
{
    /// <summary>The cluster's id when none is given, zbalance_ipc's.</summary>
    internal const uint DefaultClusterId = 103;

    /// <summary>The input when none is given: the built-in generator, 4096 flows of 64-byte frames.</summary>
    internal const string DefaultInput = "gen:64?flows=4096";

    /// <summary>Buffers each consumer may hold beyond its queue when not told, zbalance_ipc's.</summary>
    internal const int DefaultConsumerBuffers = 16;

    /// <summary>Applications a balancer feeds at most, zbalance_ipc's limit.</summary>
    internal const int ApplicationLimit = 32;

    /// <summary>-c: the cluster id.</summary>
    public uint ClusterId { get; init; } = DefaultClusterId;

    /// <summary>-i: one balancer per entry, each aggregating the devices it lists (<c>Q</c> for an ingress queue).</summary>
    public IReadOnlyList<IReadOnlyList<string>> Inputs { get; init; } = [[DefaultInput]];

    /// <summary>-n: queues per application. Mode 7 feeds one application, whose queues are queue 0 and one per VLAN id (<see cref="QueuesPerApplication"/>).</summary>
    public IReadOnlyList<int> Applications { get; init; } = [1];

    /// <summary>-m: how packets are spread over each application's queues.</summary>
    public HashMode Mode { get; init; }

    /// <summary>-g: one core per balancer, or one for all; none: not pinned.</summary>
    public IReadOnlyList<int> Cores { get; init; } = [];

    /// <summary>-q: slots per queue, rounded up to a power of two.</summary>
    public int QueueSlots { get; init; } = Topology.DefaultQueueSlots;

    /// <summary>
    /// -b: buffers each consumer may hold beyond its queue's slots (<see cref="EgressQueue.Quota"/> = slots + buffers). The
    /// cluster is then sized as zbalance_ipc sizes it: every queue's quota, and <see cref="GraphBuilder.BuffersPerDevice"/>
    /// for each input device, whatever <see cref="ClusterOptions.BufferCount"/> says; so no consumer, however it hoards, can
    /// take a buffer another queue or a device needs. Null: no quota beyond the default, and each balancer's pool an even
    /// share of <see cref="ClusterOptions.BufferCount"/>.
    /// </summary>
    public int? ConsumerBuffers { get; init; } = DefaultConsumerBuffers;

    /// <summary>-f: what every input packet must match.</summary>
    public BpfFilter? Filter { get; init; }

    /// <summary>-f file@queue: what the packets of an output (a queue id within each balancer) must match.</summary>
    public IReadOnlyDictionary<int, BpfFilter> OutputFilters { get; init; } = new Dictionary<int, BpfFilter>();

    /// <summary>-x: VLAN ids of which a frame must carry one, apart from <see cref="Filter"/>.</summary>
    public VlanAllowList? Vlans { get; init; }

    /// <summary>-M: for mode 7, the VLAN id of queue 1, 2, and so on.</summary>
    public IReadOnlyList<int> VlanQueues { get; init; } = [];

    /// <summary>-Y: for mode 7, the EtherType of the frames whose VLAN tag picks the queue.</summary>
    public ushort VlanEtherType { get; init; } = VlanMap.DefaultEtherType;

    /// <summary>-G: for mode 4, GTP-C of this version goes to this queue, which takes nothing else.</summary>
    public (int Queue, int Version)? GtpControl { get; init; }

    /// <summary>-S: the core of a time-pulse thread that stamps every packet; none: no stamps.</summary>
    public int? TimePulseCore { get; init; }

    /// <summary>-R: the time pulse's resolution.</summary>
    public long TimePulseResolutionNs { get; init; }

    /// <summary>-r: what goes to an output (a queue id) is sent out of a device instead.</summary>
    public IReadOnlyList<(int Queue, string Device)> Egress { get; init; } = [];

    /// <summary>-L: never drop at a full queue; leave the inputs unread until there is room.</summary>
    public bool Lossless { get; init; }

    /// <summary>-a: busy-poll when idle.</summary>
    public bool ActiveWait { get; init; }

    /// <summary>The cluster's buffers, hugepages (-u: <see cref="ClusterOptions.RequireHugePages"/>) and warnings; room for every queue a balancer may have.</summary>
    public ClusterOptions Cluster { get; init; } = new() { MaxQueues = ClusterOptions.QueueLimit };

    /// <summary>-Z's rules to start with: pass or drop by IP address (<see cref="IBalancer.Rules"/> changes them while running).</summary>
    public IpRules? Rules { get; init; }

    /// <summary>Rules with actions on every input device (<see cref="Topology.DeviceRules"/>): in the kernel for AF_XDP devices, in user space for the others.</summary>
    public Filters.Rules? DeviceRules { get; init; }

    /// <summary>-W: create the queues, then wait this long before processing, so consumers can attach.</summary>
    public TimeSpan DelayStart { get; init; }

    /// <summary>The queues of each application as the balancers make them: mode 7's own, else <see cref="Applications"/>.</summary>
    public IReadOnlyList<int> QueuesPerApplication => Mode == HashMode.Vlan ? [VlanQueues.Count + 1] : Applications;

    /// <summary>What is wrong with these options: each problem names its option by the property's name; empty when nothing is.</summary>
    public IReadOnlyList<(string Option, string Message)> Problems()
    {
        var problems = new List<(string, string)>();
        void Check(bool ok, string option, string message)
        {
            if (!ok) problems.Add((option, message));
        }
        void Add(string option, string? problem)
        {
            if (problem is not null) problems.Add((option, problem));
        }
        Check(Enum.IsDefined(Mode), nameof(Mode), $"{(int)Mode} is not a mode: 0 to 8 ({BalancerMode.Help})");
        Check(Inputs.Count > 0 && Inputs.All(i => i.Count > 0 && i.All(d => !string.IsNullOrWhiteSpace(d))), nameof(Inputs), "each input names one or more devices");
        Add(nameof(Inputs), InterfaceIndexProblem(Mode, Inputs.Count));
        Add(nameof(Applications), BalancerMode.ApplicationsProblem(Mode, Applications));
        if (Mode == HashMode.Vlan)
        {
            Check(VlanQueues.Count is > 0 and < ClusterOptions.QueueLimit, nameof(VlanQueues), $"mode 7 needs the VLAN id of each of its queues after queue 0, 1 to {ClusterOptions.QueueLimit - 1} of them");
        }
        else
        {
            Check(Applications.Count > 0 && Applications.All(n => n > 0), nameof(Applications), "each application has at least one queue");
            Check(Applications.Count <= ApplicationLimit, nameof(Applications), $"{Applications.Count} applications; a balancer feeds up to {ApplicationLimit}");
            Check(Applications.Sum() <= ClusterOptions.QueueLimit, nameof(Applications), $"{Applications.Sum()} queues; a balancer feeds up to {ClusterOptions.QueueLimit}");
            Check(VlanQueues.Count == 0, nameof(VlanQueues), "VLAN ids map to queues in mode 7 only");
            Check(VlanEtherType == VlanMap.DefaultEtherType, nameof(VlanEtherType), "the EtherType of VLAN ids that pick queues is for mode 7 only");
        }
        Check(VlanQueues.All(v => v is >= 0 and <= 4095), nameof(VlanQueues), "VLAN ids are 0 to 4095");
        Check(VlanQueues.Distinct().Count() == VlanQueues.Count, nameof(VlanQueues), "a VLAN id is named twice");
        int queues = QueuesPerApplication.Sum();
        string range = $"a queue from 0 to {queues - 1}";
        if (GtpControl is { } gtpc)
        {
            Check(Mode == HashMode.Gtp, nameof(GtpControl), "a queue of its own for GTP-C is for mode 4 only");
            Check(gtpc.Queue >= 0 && gtpc.Queue < queues, nameof(GtpControl), $"GTP-C goes to queue {gtpc.Queue}; {range}");
            Check(gtpc.Version is 1 or 2, nameof(GtpControl), $"GTP-C version {gtpc.Version}; version 1 or 2");
        }
        Check(Cores.All(c => c >= 0) && (Cores.Count <= 1 || Cores.Count == Inputs.Count), nameof(Cores), $"one core number for each input ({Inputs.Count}), or one for all");
        Check(QueueSlots is >= 2 and <= 1 << 20, nameof(QueueSlots), $"{QueueSlots} slots; 2 to {1 << 20}");
        Check(ConsumerBuffers is null or (>= 0 and <= 1 << 24), nameof(ConsumerBuffers), $"{ConsumerBuffers} buffers; 0 to {1 << 24}");
        Check(OutputFilters.Keys.All(q => q >= 0 && q < queues), nameof(OutputFilters), $"a filter for queue {OutputFilters.Keys.FirstOrDefault(q => q < 0 || q >= queues)}; {range}");
        Check(TimePulseCore is null or >= 0, nameof(TimePulseCore), $"{TimePulseCore} is not a core number");
        Check(TimePulseResolutionNs is >= 0 and <= 1_000_000_000, nameof(TimePulseResolutionNs), $"{TimePulseResolutionNs} ns; 0 to 1,000,000,000");
        Check(TimePulseResolutionNs == 0 || TimePulseCore is not null, nameof(TimePulseResolutionNs), "a resolution for a time pulse that has no core");
        Check(Egress.All(e => e.Queue >= 0 && e.Queue < queues && !string.IsNullOrWhiteSpace(e.Device)), nameof(Egress), $"a queue and a device, {range}");
        Check(Egress.Count == 0 || Inputs.Count == 1, nameof(Egress), "egress takes one input, as in zbalance_ipc: with several balancers, each would send out of the device");
        Check(DelayStart >= TimeSpan.Zero && DelayStart <= TimeSpan.FromHours(1), nameof(DelayStart), "a delay from 0 to an hour");
        return problems;
    }

    // Mode 6's one check, here and in GraphBuilder: the input device's index picks the queue, so with several balancers
    // the indexes would run on from one to the next.
    internal static string? InterfaceIndexProblem(HashMode mode, int inputs)
        => mode == HashMode.InterfaceIndex && inputs > 1 ? "mode 6 (input device i to queue i) takes one input: aggregate the devices into it" : null;

    /// <summary>Builds and starts the graph; options with a problem are refused with an <see cref="ArgumentException"/> naming it.</summary>
    public Graph Start()
    {
        var extra = new BalancerModeOptions { VlanQueues = VlanQueues, VlanEtherType = VlanEtherType, GtpControl = GtpControl };
        int[] applications = [.. QueuesPerApplication];
        return Build((pool, inputs, outputs, lossless) => BalancerMode.Create(Mode, pool, inputs, outputs, applications, lossless, extra));
    }

    /// <summary>Spares an ingress queue's application may hold beyond the queue's slots, as zbalance_ipc sizes them.</summary>
    private const int IngressSpares = 256;

    // The one way a balancer graph is built, for a mode (Start) or for a distribution of the user's (GraphBuilder.Balance): one
    // balancer per input, each with its own pool and its queues (as zbalance_ipc numbers them: its ingress queues, then
    // its outputs), on a topology.
    internal Graph Build(Func<BufferOwner, IPacketSource[], EgressQueue[], bool, IBalancer> make)
    {
        if (Problems() is { Count: > 0 } problems) throw new ArgumentException(string.Join("; ", problems.Select(p => $"{p.Option}: {p.Message}")));
        int queues = QueuesPerApplication.Sum();
        int slots = ZcCluster.QueueCapacity(QueueSlots);
        // With a quota per consumer, each balancer's pool holds every quota and its devices' share; else the count is split evenly.
        int? PoolSize(IReadOnlyList<string> names) => ConsumerBuffers is not int extra ? null
            : queues * (slots + extra) + names.Sum(n => n == GraphBuilder.IngressQueue ? slots + IngressSpares : GraphBuilder.BuffersPerDevice);
        // -Z's rules go into the XDP program of AF_XDP inputs: ZcFlow's, which they get with rules (none, if none were given).
        Filters.Rules? deviceRules = DeviceRules ?? (Rules is not null && Inputs.Any(i => i.Any(Device.RunsRulesInTheKernel)) ? new Filters.Rules() : null);
        Topology topology = Topology.Cluster(ClusterId).Options(Cluster).QueueSlots(QueueSlots).ActiveWait(ActiveWait).Lossless(Lossless).DelayStart(DelayStart)
            .DeviceRules(deviceRules);
        try
        {
            if (TimePulseCore is int core) topology.Clock = new TimePulse(core, TimePulseResolutionNs);
            for (int b = 0; b < Inputs.Count; b++)
                topology.From([.. Inputs[b]]).Balance(make, queues, Cores.Count == 0 ? null : Cores[Cores.Count == 1 ? 0 : b], $"balancer {b}", Configure, PoolSize(Inputs[b])).ToQueues();
            return topology.Run();
        }
        catch
        {
            topology.Clock?.Dispose();
            throw;
        }

        void Configure(IBalancer balancer, BufferOwner pool)
        {
            if (ConsumerBuffers is int extra)
                foreach (EgressQueue q in balancer.Outputs) q.Quota = q.Capacity + extra;
            balancer.Filter = Filter;
            balancer.Vlans = Vlans;
            balancer.Rules = Rules;
            balancer.Clock = topology.Clock;
            foreach ((int output, BpfFilter outputFilter) in OutputFilters) balancer.SetOutputFilter(output, outputFilter);
            foreach ((int output, string device) in Egress) balancer.SetEgress(output, Device.OpenSink(device, pool as BufferPool));
        }
    }
}
