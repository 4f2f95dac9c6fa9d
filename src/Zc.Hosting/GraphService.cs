using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ZcFlow.Graphs;
using ZcFlow.Queues;

namespace ZcFlow.Hosting;

// A graph for the host's lifetime: built at start (an error there stops the start, naming the section), stats logged
// every StatsIntervalSeconds and once more at the end.
internal sealed class GraphService(string section, ZcFlowGraphOptions options, ILogger logger) : IHostedService, IDisposable
{
    private Graph? _graph;
    private Timer? _stats;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            _graph = options.Build(warning => logger.LogWarning("{Warning}", warning));
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or InvalidDataException or Native.ErrnoException)
        {
            throw new InvalidOperationException($"{section}: {e.Message}", e);
        }
        logger.LogInformation("cluster {Cluster}: {Balancers} balancer(s) from {Inputs} to queues {Queues}", options.ClusterId, _graph.Balancers.Count,
            string.Join(" | ", _graph.Balancers.Select(b => string.Join(",", b.Inputs.Select(i => i.Name)))),
            string.Join(",", _graph.Balancers.SelectMany(b => b.Outputs).Select(q => $"zc:{options.ClusterId}@{q.Id}")));
        if (options.StatsIntervalSeconds > 0)
            _stats = new Timer(_ => Report("stats"), null, TimeSpan.FromSeconds(options.StatsIntervalSeconds), TimeSpan.FromSeconds(options.StatsIntervalSeconds));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _stats?.Dispose();
        _stats = null;
        if (_graph is null) return Task.CompletedTask;
        Report("final stats");   // before the graph goes: its counters live in the cluster's memory
        _graph.Dispose();
        _graph = null;
        return Task.CompletedTask;
    }

    private void Report(string what)
    {
        if (_graph is not { } graph) return;
        foreach (var b in graph.Balancers)
        {
            ulong received = b.Received, filtered = b.Filtered, sent = 0, dropped = 0;
            foreach (ZcQueue q in b.Outputs)
            {
                QueueStats s = q.Stats;
                (sent, dropped) = (sent + s.Sent, dropped + s.Dropped);
                logger.LogInformation("{What}: queue zc:{Cluster}@{Queue} sent {Sent} dropped {Dropped} received {Received}", what, options.ClusterId, q.Id, s.Sent, s.Dropped, s.Received);
            }
            logger.LogInformation("{What}: received {Received} filtered {Filtered} forwarded {Forwarded} dropped {Dropped}", what, received, filtered, sent, dropped);
        }
    }

    public void Dispose()
    {
        _stats?.Dispose();
        _graph?.Dispose();
    }
}
