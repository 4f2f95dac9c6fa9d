using System.Diagnostics;
using System.Runtime.InteropServices;
using OpenTelemetry.Metrics;
using ZcFlow;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Filters;
using ZcFlow.Graphs;
using ZcFlow.Queues;
using ZcFlow.Samples;
using ZcFlow.Workers;

// zbalance_ipc: spread the traffic of one or more devices over the queues of one or more
// applications, which attach to zc:<cluster>@<queue> (ZCount -c <cluster> -i <queue>).
// Options as zbalance_ipc takes them: on the command line (getopt: -c99 and -ap work), or one a line in a
// configuration file named as the only argument, or /etc/cluster/cluster.conf when there is none.
string[] arguments = CommandLine.ArgumentsOrConfigFile(args, "/etc/cluster/cluster.conf");
// --metrics-port N, ZcFlow's own long option: the counters for Prometheus at http://localhost:N/metrics.
if (!Prometheus.TakePort(ref arguments, out int? metricsPort)) return 2;
var cl = new CommandLine(arguments, flags: "adJLpvwTXzZ", withValue: "bcCDfFGgilmMnNOPQqrRSuWxYAE",
    "usage: Balancer [-c <cluster>] [-i <devices>]... [-n <queues>[,<queues>...]] [-m <mode>] [-g <core>[:<core>...]] [-q <slots>] [-b <buffers>]\n" +
    "                [-r <queue>:<device>]... [-f <BPF file>[@<queue>,...]]... [-x <vlans>] [-M <vlan>]... [-Y <ethertype>] [-G <queue>:<version>]\n" +
    "                [-S <core> [-R <ns>]] [-Z [-E <endpoint>] [-A 0|1]] [-a] [-p] [-v] [-z] [-J] [-W <sec>] [-u <mount>] [-X] [-L]\n" +
    "                [-d] [-D <user>] [-P <pid file>] [-l <log file>]\n" +
    "       Balancer <configuration file>       (one option a line: -c=99 or -c 99; # starts a comment)\n" +
    "       Balancer                            (the options of /etc/cluster/cluster.conf)\n" +
    "  -i  devices aggregated into one balancer, comma separated; repeat -i for another balancer with queues of its own\n" +
    "      (default gen:64?flows=4096);\n" +
    "      gen:<size>[?flows=N&rate=PPS&count=N], pcap:<file>[?loop&pace], <file>.pcap, <file>.pcapng,\n" +
    "      eth0 or af_packet:eth0[?snaplen=N&blocks=N&promisc=0&outgoing=0], zc:<cluster>@<queue>,\n" +
    "      Q: an ingress queue that another process sends into (Send -i zc:<cluster>@<queue>)\n" +
    "  -r  send what goes to queue <queue> out of <device> instead (an interface), e.g. -r 1:eth1\n" +
    "  -f  only packets that pass this filter (tcpdump syntax, read from the file; kill -USR1 reloads it); repeatable;\n" +
    "      <file>@<queue>[,<queue>...] filters only what goes to those queues\n" +
    "  -x  only packets with one of these VLAN ids in a tag (any of a stack), comma separated; apart from -f\n" +
    "  -F  rules with actions on every -i device, one a line (pass, drop, kernel, reflect; the README's format): in the\n" +
    "      kernel for xdp:, in user space elsewhere; kill -USR1 reads the file again, kill -HUP prints each rule's counters\n" +
    "  -X  capture what interfaces send too (by default only what they receive)\n" +
    "  -c  cluster id (default 103)     -n  queues per application, comma separated (default 1)\n" +
    $"  -m  hash mode: {BalancerMode.Help} (default 0)\n" +
    "  -M  -m 7: the VLAN id of queue 1, then 2, ... (one per -M)     -Y  -m 7: the EtherType (default 34181, 0x8585)\n" +
    "  -G  -m 4: GTP-C of this version (1 or 2) to this queue, which gets nothing else, e.g. -G 0:2\n" +
    "  -g  cores for the balancer threads, one per -i, colon separated    -q  slots per queue (8192)\n" +
    "  -b  buffers each consumer may hold beyond its queue's slots (16); the cluster is sized from it\n" +
    "  -S  stamp packets from a time-pulse thread on this core     -R  its resolution in ns (default 100)\n" +
    "  -Z  pass or drop by IP address, rules set through ZeroMQ (PF_RING's zmq client format)\n" +
    $"  -E  the ZeroMQ endpoint for -Z (default {RulesServer.DefaultEndpoint})    -A  what no rule names: 0 dropped, 1 passed (default)\n" +
    "  -a  active wait    -p  per-device and per-queue stats (console and stats file)    -v  console stats every second\n" +
    "  -z  stats only in the stats file    -J  debug output    -W  wait before processing, for consumers to attach\n" +
    "  -u  require hugepages (a mount point given is not needed)    -L  lossless: never drop at a full queue whose consumer keeps up\n" +
    "  -d  run in the background    -D  become this user once set up    -P  pid file, written once running, removed at exit\n" +
    "  -l  log file: all output goes there\n" +
    "  --metrics-port <port>  the counters (meter ZcFlow) for Prometheus at http://localhost:<port>/metrics");
if (cl.Has('w')) cl.Fail("-w (hardware aggregation of the -i devices) needs a NIC and driver that aggregate in hardware, which ZcFlow does not drive; list the devices in -i and they are aggregated in software");
if (cl.Has('Q')) cl.Fail("-Q (consumers in KVM guests, through QEMU monitor sockets) is not supported: ZcFlow shares memory with processes on this host only");
if (cl.Has('T') || cl.Has('C') || cl.Has('O')) cl.Fail("-T, -C and -O (the PF_RING FT flow table and its nDPI configuration) are not supported yet");
if (cl.Has('N')) cl.Fail("-N (a producer for n2disk's multithreaded capture) is not supported: n2disk reads PF_RING's queues, not ZcFlow's");
if ((cl.Has('E') || cl.Has('A')) && !cl.Has('Z')) cl.Fail("-E and -A set up the rules of -Z; give -Z too");
// -l: everything this program writes goes to the file, from here on (appended: a restarted daemon keeps its history).
if (cl.String('l') is { } logFile)
{
    try
    {
        var log = new StreamWriter(logFile, append: true) { AutoFlush = true };
        Console.SetOut(log);
        Console.SetError(log);
    }
    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
    {
        cl.Fail($"-l {logFile}: {e.Message}");
    }
}
(uint Uid, uint Gid)? user = null;
if (cl.String('D') is { } userName && (user = ZcFlow.Native.Libc.LookUpUser(userName)) is null) cl.Fail($"-D {userName}: no such user");
// -d: the same program again in the background; this one relays its output until it is ready, then exits.
if (cl.Has('d') && !Daemon.IsBackground) return Daemon.RunInBackground(arguments);
bool debug = cl.Has('J');
// The command line into zbalance_ipc's options: here only what the text says (numbers, lists, queue:device); what the
// values mean together is checked once, by BalancerOptions.Problems, and told with the option's letter.
string[][] inputs = cl.Strings('i') is { Count: > 0 } given
    ? [.. given.Select(i => i.Split(',', StringSplitOptions.RemoveEmptyEntries))]
    : [[BalancerOptions.DefaultInput]];
// As zbalance_ipc, an interface is captured in the receive direction only, unless -X (or the name says otherwise).
inputs = [.. inputs.Select(i => i.Select(name => Device.WithOutgoing(name, cl.Has('X'))).ToArray())];
int[] vlanQueues = [.. cl.Strings('M').Select(v => int.TryParse(v, out int id) ? id : cl.Fail<int>($"-M takes one VLAN id each: -M 10 -M 20; not '{v}'"))];
ushort etherType = VlanMap.DefaultEtherType;
if (cl.String('Y') is { } y)
{
    // zbalance_ipc reads a decimal number; 0x8585 is taken as well.
    bool hex = y.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
    if (!ushort.TryParse(hex ? y[2..] : y, hex ? System.Globalization.NumberStyles.HexNumber : System.Globalization.NumberStyles.None, null, out etherType))
        cl.Fail($"-Y takes an EtherType, 34181 or 0x8585, not '{y}'");
}
int[] apps = [.. (cl.String('n') ?? "1").Split(',').Select(s => int.TryParse(s, out int n) ? n : cl.Fail<int>($"-n takes queue counts, comma separated, for example -n 2,1; not '{s}'"))];
(int Queue, int Version)? gtpControl = cl.String('G') is not { } g ? null
    : g.Split(':') is [var gq, var gv] && int.TryParse(gq, out int gtpQueue) && int.TryParse(gv, out int gtpVersion) ? (gtpQueue, gtpVersion)
    : cl.Fail<(int, int)>($"-G takes <queue>:<version>, for example -G 0:2; not '{g}'");
int[] cores = [.. (cl.String('g') ?? "").Split([':', ','], StringSplitOptions.RemoveEmptyEntries).Select(s => int.TryParse(s, out int c) ? c : -1)];
if (cores.Contains(-1)) cl.Fail("-g takes core numbers, one per -i, colon separated (for example -g 1:2)");
(int Queue, string Device)[] egress = [.. cl.Strings('r').Select(r => r.Split(':', 2) is [var rq, var device] && int.TryParse(rq, out int n) ? (n, device)
    : cl.Fail<(int, string)>($"-r takes <queue>:<device>, for example -r 0:eth1; not '{r}'"))];
// -x 10,20: only frames with VLAN 10 or 20 in one of their tags, checked apart from -f.
VlanAllowList? vlans = null;
if (cl.String('x') is { } x)
{
    try { vlans = VlanAllowList.Parse(x); }
    catch (ArgumentException) { cl.Fail("-x takes VLAN ids from 0 to 4095, comma separated"); }
}
// -f <file> filters what the balancers take in; -f <file>@<q>[,<q>...] what goes to those outputs of each balancer
// (repeat -f for more; several files for one place must all pass). Every file is read again on SIGUSR1.
var filterFiles = new List<(string File, int[]? Queues)>();
foreach (string f in cl.Strings('f'))
{
    int at = f.LastIndexOf('@');
    int[]? queues = at < 0 ? null : [.. f[(at + 1)..].Split(',').Select(q => int.TryParse(q, out int n) ? n : -1)];
    if (queues is not null && (queues.Length == 0 || queues.Contains(-1)))
        cl.Fail($"-f takes <file> or <file>@<queue>[,<queue>...]; not '{f}'");
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
        for (int i = 0; i < b.Outputs.Count; i++) b.SetOutputFilter(i, filters.Outputs.GetValueOrDefault(i));
    }
}
uint clusterId = 0;
HashMode mode = default;
// Each of BalancerOptions' options by its letter, for the messages of its problems.
var letters = new Dictionary<string, char>
{
    [nameof(BalancerOptions.ClusterId)] = 'c', [nameof(BalancerOptions.Inputs)] = 'i', [nameof(BalancerOptions.Applications)] = 'n',
    [nameof(BalancerOptions.Mode)] = 'm', [nameof(BalancerOptions.Cores)] = 'g', [nameof(BalancerOptions.QueueSlots)] = 'q',
    [nameof(BalancerOptions.ConsumerBuffers)] = 'b', [nameof(BalancerOptions.Filter)] = 'f', [nameof(BalancerOptions.OutputFilters)] = 'f',
    [nameof(BalancerOptions.Vlans)] = 'x', [nameof(BalancerOptions.VlanQueues)] = 'M', [nameof(BalancerOptions.VlanEtherType)] = 'Y',
    [nameof(BalancerOptions.GtpControl)] = 'G', [nameof(BalancerOptions.TimePulseCore)] = 'S', [nameof(BalancerOptions.TimePulseResolutionNs)] = 'R',
    [nameof(BalancerOptions.Egress)] = 'r', [nameof(BalancerOptions.DelayStart)] = 'W',
};
string? pidFile = cl.String('P');
CancellationToken stop = CommandLine.StopSignal();
// The console stats, as zbalance_ipc prints them with -v (and, here, with -p); never in the background or with -z.
bool consoleStats = (cl.Has('v') || cl.Has('p')) && !cl.Has('d') && !cl.Has('z');
bool finalStats = !cl.Has('z') && (!cl.Has('d') || cl.Has('l'));

Graph graph;
RulesServer? rules = null;
RulesFile? deviceRules = null;
bool zInKernel = false;
try
{
    var filters = LoadFilters();
    deviceRules = cl.String('F') is string rulesPath ? RulesFile.Open(rulesPath) : null;
    var requested = (HashMode)cl.Number('m', 0, 0, 8);
    var options = new BalancerOptions
    {
        ClusterId = (uint)cl.Number('c', BalancerOptions.DefaultClusterId, 0, uint.MaxValue),
        Inputs = inputs,
        Applications = requested == HashMode.Vlan ? [1] : apps,   // -m 7 ignores -n, as zbalance_ipc does
        Mode = requested,
        Cores = cores,
        QueueSlots = (int)cl.Number('q', Topology.DefaultQueueSlots, 2, 1 << 20),
        ConsumerBuffers = (int)cl.Number('b', BalancerOptions.DefaultConsumerBuffers, 0, 1 << 24),
        Filter = filters.Input,
        OutputFilters = filters.Outputs,
        Vlans = vlans,
        VlanQueues = vlanQueues,
        VlanEtherType = etherType,
        GtpControl = gtpControl,
        TimePulseCore = cl.Has('S') ? (int)cl.Number('S', 0, 0, 1023) : null,
        TimePulseResolutionNs = cl.Number('R', 0, 0, 1_000_000_000),
        Egress = egress,
        Lossless = cl.Has('L'),
        ActiveWait = cl.Has('a'),
        Cluster = new ClusterOptions { RequireHugePages = cl.Has('u'), MaxQueues = ClusterOptions.QueueLimit },
        DelayStart = TimeSpan.FromSeconds(cl.Number('W', 0, 0, 3600)),
        // -Z's rules go into the XDP program of xdp: inputs too, ZcFlow's, which they get with rules (none, without -F).
        DeviceRules = deviceRules?.Rules ?? (cl.Has('Z') && inputs.Any(i => i.Any(Device.RunsRulesInTheKernel)) ? new Rules() : null),
    };
    if (options.Problems() is [var (option, message), ..]) cl.Fail($"-{letters[option]}: {message}");
    zInKernel = cl.Has('Z') && options.DeviceRules is not null && inputs.Any(i => i.Any(Device.RunsRulesInTheKernel));
    (clusterId, mode, apps) = (options.ClusterId, options.Mode, [.. options.QueuesPerApplication]);
    graph = options.Start();
    if (cl.Has('Z'))
    {
        Graph running = graph;
        try
        {
            rules = new RulesServer(cl.String('E') ?? RulesServer.DefaultEndpoint, cl.Number('A', 1, 0, 1) == 1,
                set => { foreach (IBalancer b in running.Balancers) b.Rules = set; });
        }
        catch (System.Net.Sockets.SocketException e)
        {
            graph.Dispose();
            // ZeroMQ's sockets need the loopback interface up, as well as the endpoint's
            throw new InvalidOperationException($"-Z: no ZeroMQ endpoint at {cl.String('E') ?? RulesServer.DefaultEndpoint}: {e.Message}", e);
        }
        catch
        {
            graph.Dispose();
            throw;
        }
    }
}
catch (Exception e) when (SetupError.Is(e))
{
    Console.Error.WriteLine($"error: {SetupError.Describe(e)}");
    deviceRules?.Dispose();
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
                                string.Concat(reloaded.Outputs.OrderBy(o => o.Key).Select(o => $", output {o.Key} {o.Value.Expression}")));
    }
    catch (Exception e) when (SetupError.Is(e))
    {
        Console.Error.WriteLine($"filter not reloaded: {SetupError.Describe(e)}");
    }
});
// kill -HUP prints the -Z rules in force, as zbalance_ipc does.
using var printRules = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c =>
{
    c.Cancel = true;
    if (deviceRules is not null)
        foreach (string line in RulesFile.Report(deviceRules.Rules)) Console.WriteLine(line);
    if (rules is null) return;
    Console.WriteLine($"rules in force (otherwise {(cl.Number('A', 1, 0, 1) == 1 ? "PASS" : "DROP")}):");
    foreach (string line in rules.Describe()) Console.WriteLine("  " + line);
});

using (graph)
using (rules)
using (deviceRules)
using (Prometheus.Serve(metricsPort))
{
    // Written once the cluster serves (a supervisor that sees it may attach consumers), removed at a clean exit.
    if (pidFile is not null)
    {
        if (user is { } owner) Daemon.PreparePidDirectory(pidFile, cl.String('D')!, owner);
        File.WriteAllText(pidFile, Environment.ProcessId + "\n");
    }
    foreach (IBalancer b in graph.Balancers)
    {
        Console.WriteLine($"cluster {clusterId}: {string.Join(", ", b.Inputs.Select(i => i.Name))} -> mode {(int)mode} -> " +
                          $"zc:{clusterId}@{string.Join(",", b.Outputs.Select(q => q.Id))}");
        foreach (IngressQueueSource q in b.Inputs.OfType<IngressQueueSource>())
            Console.WriteLine($"  send into {q.Name} with: Send -i {q.Name}");
    }
    Console.WriteLine($"serving on {graph.Cluster.SocketPath}{(graph.Cluster.OnHugePages ? ", buffers on hugepages" : "")}");
    if (metricsPort is not null) Console.WriteLine($"metrics at http://localhost:{metricsPort}/metrics");
    if (rules is not null) Console.WriteLine($"rules through ZeroMQ at {cl.String('E') ?? RulesServer.DefaultEndpoint}; what no rule names is {(cl.Number('A', 1, 0, 1) == 1 ? "passed" : "dropped")}{(zInKernel ? "; in the kernel too, for the xdp: inputs" : "")}");
    if (debug)
        foreach (QueueEnd q in graph.Queues)
            Console.WriteLine($"debug: queue {q.Id}: {q.Role}, {q.Capacity} slots{(q is EgressQueue e ? $", a consumer may hold {e.Quota}" : "")}");
    // zbalance_ipc's counters, every second, as "Key: value" lines in a file of their own: PF_RING's
    // /proc/net/pf_ring/stats/<cluster> as /run/zcflow/stats/<cluster>.
    const string StatsDirectory = "/run/zcflow/stats";
    string statsFile = Path.Combine(StatsDirectory, clusterId.ToString(System.Globalization.CultureInfo.InvariantCulture));
    RunFile.Prepare(StatsDirectory);
    string? rulesCounters = deviceRules?.Publish(clusterId);   // for ZStat
    if (deviceRules is not null)
        Console.WriteLine($"rules of {deviceRules.Path} on every input ({deviceRules.Rules.List().Count}), {(inputs.SelectMany(i => i).All(Device.RunsRulesInTheKernel) ? "in the kernel" : "as AF_PACKET inputs' socket filters where they can be, in user space on the other inputs that are not xdp:")}");
    var clock = Stopwatch.StartNew();
    ulong lastRecv = 0, lastFwd = 0;
    double last = 0;
    var consumers = new int[graph.Queues.Count];
    Report(console: false);
    if (user is { } ids)
    {
        try
        {
            Daemon.DropPrivileges(cl.String('D')!, ids, [.. new[] { pidFile, statsFile, rulesCounters, cl.String('l') }.OfType<string>()], graph.Cluster);
            Console.WriteLine($"user changed to {cl.String('D')}");
        }
        catch (ZcFlow.Native.ErrnoException e)
        {
            Console.Error.WriteLine($"error: -D {cl.String('D')}: {e.Message}");
            RunFile.Remove(pidFile);
            RunFile.Remove(statsFile);
            return 1;
        }
    }
    if (Daemon.IsBackground) Daemon.Detach();   // ready: the foreground process exits now
    if (cores.Length > 0) ZcFlow.Workers.CpuAffinity.PinCurrentThread(cores[0]);   // as zbalance_ipc, the main thread joins the first balancer's core
    while (!stop.IsCancellationRequested && graph.IsRunning)
    {
        stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
        Report(console: consoleStats);
        if (debug)
            foreach (QueueEnd q in graph.Queues)
            {
                int pid = q switch { EgressQueue e => e.ConsumerPid, IngressQueue i => i.ConsumerPid, _ => 0 };
                if (pid == consumers[q.Id]) continue;
                Console.WriteLine($"debug: queue {q.Id}: {(pid == 0 ? $"process {consumers[q.Id]} left" : $"process {pid} attached")}");
                consumers[q.Id] = pid;
            }
    }
    Report(console: finalStats);   // the final stats, on Ctrl-C or SIGTERM as on any other end
    RunFile.Remove(statsFile);
    if (deviceRules is not null && finalStats)
        foreach (string line in RulesFile.Report(deviceRules.Rules)) Console.WriteLine(line);

    void Report(bool console)
    {
        double now = clock.Elapsed.TotalSeconds, dt = now - last;
        // The graph's one snapshot: an output sent out of a device (-r) counts what the device sent.
        GraphStats stats = graph.Stats();
        ulong recv = stats.Received, fwd = stats.Forwarded, noBuffer = 0, kernel = 0, ifPackets = 0;
        var file = new System.Text.StringBuilder();
        var queueLines = new System.Text.StringBuilder();
        if (console) Console.WriteLine("=========================");
        foreach ((string name, DeviceStats s) in stats.Inputs)
        {
            ifPackets += s.Received;
            noBuffer += s.DroppedNoBuffer;
            kernel += s.DroppedKernel;
            if (console && (cl.Has('p') || s.DroppedKernel != 0))
                Console.WriteLine($"{name}: {s.Received:N0} pkts received, {s.DroppedNoBuffer:N0} without a buffer, {s.DroppedKernel:N0} dropped by the kernel");
        }
        foreach (OutputStats o in stats.Outputs)
        {
            if (o.Device is { } device)
            {
                queueLines.Append($"{device}-TXPackets: {o.Sent}\n{device}-TXDropped: {o.Dropped}\n");
                if (console) Console.WriteLine($"Q {o.Queue,2}: {o.Sent,15:N0} pkts sent out of {device} {o.Dropped,12:N0} dropped");
                continue;
            }
            queueLines.Append($"Q{o.Queue}Packets:    {o.Taken}\nQ{o.Queue}Dropped:    {o.Dropped}\n");
            if (console) Console.WriteLine($"Q {o.Queue,2}: {o.Sent,15:N0} pkts forwarded {o.Taken,15:N0} taken by its consumer {o.Dropped,12:N0} dropped{(o.ConsumerPid > 0 ? $"  (consumer pid {o.ConsumerPid})" : "")}");
        }
        if (console)
        {
            Console.WriteLine($"Absolute Stats: Recv {recv:N0} pkts (no buffer {noBuffer:N0}, kernel drops {kernel:N0}, filtered {stats.Filtered:N0}) - Forwarded {fwd:N0} pkts (dropped {stats.Dropped:N0})");
            if (dt > 0) Console.WriteLine($"Actual Stats:   Recv {(recv - lastRecv) / dt / 1e6:F2} Mpps - Forwarded {(fwd - lastFwd) / dt / 1e6:F2} Mpps");
            if (graph.InputsExhausted) Console.WriteLine("(all inputs are exhausted)");
        }
        (lastRecv, lastFwd, last) = (recv, fwd, now);

        TimeSpan up = clock.Elapsed;
        file.Append($"ClusterId:    {clusterId}\nTotQueues:    {stats.Outputs.Count}\nApplications: {apps.Length}\n");
        for (int a = 0; a < apps.Length; a++) file.Append($"App{a}Queues:   {apps[a]}\n");
        file.Append($"Duration:     {up.Days}:{up.Hours:00}:{up.Minutes:00}:{up.Seconds:00}:{up.Milliseconds:000}\n");
        file.Append($"Packets:      {recv}\nForwarded:    {fwd}\nProcessed:    {stats.Taken}\n");
        if (cl.Has('p')) file.Append($"IFPackets:    {ifPackets}\nIFDropped:    {kernel + noBuffer}\n").Append(queueLines);
        RunFile.Write(statsFile, file.ToString());   // without the directory (not root), the console and the cluster listing still have the counters
    }
    RunFile.Remove(pidFile);
}
return 0;

