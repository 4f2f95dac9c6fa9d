using System.Text;
using ZcFlow.Devices;

namespace ZcFlow.Graphs;

/// <summary>
/// What a <see cref="Topology"/> will create, worked out before anything is (<see cref="Topology.Plan"/>): the stages that
/// run and the pipes fused into them, the threads and their cores, the queue ids, each pool's size and the cluster's.
/// <see cref="ToString"/> prints it a stage a line; <see cref="Topology.Run"/> carries it out, and nothing else decides.
/// </summary>
public sealed class TopologyPlan
{
    internal TopologyPlan(uint id, ClusterOptions options, int slots, bool lossless, bool activeWait, TimeSpan delay,
        IReadOnlyList<Topology.Node> nodes, IReadOnlyList<PacketStream> streams, int declaredQueues)
    {
        ClusterId = id;
        Lossless = lossless;
        ActiveWait = activeWait;
        Delay = delay;

        // A pipe that reads devices (or pipes fused into it) and is all a stage on its own core takes, with others like it,
        // is fused into that stage: read on its thread, into its pool, with no queue between them.
        var fused = new HashSet<Topology.Node>();
        bool Reads(Topology.Node n) => n.Input.Devices.Length != 0 || n.Input.Sources.All(s => fused.Contains(s.Node));
        foreach (Topology.Node n in nodes)
            if (n.Core is not null && n.Input.Sources.Length != 0
                && n.Input.Sources.All(s => s.Node is Topology.PipeNode { Delayed: false } p && p.Core == n.Core && Reads(p)))
                foreach (var s in n.Input.Sources) fused.Add(s.Node);
        Topology.Node[] running = [.. nodes.Where(n => !fused.Contains(n))];

        // Queue ids: the consumers' and ingress queues as declared, then the queues between stages (and those a
        // balancer sends to a device through).
        var internalQueues = new Dictionary<(Topology.Node, int), int>();
        foreach (Topology.Node n in running)
            for (int o = 0; o < n.Outputs.Length; o++)
                if (n.Outputs[o].QueueId < 0 && n.Outputs[o].Egress is null || n is Topology.BalancerNode && n.Outputs[o].Egress is not null)
                    internalQueues[(n, o)] = declaredQueues + internalQueues.Count;
        QueueCount = declaredQueues + internalQueues.Count;
        if (QueueCount > ClusterOptions.QueueLimit)
            throw new InvalidOperationException($"the graph needs {QueueCount} queues ({declaredQueues} for consumers and inputs, {internalQueues.Count} between stages); a cluster has at most {ClusterOptions.QueueLimit}");
        Ingress = [.. streams.SelectMany(s => s.Ingress).Where(q => q >= 0).Order()];
        ConsumerQueues = [.. streams.Where(s => s.QueueId >= 0).Select(s => s.QueueId).Order()];

        // Pools: a stage that reads has one, of its own size or an even share of the cluster's buffers; a stage that takes
        // other stages' queues has a relay. An ingress queue's spares are a share of its reader's pool, like each device's.
        int shared = running.Count(n => Reads(n) && n is not Topology.BalancerNode { PoolBuffers: not null });
        int bufferCount = running.Where(Reads).Sum(n => (n as Topology.BalancerNode)?.PoolBuffers ?? 0) + (shared == 0 ? 0 : options.BufferCount);
        bool xdp = nodes.Any(n => n.Input.Devices.Any(Device.RunsRulesInTheKernel)) || streams.Any(s => s.Egress is { } e && XdpDevice.IsName(e));
        Cluster = options with
        {
            BufferSize = xdp ? Math.Max(options.BufferSize, XdpDevice.MinBufferSize) : options.BufferSize,
            BufferCount = bufferCount,
            MaxQueues = Math.Max(options.MaxQueues, QueueCount),
        };
        QueueSlots = Math.Min(slots, bufferCount);

        int QueueOf(Topology.Node n, int o) => internalQueues.TryGetValue((n, o), out int q) ? q : n.Outputs[o].QueueId;
        IEnumerable<int> IngressOf(Topology.Node n) => n.Input.Ingress.Where(q => q >= 0).Concat(n.Input.Sources.SelectMany(s => IngressOf(s.Node)));
        int DevicesOf(Topology.Node n) => n.Input.Ingress.Count(q => q < 0) + n.Input.Sources.Sum(s => DevicesOf(s.Node));
        IEnumerable<Topology.Node> FusedInto(Topology.Node n) => n.Input.Sources.Where(s => fused.Contains(s.Node)).SelectMany(s => FusedInto(s.Node).Append(s.Node));
        Stages = [.. running.Select(n =>
        {
            bool reads = Reads(n);
            int[] spares = reads ? [.. IngressOf(n)] : [];
            int buffers = !reads ? 0 : (n as Topology.BalancerNode)?.PoolBuffers ?? options.BufferCount / shared;
            return new Stage(n, reads, buffers, spares, spares.Length == 0 ? null : buffers / (spares.Length + DevicesOf(n)),
                reads ? [] : [.. n.Input.Sources.Select(s => QueueOf(s.Node, s.Output))],
                [.. Enumerable.Range(0, n.Outputs.Length).Select(o => n is Topology.PipeNode && n.Outputs[o].Egress is not null ? -1 : QueueOf(n, o))],
                [.. FusedInto(n)]);
        })];
        // Stages given the same core share one thread and take turns: two threads spinning on one core would each wait
        // out the other's time slice. A stage given no core has a thread of its own, placed by the system.
        Threads = [.. Stages.GroupBy(s => s.Node.Core ?? -1 - Array.IndexOf(Stages, s)).Select(g => new StageThread(g.First().Node.Core, [.. g]))];
    }

    /// <summary>A stage that runs: whether it reads (devices, or pipes fused into it) into a pool of its own, or takes queues into a relay.</summary>
    internal sealed record Stage(Topology.Node Node, bool Reads, int PoolBuffers, int[] SpareQueues, int? SparesEach, int[] InputQueues, int[] OutputQueues, Topology.Node[] Fused);

    /// <summary>One worker thread: its core (none: placed by the system) and the stages that take turns on it.</summary>
    internal sealed record StageThread(int? Core, Stage[] Stages);

    internal uint ClusterId { get; }
    internal ClusterOptions Cluster { get; }
    internal int QueueCount { get; }
    internal int QueueSlots { get; }
    internal int[] Ingress { get; }
    internal int[] ConsumerQueues { get; }
    internal Stage[] Stages { get; }
    internal StageThread[] Threads { get; }
    internal bool Lossless { get; }
    internal bool ActiveWait { get; }
    internal TimeSpan Delay { get; }
    internal Filters.Rules? DeviceRules { get; init; }

    /// <summary>The plan a line at a time: the cluster, then each thread and its stages, what they read and where their outputs go.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        string Queues(IEnumerable<int> ids) => string.Join(", ", ids.Select(q => $"zc:{ClusterId}@{q}"));
        text.Append($"cluster {ClusterId}: {Cluster.BufferCount} buffers of {Cluster.BufferSize} bytes, {QueueCount} queues of {QueueSlots} slots");
        if (ConsumerQueues.Length != 0) text.Append($"; consumers attach to {Queues(ConsumerQueues)}");
        if (Ingress.Length != 0) text.Append($"; applications send into {Queues(Ingress)}");
        text.AppendLine();
        for (int t = 0; t < Threads.Length; t++)
        {
            text.AppendLine($"thread {t} ({(Threads[t].Core is int core ? $"core {core}" : "no core")}{(Threads[t].Stages.Length > 1 ? ", stages take turns" : "")}):");
            foreach (Stage s in Threads[t].Stages)
            {
                string input = s.Reads
                    ? $"reads {string.Join(", ", s.Fused.SelectMany(f => f.Input.Devices).Concat(s.Node.Input.Devices))} into a pool of {s.PoolBuffers} buffers"
                    : $"takes {Queues(s.InputQueues)} (a relay)";
                string fused = s.Fused.Length == 0 ? "" : $", fused: {string.Join(", ", s.Fused.Select(f => $"'{f.Name}'"))}";
                string outputs = string.Join(", ", s.OutputQueues.Select((q, o) => (q, s.Node.Outputs[o].Egress) switch
                {
                    ( < 0, string device) => device,
                    (_, string device) => $"{device} (through zc:{ClusterId}@{q})",
                    _ => $"zc:{ClusterId}@{q}",
                }));
                text.AppendLine($"  '{s.Node.Name}' {input}{fused} -> {outputs}");
            }
        }
        return text.ToString();
    }
}
