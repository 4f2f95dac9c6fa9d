using System.Diagnostics;
using ZcFlow;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Graphs;
using ZcFlow.Queues;
using ZcFlow.Samples;
using ZcFlow.Stages;
using ZcFlow.Workers;

// zpipeline: packets from -i through a pipeline of stages, one thread each (-g names their cores), chained by queues.
// Each stage checks the mark the stage before it left in the packet's metadata and leaves its own; the end of the
// pipeline counts the packets and the marks that were wrong.
// zpipeline_ipc: -i <device>;<queue> -o <device>;<queue> are the first and last stages of a pipeline whose middle runs in
// other processes: what comes in on the first device goes into the first queue (attach to it as zc:<cluster>@<queue>),
// and what other processes send into the second, an ingress queue, goes out of the second device. For example
// ZBounce -i zc:<cluster>@0 -o zc:<cluster>@1 is a middle stage.
var cl = new CommandLine(args, flags: "ap", withValue: "iogcnrt",
    "usage: ZPipeline -i <device> -g <core>:<core>... [-n <count>] [-a] [-p] [-c <cluster>]\n" +
    "       ZPipeline -i <device>;<queue> -o <device>;<queue> [-r <core>] [-t <core>] [-a] [-p] [-c <cluster>]\n" +
    "  -i  the device packets come in on (gen:64, a capture file, eth0, xdp:eth0@0, zc:<cluster>@<queue>)\n" +
    "  -g  one core per stage, so as many stages as cores named (a core may be named twice)\n" +
    "  -n  stop after this many packets    -a  active wait    -p  stats every second\n" +
    "  -i <device>;<queue> -o <device>;<queue>: the two ends of a pipeline across processes, queues 0 and 1\n" +
    "  -r  core of the thread that receives from -i    -t  core of the thread that sends out of -o\n" +
    "  -c  cluster id (default from the pid)");
string input = cl.RequiredString('i');
bool ipc = cl.Has('o');
if (ipc != input.Contains(';')) cl.Fail("-i <device>;<queue> and -o <device>;<queue> go together (zpipeline_ipc); without -o, -i names a device");
if (ipc && cl.Has('g')) cl.Fail("-g is for the pipeline of threads; the two ends take -r and -t");
if (!ipc && (cl.Has('r') || cl.Has('t'))) cl.Fail("-r and -t are for the two ends of a pipeline across processes (-o)");
int[] cores = cl.Cores('g');
if (!ipc && cores.Length == 0) cl.Fail("-g names one core per stage: -g 0:1 is two stages");
uint clusterId = (uint)cl.Number('c', 0x5C00_0000 + Environment.ProcessId % 0x100_0000, 0, uint.MaxValue);
long limit = cl.Number('n', 0, 0);
CancellationToken stop = CommandLine.StopSignal();

var errors = new long[Math.Max(cores.Length, 1)];
Graph graph;
int queue = -1;
var ends = new List<string>();
try
{
    Topology t = Topology.Cluster(clusterId).Options(new ClusterOptions { BufferCount = 8192, BufferSize = ClusterOptions.BufferSizeForMtu(9000), Warn = _ => { } })
        .ActiveWait(cl.Has('a'));
    if (ipc)
    {
        (string inDevice, int inQueue) = End(input, "-i");
        (string outDevice, int outQueue) = End(cl.String('o')!, "-o");
        if (Math.Min(inQueue, outQueue) != 0 || Math.Max(inQueue, outQueue) != 1) cl.Fail("the two ends' queues are 0 and 1, one each");
        int? rx = cl.Has('r') ? (int)cl.Number('r', 0, 0, 1023) : null, tx = cl.Has('t') ? (int)cl.Number('t', 0, 0, 1023) : null;
        // Queues are numbered as they are declared: the end whose queue is 0 first.
        foreach (bool first in new[] { inQueue == 0, inQueue != 0 })
        {
            if (first) t.From(Device.WithOutgoing(inDevice, outgoing: false)).Stage(new PassAll(), rx, ends.AddName($"{inDevice} -> zc:{clusterId}@{inQueue}")).ToQueue();
            else t.From(GraphBuilder.IngressQueue).Stage(new PassAll(), tx, ends.AddName($"zc:{clusterId}@{outQueue} -> {outDevice}")).To(outDevice);
        }
    }
    else
    {
        PacketStream stream = t.From(input);
        for (int s = 0; s < cores.Length; s++) stream = stream.Stage(new Mark(s, errors), cores[s], $"stage {s}");
        queue = stream.ToQueue();
    }
    graph = t.Run();
}
catch (Exception e) when (SetupError.Is(e))
{
    Console.Error.WriteLine($"error: {SetupError.Describe(e)}");
    return 1;
}

using (graph)
{
    Console.WriteLine(ipc ? $"forwarding {string.Join(", ", ends)}" : $"a pipeline of {cores.Length} stages from {input} on cores {string.Join(':', cores)}");
    long packets = 0, wrong = 0, reported = 0;
    var burst = new PacketHandle[32];
    var clock = Stopwatch.StartNew();
    IdleStrategy idle = IdleStrategy.Backoff();
    while (!stop.IsCancellationRequested && graph.IsRunning && (limit == 0 || packets < limit))
    {
        int n = 0;
        if (!ipc)
        {
            QueueConsumer q = graph.Consumer(queue);
            n = q.ReceiveBurst(burst.AsSpan(0, (int)Math.Min(burst.Length, limit == 0 ? burst.Length : limit - packets)));
            for (int i = 0; i < n; i++)
                if (burst[i].Hash != (uint)(cores.Length - 1)) wrong++;
            q.ReleaseBurst(burst.AsSpan(0, n));
            packets += n;
            if (n == 0 && graph.InputsExhausted && q.IsEmpty) break;
        }
        idle.Idle(n);
        if (cl.Has('p') && clock.ElapsedMilliseconds >= reported + 1000)
        {
            reported = clock.ElapsedMilliseconds;
            Console.WriteLine(Totals());
        }
    }
    Console.WriteLine(Totals());

    string Totals() => ipc
        ? "total " + string.Join(", ", ends.Select((end, i) => $"{graph.Pipes[i].Forwarded:N0} pkts {end}"))
        : $"total {packets:N0} pkts through {cores.Length} stages, {wrong + errors.Sum():N0} wrong marks";
}
return 0;

(string Device, int Queue) End(string value, string option)
{
    string[] parts = value.Split(';');
    if (parts.Length != 2 || parts[0].Length == 0 || !int.TryParse(parts[1], out int q) || q < 0) return cl.Fail<(string, int)>($"{option} takes <device>;<queue>, not '{value}'");
    return (parts[0], q);
}

internal static class Names
{
    public static string AddName(this List<string> names, string name)
    {
        names.Add(name);
        return name;
    }
}

/// <summary>Checks the mark the stage before left in each packet's metadata (its hash field) and leaves this stage's.</summary>
internal readonly struct Mark(int stage, long[] errors) : IStage
{
    public int Process(Span<PacketHandle> burst)
    {
        foreach (PacketHandle p in burst)
        {
            if (stage != 0 && p.Hash != (uint)(stage - 1)) errors[stage]++;
            p.Hash = (uint)stage;
        }
        return burst.Length;
    }
}
