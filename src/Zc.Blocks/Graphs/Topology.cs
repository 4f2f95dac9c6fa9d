using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Filters;
using ZcFlow.Queues;
using ZcFlow.Stages;
using ZcFlow.Workers;

namespace ZcFlow.Graphs;

/// <summary>
/// Any graph of PF_RING ZC's blocks, in a few lines: devices, stages on workers of their own (filters, pipeline steps,
/// delays, collectors, balancers), and at the ends queues for consumers and devices to send out of.
/// <code>
/// var t = Topology.Cluster(99);
/// PacketStream a = t.From("eth0").Filter(BpfFilter.Compile("tcp"), core: 0);   // a filter on each input's own worker
/// PacketStream b = t.From("eth1").Filter(BpfFilter.Compile("tcp"), core: 0);
/// t.Merge(a, b).Balance(new FiveTupleHash(), 4, core: 1).ToQueues();       // zc:99@0 to zc:99@3
/// using Graph graph = t.Run();
/// </code>
/// A <see cref="PacketStream"/> is what comes out of devices or of a stage; each goes to exactly one place: a stage,
/// a queue (<see cref="PacketStream.ToQueue"/>) or a device (<see cref="PacketStream.To"/>). A stage that takes devices
/// reads them itself, into a pool of its own; a stage that takes other stages' streams receives from their queues and
/// hands every buffer back up when it is done with it (a relay, <see cref="ZcCluster.CreateRelay"/>). Stages given the same
/// core share one thread and take turns; a pipe that reads devices and feeds a stage on its own core is fused into it:
/// read by that stage, with no queue between them. A stage given no core has a thread of its own. Stages are generic
/// over structs (<see cref="IStage"/>, <see cref="IDistribution"/>), so the JIT specialises every worker's loop.
/// <see cref="Run"/> checks the whole graph before it creates anything; its errors name the stage.
/// </summary>
public sealed class Topology
{
    private readonly uint _id;
    private readonly List<Node> _nodes = [];
    private readonly List<PacketStream> _streams = [];
    private ClusterOptions _options = new();
    private int _slots = DefaultQueueSlots;
    private bool _activeWait;
    private bool _lossless = true;
    private TimeSpan _delay;
    private Filters.Rules? _deviceRules;
    private int _queues;   // queue ids given so far: consumers' queues and ingress queues, in the order declared
    private bool _ran;

    private Topology(uint id) => _id = id;

    /// <summary>A graph in cluster <paramref name="id"/>: consumers attach to its queues as <c>zc:&lt;id&gt;@&lt;queue&gt;</c>.</summary>
    public static Topology Cluster(uint id) => new(id);

    /// <summary>Buffer size and count (shared by the stages that read devices), hugepages and the rest.</summary>
    public Topology Options(ClusterOptions options)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        return this;
    }

    /// <summary>
    /// Slots of a queue unless a graph says otherwise, in <see cref="Topology"/>, <see cref="GraphBuilder"/> and the hosting options
    /// alike: zbalance_ipc's <c>-q</c> default.
    /// </summary>
    public const int DefaultQueueSlots = 8192;

    /// <summary>Slots of each queue (<see cref="DefaultQueueSlots"/> by default; at most the cluster's buffers).</summary>
    public Topology QueueSlots(int slots)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 1);
        _slots = slots;
        return this;
    }

    /// <summary>Busy-poll when idle, on every worker.</summary>
    public Topology ActiveWait(bool active = true) { _activeWait = active; return this; }

    /// <summary>
    /// Whether balancers wait for room in their queues (the default) or drop at a full queue, as zbalance_ipc does.
    /// Pipes always wait; neither waits for a consumer that has gone or is stuck.
    /// </summary>
    public Topology Lossless(bool lossless = true) { _lossless = lossless; return this; }

    /// <summary>Creates the queues, then waits this long before the workers start, so consumers can attach.</summary>
    public Topology DelayStart(TimeSpan delay) { _delay = delay; return this; }

    /// <summary>
    /// Rules on every device the graph reads (<see cref="Device.OpenSource(string, BufferPool, uint, Filters.Rules)"/>): in the
    /// kernel's XDP program for AF_XDP devices, in user space for the others; rules changed while the graph runs apply at once.
    /// </summary>
    public Topology DeviceRules(Filters.Rules? rules) { _deviceRules = rules; return this; }

    /// <summary>
    /// Devices, read by the stage this stream goes to (in arrival order, or in time order after
    /// <see cref="PacketStream.InTimeOrder"/>): any name <see cref="Device.OpenSource(string, BufferPool, uint)"/> takes.
    /// </summary>
    public PacketStream From(params string[] devices)
    {
        ArgumentNullException.ThrowIfNull(devices);
        if (devices.Length == 0 || devices.Any(string.IsNullOrEmpty)) throw new ArgumentException("From takes one device name or more", nameof(devices));
        ThrowIfRan();
        int[] ingress = [.. devices.Select(d => d == GraphBuilder.IngressQueue ? _queues++ : -1)];
        return Add(new PacketStream(this, [.. devices], ingress, [], byTime: false, TimeSpan.Zero));
    }

    /// <summary>
    /// Several streams as one, for the stage it goes to to take in arrival order (or in time order after
    /// <see cref="PacketStream.InTimeOrder"/>): all devices, or all stages' outputs.
    /// </summary>
    public PacketStream Merge(params PacketStream[] streams)
    {
        ArgumentNullException.ThrowIfNull(streams);
        if (streams.Length == 0) throw new ArgumentException("Merge takes one stream or more", nameof(streams));
        bool devices = streams[0].Devices.Length != 0;
        if (streams.Any(s => (s.Devices.Length != 0) != devices))
            throw new ArgumentException($"Merge takes devices or stages' outputs, not both ({string.Join(", ", streams.Select(s => s.Describe()))}): give the devices a stage of their own (From(…).Stage(new PassAll()))", nameof(streams));
        // Every stream checked before any is marked taken, so a refused merge leaves the topology as it was.
        foreach (PacketStream s in streams) s.CheckFree(this);
        if (streams.Distinct().Count() != streams.Length) throw new ArgumentException("Merge takes each stream once", nameof(streams));
        var merged = new PacketStream(this, [.. streams.SelectMany(s => s.Devices)], [.. streams.SelectMany(s => s.Ingress)], [.. streams.SelectMany(s => s.Sources)],
            byTime: false, TimeSpan.Zero);
        foreach (PacketStream s in streams) s.TakenBy(this, "a merge");
        return Add(merged);
    }

    /// <summary>
    /// What <see cref="Run"/> would create, worked out and checked without creating anything: which stages run on which
    /// thread and core (and which are fused into the stage that reads for them), the queue ids, the pools' sizes and the
    /// cluster's. Print it to see the graph (<c>samples/Topology --plan</c>).
    /// </summary>
    public TopologyPlan Plan()
    {
        ThrowIfRan();
        Check();
        return new TopologyPlan(_id, _options, _slots, _lossless, _activeWait, _delay, _nodes, _streams, _queues) { DeviceRules = _deviceRules };
    }

    /// <summary>Checks the graph, creates the cluster, its pools and queues, opens the devices and starts every stage's worker (<see cref="Plan"/>, carried out).</summary>
    public Graph Run()
    {
        TopologyPlan plan = Plan();
        _ran = true;
        return TopologyRunner.Run(plan, Clock);
    }

    /// <summary>A time pulse the graph's stages read, disposed with the graph.</summary>
    internal TimePulse? Clock;

    private void Check()
    {
        if (_nodes.Count == 0) throw new InvalidOperationException("the graph has no stage: give a stream to one (From(\"gen:64\").Balance(…), .ToQueue(), .To(\"eth1\")…)");
        foreach (PacketStream s in _streams)
            if (!s.IsTaken)
                throw new InvalidOperationException($"{s.Describe()} goes nowhere: give it to a stage, or end it with ToQueue() or To(<device>)");
    }

    private void ThrowIfRan()
    {
        if (_ran) throw new InvalidOperationException("the graph runs already: a topology is run once");
    }

    internal PacketStream Add(PacketStream stream)
    {
        _streams.Add(stream);
        return stream;
    }

    internal int NextQueue() => _queues++;

    // Names, checks and registers a stage made by `make`, which takes the stage's name.
    internal T AddNode<T>(string kind, string? name, int? core, PacketStream input, string? what, Func<string, T> make) where T : Node
    {
        ThrowIfRan();
        if (input.Topology != this) throw new ArgumentException($"{input.Describe()} belongs to another topology", nameof(input));
        name ??= $"{kind} {_nodes.Count}{(what is null ? "" : $" ({what})")}";
        if (core is < 0 || core >= Environment.ProcessorCount)
            throw new ArgumentOutOfRangeException(nameof(core), core, $"{name}: core {core}, but this machine has cores 0 to {Environment.ProcessorCount - 1}");
        if (_nodes.Any(n => n.Name == name)) throw new ArgumentException($"two stages are named '{name}'", nameof(name));
        T node = make(name);
        input.TakenBy(this, $"'{name}'");
        foreach (PacketStream output in node.Outputs) Add(output);
        _nodes.Add(node);
        return node;
    }

    /// <summary>A stage as declared: what it takes, where it runs, its outputs. Nothing in it changes once it is made.</summary>
    internal abstract class Node
    {
        protected Node(string name, int? core, PacketStream input, int outputs)
        {
            Name = name;
            Core = core;
            Input = input;
            Outputs = [.. Enumerable.Range(0, outputs).Select(o => new PacketStream(input.Topology, [], [], [(this, o)], byTime: false, TimeSpan.Zero))];
        }

        public string Name { get; }
        public int? Core { get; }
        public PacketStream Input { get; }
        public PacketStream[] Outputs { get; }
    }

    /// <summary>A pipe: one output, to a queue or a device (or, when a stage on its core reads for it, to that stage).</summary>
    internal sealed class PipeNode(string name, int? core, PacketStream input, bool delayed,
        Func<BufferOwner, IPacketSource[], EgressQueue?, IPacketSink?, bool, TimeSpan, IPipe> make) : Node(name, core, input, 1)
    {
        public bool Delayed => delayed;

        public IPipe Make(BufferOwner pool, IPacketSource[] inputs, EgressQueue? queue, IPacketSink? sink) => make(pool, inputs, queue, sink, Input.ByTime, Input.IdleWait);
    }

    /// <summary>A balancer: outputs to queues (or devices, through queues of their own), an optional pool size and a last word on the balancer.</summary>
    internal sealed class BalancerNode(string name, int? core, PacketStream input, int outputs, Func<BufferOwner, IPacketSource[], EgressQueue[], bool, IBalancer> make,
        Action<IBalancer, BufferOwner>? configure, int? poolBuffers) : Node(name, core, input, outputs)
    {
        public int? PoolBuffers => poolBuffers;

        public IBalancer Make(BufferOwner pool, IPacketSource[] inputs, EgressQueue[] outputs, bool lossless) => make(pool, inputs, outputs, lossless);

        // After the balancer's own egress is set: GraphBuilder's quotas, filters and egress.
        public void Configure(IBalancer balancer, BufferOwner pool) => configure?.Invoke(balancer, pool);
    }
}

/// <summary>
/// Packets coming out of devices or of a stage of a <see cref="Topology"/>, on their way to exactly one place: a stage
/// (<see cref="Stage{T}"/>, <see cref="Filter"/>, <see cref="Delay"/>, <see cref="Balance{T}"/>), a queue for a consumer
/// (<see cref="ToQueue"/>) or a device (<see cref="To"/>).
/// </summary>
public sealed class PacketStream
{
    internal PacketStream(Topology topology, string[] devices, int[] ingress, (Topology.Node Node, int Output)[] sources, bool byTime, TimeSpan idleWait)
    {
        Topology = topology;
        Devices = devices;
        Ingress = ingress;
        Sources = sources;
        ByTime = byTime;
        IdleWait = idleWait;
    }

    internal Topology Topology { get; }
    internal string[] Devices { get; }
    internal int[] Ingress { get; }   // per device: the id of its ingress queue (GraphBuilder.IngressQueue), else -1
    internal (Topology.Node Node, int Output)[] Sources { get; }
    internal bool ByTime { get; }
    internal TimeSpan IdleWait { get; }
    internal int QueueId = -1;        // a consumer's queue, when it ends in one
    internal string? Egress;          // a device, when it ends in one
    private string? _taker;

    internal bool IsTaken => _taker is not null;

    /// <summary>
    /// This stream taken by its next stage in time order (zfifo): its inputs, each in time order, come out in time order. An
    /// input that has nothing may yet bring an older packet: the others wait for it up to <paramref name="idleWait"/>.
    /// A balancer takes its inputs in arrival order: give a time-ordered stream to a stage, a queue or a device.
    /// </summary>
    public PacketStream InTimeOrder(TimeSpan idleWait = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(idleWait, TimeSpan.Zero);
        var ordered = new PacketStream(Topology, Devices, Ingress, Sources, byTime: true, idleWait);
        TakenBy(Topology, "a merge in time order");
        return Topology.Add(ordered);
    }

    /// <summary>A pipeline stage on a worker of its own (<paramref name="core"/>, or wherever the system puts it).</summary>
    public PacketStream Stage<T>(T stage, int? core = null, string? name = null) where T : struct, IStage
        => Pipe(stage, default, core, name);

    /// <summary>Keeps the packets that pass <paramref name="filter"/>, on a worker of its own.</summary>
    public PacketStream Filter(BpfFilter filter, int? core = null, string? name = null)
        => Pipe(new Bpf(filter), default, core, name, $"filter '{filter.Expression}'");

    /// <summary>Keeps the packets <paramref name="predicate"/> matches, on a worker of its own.</summary>
    public PacketStream Where<T>(T predicate, int? core = null, string? name = null) where T : struct, IPacketPredicate
        => Pipe(new Where<T>(predicate), default, core, name, $"where {typeof(T).Name}");

    /// <summary>Holds each packet until <paramref name="delay"/> after its timestamp (zdelay), on a worker of its own.</summary>
    public PacketStream Delay(TimeSpan delay, int? core = null, string? name = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(delay, TimeSpan.Zero);
        return Pipe(new PassAll(), delay, core, name, $"delay {delay.TotalMilliseconds} ms");
    }

    private PacketStream Pipe<T>(T stage, TimeSpan delay, int? core, string? name, string? what = null) where T : struct, IStage
    {
        Topology.PipeNode node = Topology.AddNode("stage", name, core, this, what ?? typeof(T).Name, n => new Topology.PipeNode(n, core, this, delay > TimeSpan.Zero,
            (pool, inputs, queue, sink, byTime, idleWait) => queue is not null ? new Pipe<T>(pool, inputs, queue, stage, byTime, idleWait, delay) { Name = n }
                : sink is not null ? new Pipe<T>(pool, inputs, sink, stage, byTime, idleWait, delay) { Name = n }
                : new Pipe<T>(pool, inputs, stage, byTime, idleWait) { Name = n }));
        return node.Outputs[0];
    }

    /// <summary>Spreads the packets over <paramref name="outputs"/> streams by <paramref name="distribution"/>, on a worker of its own (PF_RING's balancer).</summary>
    public IReadOnlyList<PacketStream> Balance<T>(T distribution, int outputs, int? core = null, string? name = null) where T : struct, IDistribution
    {
        ApplicationQueues.Check([outputs], nameof(outputs));
        return Balance((pool, inputs, queues, lossless) => new Balancer<T>(pool, inputs, queues, distribution, lossless), outputs, core, name);
    }

    /// <summary>
    /// Two applications, each given every packet and each with a distribution of its own (nProbe and Suricata on one link):
    /// the first <paramref name="firstOutputs"/> streams by <paramref name="first"/>, the next <paramref name="secondOutputs"/> by <paramref name="second"/>.
    /// </summary>
    public IReadOnlyList<PacketStream> Balance<TFirst, TSecond>(TFirst first, int firstOutputs, TSecond second, int secondOutputs, int? core = null, string? name = null)
        where TFirst : struct, IDistribution where TSecond : struct, IDistribution
    {
        ApplicationQueues.Check([firstOutputs, secondOutputs], nameof(firstOutputs));
        var both = new Applications<TFirst, TSecond>(first, firstOutputs, second);
        return Balance((pool, inputs, queues, lossless) => new Balancer<Applications<TFirst, TSecond>>(pool, inputs, queues, both, lossless), firstOutputs + secondOutputs, core, name);
    }

    /// <summary>
    /// Spreads the packets over the streams of <paramref name="applications"/> (queues per application) by a zbalance_ipc
    /// <c>-m</c> mode (<see cref="BalancerMode"/>); modes 4 and 7 with what they need beyond their number: <see cref="BalancerOptions"/>.
    /// </summary>
    public IReadOnlyList<PacketStream> Balance(HashMode mode, int[] applications, int? core = null, string? name = null)
    {
        ApplicationQueues.Check(applications, nameof(applications));
        BalancerMode.CheckApplications(mode, applications, nameof(applications));
        int[] queues = [.. applications];
        return Balance((pool, inputs, outputs, lossless) => BalancerMode.Create(mode, pool, inputs, outputs, queues, lossless), queues.Sum(), core, name);
    }

    internal IReadOnlyList<PacketStream> Balance(Func<BufferOwner, IPacketSource[], EgressQueue[], bool, IBalancer> make, int outputs, int? core, string? name,
        Action<IBalancer, BufferOwner>? configure = null, int? poolBuffers = null)
    {
        if (ByTime) throw new InvalidOperationException($"{Describe()} is to be taken in time order, and a balancer takes its inputs in arrival order: put a stage first (InTimeOrder().Stage(new PassAll()))");
        return Topology.AddNode("balancer", name, core, this, null, n => new Topology.BalancerNode(n, core, this, outputs, make, configure, poolBuffers)).Outputs;
    }

    /// <summary>Ends the stream in a queue for a consumer (a thread, or a process that attaches to <c>zc:&lt;cluster&gt;@&lt;id&gt;</c>); returns its id.</summary>
    public int ToQueue()
    {
        PacketStream end = Direct ? this : Stage(new PassAll());
        end.TakenBy(Topology, "a queue");
        end.QueueId = Topology.NextQueue();
        return end.QueueId;
    }

    /// <summary>
    /// Ends the stream in a device, which sends every packet: an interface (<c>eth1</c>, <c>xdp:eth1@0</c>) or another
    /// cluster's ingress queue (<c>zc:12@0</c>); any name <see cref="Device.OpenSink"/> takes.
    /// </summary>
    public void To(string device)
    {
        ArgumentException.ThrowIfNullOrEmpty(device);
        PacketStream end = Direct ? this : Stage(new PassAll(), name: $"to {device}");
        end.TakenBy(Topology, $"device {device}");
        end.Egress = device;
    }

    // The output of one stage, which can itself be a queue or a device: anything else needs a stage of its own to read it.
    private bool Direct => Devices.Length == 0 && Sources.Length == 1 && !ByTime && Sources[0].Node.Outputs[Sources[0].Output] == this;

    internal void TakenBy(Topology topology, string taker)
    {
        CheckFree(topology);
        _taker = taker;
    }

    internal void CheckFree(Topology topology)
    {
        if (topology != Topology) throw new ArgumentException($"{Describe()} belongs to another topology");
        if (_taker is not null) throw new InvalidOperationException($"{Describe()} already goes to {_taker}: a stream goes to one place (balance it over several, or give each application a distribution of its own)");
    }

    internal string Describe() => Devices.Length != 0 ? $"the stream of {string.Join(",", Devices)}"
        : Sources.Length == 1 ? $"output {Sources[0].Output} of '{Sources[0].Node.Name}'"
        : $"the merge of {string.Join(", ", Sources.Select(s => $"'{s.Node.Name}'"))}";
}

/// <summary>Helpers for a balancer's streams.</summary>
public static class PacketStreams
{
    /// <summary>Ends every stream in a queue for a consumer, in order; returns their ids.</summary>
    public static int[] ToQueues(this IEnumerable<PacketStream> streams) => [.. streams.Select(s => s.ToQueue())];
}
