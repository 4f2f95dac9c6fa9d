using System.Diagnostics;
using ZcFlow;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Graphs;
using ZcFlow.Samples;
using ZcFlow.Workers;

// zbalance_ipc: spread the traffic of one or more devices over the queues of one or more
// applications, which attach to zc:<cluster>@<queue> (ZCount -c <cluster> -i <queue>).
var cl = new CommandLine(args, flags: "apL", withValue: "icnmgqbWuPlrfx",
    "usage: Balancer -c <cluster> [-i <devices>]... [-n <queues>[,<queues>...]] [-m <mode>] [-g <cores>] [-q <slots>] [-b <buffers>]\n" +
    "                [-a] [-p] [-W <sec>] [-u <hugetlbfs mount>] [-P <pid file>] [-l <log file>] [-L]\n" +
    "  -i  devices aggregated into one balancer, comma separated; repeat -i for another balancer with queues of its own\n" +
    "      (default gen:64?flows=4096);\n" +
    "      gen:<size>[?flows=N&rate=PPS&count=N], pcap:<file>[?loop&pace], <file>.pcap, <file>.pcapng\n" +
    "  -c  cluster id     -n  queues per application, comma separated (default 1)\n" +
    $"  -m  hash mode: {BalancerMode.Help} (default 0)\n" +
    "  -g  cores for the balancer threads, comma separated    -q  slots per queue (4096)    -b  buffers (32768)\n" +
    "  -a  active wait    -p  print stats every second    -W  wait before processing, for consumers to attach\n" +
    "  -u  hugetlbfs mount    -P  pid file    -l  log file for the stats    -L  lossless: never drop at a full queue");
uint clusterId = (uint)cl.Required('c', 0, uint.MaxValue);
string[][] inputs = cl.Strings('i') is { Count: > 0 } given
    ? [.. given.Select(i => i.Split(',', StringSplitOptions.RemoveEmptyEntries))]
    : [["gen:64?flows=4096"]];
if (inputs.Any(i => i.Length == 0)) cl.Fail("-i takes device names, comma separated");
int[] apps = (cl.String('n') ?? "1").Split(',').Select(s => int.TryParse(s, out int n) && n > 0 ? n : 0).ToArray();
if (apps.Contains(0) || apps.Sum() > 64) cl.Fail("-n takes queue counts, at least 1 each and 64 in all, for example -n 2,1");
int mode = (int)cl.Number('m', 0, 0, 8);
int[] cores = (cl.String('g') ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => int.TryParse(s, out int c) ? c : -1).ToArray();
if (cores.Contains(-1)) cl.Fail("-g takes core numbers, comma separated");
if (cl.Has('r')) cl.Fail("-r <queue>:<device> needs an egress device; this build has none yet (interfaces come with AF_PACKET/AF_XDP)");
if (cl.Has('f') || cl.Has('x')) cl.Fail("-f (BPF) and -x (VLAN filter) come with the live-device support");
string? log = cl.String('l');
if (cl.String('P') is { } pidFile) File.WriteAllText(pidFile, Environment.ProcessId + "\n");
CancellationToken stop = CommandLine.StopSignal();
TextWriter stats = log is null ? Console.Out : new StreamWriter(log, append: true) { AutoFlush = true };

Graph graph;
try
{
    var builder = GraphBuilder.Cluster(clusterId)
        .Options(new ClusterOptions { BufferCount = (int)cl.Number('b', 32768, 64, 1 << 26), HugePagesMount = cl.String('u'), MaxQueues = 64 });
    foreach (string[] devices in inputs) builder.Input(devices);
    graph = builder
        .Applications(apps)
        .QueueSlots((int)cl.Number('q', 4096, 2, 1 << 20))
        .ActiveWait(cl.Has('a'))
        .Lossless(cl.Has('L'))
        .DelayStart(TimeSpan.FromSeconds(cl.Number('W', 0, 0, 3600)))
        .Balance(mode, cores);
}
catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or InvalidDataException or ZcFlow.Native.ErrnoException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

using (graph)
{
    foreach (IBalancer b in graph.Balancers)
        Console.WriteLine($"cluster {clusterId}: {string.Join(", ", b.Inputs.Select(i => i.Name))} -> mode {mode} -> " +
                          $"zc:{clusterId}@{string.Join(",", b.Outputs.Select(q => q.Id))}");
    Console.WriteLine($"arena {graph.Cluster.ArenaPath}{(graph.Cluster.OnHugePages ? " on hugepages" : "")}");
    var clock = Stopwatch.StartNew();
    ulong lastRecv = 0, lastFwd = 0;
    double last = 0;
    while (!stop.IsCancellationRequested && graph.IsRunning)
    {
        stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
        if (!cl.Has('p')) continue;
        double now = clock.Elapsed.TotalSeconds, dt = now - last;
        ulong recv = 0, noBuffer = 0, fwd = 0, dropped = 0;
        foreach (var b in graph.Balancers)
        {
            recv += b.Received;
            foreach (IPacketSource d in b.Inputs) noBuffer += d.Stats.DroppedNoBuffer;
        }
        stats.WriteLine("=========================");
        foreach (var q in graph.Queues)
        {
            var s = q.Stats;
            fwd += s.Sent;
            dropped += s.Dropped;
            stats.WriteLine($"Q {q.Id,2}: {s.Sent,15:N0} pkts forwarded {s.Dropped,12:N0} dropped{(q.ConsumerPid > 0 ? $"  (consumer pid {q.ConsumerPid})" : "")}");
        }
        stats.WriteLine($"Absolute Stats: Recv {recv:N0} pkts (no buffer {noBuffer:N0}) - Forwarded {fwd:N0} pkts (dropped {dropped:N0})");
        stats.WriteLine($"Actual Stats:   Recv {(recv - lastRecv) / dt / 1e6:F2} Mpps - Forwarded {(fwd - lastFwd) / dt / 1e6:F2} Mpps");
        (lastRecv, lastFwd, last) = (recv, fwd, now);
        if (graph.InputsExhausted && cl.Has('p')) stats.WriteLine("(all inputs are exhausted)");
    }
}
return 0;
