using System.Diagnostics;
using ZcFlow;
using ZcFlow.Distribution;
using ZcFlow.Filters;
using ZcFlow.Graphs;
using ZcFlow.Samples;
using ZcFlow.Stages;

// zfilter_mt_ipc and zbalance_DC_ipc: a filtering thread per input device, their outputs collected by one more thread
// that spreads them over -n queues for consumer processes (zc:<cluster>@0 to @n-1): taking turns, to every queue, or by
// flow. With -t the collector first puts the inputs' packets in time order (zbalance_DC_ipc's reordering), on a thread
// of its own. It waits for room in the queues, but not for a consumer that has gone or is stuck. Stats with -p; the
// totals on Ctrl-C/SIGTERM, or once inputs that end (files) have ended and the consumers have released every packet.
var cl = new CommandLine(args, flags: "apt", withValue: "incfmgrqw",
    "usage: ZFilter -i <device>,<device>... -n <queues> [-f <bpf>] [-m 0|1|2] [-t [-w <us>]] [-g <core>:<core>...] [-r <core>] [-q <slots>] [-a] [-p] [-c <cluster>]\n" +
    "  -i  the input devices, each filtered by a thread of its own    -n  queues for consumer processes\n" +
    "  -f  keep only what passes this filter (tcpdump's syntax); without it, every packet\n" +
    "  -m  0 (default): the queues take turns    1: every packet to every queue    2: by flow (symmetric 5-tuple)\n" +
    "  -t  collect in time order    -w  with -t: how long an input that has nothing holds the others back, in microseconds (1000)\n" +
    "  -g  cores of the filtering threads, one per input    -r  core of the collector\n" +
    "  -q  slots per queue (4096)    -a  active wait    -p  stats every second    -c  cluster id (99)");
if (!cl.Has('i') || !cl.Has('n')) cl.Fail("-i and -n are required");
string[] devices = cl.String('i')!.Split(',', StringSplitOptions.RemoveEmptyEntries);
int queues = (int)cl.Number('n', 1, 1, 32);
int mode = (int)cl.Number('m', 0, 0, 2);
if (cl.Has('w') && !cl.Has('t')) cl.Fail("-w is for -t, the collection in time order");
int[] cores = cl.Cores('g');
if (cores.Length != 0 && cores.Length != devices.Length) cl.Fail($"-g names one core per input: {devices.Length} inputs, {cores.Length} cores");
int? collector = cl.Has('r') ? (int)cl.Number('r', 0, 0, 1023) : null;
uint clusterId = (uint)cl.Number('c', 99, 0, uint.MaxValue);
CancellationToken stop = CommandLine.StopSignal();

Graph graph;
try
{
    BpfFilter? filter = cl.String('f') is { } expression ? BpfFilter.Compile(expression) : null;
    Topology t = Topology.Cluster(clusterId).Options(new ClusterOptions { BufferCount = 8192 * devices.Length, BufferSize = ClusterOptions.BufferSizeForMtu(9000), Warn = w => Console.Error.WriteLine(w) })
        .QueueSlots((int)cl.Number('q', 4096, 2, 1 << 20)).ActiveWait(cl.Has('a'));
    PacketStream[] filtered = [.. devices.Select((d, i) =>
    {
        PacketStream from = t.From(ZcFlow.Devices.Device.WithOutgoing(d, outgoing: false));
        int? core = cores.Length == 0 ? null : cores[i];
        return filter is null ? from.Stage(new PassAll(), core, $"input {i} ({d})") : from.Filter(filter, core, $"filter {i} ({d})");
    })];
    PacketStream collected = t.Merge(filtered);
    if (cl.Has('t')) collected = collected.InTimeOrder(TimeSpan.FromMicroseconds(cl.Number('w', 1000, 0, 60_000_000))).Stage(new PassAll(), collector, "reorder");
    IReadOnlyList<PacketStream> outputs = mode switch
    {
        0 => collected.Balance(new RoundRobin(), queues, collector, "collector"),
        1 => collected.Balance(new FanOutAll(), queues, collector, "collector"),
        _ => collected.Balance(new FiveTupleHash(), queues, collector, "collector"),
    };
    outputs.ToQueues();
    graph = t.Run();
}
catch (Exception e) when (SetupError.Is(e))
{
    Console.Error.WriteLine($"error: {SetupError.Describe(e)}");
    return 1;
}

using (graph)
{
    Console.WriteLine($"{devices.Length} filtering threads, 1 collector, {queues} queues: run consumers as");
    for (int q = 0; q < queues; q++) Console.WriteLine($"\tZCount -c {clusterId} -i {q}");
    var clock = Stopwatch.StartNew();
    long reported = 0;
    // Inputs that end (files) end the run once the consumers have had and given back every packet.
    while (!stop.IsCancellationRequested && graph.IsRunning && !graph.Delivered)
    {
        stop.WaitHandle.WaitOne(100);
        if (cl.Has('p') && clock.ElapsedMilliseconds >= reported + 1000)
        {
            reported = clock.ElapsedMilliseconds;
            Console.WriteLine(Totals());
        }
    }
    Console.WriteLine(Totals());

    string Totals()
    {
        // The filtering stages were declared first, one per input.
        string filters = string.Join(", ", graph.Pipes.Take(devices.Length).Select((p, i) => $"{devices[i]} {p.Received:N0} in {p.Forwarded:N0} kept"));
        string toQueues = string.Join(" ", graph.Balancers[0].Outputs.Select(q => $"Q{q.Id} {q.Stats.Sent:N0}"));
        return $"total {filters} | {toQueues} | dropped at full queues {graph.Balancers[0].Outputs.Sum(q => (long)q.Stats.Dropped):N0}";
    }
}
return 0;
