using ZcFlow.Distribution;
using ZcFlow.Filters;
using ZcFlow.Graphs;

namespace ZcFlow.Hosting;

/// <summary>
/// A Balancer graph as configuration describes it: each key is a zbalance_ipc option (its letter in brackets), so a
/// command line translates key by key. Unknown keys are errors, as are values out of range, named by their key.
/// </summary>
internal sealed class ZcFlowGraphOptions
{
    /// <summary>The cluster id (-c).</summary>
    public uint ClusterId { get; set; } = BalancerOptions.DefaultClusterId;

    /// <summary>One balancer per entry, each a comma-separated list of devices it aggregates (-i); none: a generator.</summary>
    public string[] Inputs { get; set; } = [];

    /// <summary>Queues per application (-n 2,1); none: one application with one queue.</summary>
    public int[] Applications { get; set; } = [];

    /// <summary>The distribution (-m): 0 round-robin … 8 symmetric 5-tuple, as <see cref="BalancerMode"/>.</summary>
    public HashMode Mode { get; set; }

    /// <summary>One core per balancer, or one for all (-g); none: not pinned.</summary>
    public int[] Cores { get; set; } = [];

    /// <summary>Slots per queue (-q), rounded up to a power of two.</summary>
    public int QueueSlots { get; set; } = Topology.DefaultQueueSlots;

    /// <summary>Buffers each consumer may hold beyond its queue (-b).</summary>
    public int ConsumerBuffers { get; set; } = BalancerOptions.DefaultConsumerBuffers;

    /// <summary>A BPF expression every input packet must match (what the file of -f holds).</summary>
    public string? Filter { get; set; }

    /// <summary>VLAN ids, comma separated, of which a frame must carry one (-x).</summary>
    public string? Vlans { get; set; }

    /// <summary>For mode 7: the VLAN id of queue 1, 2, … (-M).</summary>
    public int[] VlanQueues { get; set; } = [];

    /// <summary>For mode 7: the EtherType of the frames it looks at (-Y).</summary>
    public ushort VlanEtherType { get; set; } = VlanMap.DefaultEtherType;

    /// <summary>For mode 4: <c>queue:version</c>, the queue that gets GTP-C of that version (-G).</summary>
    public string? GtpControl { get; set; }

    /// <summary>The core of a time-pulse thread that stamps every packet (-S); with <see cref="TimePulseResolutionNs"/> (-R).</summary>
    public int? TimePulseCore { get; set; }

    public long TimePulseResolutionNs { get; set; }

    /// <summary>Read no more than every queue has room for (-L).</summary>
    public bool Lossless { get; set; }

    /// <summary>Busy-poll when idle (-a).</summary>
    public bool ActiveWait { get; set; }

    /// <summary>Fail rather than run without hugepages (-u).</summary>
    public bool RequireHugePages { get; set; }

    /// <summary>Seconds between two log lines of stats; 0: only the final ones.</summary>
    public int StatsIntervalSeconds { get; set; }

    /// <summary>What is wrong with these options, each message naming its key under <paramref name="section"/>; empty when nothing is.</summary>
    public IReadOnlyList<string> Problems(string section)
    {
        // What the text of a key says is checked here; what the values mean together, once, by BalancerOptions.
        var problems = new List<string>();
        if (!Inputs.All(i => Devices(i).Length > 0)) problems.Add($"{section}:{nameof(Inputs)}: each entry names one or more devices, comma separated");
        if (GtpControl is not null && ParseGtpControl() is null) problems.Add($"{section}:{nameof(GtpControl)}: '{GtpControl}' is not <queue>:<version>");
        VlanAllowList? vlans = null;
        BpfFilter? filter = null;
        try { if (Vlans is not null) vlans = VlanAllowList.Parse(Vlans); }
        catch (ArgumentException e) { problems.Add($"{section}:{nameof(Vlans)}: {SetupError.Describe(e)}"); }
        try { if (!string.IsNullOrWhiteSpace(Filter)) filter = BpfFilter.Compile(Filter); }
        catch (Exception e) when (SetupError.Is(e)) { problems.Add($"{section}:{nameof(Filter)}: {SetupError.Describe(e)}"); }
        problems.AddRange(ToBalancerOptions(filter, vlans).Problems().Select(p => $"{section}:{p.Option}: {p.Message}"));
        if (StatsIntervalSeconds < 0) problems.Add($"{section}:{nameof(StatsIntervalSeconds)}: 0 or more");
        return problems;
    }

    private static string[] Devices(string input) => input.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private (int Queue, int Version)? ParseGtpControl()
        => GtpControl?.Split(':') is [var q, var v] && int.TryParse(q, out int queue) && int.TryParse(v, out int version) ? (queue, version) : null;

    private BalancerOptions ToBalancerOptions(BpfFilter? filter, VlanAllowList? vlans, Action<string>? warn = null) => new()
    {
        ClusterId = ClusterId,
        Inputs = Inputs.Length == 0 ? [[BalancerOptions.DefaultInput]] : [.. Inputs.Select(Devices)],
        Applications = Applications.Length == 0 ? [1] : Applications,
        Mode = Mode,
        Cores = Cores,
        QueueSlots = QueueSlots,
        ConsumerBuffers = ConsumerBuffers,
        Filter = filter,
        Vlans = vlans,
        VlanQueues = VlanQueues,
        VlanEtherType = VlanEtherType,
        GtpControl = ParseGtpControl(),
        TimePulseCore = TimePulseCore,
        TimePulseResolutionNs = TimePulseResolutionNs,
        Lossless = Lossless,
        ActiveWait = ActiveWait,
        Cluster = new ClusterOptions { RequireHugePages = RequireHugePages, MaxQueues = ClusterOptions.QueueLimit, Warn = warn },
    };

    /// <summary>Builds and starts the graph these options describe; <paramref name="warn"/> hears what the cluster warns of.</summary>
    public Graph Build(Action<string>? warn = null)
        => ToBalancerOptions(string.IsNullOrWhiteSpace(Filter) ? null : BpfFilter.Compile(Filter), Vlans is null ? null : VlanAllowList.Parse(Vlans), warn).Start();
}
