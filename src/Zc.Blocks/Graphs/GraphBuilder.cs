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
/// Each <see cref="Input"/> makes one balancer, with its own worker, pool and queues.
/// </summary>
public sealed class GraphBuilder
{
    private readonly uint _id;
    private readonly List<string[]> _inputs = [];
    private ClusterOptions _options = new();
    private int[] _applications = [1];
    private int _slots = 4096;
    private bool _lossless;
    private bool _activeWait;
    private TimeSpan _delay;
    private int? _consumerBuffers;
    private BpfFilter? _filter;
    private VlanAllowList? _vlans;
    private readonly Dictionary<int, BpfFilter> _outputFilters = [];
    private readonly List<(int Output, string Device)> _egress = [];

    private GraphBuilder(uint id) => _id = id;

    public static GraphBuilder Cluster(uint id) => new(id);

    /// <summary>Buffer size and count, hugepages and the rest (the buffer count is shared by the balancers).</summary>
    public GraphBuilder Options(ClusterOptions options) { _options = options; return this; }

    /// <summary>Devices aggregated into one balancer; call again for another balancer.</summary>
    public GraphBuilder Input(params string[] devices)
    {
        if (devices.Length == 0) throw new ArgumentException("an input needs at least one device", nameof(devices));
        _inputs.Add(devices);
        return this;
    }

    /// <summary>Queues per application (zbalance_ipc's <c>-n 2,1</c>); one application with one queue by default.</summary>
    public GraphBuilder Applications(params int[] queuesPerApplication) { _applications = queuesPerApplication; return this; }

    /// <summary>Slots of each queue.</summary>
    public GraphBuilder QueueSlots(int slots) { _slots = slots; return this; }

    /// <summary>
    /// zbalance_ipc's <c>-b</c>: each queue's consumer may hold <paramref name="buffers"/> buffers beyond the
    /// queue's slots (received and not yet released), and no more (<see cref="ZcQueue.Quota"/> = slots + buffers).
    /// The cluster is then sized to match, as zbalance_ipc sizes it: every queue's quota, and 4096 buffers for
    /// each input device, whatever <see cref="ClusterOptions.BufferCount"/> says; so no consumer, however it
    /// hoards, can take a buffer another queue or a device needs.
    /// </summary>
    public GraphBuilder ConsumerBuffers(int buffers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(buffers);
        _consumerBuffers = buffers;
        return this;
    }

    /// <summary>Buffers set aside for each input device, when the cluster is sized from the quotas.</summary>
    public const int BuffersPerDevice = 4096;

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

    /// <summary>Only packets that pass <paramref name="filter"/> go to queue <paramref name="queueId"/> (zbalance_ipc's <c>-f file@queue</c>).</summary>
    public GraphBuilder OutputFilter(int queueId, BpfFilter filter)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(queueId);
        _outputFilters[queueId] = filter ?? throw new ArgumentNullException(nameof(filter));
        return this;
    }

    /// <summary>
    /// What goes to output <paramref name="output"/> (a queue id within each balancer) is sent out of
    /// <paramref name="device"/> instead (zbalance_ipc's <c>-r 0:eth1</c>); each balancer opens the device for itself.
    /// </summary>
    public GraphBuilder Egress(int output, string device)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(output);
        ArgumentException.ThrowIfNullOrEmpty(device);
        _egress.Add((output, device));
        return this;
    }

    /// <summary>Builds and runs the graph with a distribution of your own (a struct: no call per packet is virtual).</summary>
    public Graph Balance<T>(T distribution, params int[] cores) where T : struct, IDistribution
        => Build((pool, inputs, outputs) => new Balancer<PerApplication<T>>(pool, inputs, outputs, new PerApplication<T>(_applications, distribution), _lossless), cores);

    /// <summary>Builds and runs the graph with a zbalance_ipc <c>-m</c> mode (<see cref="BalancerMode"/>).</summary>
    public Graph Balance(int mode, params int[] cores)
        => Build((pool, inputs, outputs) => BalancerMode.Create(mode, pool, inputs, outputs, _applications, _lossless), cores);

    private Graph Build(Func<BufferPool, IPacketSource[], ZcQueue[], IBalancer> make, int[] cores)
    {
        if (_inputs.Count == 0) throw new InvalidOperationException("the graph has no input: call Input(\"gen:64\") or name a device");
        if (cores.Length > 1 && cores.Length != _inputs.Count)
            throw new ArgumentException($"give one core for every balancer ({_inputs.Count}), or one for all", nameof(cores));
        int queues = _applications.Sum();
        // AF_XDP devices receive into the buffers themselves, which must then hold the longest frame the kernel writes.
        bool xdp = _inputs.Any(i => i.Any(XdpDevice.IsName)) || _egress.Any(e => XdpDevice.IsName(e.Device));
        int slots = ZcCluster.QueueCapacity(_slots);
        // With a quota per consumer, each balancer's pool holds every quota and its devices' share; else the count is split evenly.
        int PoolSize(string[] names) => queues * (slots + _consumerBuffers!.Value) + names.Length * BuffersPerDevice;
        int bufferCount = _consumerBuffers is null ? _options.BufferCount : _inputs.Sum(PoolSize);
        ZcCluster cluster = ZcCluster.Create(_id, new ClusterOptions
        {
            BufferSize = xdp ? Math.Max(_options.BufferSize, XdpDevice.MinBufferSize) : _options.BufferSize, BufferCount = bufferCount, MaxQueues = Math.Max(_options.MaxQueues, queues * _inputs.Count),
            RequireHugePages = _options.RequireHugePages, UseHugePages = _options.UseHugePages, LockMemory = _options.LockMemory,
            GroupId = _options.GroupId, Warn = _options.Warn,
        });
        var balancers = new List<IBalancer>();
        var workers = new List<ZcWorker>();
        try
        {
            uint device = 0;
            foreach (string[] names in _inputs)
            {
                int perBalancer = _consumerBuffers is null ? cluster.BufferCount / _inputs.Count : PoolSize(names);
                BufferPool pool = cluster.CreatePool(perBalancer);
                var outputs = new ZcQueue[queues];
                for (int q = 0; q < queues; q++)
                {
                    outputs[q] = cluster.CreateQueue(Math.Min(_slots, perBalancer));
                    if (_consumerBuffers is int extra) outputs[q].Quota = outputs[q].Capacity + extra;
                }
                var inputs = new List<IPacketSource>();
                try
                {
                    foreach (string name in names) inputs.Add(Device.OpenSource(name, pool, device++));
                }
                catch
                {
                    foreach (IPacketSource opened in inputs) opened.Dispose();
                    throw;
                }
                IBalancer balancer = make(pool, [.. inputs], outputs);
                balancers.Add(balancer);
                balancer.Filter = _filter;
                balancer.Vlans = _vlans;
                for (int q = 0; q < queues; q++)
                    if (_outputFilters.TryGetValue(outputs[q].Id, out BpfFilter? outputFilter)) balancer.SetOutputFilter(q, outputFilter);
                foreach ((int output, string sink) in _egress)
                {
                    if (output >= queues) throw new ArgumentOutOfRangeException(nameof(output), output, $"egress to output {output}, but a balancer has {queues} (0 to {queues - 1})");
                    balancer.SetEgress(output, Device.OpenSink(sink, pool));
                }
            }
            if (_delay > TimeSpan.Zero) Thread.Sleep(_delay);
            for (int b = 0; b < balancers.Count; b++)
            {
                int? core = cores.Length == 0 ? null : cores[cores.Length == 1 ? 0 : b];
                workers.Add(ZcWorker.Start($"balancer {b}", balancers[b].DoWork, new WorkerOptions { Core = core, ActiveWait = _activeWait }));
            }
            return new Graph(cluster, balancers, workers);
        }
        catch
        {
            foreach (ZcWorker w in workers) w.Dispose();
            foreach (IBalancer b in balancers) Graph.CloseDevices(b);
            cluster.Dispose();
            throw;
        }
    }
}
