using System.Diagnostics;
using System.Net;
using ZcFlow;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Flows;
using ZcFlow.Ipc;
using ZcFlow.Samples;

// A flow exporter in the manner of softflowd and nProbe: packets from any ZcFlow device (a queue of a
// Balancer, a capture file, an interface) into a FlowTable, ended flows out as IPFIX or NetFlow v9 over UDP.
// Several behind one Balancer export to one collector, each with its own observation domain; or, with an http:// URL,
// into a ClickHouse table, each sensor into its shard's.
if (!Prometheus.TakePort(ref args, out int? metricsPort)) return 2;
var cl = new CommandLine(args, flags: "bpTD", withValue: "invtmolRksBqC",
    "usage: FlowExport -i <device> -n <collector:port> [-v 9|10] [-t <idle>[,<active>]] [-b] [-m <flows>] [-o <domain>] [-l <packets/s>] [-T] [-D] [-R <rules file>] [-p]\n" +
    "       FlowExport -i <device> -n http://<host>:8123/ [-k <database.table>] [-s <sensor>] [-B <rows>[,<ms>]] [-q <rows>] [-C <cluster>] [-o <domain>] ...\n" +
    "  -i  where the packets come from: zc:<cluster>@<queue>, a capture file (pcap:<file>, *.pcap, *.pcapng), eth0, gen:64\n" +
    "  -n  the collector: host:port for UDP (IPv6 as [::1]:port), tcp://host:port for IPFIX over TCP,\n" +
    "      http://[user:password@]host:8123/ for a ClickHouse server (its HTTP interface)\n" +
    "  -v  9 for NetFlow v9, 10 for IPFIX (10)      -b  IPFIX biflows (RFC 5103): one record for both directions\n" +
    "  -t  idle and active timeouts in seconds (15,1800); TCP RST or FINs both ways end a flow a second later\n" +
    "  -m  the most flows held at once (1048576)    -o  observation domain / source id (default: the queue of zc:<c>@<q>, else 0)\n" +
    "  -l  at most this many export packets a second (a collector's socket overflows on a burst); the input waits meanwhile\n" +
    "  -T  flows of the innermost IP packets under GTP-U, GRE and VXLAN    -p  stats every second\n" +
    "  -D  put IP fragments back together first (the Defragment stage), so a fragmented datagram counts once, under its ports\n" +
    "  -R  rules on the device, one a line (drop proto udp dport 53, kernel ether arp, pass …): only what goes to the application\n" +
    "      is counted; in the kernel for xdp: and AF_PACKET devices, in user space elsewhere; SIGUSR1 reads the file again\n" +
    "  ClickHouse: -k  the table (zcflow.flows), created with its database when missing   -s  the sensor's name in each row (the host's)\n" +
    "  -B  a batch is sent at this many rows or this age in ms (65536,1000)   -q  the most rows waiting for the server (1048576), then dropped, counted\n" +
    "  -C  also create <table>_all, a Distributed table over this cluster of the server's remote_servers\n" +
    "  --metrics-port N  the counters for Prometheus at http://localhost:N/metrics");
string input = cl.RequiredString('i');
string target = cl.String('n') ?? "";
Uri? clickHouseUrl = target.StartsWith("http://", StringComparison.Ordinal) || target.StartsWith("https://", StringComparison.Ordinal)
    ? Uri.TryCreate(target, UriKind.Absolute, out Uri? url) ? url : cl.Fail<Uri>($"-n: '{target}' is not a URL") : null;
// host:port or udp://host:port for UDP, tcp://host:port for IPFIX over TCP (as nProbe writes them).
bool tcp = target.StartsWith("tcp://", StringComparison.Ordinal);
string address = tcp ? target[6..] : target.StartsWith("udp://", StringComparison.Ordinal) ? target[6..] : target;
IPEndPoint? collector = null;
if (clickHouseUrl is null && (!IPEndPoint.TryParse(address, out collector) || collector.Port == 0))
    cl.Fail($"-n takes the collector as host:port (UDP) or tcp://host:port (IPFIX over TCP), for example 127.0.0.1:2055, not '{target}'");
int version = (int)cl.Number('v', 10, 9, 10);
if (cl.Has('b') && version != 10) cl.Fail("-b (biflows) is IPFIX's: give -v 10");
if (tcp && version != 10) cl.Fail("over TCP, flows go as IPFIX: give -v 10");
string[] timeouts = (cl.String('t') ?? "15,1800").Split(',');
long[] seconds = [.. timeouts.Select(t => long.TryParse(t, out long s) && s > 0 ? s : -1)];
if (seconds.Length > 2 || seconds.Contains(-1)) cl.Fail("-t takes the idle timeout and the active one in seconds, for example -t 15,1800");
uint domain = (uint)cl.Number('o', AttachedQueue.TryParse(input, out _, out int queue) ? queue : 0, 0, uint.MaxValue);
if (clickHouseUrl is null && "ksBqC".FirstOrDefault(cl.Has) is char only and not '\0') cl.Fail($"-{only} is for a ClickHouse server: give -n http://host:8123/");
string[] batch = (cl.String('B') ?? "65536,1000").Split(',');
int batchRows = int.TryParse(batch[0], out int rows) && rows is >= 1 and <= 1 << 20 ? rows : -1;
int batchMs = batch.Length == 1 ? 1000 : int.TryParse(batch[1], out int ms) && ms >= 1 ? ms : -1;
if (batch.Length > 2 || batchRows < 0 || batchMs < 0)
    cl.Fail("-B takes the rows of a batch (1 to 1048576) and, after a comma, its age in ms, for example -B 65536,1000");
CancellationToken stop = CommandLine.StopSignal();

ZcCluster? cluster = null;
IPacketSource source;
IDisposable? listed = null;
RulesFile? rulesFile = null;
BufferPool pool;
var encoderOptions = new FlowEncoderOptions { Version = version, ObservationDomain = domain, Biflow = cl.Has('b') };
FlowEncoder? encoder = null;
ClickHouseExport? clickHouse = null;
if (clickHouseUrl is not null)
{
    try
    {
        clickHouse = ClickHouseExport.Open(new ClickHouseOptions
        {
            Server = clickHouseUrl, Table = cl.String('k') ?? "zcflow.flows", Cluster = cl.String('C'), Sensor = cl.String('s') ?? Environment.MachineName,
            ObservationDomain = domain, BatchRows = batchRows, BatchAge = TimeSpan.FromMilliseconds(batchMs),
            BufferRows = (int)cl.Number('q', Math.Max(1 << 20, batchRows), batchRows, 1 << 24),
        }, TimeSpan.FromSeconds(5));
    }
    catch (Exception e) when (SetupError.Is(e))
    {
        Console.Error.WriteLine($"error: {SetupError.Describe(e)}");
        return 1;
    }
    if (!clickHouse.Ready) Console.Error.WriteLine($"warning: {clickHouse.Problem ?? "ClickHouse has not answered yet"}; records wait for it, then are dropped, counted");
}
else encoder = tcp ? FlowEncoder.Tcp(encoderOptions, collector!)
    : FlowEncoder.Udp(encoderOptions, collector!, packetsPerSecond: cl.Number('l', 0, 0, 10_000_000));
var table = new FlowTable<FlowOutput>((int)cl.Number('m', 1 << 20, 1, 1 << 28), new FlowOutput(encoder, clickHouse))
{
    IdleTimeoutNs = seconds[0] * 1_000_000_000,
    ActiveTimeoutNs = (seconds.Length > 1 ? seconds[1] : 1800) * 1_000_000_000,
    Tunnels = cl.Has('T'),
};
try
{
    cluster = ZcCluster.Create(0x5F000000 + (uint)Environment.ProcessId % 0x1000000, new ClusterOptions { BufferCount = 4096, Warn = _ => { } });
    pool = cluster.CreatePool(4096);
    rulesFile = cl.String('R') is string rulesPath ? RulesFile.Open(rulesPath) : null;
    source = rulesFile is null ? Device.OpenSource(input, pool, 0) : Device.OpenSource(input, pool, 0, rulesFile.Rules);
    listed = Device.ListIn(cluster, source);
    rulesFile?.Publish(cluster.Id);   // each rule's counters for ZStat, under this cluster
    table.Link = source.Link;
}
catch (Exception e) when (SetupError.Is(e))
{
    Console.Error.WriteLine($"error: {SetupError.Describe(e)}");
    rulesFile?.Dispose();
    cluster?.Dispose();
    clickHouse?.Dispose();
    return 1;
}
// A capture file runs on its own packets' time; live input also on the wall clock, so that flows end while it is quiet.
bool replay = source is PcapFileDevice;
Console.WriteLine(clickHouse is not null
    ? $"{input} -> ClickHouse at {clickHouseUrl!.GetLeftPart(UriPartial.Authority)}, table {cl.String('k') ?? "zcflow.flows"}, sensor {cl.String('s') ?? Environment.MachineName}, observation domain {domain}"
    : $"{input} -> {(version == 9 ? "NetFlow v9" : "IPFIX")} to {collector}{(tcp ? " over TCP" : "")}, observation domain {domain}");
using var metrics = Prometheus.Serve(metricsPort);
string? reported = clickHouse?.Problem;   // said above

// A capture file's records are counted where they lie in the mapped file, an AF_PACKET device's packets where they lie in
// the kernel's ring: not copied into buffers first.
// With -D the packets go through the Defragment stage, which works on buffers.
ZcFlow.Stages.Defragment? defragment = cl.Has('D') ? new ZcFlow.Stages.Defragment() : null;
IFrameReader? inPlace = defragment is null ? Device.InPlace(source) : null;
var burst = new PacketHandle[32];
var frames = new CapturedFrame[32];
ulong received = 0;
var clock = Stopwatch.StartNew();
TimeSpan nextTick = TimeSpan.FromSeconds(1), nextExpiry = TimeSpan.Zero;
while (!stop.IsCancellationRequested)
{
    int n;
    if (inPlace is not null)
    {
        n = inPlace.ReadBurst(frames);
        table.AddBurst(frames.AsSpan(0, n));
        if (n == 0 && replay) break;
    }
    else
    {
        n = source.ReceiveBurst(burst);
        table.AddBurst(burst.AsSpan(0, defragment?.Process(burst.AsSpan(0, n)) ?? n));
        pool.ReleaseBurst(burst.AsSpan(0, n));
    }
    received += (uint)n;
    if (n == 0)
    {
        if (source.IsExhausted) break;
        source.WaitReadable(10);
    }
    TimeSpan now = clock.Elapsed;
    if (now < nextExpiry) continue;
    nextExpiry = now + TimeSpan.FromMilliseconds(100);
    table.Expire(replay ? 0 : Math.Max(table.ClockNs, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000));
    clickHouse?.Tick();
    if (now < nextTick) continue;
    nextTick = now + TimeSpan.FromSeconds(1);
    if (!replay) encoder?.Flush();   // live: no record waits more than a second for its packet to fill
    Problems();
    if (cl.Has('p')) Report();
}
table.ExpireAll();
encoder?.Flush();
// What waits for ClickHouse is stored; once nothing more has been stored for 10 s, the rest is counted as dropped.
clickHouse?.Complete(TimeSpan.FromSeconds(10));
Problems();
Report();
if (source is PcapFileDevice { Problem: string problem }) Console.Error.WriteLine($"warning: {problem}");
listed?.Dispose();
source.Dispose();
if (rulesFile is not null)
{
    foreach (string line in RulesFile.Report(rulesFile.Rules)) Console.WriteLine(line);
    rulesFile.Dispose();
}
cluster.Dispose();
clickHouse?.Dispose();
return 0;

void Problems()
{
    // ClickHouse's failures as they change (and once, when they end), not once a second.
    string? now = clickHouse?.Problem;
    if (now != reported) Console.Error.WriteLine(now is null ? "clickhouse: stores again" : $"clickhouse: {now}");
    reported = now;
}

void Report() => Console.WriteLine(
    $"packets {table.Packets:N0} in flows, {table.Ignored:N0} not IP; flows {table.Count:N0} active, {table.Created:N0} seen, {table.Exported:N0} ended, " +
    $"{table.Evicted:N0} evicted; " + (clickHouse is null ? $"records {encoder!.RecordsSent:N0} sent, {encoder.RecordsDropped:N0} dropped"
        : $"records {clickHouse.Inserted:N0} inserted, {clickHouse.Dropped:N0} dropped, {clickHouse.Waiting:N0} waiting; {clickHouse.Batches:N0} batches, {clickHouse.Retries:N0} retries") +
    $"; input {received:N0} received" +
    (defragment?.Stats is { } d ? $"; fragments {d.Fragments:N0}, datagrams {d.Reassembled:N0} reassembled, {d.Refused:N0} refused, {d.TimedOut + d.Evicted:N0} timed out or evicted, {d.Duplicates:N0} duplicates" : ""));

/// <summary>Where ended flows go: the IPFIX or NetFlow v9 encoder, or the ClickHouse table.</summary>
internal readonly struct FlowOutput(FlowEncoder? encoder, ClickHouseExport? clickHouse) : IFlowExport
{
    public void Export(in FlowRecord flow)
    {
        if (encoder is not null) encoder.Export(flow);
        else clickHouse!.Export(flow);
    }
}
