using ZcFlow.Devices;
using ZcFlow.Queues;
using ZcFlow.Workers;

namespace ZcFlow.Graphs;

/// <summary>
/// One reading of a running graph's counters (<see cref="Graph.Stats"/>), which every reporter prints: the Balancer
/// sample's console and stats file, the hosting log, the metrics. Each total is the sum of its rows, so no two reporters
/// can disagree. An output is where packets leave the graph: a consumer's queue, or a device a balancer's output is sent
/// out of; for a device, what it sent is what was forwarded and taken, and what it failed to send is dropped (its queue,
/// which nothing consumes, is not counted).
/// </summary>
public sealed class GraphStats
{
    internal GraphStats(Graph graph)
    {
        // Outputs taken before inputs: read while packets flow, no output shows more than its inputs took in.
        var outputs = new List<OutputStats>();
        foreach (IBalancer b in graph.Balancers)
            for (int i = 0; i < b.Outputs.Count; i++)
                outputs.Add(Output(b.Outputs[i], b.Egress[i]));
        foreach (EgressQueue q in graph.ConsumerQueues)
            if (!outputs.Exists(o => o.Queue == q.Id)) outputs.Add(Output(q, null));
        outputs.Sort((a, b) => a.Queue.CompareTo(b.Queue));
        Outputs = outputs;
        Stages = [.. graph.Pipes.Select(p => new StageStats(p.Name, p.Received, p.Forwarded, p.Filtered, p.Dropped))];
        Balancers = [.. graph.Balancers.Select(b => (b.Received, b.Filtered))];
        Inputs = [.. graph.Inputs.Select(d => (d.Name, d.Stats))];
    }

    private static OutputStats Output(EgressQueue queue, IPacketSink? device)
    {
        if (device is not null)
        {
            DeviceStats d = device.Stats;
            return new OutputStats(queue.Id, device.Name, d.Sent, d.Sent, d.SendFailed, 0, 0);
        }
        QueueStats s = queue.Stats;
        return new OutputStats(queue.Id, null, s.Sent, s.Received, s.Dropped, queue.Held, queue.ConsumerPid);
    }

    /// <summary>Every device the graph reads, by name, with its counters.</summary>
    public IReadOnlyList<(string Name, DeviceStats Stats)> Inputs { get; }

    /// <summary>Each balancer's packets taken from its inputs, and those its filters or distribution sent nowhere.</summary>
    public IReadOnlyList<(ulong Received, ulong Filtered)> Balancers { get; }

    /// <summary>Each stage that is not a balancer (filters, pipeline steps, delays), by name.</summary>
    public IReadOnlyList<StageStats> Stages { get; }

    /// <summary>Where packets leave the graph, by queue id.</summary>
    public IReadOnlyList<OutputStats> Outputs { get; }

    /// <summary>Packets the balancers took in.</summary>
    public ulong Received => Sum(Balancers, b => b.Received);

    /// <summary>Packets the balancers' filters or distributions sent nowhere.</summary>
    public ulong Filtered => Sum(Balancers, b => b.Filtered);

    /// <summary>Packets put into the outputs (counted once per output: a fan-out forwards a packet to each).</summary>
    public ulong Forwarded => Sum(Outputs, o => o.Sent);

    /// <summary>Packets the outputs' consumers took (or their devices sent).</summary>
    public ulong Taken => Sum(Outputs, o => o.Taken);

    /// <summary>Packets an output had no room for (or its device failed to send).</summary>
    public ulong Dropped => Sum(Outputs, o => o.Dropped);

    private static ulong Sum<T>(IEnumerable<T> rows, Func<T, ulong> value)
    {
        ulong sum = 0;
        foreach (T row in rows) sum += value(row);
        return sum;
    }
}

/// <summary>One output of a graph: a consumer's queue, or the device a balancer's output is sent out of instead.</summary>
public readonly struct OutputStats
{
    internal OutputStats(int queue, string? device, ulong sent, ulong taken, ulong dropped, int held, int consumerPid)
        => (Queue, Device, Sent, Taken, Dropped, Held, ConsumerPid) = (queue, device, sent, taken, dropped, held, consumerPid);

    /// <summary>The queue's id (for a device, the queue a balancer's output would have gone to).</summary>
    public int Queue { get; }

    /// <summary>The device the output is sent out of; null for a consumer's queue.</summary>
    public string? Device { get; }

    /// <summary>Packets put in.</summary>
    public ulong Sent { get; }

    /// <summary>Packets its consumer took, or its device sent.</summary>
    public ulong Taken { get; }

    /// <summary>Packets not put in for want of room, or its device failed to send.</summary>
    public ulong Dropped { get; }

    /// <summary>Buffers the queue and its consumer hold.</summary>
    public int Held { get; }

    /// <summary>The consumer's process; 0 when none is attached, or it is a thread of this process.</summary>
    public int ConsumerPid { get; }
}

/// <summary>One stage of a graph that is not a balancer.</summary>
public readonly struct StageStats
{
    internal StageStats(string name, ulong received, ulong forwarded, ulong filtered, ulong dropped)
        => (Name, Received, Forwarded, Filtered, Dropped) = (name, received, forwarded, filtered, dropped);

    public string Name { get; }

    /// <summary>Packets taken from its inputs.</summary>
    public ulong Received { get; }

    /// <summary>Packets passed on.</summary>
    public ulong Forwarded { get; }

    /// <summary>Packets the stage did not pass on (a filter's rejects).</summary>
    public ulong Filtered { get; }

    /// <summary>Packets that could not go on (a consumer gone or stuck, a frame too large for the device).</summary>
    public ulong Dropped { get; }
}
