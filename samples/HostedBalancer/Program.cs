using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using ZcFlow.Buffers;
using ZcFlow.Hosting;
using ZcFlow.Samples;

// The Balancer as a .NET worker service: the graph from appsettings.json's "Balancer" section (keys named like
// zbalance_ipc's options; command-line arguments override them: --Balancer:Mode=1), a counting consumer on each queue of
// "Consumers", logs through ILogger (journald under systemd, which is told when it is ready and when it stops),
// shutdown on SIGTERM or Ctrl-C with the final stats; "MetricsPort" serves the counters for Prometheus.
// appsettings.json beside the program, wherever it is started from.
HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Services.AddSystemd();
// A "Topology" section (ZcFlowTopologyOptions: any graph of stages) runs instead of the Balancer, when one is given.
if (builder.Configuration.GetSection("Topology").Exists())
    builder.Services.AddZcFlowTopology(builder.Configuration.GetSection("Topology"), builder.Configuration.GetValue<int>("StatsIntervalSeconds"));
else
    builder.Services.AddZcFlowGraph(builder.Configuration.GetSection("Balancer"));
foreach (string queue in builder.Configuration.GetSection("Consumers").Get<string[]>() ?? [])
    builder.Services.AddZcFlowConsumer<PacketCounter>(queue);
using IHost host = builder.Build();
using var metrics = Prometheus.Serve(builder.Configuration.GetValue<int?>("MetricsPort"));
try
{
    host.Run();
}
catch (Exception e) when (e is OptionsValidationException or InvalidOperationException)
{
    // A configuration that is wrong, or a graph that cannot be built: said in one line, naming the key.
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
return 0;

/// <summary>Counts what it is given; the consumer's own final stats say how much.</summary>
internal sealed class PacketCounter : IPacketConsumer
{
    public long Bytes;

    public void OnPackets(ReadOnlySpan<PacketHandle> packets)
    {
        foreach (ref readonly PacketHandle p in packets) Bytes += p.Length;
    }
}
