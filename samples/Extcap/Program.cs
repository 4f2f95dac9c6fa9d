using ZcFlow;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Filters;
using ZcFlow.Ipc;
using ZcFlow.Queues;
using ZcFlow.Samples;

// Wireshark's extcap for ZcFlow: every egress queue of every cluster on the host is a capture interface,
// zc:<cluster>@<queue>. Wireshark (or tshark, dumpcap) runs it from its extcap folder to list the queues and,
// for a capture, to attach to one and write what arrives to a fifo as pcapng, each burst as it comes. Linked into
// the folder, it is what `tshark -D` lists and `tshark -i zc:99@0` captures from:
//   ln -s $PWD/samples/Extcap/bin/Release/net10.0/zcflow-extcap /usr/lib/x86_64-linux-gnu/wireshark/extcap/
const string Usage =
    "usage: zcflow-extcap --extcap-interfaces\n" +
    "       zcflow-extcap --extcap-interface zc:<cluster>@<queue> --extcap-dlts | --extcap-config\n" +
    "       zcflow-extcap --extcap-interface zc:<cluster>@<queue> --capture --fifo <path> [--extcap-capture-filter <bpf>] [--count <packets>]\n" +
    "       zcflow-extcap --extcap-interface zc:<cluster>@<queue> --extcap-capture-filter <bpf>   (checks the filter)";
string[] flags = ["--extcap-interfaces", "--extcap-dlts", "--extcap-config", "--capture"];
string[] withValue = ["--extcap-interface", "--fifo", "--extcap-capture-filter", "--count", "--extcap-version", "--extcap-control-in", "--extcap-control-out", "--debug-file"];
var given = new Dictionary<string, string>();
for (int i = 0; i < args.Length; i++)
{
    string[] parts = args[i].Split('=', 2);
    string name = parts[0];
    if (flags.Contains(name) || name == "--debug") given[name] = "";
    else if (withValue.Contains(name) && (parts.Length == 2 || i + 1 < args.Length)) given[name] = parts.Length == 2 ? parts[1] : args[++i];
    else if (name == "--extcap-version") given[name] = "";   // asked without a version
    else return Fail($"unexpected argument '{args[i]}'\n{Usage}");
}

if (given.ContainsKey("--extcap-interfaces"))
{
    Console.WriteLine("extcap {version=1.0}{display=ZcFlow queues}");
    foreach (ClusterInfo cluster in ClusterDirectory.List())
        if (cluster.Problem is null && cluster.Live)
            foreach (QueueInfo q in cluster.Queues)
                if (q.Role == QueueRole.Egress && !q.Internal)
                    Console.WriteLine($"interface {{value=zc:{cluster.Id}@{q.Id}}}{{display=ZcFlow cluster {cluster.Id} queue {q.Id}}}");
    return 0;
}
if (!given.TryGetValue("--extcap-interface", out string? queueName)) return Fail($"--extcap-interface is required\n{Usage}");
if (!AttachedQueue.TryParse(queueName, out uint clusterId, out int queueId)) return Fail($"'{queueName}' is not a ZcFlow queue: write zc:<cluster>@<queue>");
if (given.ContainsKey("--extcap-dlts"))
{
    Console.WriteLine("dlt {number=1}{name=EN10MB}{display=Ethernet}");
    return 0;
}
if (given.ContainsKey("--extcap-config"))
{
    Console.WriteLine("arg {number=0}{call=--count}{display=Packets}{type=unsigned}{default=0}{tooltip=Stop after this many packets (0: until stopped)}");
    return 0;
}
BpfFilter? filter = null;
if (given.TryGetValue("--extcap-capture-filter", out string? expression) && !string.IsNullOrWhiteSpace(expression))
{
    try { filter = BpfFilter.Compile(expression); }
    catch (Exception e) when (SetupError.Is(e))
    {
        // Wireshark checks a capture filter by asking with it alone: what is printed is the reason it is refused. In a
        // capture, what goes wrong goes to standard error, where Wireshark and tshark show it.
        if (given.ContainsKey("--capture")) return Fail(SetupError.Describe(e));
        Console.WriteLine(SetupError.Describe(e));
        return 1;
    }
}
if (!given.ContainsKey("--capture")) return filter is not null ? 0 : Fail($"nothing to do\n{Usage}");
if (!given.TryGetValue("--fifo", out string? fifo)) return Fail("--capture needs --fifo <path>");
long limit = given.TryGetValue("--count", out string? count) ? long.TryParse(count, out long c) && c >= 0 ? c : -1 : 0;
if (limit < 0) return Fail($"--count takes a number of packets, not '{count}'");

CancellationToken stop = CommandLine.StopSignal();
AttachedQueue attached;
try { attached = AttachedQueue.Attach(clusterId, queueId); }
catch (Exception e) when (SetupError.Is(e))
{
    return Fail(SetupError.Describe(e));
}
using (attached)
{
    QueueConsumer queue = attached.Queue;
    var burst = new PacketHandle[32];
    long packets = 0;
    try
    {
        using var writer = new CaptureWriter(new FileStream(fifo, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1 << 16), pcapng: true);
        writer.Flush();   // the header at once: the reader waits for it
        while (!stop.IsCancellationRequested && (limit == 0 || packets < limit))
        {
            int n = queue.ReceiveBurst(burst.AsSpan(0, (int)Math.Min(burst.Length, limit == 0 ? burst.Length : limit - packets)), QueueWait.Passive, stop);
            try
            {
                for (int i = 0; i < n; i++)
                {
                    if (filter is not null && !filter.Matches(burst[i])) continue;
                    writer.Write(burst[i]);
                    packets++;
                }
            }
            finally
            {
                queue.ReleaseBurst(burst.AsSpan(0, n));
            }
            if (n != 0) writer.Flush();
        }
    }
    catch (IOException)
    {
        // The reader closed the fifo: the capture is over.
    }
    catch (ClusterGoneException e)
    {
        return Fail($"{SetupError.Describe(e)} ({packets} packets captured)");
    }
}
return 0;

static int Fail(string message)
{
    Console.Error.WriteLine($"error: {message}");
    return 1;
}
