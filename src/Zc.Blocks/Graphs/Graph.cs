using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Queues;
using ZcFlow.Workers;

namespace ZcFlow.Graphs;

/// <summary>
/// A running graph: its cluster, the balancers with their devices and queues, and the pinned
/// workers that run them. Disposing stops the workers (rethrowing what one threw), closes the
/// devices and removes the cluster.
/// </summary>
public sealed class Graph : IDisposable
{
    private readonly List<ZcWorker> _workers;
    private int _disposed;

    internal Graph(ZcCluster cluster, IReadOnlyList<IBalancer> balancers, List<ZcWorker> workers)
    {
        Cluster = cluster;
        Balancers = balancers;
        _workers = workers;
    }

    public ZcCluster Cluster { get; }

    public IReadOnlyList<IBalancer> Balancers { get; }

    /// <summary>Every output queue, in id order: consumers attach to <c>zc:&lt;cluster&gt;@&lt;id&gt;</c>.</summary>
    public IReadOnlyList<ZcQueue> Queues => Cluster.Queues;

    /// <summary>True while every worker runs (false once one stopped on an exception).</summary>
    public bool IsRunning => _workers.All(w => w.IsRunning);

    /// <summary>True when every input is a finite source that has given everything.</summary>
    public bool InputsExhausted => Balancers.All(b => b.InputsExhausted);

    /// <summary>Stops the workers, closes the devices, removes the cluster. Rethrows what a worker threw. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            foreach (ZcWorker w in _workers) w.Dispose();
        }
        finally
        {
            foreach (IBalancer b in Balancers) CloseDevices(b);
            Cluster.Dispose();
        }
    }

    internal static void CloseDevices(IBalancer balancer)
    {
        foreach (IPacketSource input in balancer.Inputs) input.Dispose();
        foreach (IPacketSink? sink in balancer.Egress) sink?.Dispose();
    }
}
