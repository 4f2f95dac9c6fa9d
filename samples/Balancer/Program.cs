using System.Diagnostics;
using ZcFlow;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Graphs;
using System.Runtime.InteropServices;
using ZcFlow.Filters;
using ZcFlow.Queues;
using ZcFlow.Samples;
using ZcFlow.Workers;

// zbalance_ipc: spread the traffic of one or more devices over the queues of one or more
// applications, which attach to zc:<cluster>@<queue> (ZCount -c <cluster> -i <queue>).
// Options as zbalance_ipc takes them: on the command line (getopt: -c99 and -ap work), or one a line in a
// configuration file named as the only argument, or /etc/cluster/cluster.conf when there is none.
var cl = new CommandLine(CommandLine.ArgumentsOrConfigFile(args, "/etc/cluster/cluster.conf"), flags: "apLwTX", withValue: "icnmgqbWuPlrfxQCO",
    "usage: Balancer [-c <cluster>] [-i <devices>]... [-n <queues>[,<queues>...]] [-m <mode>] [-g <core>[:<core>...]] [-q <slots>] [-b <buffers>]\n" +
    "                [-r <queue>:<device>]... [-f <BPF file>] [-x <vlans>] [-a] [-p] [-W <sec>] [-u <hugepages mount>] [-P <pid file>] [-l <log file>] [-L]\n" +
    "       Balancer <configuration file>       (one option a line: -c=99 or -c 99; # starts a comment)\n" +
    "       Balancer                            (the options of /etc/cluster/cluster.conf)\n" +
    "  -i  devices aggregated into one balancer, comma separated; repeat -i for another balancer with queues of its own\n" +
    "      (default gen:64?flows=4096);\n" +
    "      gen:<size>[?flows=N&rate=PPS&count=N], pcap:<file>[?loop&pace], <file>.pcap, <file>.pcapng,\n" +
    "      eth0 or af_packet:eth0[?snaplen=N&blocks=N&promisc=0&outgoing=0], zc:<cluster>@<queue>\n" +
    "  -r  send what goes to queue <queue> out of <device> instead (an interface), e.g. -r 1:eth1\n" +
    "  -f  only packets that pass this filter (tcpdump syntax, read from the file; kill -USR1 reloads it); repeatable;\n" +
    "      <file>@<queue>[,<queue>...] filters only what goes to those queues\n" +
    "  -x  only packets with one of these VLAN ids in a tag (any of a stack), comma separated; apart from -f\n" +
    "  -X  capture what interfaces send too (by default only what they receive)\n" +
    "  -c  cluster id (default 103)     -n  queues per application, comma separated (default 1)\n" +
    $"  -m  hash mode: {BalancerMode.Help} (default 0)\n" +
    "  -g  cores for the balancer threads, one per -i, colon separated    -q  slots per queue (8192)\n" +
    "  -b  buffers each consumer may hold beyond its queue's slots (16); the cluster is sized from it\n" +
    "  -a  active wait    -p  print stats every second    -W  wait before processing, for consumers to attach\n" +
    "  -u  require hugepages (a mount point given is not needed)    -P  pid file, written once running, removed at exit\n" +
    "  -l  log file for the stats    -L  lossless: never drop at a full queue whose consumer keeps up");
if (cl.Has('w')) cl.Fail("-w (hardware aggregation of the -i devices) needs a NIC and driver that aggregate in hardware, which ZcFlow does not drive; list the devices in -i and they are aggregated in software");
if (cl.Has('Q')) cl.Fail("-Q (consumers in KVM guests, through QEMU monitor sockets) is not supported: ZcFlow shares memory with processes on this host only");
if (cl.Has('T') || cl.Has('C') || cl.Has('O')) cl.Fail("-T, -C and -O (the PF_RING FT flow table and its nDPI configuration) are not supported yet");
uint clusterId = (uint)cl.Number('c', 103, 0, uint.MaxValue);
string[][] inputs = cl.Strings('i') is { Count: > 0 } given
    ? [.. given.Select(i => i.Split(',', StringSplitOptions.RemoveEmptyEntries))]
    : [["gen:64?flows=4096"]];
if (inputs.Any(i => i.Length == 0)) cl.Fail("-i takes device names, comma separated");
// As zbalance_ipc, an interface is captured in the receive direction only, unless -X (or the name says otherwise).
string Direction(string name) => Device.IsAfPacketName(name) && !name.Contains("outgoing=")
    ? name + (name.Contains('?') ? "&" : "?") + (cl.Has('X') ? "outgoing=1" : "outgoing=0")
    : name;
inputs = [.. inputs.Select(i => i.Select(Direction).ToArray())];
int[] apps = (cl.String('n') ?? "1").Split(',').Select(s => int.TryParse(s, out int n) && n > 0 ? n : 0).ToArray();
if (apps.Contains(0) || apps.Sum() > 64) cl.Fail("-n takes queue counts, at least 1 each and 64 in all, for example -n 2,1");
int mode = (int)cl.Number('m', 0, 0, 8);
int[] cores = (cl.String('g') ?? "").Split([':', ','], StringSplitOptions.RemoveEmptyEntries).Select(s => int.TryParse(s, out int c) ? c : -1).ToArray();
if (cores.Contains(-1)) cl.Fail("-g takes core numbers, one per -i, colon separated (for example -g 1:2)");
var egress = new List<(int Queue, string Device)>();
foreach (string r in cl.Strings('r'))
{
    string[] parts = r.Split(':', 2);
    int q = parts.Length == 2 && int.TryParse(parts[0], out int n) ? n : -1;
    if (q < 0 || q >= apps.Sum() || parts[1].Length == 0)
        cl.Fail($"-r takes <queue>:<device> with a queue from 0 to {apps.Sum() - 1}, for example -r 0:eth1; not '{r}'");
    egress.Add((q, parts[1]));
}
// -x 10,20: only frames with VLAN 10 or 20 in one of their tags, checked apart from -f.
VlanAllowList? vlans = null;
if (cl.String('x') is { } x)
{
    try { vlans = VlanAllowList.Parse(x); }
    catch (ArgumentException) { cl.Fail("-x takes VLAN ids from 0 to 4095, comma separated"); }
}
// -f <file> filters what the balancers take in; -f <file>@<q>[,<q>...] what goes to those queues (repeat -f for more;
// several files for one place must all pass). Every file is read again on SIGUSR1.
var filterFiles = new List<(string File, int[]? Queues)>();
foreach (string f in cl.Strings('f'))
{
    int at = f.LastIndexOf('@');
    int[]? queues = at < 0 ? null : f[(at + 1)..].Split(',').Select(q => int.TryParse(q, out int n) && n >= 0 && n < apps.Sum() * inputs.Length ? n : -1).ToArray();
    if (queues is not null && (queues.Length == 0 || queues.Contains(-1)))
        cl.Fail($"-f takes <file> or <file>@<queue>[,<queue>...] with queues from 0 to {apps.Sum() * inputs.Length - 1}; not '{f}'");
    filterFiles.Add((at < 0 ? f : f[..at], queues));
}
(BpfFilter? Input, Dictionary<int, BpfFilter> Outputs) LoadFilters()
{
    string? And(IEnumerable<string?> parts) => parts.Where(p => !string.IsNullOrEmpty(p)).Select(p => $"({p})").ToArray() is { Length: > 0 } all ? string.Join(" and ", all) : null;
    var expressions = filterFiles.Select(f => (f.Queues, Expression: BpfFilter.Load(f.File).Expression)).ToArray();
    string? input = And(expressions.Where(e => e.Queues is null).Select(e => e.Expression));
    var outputs = new Dictionary<int, BpfFilter>();
    foreach (int q in expressions.Where(e => e.Queues is not null).SelectMany(e => e.Queues!).Distinct())
        if (And(expressions.Where(e => e.Queues?.Contains(q) == true).Select(e => e.Expression)) is { } e) outputs[q] = BpfFilter.Compile(e);
    return (input is null ? null : BpfFilter.Compile(input), outputs);
}
void ApplyFilters(Graph g, (BpfFilter? Input, Dictionary<int, BpfFilter> Outputs) filters)
{
    foreach (IBalancer b in g.Balancers)
    {
        b.Filter = filters.Input;
        for (int i = 0; i < b.Outputs.Count; i++) b.SetOutputFilter(i, filters.Outputs.GetValueOrDefault(b.Outputs[i].Id));
    }
}
string? log = cl.String('l');
string? pidFile = cl.String('P');
CancellationToken stop = CommandLine.StopSignal();
TextWriter stats = log is null ? Console.Out : new StreamWriter(log, append: true) { AutoFlush = true };

Graph graph;
try
{
    var builder = GraphBuilder.Cluster(clusterId)
        .Options(new ClusterOptions { RequireHugePages = cl.Has('u'), MaxQueues = 64 })
        .ConsumerBuffers((int)cl.Number('b', 16, 0, 1 << 24));
    foreach (string[] devices in inputs) builder.Input(devices);
    foreach ((int q, string device) in egress) builder.Egress(q, device);
    var filters = LoadFilters();
    foreach ((int q, BpfFilter f) in filters.Outputs) builder.OutputFilter(q, f);
    graph = builder
        .Filter(filters.Input)
        .Vlans(vlans)
        .Applications(apps)
        .QueueSlots((int)cl.Number('q', 8192, 2, 1 << 20))
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

// kill -USR1 reloads the -f files; if one no longer compiles, every filter stays as it was.
using var reload = PosixSignalRegistration.Create((PosixSignal)10, c =>
{
    c.Cancel = true;
    try
    {
        var reloaded = LoadFilters();
        ApplyFilters(graph, reloaded);
        Console.Error.WriteLine($"filters reloaded: input {reloaded.Input?.Expression ?? "(none)"}" +
                                string.Concat(reloaded.Outputs.OrderBy(o => o.Key).Select(o => $", queue {o.Key} {o.Value.Expression}")));
    }
    catch (Exception e) when (e is ArgumentException or IOException)
    {
        Console.Error.WriteLine($"filter not reloaded: {e.Message}");
    }
});

using (graph)
{
    // Written once the cluster serves (a supervisor that sees it may attach consumers), removed at a clean exit.
    if (pidFile is not null) File.WriteAllText(pidFile, Environment.ProcessId + "\n");
    foreach (IBalancer b in graph.Balancers)
        Console.WriteLine($"cluster {clusterId}: {string.Join(", ", b.Inputs.Select(i => i.Name))} -> mode {mode} -> " +
                          $"zc:{clusterId}@{string.Join(",", b.Outputs.Select(q => q.Id))}");
    Console.WriteLine($"serving on {graph.Cluster.SocketPath}{(graph.Cluster.OnHugePages ? ", buffers on hugepages" : "")}");
    // zbalance_ipc's counters, every second, as "Key: value" lines in a file of their own: PF_RING's
    // /proc/net/pf_ring/stats/<cluster>, but /proc is the kernel's, so /run/zcflow/stats/<cluster>.
    const string StatsDirectory = "/run/zcflow/stats";
    string statsFile = Path.Combine(StatsDirectory, clusterId.ToString(System.Globalization.CultureInfo.InvariantCulture));
    try { Directory.CreateDirectory(StatsDirectory); }
    catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Console.Error.WriteLine($"warning: no stats file: {e.Message}"); }
    var clock = Stopwatch.StartNew();
    ulong lastRecv = 0, lastFwd = 0;
    double last = 0;
    while (!stop.IsCancellationRequested && graph.IsRunning)
    {
        stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
        Report(console: cl.Has('p'));
    }
    Report(console: true);   // the final stats, on Ctrl-C or SIGTERM as on any other end
    File.Delete(statsFile);

    void Report(bool console)
    {
        double now = clock.Elapsed.TotalSeconds, dt = now - last;
        ulong recv = 0, noBuffer = 0, kernel = 0, filtered = 0, fwd = 0, dropped = 0, processed = 0, ifPackets = 0;
        var file = new System.Text.StringBuilder();
        var queueLines = new System.Text.StringBuilder();
        if (console) stats.WriteLine("=========================");
        foreach (IBalancer b in graph.Balancers)
        {
            recv += b.Received;
            filtered += b.Filtered;
            foreach (IPacketSource d in b.Inputs)
            {
                DeviceStats s = d.Stats;
                ifPackets += s.Received;
                noBuffer += s.DroppedNoBuffer;
                kernel += s.DroppedKernel;
                if (console && (s.DroppedKernel != 0 || d is AfPacketDevice)) stats.WriteLine($"{d.Name}: {s.Received:N0} pkts received, {s.DroppedKernel:N0} dropped by the kernel");
            }
            for (int i = 0; i < b.Outputs.Count; i++)
            {
                if (b.Egress[i] is { } sink)
                {
                    DeviceStats s = sink.Stats;
                    fwd += s.Sent;
                    dropped += s.SendFailed;
                    queueLines.Append($"{sink.Name}-TXPackets: {s.Sent}\n{sink.Name}-TXDropped: {s.SendFailed}\n");
                    if (console) stats.WriteLine($"Q {b.Outputs[i].Id,2}: {s.Sent,15:N0} pkts sent out of {sink.Name} {s.SendFailed,12:N0} dropped");
                    continue;
                }
                ZcQueue q = b.Outputs[i];
                QueueStats qs = q.Stats;
                fwd += qs.Sent;
                dropped += qs.Dropped;
                processed += qs.Received;
                queueLines.Append($"Q{q.Id}Packets:    {qs.Received}\nQ{q.Id}Dropped:    {qs.Dropped}\n");
                if (console) stats.WriteLine($"Q {q.Id,2}: {qs.Sent,15:N0} pkts forwarded {qs.Dropped,12:N0} dropped{(q.ConsumerPid > 0 ? $"  (consumer pid {q.ConsumerPid})" : "")}");
            }
        }
        if (console)
        {
            stats.WriteLine($"Absolute Stats: Recv {recv:N0} pkts (no buffer {noBuffer:N0}, kernel drops {kernel:N0}, filtered {filtered:N0}) - Forwarded {fwd:N0} pkts (dropped {dropped:N0})");
            if (dt > 0) stats.WriteLine($"Actual Stats:   Recv {(recv - lastRecv) / dt / 1e6:F2} Mpps - Forwarded {(fwd - lastFwd) / dt / 1e6:F2} Mpps");
            if (graph.InputsExhausted) stats.WriteLine("(all inputs are exhausted)");
        }
        (lastRecv, lastFwd, last) = (recv, fwd, now);

        TimeSpan up = clock.Elapsed;
        file.Append($"ClusterId:    {clusterId}\nTotQueues:    {graph.Queues.Count}\nApplications: {apps.Length}\n");
        for (int a = 0; a < apps.Length; a++) file.Append($"App{a}Queues:   {apps[a]}\n");
        file.Append($"Duration:     {up.Days}:{up.Hours:00}:{up.Minutes:00}:{up.Seconds:00}:{up.Milliseconds:000}\n");
        file.Append($"Packets:      {recv}\nForwarded:    {fwd}\nProcessed:    {processed}\n");
        if (cl.Has('p')) file.Append($"IFPackets:    {ifPackets}\nIFDropped:    {kernel + noBuffer}\n").Append(queueLines);
        try
        {
            File.WriteAllText(statsFile + ".tmp", file.ToString());
            File.Move(statsFile + ".tmp", statsFile, overwrite: true);   // readers never see half a file
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // no stats directory (not root): the console and the cluster listing still have the counters
        }
    }
    if (pidFile is not null) File.Delete(pidFile);
}
return 0;
