using System.Diagnostics;
using ZcFlow;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Graphs;
using ZcFlow.Ipc;
using ZcFlow.Queues;
using ZcFlow.Samples;
using ZcFlow.Stages;
using ZcFlow.Workers;

// Several devices merged into one queue, counted or written to a capture file (pcapng when the
// name ends in .pcapng, else pcap), or to standard output (-o -) for tcpdump -r - or tshark -r -.
// Stops after -n packets, when every input is exhausted, when the reader of its output goes, or on
// Ctrl-C/SIGTERM, and always closes the file cleanly.
var cl = new CommandLine(args, flags: "apt", withValue: "iongcbFw",
    "usage: Aggregator -i <device>[,<device>...] [-o <file>|-] [-F pcap|pcapng] [-n <count>] [-p] [-t [-w <us>]] [-g <core>] [-a] [-c <cluster>] [-b <buffers>]\n" +
    "  -i  devices: gen:<size>[?…], pcap:<file>[?loop&pace], <file>.pcap[ng], zc:<cluster>@<queue>\n" +
    "  -o  write the packets to this capture file, or with -o - to standard output, each burst at once (pcap; -F pcapng)\n" +
    "  -n  stop after this many packets\n" +
    "  -p  print stats every second    -t  merge the inputs in timestamp order (zfifo)\n" +
    "  -w  with -t: how long an input that has nothing may hold the others back, in microseconds (1000): it may bring an older packet\n" +
    "  -g  core for the aggregator thread    -a  active wait    -c  cluster id of its own (default from the pid)    -b  buffers (8192)");
string[] devices = cl.RequiredString('i').Split(',', StringSplitOptions.RemoveEmptyEntries);
long limit = cl.Number('n', 0, 0);
string? output = cl.String('o');
bool toStdout = output == "-";
string format = cl.String('F') ?? (output?.EndsWith(".pcapng", StringComparison.OrdinalIgnoreCase) == true ? "pcapng" : "pcap");
if (format is not ("pcap" or "pcapng")) cl.Fail($"-F takes pcap or pcapng, not '{format}'");
if (cl.Has('F') && !toStdout) cl.Fail("-F is for -o -: a file's format comes from its name (.pcapng, else pcap)");
// With the packets on standard output, everything else goes to standard error.
TextWriter console = toStdout ? Console.Error : Console.Out;
CancellationToken stop = CommandLine.StopSignal();

if (cl.Has('w') && !cl.Has('t')) cl.Fail("-w is for -t, the merge in timestamp order");
// The devices, merged (in time order with -t) by one stage on its own worker into one queue, read here.
Graph graph;
int queueId;
try
{
    Topology topology = Topology.Cluster((uint)cl.Number('c', 0x7A00_0000 + Environment.ProcessId % 1_000_000, 0, uint.MaxValue))
        .Options(new ClusterOptions { BufferCount = (int)cl.Number('b', 8192, 64, 1 << 26), MaxQueues = 1, BufferSize = 9216, Warn = w => Console.Error.WriteLine(w) })
        .QueueSlots(4096).ActiveWait(cl.Has('a'));
    PacketStream input = topology.From(devices);
    if (cl.Has('t')) input = input.InTimeOrder(TimeSpan.FromMicroseconds(cl.Number('w', 1000, 0, 60_000_000)));
    queueId = input.Stage(new PassAll(), cl.Has('g') ? (int)cl.Number('g', 0, 0, 1023) : null, "aggregator").ToQueue();
    graph = topology.Run();
}
catch (Exception e) when (SetupError.Is(e))
{
    Console.Error.WriteLine($"error: {SetupError.Describe(e)}");
    return 1;
}
QueueConsumer queue = graph.Consumer(queueId);
// The capture is of the inputs' link type (Ethernet; LINUX_SLL2 for any; a capture file's own), one for all of them.
ZcFlow.Parsing.LinkType[] links = [.. graph.Pipes[0].Inputs.Select(i => i.Link).Distinct()];
if (output is not null && links.Length > 1)
{
    Console.Error.WriteLine($"error: -o: the inputs' frames start with different headers ({string.Join(", ", graph.Pipes[0].Inputs.Select(i => $"{i.Name}: {i.Link}"))}), which one capture cannot hold");
    graph.Dispose();
    return 1;
}
ZcFlow.Parsing.LinkType link = links.FirstOrDefault(ZcFlow.Parsing.LinkType.Ethernet);
using CaptureWriter? writer = output is null ? null
    // fd 1 as a file, not the console stream, which drops what a closed pipe refuses instead of saying so.
    : toStdout ? new CaptureWriter(new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(1, ownsHandle: false), FileAccess.Write, 1 << 16), format == "pcapng", link)
    : new CaptureWriter(output, link);
var burst = new PacketHandle[32];
long packets = 0, bytes = 0, lastPackets = 0;
var clock = Stopwatch.StartNew();
double lastReport = 0;
int status = 0;
IdleStrategy idle = IdleStrategy.Backoff();
while (!stop.IsCancellationRequested && (limit == 0 || packets < limit))
{
    int n = queue.ReceiveBurst(burst.AsSpan(0, (int)Math.Min(burst.Length, limit == 0 ? burst.Length : limit - packets)));
    idle.Idle(n);
    for (int i = 0; i < n; i++) bytes += burst[i].Length;
    try
    {
        writer?.WriteBurst(burst.AsSpan(0, n));
        if (toStdout && n != 0) writer!.Flush();   // a pipe's reader sees each burst as it comes
    }
    catch (IOException) when (toStdout)
    {
        queue.ReleaseBurst(burst.AsSpan(0, n));
        console.WriteLine("the reader of the output has gone: stopping");
        break;
    }
    queue.ReleaseBurst(burst.AsSpan(0, n));
    packets += n;
    if (n == 0 && graph.InputsExhausted && queue.IsEmpty) break;
    if (n == 0 && !graph.IsRunning) break;
    double now = clock.Elapsed.TotalSeconds;
    if (cl.Has('p') && now - lastReport >= 1)
    {
        console.WriteLine($"{packets,14:N0} pkts {bytes,16:N0} bytes | {(packets - lastPackets) / (now - lastReport) / 1e6,8:F3} Mpps");
        (lastPackets, lastReport) = (packets, now);
    }
}
foreach (IPacketSource device in graph.Pipes[0].Inputs)
    if (device is PcapFileDevice { Problem: { } problem }) Console.Error.WriteLine($"warning: {problem}");
try { graph.Dispose(); }
catch (Exception e) { Console.Error.WriteLine($"error: {SetupError.Describe(e)}"); status = 1; }
try
{
    writer?.Dispose();
}
catch (IOException) when (toStdout)
{
    // the reader went before the last bytes: nothing to do about them
}
console.WriteLine($"total {packets:N0} pkts {bytes:N0} bytes{(output is null ? "" : toStdout ? " written to standard output" : $" written to {output}")}");
return status;
