using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Queues;
using ZcFlow.Workers;

namespace ZcFlow.Graphs;

/// <summary>
/// A running graph: its cluster, the balancers and pipes with their devices and queues, and the pinned
/// workers that run them (<see cref="Topology"/>, <see cref="GraphBuilder"/>). Every second the devices' counters are written into the cluster's
/// arena, where the cluster listing (samples/ZStat) shows them. Disposing stops the workers
/// (rethrowing what one threw), closes the devices and removes the cluster.
/// </summary>
public sealed class Graph : IDisposable
{
    private readonly List<ZcWorker> _workers;
    private readonly DeviceListing _listing;
    private readonly TimePulse? _clock;
    private int _disposed;

    internal Graph(ZcCluster cluster, IReadOnlyList<IBalancer> balancers, IReadOnlyList<IPipe> pipes, List<ZcWorker> workers, TimePulse? clock,
        IReadOnlyList<EgressQueue> consumerQueues)
    {
        ConsumerQueues = consumerQueues;
        _clock = clock;
        Cluster = cluster;
        Balancers = balancers;
        Pipes = pipes;
        _workers = workers;
        Inputs = [.. balancers.SelectMany(b => b.Inputs).Concat(pipes.SelectMany(p => p.Inputs)).Where(d => d is not StreamSource and not IPipe)];
        IEnumerable<IPacketSink> sinks = balancers.SelectMany(b => b.Egress.OfType<IPacketSink>()).Concat(pipes.Select(p => p.Sink).OfType<IPacketSink>());
        _listing = new DeviceListing(cluster, Inputs, sinks);
        Metrics = new GraphMetrics(this);
    }

    /// <summary>The graph's counters as instruments of the meter <c>ZcFlow</c>.</summary>
    public GraphMetrics Metrics { get; }

    public ZcCluster Cluster { get; }

    public IReadOnlyList<IBalancer> Balancers { get; }

    /// <summary>The pipes: stages, filters, delays and collectors, each on a worker of its own.</summary>
    public IReadOnlyList<IPipe> Pipes { get; }

    /// <summary>The devices the graph reads (not the queues between its stages).</summary>
    public IReadOnlyList<IPacketSource> Inputs { get; }

    /// <summary>The queues for consumers, in id order (<see cref="PacketStream.ToQueue"/>): not the ingress queues, nor those between stages.</summary>
    public IReadOnlyList<EgressQueue> ConsumerQueues { get; }

    /// <summary>Every queue, in id order: consumers attach to <c>zc:&lt;cluster&gt;@&lt;id&gt;</c> (and applications send into ingress queues).</summary>
    public IReadOnlyList<QueueEnd> Queues => Cluster.Queues;

    /// <summary>
    /// The receiving end of queue <paramref name="id"/>, for a consumer thread of this process (a process of its own
    /// attaches to <c>zc:&lt;cluster&gt;@&lt;id&gt;</c> instead).
    /// </summary>
    public QueueConsumer Consumer(int id) => Queues[id] is EgressQueue q ? q.Consumer
        : throw new ArgumentException($"queue {id} of cluster {Cluster.Id} is an ingress queue: applications send into it", nameof(id));

    /// <summary>The graph's counters now, as every reporter reads them (<see cref="GraphStats"/>); any thread may read them.</summary>
    public GraphStats Stats() => new(this);

    /// <summary>True while every worker runs (false once one stopped on an exception).</summary>
    public bool IsRunning => _workers.All(w => w.IsRunning);

    /// <summary>True when every input is a finite source that has given everything, and every stage has passed it on.</summary>
    public bool InputsExhausted => Balancers.All(b => b.InputsExhausted) && Pipes.All(p => p.Finished);

    /// <summary>
    /// True when the inputs are exhausted (<see cref="InputsExhausted"/>) and the consumers of every queue have received and
    /// released all of it: a graph of files that has nothing left to do.
    /// </summary>
    public bool Delivered => InputsExhausted && ConsumerQueues.All(q => q.Held == 0);

    /// <summary>Stops the workers, closes the devices, removes the cluster. Rethrows what a worker threw. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Metrics.Dispose();   // no listener reads a device once it closes
        _listing.Dispose();   // no publishing once the devices close
        try
        {
            foreach (ZcWorker w in _workers) w.Dispose();
        }
        finally
        {
            _clock?.Dispose();
            foreach (IBalancer b in Balancers)
            {
                foreach (IPacketSource input in b.Inputs) input.Dispose();
                foreach (IPacketSink? sink in b.Egress) sink?.Dispose();
            }
            foreach (IPipe p in Pipes)
            {
                foreach (IPacketSource input in p.Inputs) input.Dispose();
                p.Sink?.Dispose();
            }
            Cluster.Dispose();
        }
    }
}
