using ZcFlow;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Samples;
using ZcFlow.Workers;

// zbounce: what comes in on -i goes out of -o, and with -b what comes in on -o goes out of -i too: a bridge of two
// interfaces on one pinned thread, or from a queue of one cluster into another's ingress queue (zbounce_ipc:
// -i zc:99@0 -o zc:77@0). An interface is read without what is sent out of it, so a bridge never hears itself.
// A full transmit ring is waited for; the totals are printed on Ctrl-C/SIGTERM.
var cl = new CommandLine(args, flags: "bpa", withValue: "iogc",
    "usage: ZBounce -i <device> -o <device> [-b] [-g <core>] [-a] [-p] [-c <cluster>]\n" +
    "  -i  where packets come in: eth0, af_packet:eth0, xdp:eth0@0, zc:<cluster>@<queue>\n" +
    "  -o  where they go out: eth1, af_packet:eth1, xdp:eth1@0, zc:<cluster>@<ingress queue>\n" +
    "  -b  both ways: also from -o to -i (two interfaces)\n" +
    "  -g  pin the forwarding thread to this core    -a  active wait    -p  stats every second\n" +
    "  -c  cluster id of its own (default from the pid)");
if (!cl.Has('i') || !cl.Has('o')) cl.Fail("-i and -o are required");
string input = cl.String('i')!, output = cl.String('o')!;
bool both = cl.Has('b');
uint clusterId = (uint)cl.Number('c', 0x5B00_0000 + Environment.ProcessId % 0x100_0000, 0, uint.MaxValue);
CancellationToken stop = CommandLine.StopSignal();

ZcCluster? cluster = null;
var opened = new List<IDisposable>();
var ways = new List<(IPacketSource From, IPacketSink To, string Name)>();
BufferPool pool;
try
{
    cluster = ZcCluster.Create(clusterId, new ClusterOptions { BufferCount = 8192, BufferSize = ClusterOptions.BufferSizeForMtu(9000), Warn = _ => { } });
    pool = cluster.CreatePool(8192);
    foreach ((string from, string to) in both ? [(input, output), (output, input)] : new[] { (input, output) })
    {
        IPacketSource source = Device.OpenSource(WithoutOwnSends(from), pool, (uint)ways.Count);
        opened.Add(source);
        IPacketSink sink = Device.OpenSink(to, pool);
        opened.Add(sink);
        ways.Add((source, sink, $"{from} -> {to}"));
    }
}
catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or InvalidOperationException or TimeoutException or ZcFlow.Native.ErrnoException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    foreach (IDisposable d in opened) d.Dispose();
    cluster?.Dispose();
    return 1;
}

var burst = new PacketHandle[32];
var forwarded = new long[ways.Count];
var worker = ZcWorker.Start("zbounce", () =>
{
    int moved = 0;
    for (int w = 0; w < ways.Count; w++)
    {
        (IPacketSource from, IPacketSink to, _) = ways[w];
        int n = from.ReceiveBurst(burst);
        for (int i = 0; i < n; i++)
            while (!to.TrySend(burst[i])) to.Flush(wait: true);   // a full ring: wait for the device rather than drop
        pool.ReleaseBurst(burst.AsSpan(0, n));
        if (n != 0) to.Flush();
        Volatile.Write(ref forwarded[w], forwarded[w] + n);
        moved += n;
    }
    return moved;
}, new WorkerOptions { Core = cl.Has('g') ? (int)cl.Number('g', 0, 0, 1023) : null, ActiveWait = cl.Has('a') });

string Totals() => string.Join(", ", ways.Select((w, i) => $"{Volatile.Read(ref forwarded[i]):N0} pkts {w.Name}"));
Console.WriteLine($"bouncing {string.Join(" and ", ways.Select(w => w.Name))}");
while (!stop.IsCancellationRequested && worker.IsRunning)
{
    stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
    if (cl.Has('p')) Console.WriteLine(Totals());
}
int status = 0;
try { worker.Stop(); }
catch (Exception e) { Console.Error.WriteLine($"error: {e.Message}"); status = 1; }
Console.WriteLine($"total {Totals()}");
foreach (IDisposable d in opened) d.Dispose();
cluster.Dispose();
return status;

// An interface is opened without the packets sent out of it (PACKET_IGNORE_OUTGOING): a bridge both ways would
// otherwise take its own sends for new packets.
static string WithoutOwnSends(string name)
{
    bool afPacket = !name.Contains(':') || name.StartsWith("af_packet:", StringComparison.Ordinal);
    return !afPacket ? name : name + (name.Contains('?') ? "&" : "?") + "outgoing=0";
}
