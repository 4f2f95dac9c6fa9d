using OpenTelemetry;
using OpenTelemetry.Metrics;
using ZcFlow.Graphs;

namespace ZcFlow.Samples;

/// <summary>The samples' metrics endpoint: the meter ZcFlow for Prometheus, through OpenTelemetry's exporter.</summary>
internal static class Prometheus
{
    /// <summary>Serves the counters at <c>http://localhost:&lt;port&gt;/metrics</c> until disposed; null without a port.</summary>
    public static MeterProvider? Serve(int? port) => port is int p
        ? Sdk.CreateMeterProviderBuilder().AddMeter(GraphMetrics.MeterName)
            .AddPrometheusHttpListener(o => { o.Host = "localhost"; o.Port = p; o.ScrapeResponseCacheDurationMilliseconds = 0; }).Build()
        : null;
}
