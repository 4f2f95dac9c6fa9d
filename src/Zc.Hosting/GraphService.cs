using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ZcFlow.Graphs;
using ZcFlow.Queues;

namespace ZcFlow.Hosting;

// A graph for the host's lifetime: built at start (an error there stops the start, naming the section), stats logged
// every statsIntervalSeconds and once more at the end. The graph is a Balancer's (ZcFlowGraphOptions) or any topology's.
internal sealed class GraphService(string section, uint clusterId, Func<Action<string>, Graph> build, int statsIntervalSeconds, ILogger logger)
    : IHostedService, IDisposable
{
    private Graph? _graph;
    private Timer? _stats;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            _graph = build(warning => logger.LogWarning("{Warning}", warning));
        }
        catch (Exception e) when (SetupError.Is(e))
        {
            throw new InvalidOperationException($"{section}: {SetupError.Describe(e)}", e);
        }
        logger.LogInformation("cluster {Cluster}: {Balancers} balancer(s), {Stages} other stage(s) from {Inputs} to queues {Queues}", clusterId, _graph.Balancers.Count,
            _graph.Pipes.Count, string.Join(",", _graph.Inputs.Select(i => i.Name)), string.Join(",", _graph.ConsumerQueues.Select(q => $"zc:{clusterId}@{q.Id}")));
        if (statsIntervalSeconds > 0)
            _stats = new Timer(_ => Report("stats"), null, TimeSpan.FromSeconds(statsIntervalSeconds), TimeSpan.FromSeconds(statsIntervalSeconds));
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
            foreach (EgressQueue q in b.Outputs)
            {
                QueueStats s = q.Stats;
                (sent, dropped) = (sent + s.Sent, dropped + s.Dropped);
                logger.LogInformation("{What}: queue zc:{Cluster}@{Queue} sent {Sent} dropped {Dropped} received {Received}", what, clusterId, q.Id, s.Sent, s.Dropped, s.Received);
            }
            logger.LogInformation("{What}: received {Received} filtered {Filtered} forwarded {Forwarded} dropped {Dropped}", what, received, filtered, sent, dropped);
        }
        foreach (var p in graph.Pipes)
            logger.LogInformation("{What}: stage '{Stage}' received {Received} forwarded {Forwarded} filtered {Filtered} dropped {Dropped}", what, p.Name, p.Received, p.Forwarded, p.Filtered, p.Dropped);
    }

    public void Dispose()
    {
        _stats?.Dispose();
        _graph?.Dispose();
    }
}
