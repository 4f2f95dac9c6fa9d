using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ZcFlow.Ipc;

namespace ZcFlow.Hosting;

/// <summary>ZcFlow in a .NET Generic Host: a graph from configuration, and consumers of queues, as hosted services.</summary>
public static class ZcFlowServices
{
    /// <summary>
    /// Builds and runs the Balancer graph that <paramref name="section"/> describes (<see cref="ZcFlowGraphOptions"/>'s keys)
    /// while the host runs. The section is checked when the host starts: an unknown key, a value of the wrong type or out of
    /// range stops the start with a message naming the key. On shutdown the graph stops and its final stats are logged.
    /// </summary>
    public static IServiceCollection AddZcFlowGraph(this IServiceCollection services, IConfigurationSection section)
    {
        string name = section.Path;
        services.AddOptions<ZcFlowGraphOptions>(name)
            .Configure(options =>
            {
                string[] keys = [.. typeof(ZcFlowGraphOptions).GetProperties().Select(p => p.Name)];
                foreach (IConfigurationSection key in section.GetChildren())
                    if (!keys.Contains(key.Key, StringComparer.OrdinalIgnoreCase))
                        throw new InvalidOperationException($"{key.Path}: not an option of a graph; they are {string.Join(", ", keys)}");
                section.Bind(options);
            })
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<ZcFlowGraphOptions>>(new GraphValidation(name));
        services.AddSingleton<IHostedService>(sp =>
        {
            ZcFlowGraphOptions options = sp.GetRequiredService<IOptionsMonitor<ZcFlowGraphOptions>>().Get(name);
            return new GraphService(name, options.ClusterId, options.Build, options.StatsIntervalSeconds, sp.GetRequiredService<ILoggerFactory>().CreateLogger("ZcFlow.Graph"));
        });
        return services;
    }

    /// <summary>
    /// Builds and runs the topology that <paramref name="section"/> describes (<see cref="ZcFlowTopologyOptions"/>: stages
    /// reading devices or earlier stages, filtering, delaying, balancing) while the host runs. The section is checked when
    /// the host starts: an unknown key or a stage that does not fit stops the start with a message naming the key. Stats are
    /// logged every <paramref name="statsIntervalSeconds"/> (0: only at the end).
    /// </summary>
    public static IServiceCollection AddZcFlowTopology(this IServiceCollection services, IConfigurationSection section, int statsIntervalSeconds = 0)
    {
        string name = section.Path;
        services.AddSingleton<IHostedService>(sp =>
        {
            ZcFlowTopologyOptions options;
            try
            {
                options = ZcFlowTopologyOptions.From(section);
            }
            catch (InvalidOperationException e)
            {
                throw new InvalidOperationException($"{name}: {SetupError.Describe(e)}", e);
            }
            if (options.Problems(name) is { Count: > 0 } problems) throw new OptionsValidationException(name, typeof(ZcFlowTopologyOptions), problems);
            return new GraphService(name, options.ClusterId, options.Build, statsIntervalSeconds, sp.GetRequiredService<ILoggerFactory>().CreateLogger("ZcFlow.Graph"));
        });
        return services;
    }

    /// <summary>
    /// Runs a <typeparamref name="T"/> of its own (made by the container, which gives it its dependencies) as the consumer of
    /// <paramref name="queue"/> (<c>zc:99@0</c>): on a worker thread of its own, pinned when asked, each burst handed to
    /// <see cref="IPacketConsumer.OnPackets"/> and released after. A cluster not there yet is waited for; an owner that goes
    /// is logged and its successor attached to.
    /// </summary>
    public static IServiceCollection AddZcFlowConsumer<T>(this IServiceCollection services, string queue, Action<ZcFlowConsumerOptions>? configure = null)
        where T : class, IPacketConsumer
    {
        if (!AttachedQueue.TryParse(queue, out _, out _))
            throw new ArgumentException($"'{queue}' is not a queue name: write zc:<cluster>@<queue>, for example zc:99@0", nameof(queue));
        var options = new ZcFlowConsumerOptions();
        configure?.Invoke(options);
        services.AddSingleton<IHostedService>(sp => new ConsumerService(queue, ActivatorUtilities.CreateInstance<T>(sp), options,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("ZcFlow.Consumer"), sp.GetRequiredService<IHostApplicationLifetime>()));
        return services;
    }

    // Every problem of the section at once, each naming its key.
    private sealed class GraphValidation(string name) : IValidateOptions<ZcFlowGraphOptions>
    {
        public ValidateOptionsResult Validate(string? optionsName, ZcFlowGraphOptions options)
            => optionsName != name ? ValidateOptionsResult.Skip
                : options.Problems(name) is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
    }
}

/// <summary>How a hosted consumer runs.</summary>
public sealed class ZcFlowConsumerOptions
{
    /// <summary>The core its thread is pinned to; none: not pinned.</summary>
    public int? Core { get; set; }

    /// <summary>Busy-poll when the queue is empty, rather than sleep.</summary>
    public bool ActiveWait { get; set; }

    /// <summary>Packets per burst, at most.</summary>
    public int Burst { get; set; } = 32;
}

/// <summary>A consumer of packets, called with each burst on the consumer's own thread.</summary>
public interface IPacketConsumer
{
    /// <summary>
    /// The packets of one burst, in their order in the queue. They are released when this returns: copy what must be
    /// kept. Called on one thread, never concurrently; an exception stops the consumer and the host.
    /// </summary>
    void OnPackets(ReadOnlySpan<Buffers.PacketHandle> packets);
}
