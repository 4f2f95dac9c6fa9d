using ZcFlow;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Samples;
using ZcFlow.Workers;

// zbounce: what comes in on -i goes out of -o, and with -b what comes in on -o goes out of -i too: a bridge of two
// interfaces on one pinned thread, or from a queue of one cluster into another's ingress queue (zbounce_ipc:
// -i zc:99@0 -o zc:77@0). An interface is read without what is sent out of it, so a bridge never hears itself.
// With lists, -i eth1,eth2 -o eth3,eth4, it is zreplicator: the inputs read in turn, every packet out of every output.
// With -d it is zdelay: each packet goes out the given time after it came in (the kernel's receive time on an
// interface), to tens of microseconds with -a.
// A full transmit ring is waited for; the totals are printed on Ctrl-C/SIGTERM.
var cl = new CommandLine(args, flags: "bpa", withValue: "iogcd",
    "usage: ZBounce -i <device> -o <device> [-b] [-d <us>] [-g <core>] [-a] [-p] [-c <cluster>]\n" +
    "  -i  where packets come in: eth0, af_packet:eth0, xdp:eth0@0, zc:<cluster>@<queue>; a list is read in turn\n" +
    "  -o  where they go out: eth1, af_packet:eth1, xdp:eth1@0, zc:<cluster>@<ingress queue>; a list gets every packet each\n" +
    "  -b  both ways: also from -o to -i (one device each)\n" +
    "  -d  hold each packet this many microseconds after it came in (zdelay; up to 4096 packets a way held)\n" +
    "  -g  pin the forwarding thread to this core    -a  active wait    -p  stats every second\n" +
    "  -c  cluster id of its own (default from the pid)");
if (!cl.Has('i') || !cl.Has('o')) cl.Fail("-i and -o are required");
string[] input = cl.String('i')!.Split(',', StringSplitOptions.RemoveEmptyEntries), output = cl.String('o')!.Split(',', StringSplitOptions.RemoveEmptyEntries);
bool both = cl.Has('b');
if (both && (input.Length != 1 || output.Length != 1)) cl.Fail("-b bridges one device with one other: -i and -o name one each");
if (input.Length == 0 || output.Length == 0) cl.Fail("-i and -o name at least one device each");
long delayNs = cl.Number('d', 0, 0, 60_000_000) * 1000;
uint clusterId = (uint)cl.Number('c', 0x5B00_0000 + Environment.ProcessId % 0x100_0000, 0, uint.MaxValue);
CancellationToken stop = CommandLine.StopSignal();

ZcCluster? cluster = null;
var opened = new List<IDisposable>();
var ways = new List<(IPacketSource[] From, IPacketSink[] To, string Name)>();
BufferPool pool;
try
{
    cluster = ZcCluster.Create(clusterId, new ClusterOptions { BufferCount = 8192, BufferSize = ClusterOptions.BufferSizeForMtu(9000), Warn = _ => { } });
    pool = cluster.CreatePool(8192);
    uint index = 0;
    foreach ((string[] from, string[] to) in both ? [(input, output), (output, input)] : new[] { (input, output) })
    {
        var sources = new IPacketSource[from.Length];
        var sinks = new IPacketSink[to.Length];
        for (int i = 0; i < from.Length; i++) opened.Add(sources[i] = Device.OpenSource(Device.WithOutgoing(from[i], outgoing: false), pool, index++));
        for (int i = 0; i < to.Length; i++) opened.Add(sinks[i] = Device.OpenSink(to[i], pool));
        ways.Add((sources, sinks, $"{string.Join(',', from)} -> {string.Join(',', to)}"));
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
var held = ways.Select(_ => new Delayed(4096)).ToArray();
var worker = ZcWorker.Start("zbounce", () =>
{
    int moved = 0;
    for (int w = 0; w < ways.Count; w++)
    {
        (IPacketSource[] sources, IPacketSink[] sinks, _) = ways[w];
        int n = 0;
        if (delayNs == 0)
        {
            foreach (IPacketSource from in sources)
            {
                int got = from.ReceiveBurst(burst);
                for (int i = 0; i < got; i++) Send(sinks, burst[i]);
                pool.ReleaseBurst(burst.AsSpan(0, got));
                n += got;
            }
        }
        else
        {
            // In: held with the time each is due. Out: every one that is due, in the order they came.
            Delayed fifo = held[w];
            foreach (IPacketSource from in sources)
            {
                int got = fifo.Room >= burst.Length ? from.ReceiveBurst(burst) : 0;
                long now = TimePulse.WallClockNs();
                for (int i = 0; i < got; i++) fifo.Add(burst[i], Arrived(burst[i].TimestampNs, now) + delayNs);
            }
            for (long now = TimePulse.WallClockNs(); fifo.Count != 0 && fifo.Due <= now; n++)
            {
                PacketHandle p = fifo.Take();
                Send(sinks, p);
                pool.Release(p);
            }
        }
        if (n != 0)
            foreach (IPacketSink to in sinks) to.Flush();
        Volatile.Write(ref forwarded[w], forwarded[w] + n);
        moved += n + (delayNs != 0 ? held[w].Count : 0);   // a packet held is work pending: no sleeping on it
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

// A copy out of each device (a full ring is waited for rather than dropped).
static void Send(IPacketSink[] sinks, in PacketHandle packet)
{
    foreach (IPacketSink to in sinks)
        while (!to.TrySend(packet)) to.Flush(wait: true);
}

// When a packet came in: the kernel's receive time where the device stamps it (an interface), if it is of the last
// second; else now (a queue's packets carry whatever time their source gave them).
static long Arrived(long stampNs, long nowNs) => stampNs <= nowNs && nowNs - stampNs < 1_000_000_000 ? stampNs : nowNs;

// Packets held for -d, in the order they came, each with the time it is due out.
internal sealed class Delayed(int capacity)
{
    private readonly PacketHandle[] _packets = new PacketHandle[capacity];
    private readonly long[] _due = new long[capacity];
    private int _head;

    public int Count { get; private set; }

    public int Room => _packets.Length - Count;

    public long Due => _due[_head];

    public void Add(in PacketHandle packet, long dueNs)
    {
        int at = (_head + Count++) % _packets.Length;
        _packets[at] = packet;
        _due[at] = dueNs;
    }

    public PacketHandle Take()
    {
        PacketHandle p = _packets[_head];
        _head = (_head + 1) % _packets.Length;
        Count--;
        return p;
    }
}
