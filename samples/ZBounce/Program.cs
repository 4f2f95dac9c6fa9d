using ZcFlow;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Graphs;
using ZcFlow.Samples;
using ZcFlow.Stages;
using ZcFlow.Workers;

// zbounce: what comes in on -i goes out of -o, and with -b what comes in on -o goes out of -i too: a bridge of two
// interfaces (on one pinned thread with -g), or from a queue of one cluster into another's ingress queue (zbounce_ipc:
// -i zc:99@0 -o zc:77@0). An interface is read without what is sent out of it, so a bridge never hears itself.
// With lists, -i eth1,eth2 -o eth3,eth4, it is zreplicator: the inputs read in turn, every packet out of every output.
// With -d it is zdelay: each packet goes out the given time after it came in (the kernel's receive time on an
// interface), to tens of microseconds with -a; what is not due yet waits in the device's ring.
// A full transmit ring is waited for; the totals are printed on Ctrl-C/SIGTERM. Built as a Topology: a stage per way.
var cl = new CommandLine(args, flags: "bpa", withValue: "iogcd",
    "usage: ZBounce -i <device> -o <device> [-b] [-d <us>] [-g <core>] [-a] [-p] [-c <cluster>]\n" +
    "  -i  where packets come in: eth0, af_packet:eth0, xdp:eth0@0, zc:<cluster>@<queue>; a list is read in turn\n" +
    "  -o  where they go out: eth1, af_packet:eth1, xdp:eth1@0, zc:<cluster>@<ingress queue>; a list gets every packet each\n" +
    "  -b  both ways: also from -o to -i (one device each)\n" +
    "  -d  hold each packet this many microseconds after it came in (zdelay)\n" +
    "  -g  pin the forwarding thread to this core (without it, a thread a way)    -a  active wait    -p  stats every second\n" +
    "  -c  cluster id of its own (default from the pid)");
if (!cl.Has('i') || !cl.Has('o')) cl.Fail("-i and -o are required");
string[] input = cl.String('i')!.Split(',', StringSplitOptions.RemoveEmptyEntries), output = cl.String('o')!.Split(',', StringSplitOptions.RemoveEmptyEntries);
bool both = cl.Has('b');
if (both && (input.Length != 1 || output.Length != 1)) cl.Fail("-b bridges one device with one other: -i and -o name one each");
if (input.Length == 0 || output.Length == 0) cl.Fail("-i and -o name at least one device each");
long delayNs = cl.Number('d', 0, 0, 60_000_000) * 1000;
uint clusterId = (uint)cl.Number('c', 0x5B00_0000 + Environment.ProcessId % 0x100_0000, 0, uint.MaxValue);
CancellationToken stop = CommandLine.StopSignal();

// Each way is a stage on the -g core (ways given one core share its thread): forwarding, or holding each packet for -d,
// out of one device; or, to several, a balancer that gives every packet to each of them.
var ways = new List<(string Name, bool Replicates)>();
Graph graph;
try
{
    int? core = cl.Has('g') ? (int)cl.Number('g', 0, 0, 1023) : null;
    Topology t = Topology.Cluster(clusterId).Options(new ClusterOptions { BufferCount = 8192, BufferSize = ClusterOptions.BufferSizeForMtu(9000), Warn = _ => { } })
        .ActiveWait(cl.Has('a'));
    foreach ((string[] from, string[] to) in both ? [(input, output), (output, input)] : new[] { (input, output) })
    {
        string name = $"{string.Join(',', from)} -> {string.Join(',', to)}";
        PacketStream way = t.From([.. from.Select(d => Device.WithOutgoing(d, outgoing: false))]);
        if (delayNs != 0) way = way.Delay(TimeSpan.FromTicks(delayNs / 100), core, to.Length == 1 ? name : $"{name} (delay)");
        if (to.Length == 1)
        {
            if (delayNs == 0) way = way.Stage(new PassAll(), core, name);
            way.To(to[0]);
        }
        else
        {
            IReadOnlyList<PacketStream> copies = way.Balance(new FanOutAll(), to.Length, core, name);
            for (int i = 0; i < to.Length; i++) copies[i].To(to[i]);
        }
        ways.Add((name, to.Length > 1));
    }
    graph = t.Run();
}
catch (Exception e) when (SetupError.Is(e))
{
    Console.Error.WriteLine($"error: {SetupError.Describe(e)}");
    return 1;
}

// What each way took in: the balancer's count where it replicates, else its stage's.
var counts = new List<Func<ulong>>();
var dropped = new List<Func<ulong>>();
int balancers = 0;
foreach ((string name, bool replicates) in ways)
{
    if (replicates)
    {
        IBalancer b = graph.Balancers[balancers++];
        counts.Add(() => b.Received);
    }
    else
    {
        IPipe p = graph.Pipes.Single(p => p.Name == name);
        counts.Add(() => p.Forwarded);
        dropped.Add(() => p.Dropped);
    }
}
string Totals() => string.Join(", ", ways.Select((w, i) => $"{counts[i]():N0} pkts {w.Name}")) + (dropped.Sum(d => (long)d()) is > 0 and var n ? $" ({n:N0} refused by an output, dropped)" : "");
Console.WriteLine($"bouncing {string.Join(" and ", ways.Select(w => w.Name))}{(delayNs != 0 ? $", each packet held {delayNs / 1000:N0} µs after it came in" : "")}");
while (!stop.IsCancellationRequested && graph.IsRunning)
{
    stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
    if (cl.Has('p')) Console.WriteLine(Totals());
}
int status = 0;
string totals = Totals();
try { graph.Dispose(); }
catch (Exception e) { Console.Error.WriteLine($"error: {SetupError.Describe(e)}"); status = 1; }
Console.WriteLine($"total {totals}");
return status;
