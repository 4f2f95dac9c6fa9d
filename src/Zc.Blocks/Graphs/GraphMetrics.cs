using System.Diagnostics.Metrics;
using ZcFlow.Devices;

namespace ZcFlow.Graphs;

/// <summary>
/// A running graph's counters as instruments of the meter <c>ZcFlow</c> (<see cref="System.Diagnostics.Metrics"/>),
/// for <c>dotnet-counters monitor --counters ZcFlow</c>, OpenTelemetry, or a Prometheus endpoint. Every
/// instrument is observable: it reads, when a listener asks, the counters the graph keeps anyway, so the
/// packet path pays nothing. Each measurement is tagged with the cluster id, and the queue, device, balancer or stage.
/// </summary>
public sealed class GraphMetrics : IDisposable
{
    /// <summary>The meter's name, for a listener to subscribe to.</summary>
    public const string MeterName = "ZcFlow";

    private readonly Meter _meter = new(MeterName);

    internal GraphMetrics(Graph graph)
    {
        var cluster = new KeyValuePair<string, object?>("cluster", graph.Cluster.Id);
        // Each instrument reads the graph's one snapshot (GraphStats): an output sent out of a device counts what the device sent.
        IEnumerable<Measurement<long>> Outputs(Func<OutputStats, long> value)
            => graph.Stats().Outputs.Select(o => new Measurement<long>(value(o), cluster, new("queue", o.Queue)));
        IEnumerable<Measurement<long>> Devices(Func<DeviceStats, ulong> value)
            => graph.Stats().Inputs.Select(d => new Measurement<long>((long)value(d.Stats), cluster, new("device", d.Name)));
        IEnumerable<Measurement<long>> Balancers(Func<(ulong Received, ulong Filtered), ulong> value)
            => graph.Stats().Balancers.Select((b, i) => new Measurement<long>((long)value(b), cluster, new("balancer", i)));
        IEnumerable<Measurement<long>> Stages(Func<StageStats, ulong> value)
            => graph.Stats().Stages.Select(p => new Measurement<long>((long)value(p), cluster, new("stage", p.Name)));

        // Received before sent: collected in this order, a scrape taken while packets flow never shows more taken out of a
        // queue than put in.
        _meter.CreateObservableCounter("zcflow.queue.received", () => Outputs(o => (long)o.Taken), "{packet}", "Packets its consumer took (or its device sent)");
        _meter.CreateObservableCounter("zcflow.queue.sent", () => Outputs(o => (long)o.Sent), "{packet}", "Packets put in the queue");
        _meter.CreateObservableCounter("zcflow.queue.dropped", () => Outputs(o => (long)o.Dropped), "{packet}", "Packets the queue had no room for (or its device failed to send)");
        _meter.CreateObservableUpDownCounter("zcflow.queue.held", () => Outputs(o => o.Held), "{buffer}", "Buffers the queue and its consumer hold: queued, or received and not yet released");
        _meter.CreateObservableUpDownCounter("zcflow.queue.consumer_attached", () => Outputs(o => o.ConsumerPid != 0 ? 1 : 0), "{consumer}", "1 while a consumer is attached");
        _meter.CreateObservableCounter("zcflow.device.received", () => Devices(s => s.Received), "{packet}", "Packets the device delivered");
        _meter.CreateObservableCounter("zcflow.device.received_bytes", () => Devices(s => s.Bytes), "By", "Bytes of those packets");
        _meter.CreateObservableCounter("zcflow.device.kernel_dropped", () => Devices(s => s.DroppedKernel), "{packet}", "Packets the kernel dropped before the device read them");
        _meter.CreateObservableCounter("zcflow.device.no_buffer_dropped", () => Devices(s => s.DroppedNoBuffer), "{packet}", "Packets lost for want of a free buffer");
        _meter.CreateObservableCounter("zcflow.balancer.received", () => Balancers(b => b.Received), "{packet}", "Packets the balancer took from its inputs");
        _meter.CreateObservableCounter("zcflow.balancer.filtered", () => Balancers(b => b.Filtered), "{packet}", "Packets its filters or distribution sent nowhere");
        _meter.CreateObservableCounter("zcflow.stage.received", () => Stages(p => p.Received), "{packet}", "Packets a stage took from its inputs");
        _meter.CreateObservableCounter("zcflow.stage.forwarded", () => Stages(p => p.Forwarded), "{packet}", "Packets it passed on");
        _meter.CreateObservableCounter("zcflow.stage.filtered", () => Stages(p => p.Filtered), "{packet}", "Packets its stage did not pass on (a filter's rejects)");
        _meter.CreateObservableCounter("zcflow.stage.dropped", () => Stages(p => p.Dropped), "{packet}", "Packets that could not go on (a consumer gone or stuck, a frame too large for the device)");
    }

    /// <summary>Ends the instruments (the graph does it when it stops).</summary>
    public void Dispose() => _meter.Dispose();
}
