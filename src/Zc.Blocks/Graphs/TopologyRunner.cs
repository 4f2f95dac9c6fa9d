using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Queues;
using ZcFlow.Workers;

namespace ZcFlow.Graphs;

/// <summary>
/// Carries out a <see cref="TopologyPlan"/>: creates the cluster and its queues, each stage's pool or relay, opens the
/// devices, makes the stages and starts one worker per thread of the plan. It decides nothing the plan does not say; on
/// any failure it undoes what it made, in reverse.
/// </summary>
internal sealed class TopologyRunner
{
    private readonly TopologyPlan _plan;
    private readonly ZcCluster _cluster;
    private readonly QueueEnd[] _queues;
    private readonly List<IBalancer> _balancers = [];
    private readonly List<IPipe> _pipes = [];
    private readonly List<IDisposable> _opened = [];
    private readonly List<ZcWorker> _workers = [];
    private readonly Dictionary<Topology.Node, Func<bool>> _finished = [];
    private readonly Dictionary<Topology.Node, Func<int>> _work = [];
    private uint _device;   // device indexes, from 0 across the graph, in the order the stages open them

    private TopologyRunner(TopologyPlan plan, ZcCluster cluster)
    {
        _plan = plan;
        _cluster = cluster;
        _queues = new QueueEnd[plan.QueueCount];
    }

    public static Graph Run(TopologyPlan plan, TimePulse? clock)
    {
        ZcCluster cluster = ZcCluster.Create(plan.ClusterId, plan.Cluster);
        var runner = new TopologyRunner(plan, cluster);
        try
        {
            return runner.Start(clock);
        }
        catch
        {
            foreach (ZcWorker w in runner._workers) w.Dispose();
            clock?.Dispose();
            foreach (IDisposable d in runner._opened) d.Dispose();
            foreach (IBalancer b in runner._balancers)
                foreach (IPacketSink? sink in b.Egress) sink?.Dispose();
            cluster.Dispose();
            throw;
        }
    }

    private Graph Start(TimePulse? clock)
    {
        for (int q = 0; q < _queues.Length; q++)
            _queues[q] = _plan.Ingress.Contains(q) ? _cluster.CreateIngressQueue(_plan.QueueSlots) : _cluster.CreateQueue(_plan.QueueSlots);
        foreach (TopologyPlan.Stage stage in _plan.Stages) Make(stage);
        if (_plan.Delay > TimeSpan.Zero) Thread.Sleep(_plan.Delay);
        foreach (TopologyPlan.StageThread thread in _plan.Threads)
        {
            Func<int>[] turns = [.. thread.Stages.Select(s => _work[s.Node])];
            Func<int> work = turns.Length == 1 ? turns[0] : () =>
            {
                int moved = 0;
                foreach (Func<int> turn in turns) moved += turn();
                return moved;
            };
            _workers.Add(ZcWorker.Start(string.Join(", ", thread.Stages.Select(s => s.Node.Name)), work, new WorkerOptions { Core = thread.Core, ActiveWait = _plan.ActiveWait }));
        }
        return new Graph(_cluster, _balancers, _pipes, _workers, clock, [.. _plan.ConsumerQueues.Select(q => (EgressQueue)_queues[q])]);
    }

    private EgressQueue Egress(int queue) => (EgressQueue)_queues[queue];

    private void Make(TopologyPlan.Stage stage)
    {
        Topology.Node n = stage.Node;
        BufferOwner pool;
        List<IPacketSource> sources;
        if (stage.Reads)
        {
            BufferPool own = _cluster.CreatePool(stage.PoolBuffers, [.. stage.SpareQueues.Select(q => (IngressQueue)_queues[q])], stage.SparesEach);
            (pool, sources) = (own, Open(n, own));
        }
        else
        {
            BufferRelay relay = _cluster.CreateRelay([.. stage.InputQueues.Select(Egress)]);
            (pool, sources) = (relay, [.. n.Input.Sources.Select((s, i) => new StreamSource(relay, i, s.Node.Name, _finished[s.Node]))]);
        }
        if (n is Topology.BalancerNode b)
        {
            IBalancer balancer = b.Make(pool, [.. sources], [.. stage.OutputQueues.Select(Egress)], _plan.Lossless);
            _balancers.Add(balancer);
            for (int o = 0; o < n.Outputs.Length; o++)
                if (n.Outputs[o].Egress is { } name) balancer.SetEgress(o, Device.OpenSink(name, pool as BufferPool));
            b.Configure(balancer, pool);
            _finished[n] = () => balancer.Finished;
            _work[n] = balancer.DoWork;
        }
        else
        {
            IPacketSink? sink = n.Outputs[0].Egress is { } name ? Keep(Device.OpenSink(name, pool as BufferPool)) : null;
            IPipe pipe = ((Topology.PipeNode)n).Make(pool, [.. sources], sink is null ? Egress(stage.OutputQueues[0]) : null, sink);
            _pipes.Add(pipe);
            _finished[n] = () => pipe.Finished;
            _work[n] = pipe.DoWork;
        }
    }

    // The sources of a stage that reads: its devices, or the pipes fused into it, which read theirs into the same pool.
    private List<IPacketSource> Open(Topology.Node n, BufferPool pool)
    {
        var sources = new List<IPacketSource>();
        PacketStream input = n.Input;
        for (int i = 0; i < input.Devices.Length; i++, _device++)
        {
            IPacketSource source = input.Ingress[i] >= 0
                ? new IngressQueueSource((IngressQueue)_queues[input.Ingress[i]], pool, _device, $"zc:{_plan.ClusterId}@{input.Ingress[i]}")
                : _plan.DeviceRules is { } rules ? Device.OpenSource(input.Devices[i], pool, _device, rules) : Device.OpenSource(input.Devices[i], pool, _device);
            sources.Add(Keep(source));
        }
        foreach ((Topology.Node fused, _) in input.Sources)
        {
            IPipe pipe = ((Topology.PipeNode)fused).Make(pool, [.. Open(fused, pool)], null, null);
            _pipes.Add(pipe);
            sources.Add((IPacketSource)pipe);
        }
        return sources;
    }

    private T Keep<T>(T opened) where T : IDisposable
    {
        _opened.Add(opened);
        return opened;
    }
}
