using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Filters;
using ZcFlow.Memory;
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
    /// Devices, read by the stage this stream goes to (in arrival order, or in time order after
    /// <see cref="PacketStream.InTimeOrder"/>): any name <see cref="Device.OpenSource"/> takes.
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

    /// <summary>Checks the graph, creates the cluster, its pools and queues, opens the devices and starts every stage's worker.</summary>
    public Graph Run()
    {
        ThrowIfRan();
        Check();
        _ran = true;
        // A pipe that reads devices (or pipes fused into it) and is all a stage on its own core takes, with others like it,
        // is fused into that stage: read on its thread, into its pool, with no queue between them.
        var fused = new HashSet<Node>();
        bool Reads(Node n) => n.Input.Devices.Length != 0 || n.Input.Sources.All(s => fused.Contains(s.Node));
        foreach (Node n in _nodes)
            if (n.Core is not null && n.Input.Sources.Length != 0
                && n.Input.Sources.All(s => s.Node.Kind == NodeKind.Pipe && s.Node.Core == n.Core && !s.Node.Delayed && Reads(s.Node)))
                foreach (var s in n.Input.Sources) fused.Add(s.Node);
        Node[] running = [.. _nodes.Where(n => !fused.Contains(n))];

        // Queue ids: the consumers' and ingress queues as declared, then the queues between stages.
        var internalQueues = new Dictionary<(Node, int), int>();
        foreach (Node n in running)
            for (int o = 0; o < n.Outputs.Length; o++)
                if (n.Outputs[o].QueueId < 0 && n.Outputs[o].Egress is null || n.Kind == NodeKind.Balancer && n.Outputs[o].Egress is not null)
                    internalQueues[(n, o)] = _queues + internalQueues.Count;
        int queueCount = _queues + internalQueues.Count;
        if (queueCount > ArenaLayout.MaxQueues)
            throw new InvalidOperationException($"the graph needs {queueCount} queues ({_queues} for consumers and inputs, {internalQueues.Count} between stages); a cluster has at most {ArenaLayout.MaxQueues}");

        Node[] readers = [.. running.Where(Reads)];
        int shared = readers.Count(n => n.PoolBuffers is null);
        int bufferCount = readers.Sum(n => n.PoolBuffers ?? 0) + (shared == 0 ? 0 : _options.BufferCount);
        bool xdp = _nodes.Any(n => n.Input.Devices.Any(XdpDevice.IsName)) || _streams.Any(s => s.Egress is { } e && XdpDevice.IsName(e));
        ZcCluster cluster = ZcCluster.Create(_id, _options with
        {
            BufferSize = xdp ? Math.Max(_options.BufferSize, XdpDevice.MinBufferSize) : _options.BufferSize,
            BufferCount = bufferCount,
            MaxQueues = Math.Max(_options.MaxQueues, queueCount),
        });
        var balancers = new List<IBalancer>();
        var pipes = new List<IPipe>();
        var opened = new List<IDisposable>();
        var workers = new List<ZcWorker>();
        try
        {
            var queues = new QueueEnd[queueCount];
            var ingress = new HashSet<int>(_streams.SelectMany(s => s.Ingress).Where(q => q >= 0));
            int slots = Math.Min(_slots, cluster.BufferCount);
            for (int q = 0; q < queueCount; q++)
                queues[q] = ingress.Contains(q) ? cluster.CreateIngressQueue(slots) : cluster.CreateQueue(slots);
            EgressQueue QueueOf(Node n, int o) => (EgressQueue)queues[internalQueues.TryGetValue((n, o), out int q) ? q : n.Outputs[o].QueueId];

            var finished = new Dictionary<Node, Func<bool>>();
            uint device = 0;
            // The sources of a stage that reads: its devices, or the pipes fused into it, which read theirs into the same pool.
            List<IPacketSource> Open(Node n, BufferPool pool)
            {
                var sources = new List<IPacketSource>();
                PacketStream input = n.Input;
                for (int i = 0; i < input.Devices.Length; i++, device++)
                {
                    IPacketSource source = input.Ingress[i] >= 0
                        ? new IngressQueueSource((IngressQueue)queues[input.Ingress[i]], pool, device, $"zc:{_id}@{input.Ingress[i]}")
                        : Device.OpenSource(input.Devices[i], pool, device);
                    opened.Add(source);
                    sources.Add(source);
                }
                foreach ((Node pipe, _) in input.Sources)
                {
                    var read = (IPacketSource)pipe.MakePipe!(pool, [.. Open(pipe, pool)], null, null, pipe.Input.ByTime, pipe.Input.IdleWait);
                    pipes.Add((IPipe)read);
                    sources.Add(read);
                }
                return sources;
            }
            IEnumerable<int> IngressOf(Node n) => n.Input.Ingress.Where(q => q >= 0).Concat(n.Input.Sources.SelectMany(s => IngressOf(s.Node)));
            int DevicesOf(Node n) => n.Input.Ingress.Count(q => q < 0) + n.Input.Sources.Sum(s => DevicesOf(s.Node));
            foreach (Node n in running)
            {
                PacketStream input = n.Input;
                BufferPool pool;
                List<IPacketSource> sources;
                if (Reads(n))
                {
                    // An ingress queue's spares are buffers of the pool in memory of their own (the one part of the cluster
                    // its application may write), a share of the pool like each device's.
                    IngressQueue[] spares = [.. IngressOf(n).Select(q => (IngressQueue)queues[q])];
                    int buffers = n.PoolBuffers ?? (_options.BufferCount / shared), users = spares.Length + DevicesOf(n);
                    pool = cluster.CreatePool(buffers, spares, spares.Length == 0 ? null : buffers / users);
                    sources = Open(n, pool);
                }
                else
                {
                    pool = cluster.CreateRelay([.. input.Sources.Select(s => QueueOf(s.Node, s.Output))]);
                    sources = [.. input.Sources.Select((s, i) => new StreamSource(pool, i, s.Node.Name, finished[s.Node]))];
                }
                if (n.Kind == NodeKind.Balancer)
                {
                    IBalancer balancer = n.MakeBalancer!(pool, [.. sources], [.. Enumerable.Range(0, n.Outputs.Length).Select(o => QueueOf(n, o))], _lossless);
                    balancers.Add(balancer);
                    for (int o = 0; o < n.Outputs.Length; o++)
                        if (n.Outputs[o].Egress is { } name) balancer.SetEgress(o, Device.OpenSink(name, pool));
                    n.Configure?.Invoke(balancer, pool);
                    finished[n] = () => balancer.Finished;
                    n.Worker = balancer.DoWork;
                }
                else
                {
                    IPacketSink? sink = n.Outputs[0].Egress is { } name ? Keep(Device.OpenSink(name, pool)) : null;
                    IPipe pipe = n.MakePipe!(pool, [.. sources], sink is null ? QueueOf(n, 0) : null, sink, input.ByTime, input.IdleWait);
                    pipes.Add(pipe);
                    finished[n] = () => pipe.Finished;
                    n.Worker = pipe.DoWork;
                }
            }
            if (_delay > TimeSpan.Zero) Thread.Sleep(_delay);
            // Stages given the same core share one thread and take turns: two threads spinning on one core would each wait
            // out the other's time slice. A stage given no core has a thread of its own, placed by the system.
            foreach (Node[] group in running.GroupBy(n => n.Core ?? -1 - _nodes.IndexOf(n)).Select(g => g.ToArray()))
            {
                Func<int>[] turns = [.. group.Select(n => n.Worker!)];
                Func<int> work = turns.Length == 1 ? turns[0] : () =>
                {
                    int moved = 0;
                    foreach (Func<int> turn in turns) moved += turn();
                    return moved;
                };
                workers.Add(ZcWorker.Start(string.Join(", ", group.Select(n => n.Name)), work, new WorkerOptions { Core = group[0].Core, ActiveWait = _activeWait }));
            }
            return new Graph(cluster, balancers, pipes, workers, Clock, [.. _streams.Where(s => s.QueueId >= 0).Select(s => (EgressQueue)queues[s.QueueId]).OrderBy(q => q.Id)]);
        }
        catch
        {
            foreach (ZcWorker w in workers) w.Dispose();
            Clock?.Dispose();
            foreach (IDisposable d in opened) d.Dispose();
            foreach (IBalancer b in balancers)
                foreach (IPacketSink? sink in b.Egress) sink?.Dispose();
            cluster.Dispose();
            throw;
        }

        T Keep<T>(T sink) where T : IDisposable
        {
            opened.Add(sink);
            return sink;
        }
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

    internal Node AddNode(NodeKind kind, string? name, int? core, PacketStream input, int outputs, string? what = null)
    {
        ThrowIfRan();
        if (input.Topology != this) throw new ArgumentException($"{input.Describe()} belongs to another topology", nameof(input));
        name ??= $"{(kind == NodeKind.Balancer ? "balancer" : "stage")} {_nodes.Count}{(what is null ? "" : $" ({what})")}";
        if (core is < 0 || core >= Environment.ProcessorCount)
            throw new ArgumentOutOfRangeException(nameof(core), core, $"{name}: core {core}, but this machine has cores 0 to {Environment.ProcessorCount - 1}");
        if (_nodes.Any(n => n.Name == name)) throw new ArgumentException($"two stages are named '{name}'", nameof(name));
        var node = new Node(kind, name, core, input);
        input.TakenBy(this, $"'{name}'");
        node.Outputs = [.. Enumerable.Range(0, outputs).Select(o => Add(new PacketStream(this, [], [], [(node, o)], byTime: false, TimeSpan.Zero)))];
        _nodes.Add(node);
        return node;
    }

    internal enum NodeKind { Pipe, Balancer }

    internal sealed class Node(NodeKind kind, string name, int? core, PacketStream input)
    {
        public NodeKind Kind => kind;
        public string Name => name;
        public int? Core => core;
        public PacketStream Input => input;
        public PacketStream[] Outputs = [];
        public Func<BufferPool, IPacketSource[], EgressQueue?, IPacketSink?, bool, TimeSpan, IPipe>? MakePipe;
        public Func<BufferPool, IPacketSource[], EgressQueue[], bool, IBalancer>? MakeBalancer;
        public Action<IBalancer, BufferPool>? Configure;
        public bool Delayed;
        public int? PoolBuffers;
        public Func<int>? Worker;
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
        Topology.Node node = Topology.AddNode(Graphs.Topology.NodeKind.Pipe, name, core, this, 1, what ?? typeof(T).Name);
        node.Delayed = delay > TimeSpan.Zero;
        node.MakePipe = (pool, inputs, queue, sink, byTime, idleWait) => queue is not null ? new Pipe<T>(pool, inputs, queue, stage, byTime, idleWait, delay) { Name = node.Name }
            : sink is not null ? new Pipe<T>(pool, inputs, sink, stage, byTime, idleWait, delay) { Name = node.Name }
            : new Pipe<T>(pool, inputs, stage, byTime, idleWait) { Name = node.Name };
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
    /// <c>-m</c> mode (<see cref="BalancerMode"/>), with what the mode needs in <paramref name="options"/>.
    /// </summary>
    public IReadOnlyList<PacketStream> Balance(HashMode mode, int[] applications, BalancerModeOptions? options = null, int? core = null, string? name = null)
    {
        ApplicationQueues.Check(applications, nameof(applications));
        BalancerMode.CheckApplications(mode, applications, nameof(applications));
        int[] queues = [.. applications];
        return Balance((pool, inputs, outputs, lossless) => BalancerMode.Create(mode, pool, inputs, outputs, queues, lossless, options), queues.Sum(), core, name);
    }

    internal IReadOnlyList<PacketStream> Balance(Func<BufferPool, IPacketSource[], EgressQueue[], bool, IBalancer> make, int outputs, int? core, string? name,
        Action<IBalancer, BufferPool>? configure = null, int? poolBuffers = null)
    {
        if (ByTime) throw new InvalidOperationException($"{Describe()} is to be taken in time order, and a balancer takes its inputs in arrival order: put a stage first (InTimeOrder().Stage(new PassAll()))");
        Topology.Node node = Topology.AddNode(Graphs.Topology.NodeKind.Balancer, name, core, this, outputs);
        node.MakeBalancer = make;
        node.Configure = configure;
        node.PoolBuffers = poolBuffers;
        return node.Outputs;
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
