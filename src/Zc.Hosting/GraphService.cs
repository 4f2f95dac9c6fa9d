using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ZcFlow.Graphs;

namespace ZcFlow.Hosting;

// A graph for the host's lifetime: built at start (an error there stops the start, naming the section), stats logged
// every statsIntervalSeconds and once more at the end. The graph is a Balancer's (BalancerOptions, bound as ZcFlowGraphOptions) or any topology's.
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
        GraphStats stats = graph.Stats();
        foreach (OutputStats o in stats.Outputs)
            logger.LogInformation("{What}: {Output} sent {Sent} dropped {Dropped} received {Received}", what,
                o.Device ?? $"queue zc:{clusterId}@{o.Queue}", o.Sent, o.Dropped, o.Taken);
        if (stats.Balancers.Count != 0)
            logger.LogInformation("{What}: received {Received} filtered {Filtered} forwarded {Forwarded} dropped {Dropped}", what, stats.Received, stats.Filtered, stats.Forwarded, stats.Dropped);
        foreach (StageStats p in stats.Stages)
            logger.LogInformation("{What}: stage '{Stage}' received {Received} forwarded {Forwarded} filtered {Filtered} dropped {Dropped}", what, p.Name, p.Received, p.Forwarded, p.Filtered, p.Dropped);
    }

    public void Dispose()
    {
        _stats?.Dispose();
        _graph?.Dispose();
    }
}
