using Microsoft.Extensions.Configuration;
using ZcFlow.Distribution;
using ZcFlow.Filters;
using ZcFlow.Graphs;
using ZcFlow.Stages;

namespace ZcFlow.Hosting;

/// <summary>
/// A <see cref="Topology"/> as configuration describes it, so that a graph changes without a rebuild. In JSON:
/// <code>
/// { "ClusterId": 99,
///   "Stages": [
///     { "Name": "tcp 1", "From": "eth1", "Filter": "tcp", "Core": 0 },
///     { "Name": "tcp 2", "From": "eth2", "Filter": "tcp", "Core": 0 },
///     { "Name": "collector", "After": "tcp 1,tcp 2", "Balance": 8, "Queues": [ 4, 2 ], "Core": 1 } ] }
/// </code>
/// Stages are declared in order; each takes devices (<see cref="StageOptions.From"/>) or earlier stages' outputs
/// (<see cref="StageOptions.After"/>), and its output goes to a later stage that names it, out of a device
/// (<see cref="StageOptions.To"/>), or else into a queue for consumers, numbered as declared.
/// </summary>
public sealed class ZcFlowTopologyOptions
{
    /// <summary>The cluster id: consumers attach to <c>zc:&lt;id&gt;@&lt;queue&gt;</c>.</summary>
    public uint ClusterId { get; set; } = 99;

    /// <summary>Buffers, shared by the stages that read devices.</summary>
    public int Buffers { get; set; } = 16384;

    /// <summary>Bytes each buffer holds.</summary>
    public int BufferSize { get; set; } = ClusterOptions.BufferSizeForMtu(1500);

    /// <summary>Slots of each queue.</summary>
    public int QueueSlots { get; set; } = Topology.DefaultQueueSlots;

    /// <summary>Busy-poll when idle, on every worker.</summary>
    public bool ActiveWait { get; set; }

    /// <summary>Balancers wait for room in their queues (true) or drop at a full one, as zbalance_ipc does (false).</summary>
    public bool Lossless { get; set; } = true;

    /// <summary>The stages, in order.</summary>
    public StageOptions[] Stages { get; set; } = [];

    /// <summary>
    /// Reads the options from <paramref name="section"/>. A key that is not an option, or a value that is not of its type, is
    /// an <see cref="InvalidOperationException"/> that names the key (<c>Stages:0:Filtr</c>) and says what it takes.
    /// </summary>
    public static ZcFlowTopologyOptions From(IConfiguration section)
    {
        var unknown = new List<string>();
        Unknown(section, typeof(ZcFlowTopologyOptions), "", unknown);
        foreach (IConfigurationSection stage in section.GetSection(nameof(Stages)).GetChildren())
            Unknown(stage, typeof(StageOptions), $"{nameof(Stages)}:{stage.Key}:", unknown);
        if (unknown.Count > 0) throw new InvalidOperationException(string.Join("; ", unknown));
        var options = new ZcFlowTopologyOptions();
        try
        {
            section.Bind(options, binder => binder.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            // The binder says which key's value it could not convert only in an inner exception, and not in these words.
            for (Exception? inner = e; inner is not null; inner = inner.InnerException)
            {
                System.Text.RegularExpressions.Match m = System.Text.RegularExpressions.Regex.Match(inner.Message, @"value '[^']*' at '([^']+)' to type '([^']+)'");
                if (!m.Success) continue;
                string path = m.Groups[1].Value, type = m.Groups[2].Value switch
                {
                    "System.Int32" or "System.UInt32" or "System.Int64" => "a whole number",
                    "ZcFlow.Distribution.HashMode" => "a mode: 0 to 8 (zbalance_ipc's -m)",
                    "System.Boolean" => "true or false",
                    var other => other,
                };
                throw new InvalidOperationException($"{path}: '{section[path]}' is not {type}", e);
            }
            throw;
        }
        return options;
    }

    // The keys of one object in the configuration that are not properties of its type, each with the keys it does take.
    private static void Unknown(IConfiguration section, Type type, string prefix, List<string> problems)
    {
        string[] keys = [.. type.GetProperties().Where(p => p.CanWrite).Select(p => p.Name)];
        foreach (IConfigurationSection child in section.GetChildren())
            if (!keys.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
                problems.Add($"{prefix}{child.Key}: not a key here; the keys are {string.Join(", ", keys)}");
    }

    /// <summary>What is wrong with these options, each message naming its key under <paramref name="section"/>; empty when nothing is.</summary>
    public IReadOnlyList<string> Problems(string section)
    {
        var problems = new List<string>();
        void Check(bool ok, string key, string message)
        {
            if (!ok) problems.Add($"{section}:{key}: {message}");
        }
        Check(Stages.Length > 0, nameof(Stages), "no stage: give one at least ({ \"From\": \"gen:64\" } puts a generator's packets into a queue)");
        Check(Buffers is >= 64 and <= 1 << 26, nameof(Buffers), $"{Buffers}: 64 to {1 << 26}");
        Check(QueueSlots is >= 2 and <= 1 << 20, nameof(QueueSlots), $"{QueueSlots}: 2 to {1 << 20}");
        var declared = new Dictionary<string, StageOptions>();
        for (int i = 0; i < Stages.Length; i++)
        {
            StageOptions stage = Stages[i];
            string key = $"{nameof(Stages)}:{i}";
            Check(!string.IsNullOrWhiteSpace(stage.Name) && !declared.ContainsKey(stage.Name!), $"{key}:{nameof(StageOptions.Name)}", "each stage has a name of its own");
            Check(stage.From is null != stage.After is null, key, "a stage takes devices (From) or earlier stages (After), one of them");
            foreach (string before in stage.AfterNames)
                Check(declared.TryGetValue(before, out StageOptions? earlier) && earlier.Balance is null, $"{key}:{nameof(StageOptions.After)}",
                    $"'{before}' is not an earlier stage whose output is one stream (a balancer's outputs are queues)");
            Check(stage.Balance is null || stage.Filter is null && stage.DelayUs == 0 && stage.To is null, key, "a balancer (Balance) has no Filter, DelayUs or To: its outputs are queues");
            Check(stage.Filter is null || stage.DelayUs == 0, key, "Filter or DelayUs, one per stage: chain two stages for both");
            Check(stage.Balance is null || Enum.IsDefined(stage.Balance.Value), $"{key}:{nameof(StageOptions.Balance)}", $"{(int?)stage.Balance} is not a mode: 0 to 8 (zbalance_ipc's -m)");
            Check(stage.Queues.All(q => q > 0) && stage.Queues.Sum() <= 64, $"{key}:{nameof(StageOptions.Queues)}", "each application has at least one queue, 64 in all at most");
            Check(stage.DelayUs is >= 0 and <= 60_000_000, $"{key}:{nameof(StageOptions.DelayUs)}", $"{stage.DelayUs}: 0 to 60,000,000");
            Check(stage.IdleWaitUs is >= 0 and <= 60_000_000 && (stage.IdleWaitUs == 0 || stage.InTimeOrder), $"{key}:{nameof(StageOptions.IdleWaitUs)}", "0 to 60,000,000, and only with InTimeOrder");
            Check(!stage.InTimeOrder || stage.Balance is null, key, "a balancer takes its inputs in arrival order: put a stage with InTimeOrder before it");
            try { if (stage.Filter is not null) BpfFilter.Compile(stage.Filter); }
            catch (Exception e) when (SetupError.Is(e)) { problems.Add($"{section}:{key}:{nameof(StageOptions.Filter)}: {SetupError.Describe(e)}"); }
            if (!string.IsNullOrWhiteSpace(stage.Name)) declared.TryAdd(stage.Name!, stage);
        }
        foreach (var taken in Stages.SelectMany(s => s.AfterNames).GroupBy(n => n).Where(g => g.Count() > 1))
            problems.Add($"{section}:{nameof(Stages)}: '{taken.Key}' is named in After by {taken.Count()} stages: a stage's output goes to one place");
        foreach (StageOptions stage in Stages.Where(s => s.To is not null && Stages.Any(t => t.AfterNames.Contains(s.Name))))
            problems.Add($"{section}:{nameof(Stages)}: '{stage.Name}' goes out of {stage.To} and to a later stage: one place only");
        return problems;
    }

    /// <summary>Builds and starts the topology; <paramref name="warn"/> hears what the cluster warns of.</summary>
    public Graph Build(Action<string>? warn = null) => Declare(warn).Run();

    /// <summary>What <see cref="Build"/> would create, without creating it: the threads, cores, queue ids and sizes (<see cref="TopologyPlan"/>).</summary>
    public TopologyPlan Plan() => Declare(null).Plan();

    private Topology Declare(Action<string>? warn)
    {
        Topology t = Topology.Cluster(ClusterId)
            .Options(new ClusterOptions { BufferCount = Buffers, BufferSize = BufferSize, Warn = warn })
            .QueueSlots(QueueSlots).ActiveWait(ActiveWait).Lossless(Lossless);
        var outputs = new Dictionary<string, PacketStream>();
        foreach (StageOptions stage in Stages)
        {
            PacketStream input = stage.From is not null
                ? t.From(stage.FromNames)
                : t.Merge([.. stage.AfterNames.Select(n => outputs[n])]);
            if (stage.InTimeOrder) input = input.InTimeOrder(TimeSpan.FromMicroseconds(stage.IdleWaitUs));
            if (stage.Balance is HashMode mode)
            {
                input.Balance(mode, stage.Queues.Length == 0 ? [1] : stage.Queues, core: stage.Core, name: stage.Name).ToQueues();
                continue;
            }
            PacketStream output = stage.Filter is not null ? input.Filter(BpfFilter.Compile(stage.Filter), stage.Core, stage.Name)
                : stage.DelayUs > 0 ? input.Delay(TimeSpan.FromMicroseconds(stage.DelayUs), stage.Core, stage.Name)
                : input.Stage(new PassAll(), stage.Core, stage.Name);
            if (stage.To is not null) output.To(stage.To);
            else if (Stages.Any(s => s.AfterNames.Contains(stage.Name))) outputs[stage.Name!] = output;
            else output.ToQueue();
        }
        return t;
    }
}

/// <summary>One stage of a <see cref="ZcFlowTopologyOptions"/>.</summary>
public sealed class StageOptions
{
    /// <summary>Its name, by which later stages take its output (<see cref="After"/>) and errors name it.</summary>
    public string? Name { get; set; }

    /// <summary>Devices it reads, comma separated (<c>eth1</c>, <c>xdp:eth1@0</c>, <c>trace.pcap</c>, <c>gen:64</c>, <c>zc:12@0</c>).</summary>
    public string? From { get; set; }

    /// <summary>Earlier stages whose outputs it takes, comma separated.</summary>
    public string? After { get; set; }

    /// <summary>Takes its inputs in time order (zfifo), an idle one waited for up to <see cref="IdleWaitUs"/>.</summary>
    public bool InTimeOrder { get; set; }

    public int IdleWaitUs { get; set; }

    /// <summary>Keeps only what passes this filter (tcpdump's syntax).</summary>
    public string? Filter { get; set; }

    /// <summary>Holds each packet this many microseconds after its timestamp (zdelay).</summary>
    public int DelayUs { get; set; }

    /// <summary>Makes it a balancer with this zbalance_ipc mode (0 round-robin … 8 symmetric 5-tuple), over <see cref="Queues"/>.</summary>
    public HashMode? Balance { get; set; }

    /// <summary>With <see cref="Balance"/>: queues per application; none: one queue.</summary>
    public int[] Queues { get; set; } = [];

    /// <summary>A device it sends its output out of, rather than into a queue.</summary>
    public string? To { get; set; }

    /// <summary>The core its thread is pinned to; stages given one core share its thread.</summary>
    public int? Core { get; set; }

    internal string[] FromNames => Names(From);

    internal string[] AfterNames => Names(After);

    private static string[] Names(string? list) => list?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
}
