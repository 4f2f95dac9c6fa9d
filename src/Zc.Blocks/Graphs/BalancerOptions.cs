using ZcFlow.Distribution;
using ZcFlow.Filters;

namespace ZcFlow.Graphs;

/// <summary>
/// zbalance_ipc's options as one record: each property is one option (its letter in the summary), each default is set
/// here once, and <see cref="Problems"/> is every check, with one message each. The Balancer sample fills it from a
/// command line and <c>ZcFlow.Hosting</c> from configuration; each names a problem's option in its own words
/// (<c>-M</c>, <c>Balancer:VlanQueues</c>). <see cref="Start"/> builds the graph with <see cref="GraphBuilder"/>.
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

    /// <summary>-n: queues per application. Mode 7 ignores it, as zbalance_ipc does: its queues are queue 0 and one per VLAN id.</summary>
    public IReadOnlyList<int> Applications { get; init; } = [1];

    /// <summary>-m: how packets are spread over each application's queues.</summary>
    public HashMode Mode { get; init; }

    /// <summary>-g: one core per balancer, or one for all; none: not pinned.</summary>
    public IReadOnlyList<int> Cores { get; init; } = [];

    /// <summary>-q: slots per queue, rounded up to a power of two.</summary>
    public int QueueSlots { get; init; } = Topology.DefaultQueueSlots;

    /// <summary>-b: buffers each consumer may hold beyond its queue's slots; the cluster is sized from it.</summary>
    public int ConsumerBuffers { get; init; } = DefaultConsumerBuffers;

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

    /// <summary>-u: fail rather than run without hugepages.</summary>
    public bool RequireHugePages { get; init; }

    /// <summary>-W: create the queues, then wait this long before processing, so consumers can attach.</summary>
    public TimeSpan DelayStart { get; init; }

    /// <summary>Hears what the cluster warns of (no hugepages, for one).</summary>
    public Action<string>? Warn { get; init; }

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
        Check(Enum.IsDefined(Mode), nameof(Mode), $"{(int)Mode} is not a mode: 0 to 8 ({BalancerMode.Help})");
        Check(Inputs.Count > 0 && Inputs.All(i => i.Count > 0 && i.All(d => !string.IsNullOrWhiteSpace(d))), nameof(Inputs), "each input names one or more devices");
        Check(InterfaceIndexProblem(Mode, Inputs.Count) is null, nameof(Inputs), InterfaceIndexProblem(Mode, Inputs.Count) ?? "");
        if (Mode == HashMode.Vlan)
        {
            Check(VlanQueues.Count is > 0 and < ClusterOptions.QueueLimit, nameof(VlanQueues), $"mode 7 needs the VLAN id of each of its queues after queue 0, 1 to {ClusterOptions.QueueLimit - 1} of them");
        }
        else
        {
            Check(Applications.Count > 0 && Applications.All(n => n > 0), nameof(Applications), "each application has at least one queue");
            Check(Applications.Count <= ApplicationLimit, nameof(Applications), $"{Applications.Count} applications; a balancer feeds up to {ApplicationLimit}");
            Check(Applications.Sum() <= ClusterOptions.QueueLimit, nameof(Applications), $"{Applications.Sum()} queues; a balancer feeds up to {ClusterOptions.QueueLimit}");
            Check(BalancerMode.ApplicationsProblem(Mode, Applications) is null, nameof(Applications), BalancerMode.ApplicationsProblem(Mode, Applications) ?? "");
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
        Check(ConsumerBuffers is >= 0 and <= 1 << 24, nameof(ConsumerBuffers), $"{ConsumerBuffers} buffers; 0 to {1 << 24}");
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
        if (Problems() is [var first, ..]) throw new ArgumentException($"{first.Option}: {first.Message}");
        var builder = GraphBuilder.Cluster(ClusterId)
            .Options(new ClusterOptions { RequireHugePages = RequireHugePages, MaxQueues = ClusterOptions.QueueLimit, Warn = Warn })
            .ConsumerBuffers(ConsumerBuffers);
        foreach (IReadOnlyList<string> devices in Inputs) builder.Input([.. devices]);
        foreach ((int queue, string device) in Egress) builder.Egress(queue, device);
        foreach ((int queue, BpfFilter filter) in OutputFilters) builder.OutputFilter(queue, filter);
        if (TimePulseCore is int core) builder.TimePulse(core, TimePulseResolutionNs);
        return builder
            .Filter(Filter)
            .Vlans(Vlans)
            .Applications([.. QueuesPerApplication])
            .QueueSlots(QueueSlots)
            .ActiveWait(ActiveWait)
            .Lossless(Lossless)
            .DelayStart(DelayStart)
            .Balance(Mode, new BalancerModeOptions { VlanQueues = VlanQueues, VlanEtherType = VlanEtherType, GtpControl = GtpControl }, [.. Cores]);
    }
}
