using OpenTelemetry;
using OpenTelemetry.Metrics;
using ZcFlow.Graphs;

namespace ZcFlow.Samples;

/// <summary>The samples' metrics endpoint: the meter ZcFlow for Prometheus, through OpenTelemetry's exporter.</summary>
internal static class Prometheus
{
    /// <summary>
    /// Takes <c>--metrics-port N</c>, ZcFlow's own long option, out of <paramref name="arguments"/>: the port, or null without
    /// the option; false (with the message printed) when its value is not a TCP port.
    /// </summary>
    public static bool TakePort(ref string[] arguments, out int? port)
    {
        port = null;
        int at = Array.IndexOf(arguments, "--metrics-port");
        if (at < 0) return true;
        if (at + 1 >= arguments.Length || !int.TryParse(arguments[at + 1], out int p) || p is < 1 or > 65535)
        {
            Console.Error.WriteLine("error: --metrics-port takes a TCP port, 1 to 65535");
            return false;
        }
        port = p;
        arguments = [.. arguments[..at], .. arguments[(at + 2)..]];
        return true;
    }

    /// <summary>Serves the counters at <c>http://localhost:&lt;port&gt;/metrics</c> until disposed; null without a port.</summary>
    public static MeterProvider? Serve(int? port) => port is int p
        ? Sdk.CreateMeterProviderBuilder().AddMeter(GraphMetrics.MeterName)
            .AddPrometheusHttpListener(o => { o.Host = "localhost"; o.Port = p; o.ScrapeResponseCacheDurationMilliseconds = 0; }).Build()
        : null;
}
