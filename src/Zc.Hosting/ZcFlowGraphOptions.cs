using ZcFlow.Distribution;
using ZcFlow.Filters;
using ZcFlow.Graphs;

namespace ZcFlow.Hosting;

/// <summary>
/// A Balancer graph as configuration describes it: each key is a zbalance_ipc option (its letter in brackets), so a
/// command line translates key by key. Unknown keys are errors, as are values out of range, named by their key.
/// </summary>
public sealed class ZcFlowGraphOptions
{
    /// <summary>The cluster id (-c).</summary>
    public uint ClusterId { get; set; } = 103;

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
    public int ConsumerBuffers { get; set; } = 16;

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
        var problems = new List<string>();
        void Check(bool ok, string key, string message)
        {
            if (!ok) problems.Add($"{section}:{key}: {message}");
        }
        Check(Enum.IsDefined(Mode), nameof(Mode), $"{(int)Mode} is not a mode: 0 to 8 (zbalance_ipc's -m)");
        Check(Inputs.All(i => i.Split(',', StringSplitOptions.RemoveEmptyEntries).Length > 0), nameof(Inputs), "each entry names one or more devices, comma separated");
        Check(Applications.All(n => n > 0), nameof(Applications), "each application has at least one queue");
        Check(Applications.Length <= 32, nameof(Applications), $"{Applications.Length} applications; up to 32");
        Check(Applications.Sum() <= ClusterOptions.QueueLimit, nameof(Applications), $"{Applications.Sum()} queues; a balancer feeds up to {ClusterOptions.QueueLimit}");
        Check(Applications.Length <= 1 || BalancerMode.AllowsApplications(Mode), nameof(Applications), $"several applications need mode {BalancerMode.ApplicationModes}, not {(int)Mode}");
        Check(Cores.All(c => c >= 0) && (Cores.Length <= 1 || Cores.Length == Math.Max(Inputs.Length, 1)), nameof(Cores), "one core number per input, or one for all");
        Check(QueueSlots is >= 2 and <= 1 << 20, nameof(QueueSlots), $"{QueueSlots}: 2 to {1 << 20}");
        Check(ConsumerBuffers is >= 0 and <= 1 << 24, nameof(ConsumerBuffers), $"{ConsumerBuffers}: 0 to {1 << 24}");
        Check(VlanQueues.All(v => v is >= 0 and <= 4095) && VlanQueues.Distinct().Count() == VlanQueues.Length, nameof(VlanQueues), "VLAN ids from 0 to 4095, each once");
        Check((Mode == HashMode.Vlan) == (VlanQueues.Length > 0), nameof(VlanQueues), "mode 7, and only mode 7, maps VLAN ids to queues");
        Check(GtpControl is null || ParseGtpControl() is not null, nameof(GtpControl), $"'{GtpControl}' is not <queue>:<version> with version 1 or 2");
        Check(TimePulseCore is null or >= 0, nameof(TimePulseCore), "a core number");
        Check(TimePulseResolutionNs is >= 0 and <= 1_000_000_000, nameof(TimePulseResolutionNs), "0 to 1,000,000,000");
        Check(StatsIntervalSeconds >= 0, nameof(StatsIntervalSeconds), "0 or more");
        try { if (Vlans is not null) VlanAllowList.Parse(Vlans); }
        catch (ArgumentException e) { problems.Add($"{section}:{nameof(Vlans)}: {SetupError.Describe(e)}"); }
        try { if (!string.IsNullOrWhiteSpace(Filter)) BpfFilter.Compile(Filter); }
        catch (Exception e) when (SetupError.Is(e)) { problems.Add($"{section}:{nameof(Filter)}: {SetupError.Describe(e)}"); }
        return problems;
    }

    private (int Queue, int Version)? ParseGtpControl()
        => GtpControl?.Split(':') is [var q, var v] && int.TryParse(q, out int queue) && queue >= 0 && int.TryParse(v, out int version) && version is 1 or 2
            ? (queue, version) : null;

    /// <summary>Builds and starts the graph these options describe; <paramref name="warn"/> hears what the cluster warns of.</summary>
    public Graph Build(Action<string>? warn = null)
    {
        var builder = GraphBuilder.Cluster(ClusterId)
            .Options(new ClusterOptions { RequireHugePages = RequireHugePages, MaxQueues = 64, Warn = warn })
            .ConsumerBuffers(ConsumerBuffers);
        foreach (string input in Inputs.Length == 0 ? ["gen:64?flows=4096"] : Inputs)
            builder.Input(input.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        if (TimePulseCore is int core) builder.TimePulse(core, TimePulseResolutionNs);
        return builder
            .Filter(string.IsNullOrWhiteSpace(Filter) ? null : BpfFilter.Compile(Filter))
            .Vlans(Vlans is null ? null : VlanAllowList.Parse(Vlans))
            .Applications(Mode == HashMode.Vlan ? [VlanQueues.Length + 1] : Applications.Length == 0 ? [1] : Applications)
            .QueueSlots(QueueSlots)
            .ActiveWait(ActiveWait)
            .Lossless(Lossless)
            .Balance(Mode, new BalancerModeOptions { VlanQueues = VlanQueues, VlanEtherType = VlanEtherType, GtpControl = ParseGtpControl() }, Cores);
    }
}
