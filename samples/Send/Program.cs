using System.Diagnostics;
using System.Globalization;
using ZcFlow;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Samples;
using ZcFlow.Workers;

// pfsend: send a capture file (looped) or generated frames out of an interface, as fast as it
// goes or at a packet or bit rate, optionally with another destination MAC address. zsend's -S appends
// each packet's send time as zsend does; -P paces from a time-pulse thread instead of reading the clock.
var cl = new CommandLine(args, flags: "a", withValue: "ifnlbprmgcSP",
    "usage: Send -i <device> [-f <capture file>] [-n <packets>] [-l <bytes>] [-b <flows>] [-p <pps> | -r <Gbit/s>] [-m <MAC>] [-g <core>] [-a] [-S <core>] [-P <core>]\n" +
    "  -i  device to send out of (eth0, af_packet:eth0)\n" +
    "  -f  capture file to send, from its start again at its end (default: generated UDP frames)\n" +
    "  -n  stop after this many packets (default: until Ctrl-C)\n" +
    "  -l  generated frame length (60)     -b  generated flows (4096)\n" +
    "  -p  packets per second              -r  Gbit/s, counting 24 bytes of preamble, gap and CRC per frame\n" +
    "  -m  destination MAC to write into every frame, aa:bb:cc:dd:ee:ff\n" +
    "  -g  pin the sending thread to this core    -a  active wait\n" +
    "  -c  cluster id for the send buffers (default: one of this process's own)\n" +
    "  -S  append the send time to every packet, as zsend does (seconds and nanoseconds, big-endian, then 0xC3),\n" +
    "      from a time-pulse thread on this core\n" +
    "  -P  pace from a time-pulse thread on this core (zsend -P)");
string output = cl.RequiredString('i');
long count = cl.Number('n', 0);
int length = (int)cl.Number('l', 60, 60, 9000);
long pps = cl.Number('p', 0);
double gbps = cl.String('r') is { } r ? double.TryParse(r, CultureInfo.InvariantCulture, out double g) && g > 0 ? g : -1 : 0;
if (gbps < 0) cl.Fail("-r takes a rate in Gbit/s, such as 0.5 or 10");
if (pps > 0 && gbps > 0) cl.Fail("give -p or -r, not both");
byte[]? mac = null;
if (cl.String('m') is { } m)
{
    string[] octets = m.Split(':');
    mac = octets.Length == 6 && octets.All(o => o.Length == 2 && byte.TryParse(o, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out _))
        ? [.. octets.Select(o => byte.Parse(o, NumberStyles.HexNumber, CultureInfo.InvariantCulture))]
        : null;
    if (mac is null) cl.Fail($"-m takes a MAC address such as 02:00:00:00:00:01, not '{m}'");
}
int? core = cl.Has('g') ? (int)cl.Number('g', 0, 0, 1023) : null;
string input = cl.String('f') is { } file ? $"pcap:{file}?loop" : $"gen:{length}?flows={cl.Number('b', 4096, 1, 1 << 20)}";
uint clusterId = (uint)cl.Number('c', 0x5E000000 + Environment.ProcessId % 0x1000000, 0, uint.MaxValue);
bool stamp = cl.Has('S');
if (stamp && cl.Has('P') && cl.Number('S', 0, 0, 1023) != cl.Number('P', 0, 0, 1023)) cl.Fail("-S and -P share one time-pulse thread: give them the same core");
int? pulseCore = cl.Has('S') ? (int)cl.Number('S', 0, 0, 1023) : cl.Has('P') ? (int)cl.Number('P', 0, 0, 1023) : null;
using TimePulse? pulse = pulseCore is int pc ? new TimePulse(pc) : null;
CancellationToken stop = CommandLine.StopSignal();

ZcCluster? cluster = null;
BufferPool pool;
IPacketSource? source = null;
IPacketSink sink;
try
{
    cluster = ZcCluster.Create(clusterId, new ClusterOptions { BufferCount = 4096, BufferSize = ClusterOptions.BufferSizeForMtu(9000), Warn = _ => { } });
    pool = cluster.CreatePool(4096);
    source = Device.OpenSource(input, pool, 0);
    sink = Device.OpenSink(output, pool);
}
catch (Exception e) when (SetupError.Is(e))
{
    Console.Error.WriteLine($"error: {SetupError.Describe(e)}");
    source?.Dispose();
    cluster?.Dispose();
    return 1;
}

var burst = new PacketHandle[32];
long sent = 0, bits = 0;
long started = Stopwatch.GetTimestamp(), startedNs = pulse?.NowNs ?? 0;
bool done = false;
// The budget: what the rate allows by now, less what went; at most a burst ahead.
long Allowed()
{
    double seconds = pulse is not null ? (pulse.NowNs - startedNs) / 1e9 : Stopwatch.GetElapsedTime(started).TotalSeconds;
    if (pps > 0) return (long)(seconds * pps) - sent;
    if (gbps > 0) return (long)((seconds * gbps * 1e9 - bits) / ((length + 24) * 8)) + 1;
    return burst.Length;
}
var worker = ZcWorker.Start("send", () =>
{
    if (done) return 0;
    int want = (int)Math.Clamp(Allowed(), 0, burst.Length);
    if (count > 0) want = (int)Math.Min(want, count - sent);
    int n = want == 0 ? 0 : source.ReceiveBurst(burst.AsSpan(0, want));
    int went = 0;
    for (int i = 0; i < n; i++)
    {
        PacketHandle p = burst[i];
        if (mac is not null && p.Length >= 6) mac.CopyTo(p.Data);
        if (stamp && p.Length + 9 <= p.Capacity) AppendTime(p, pulse!.NowNs);
        while (!sink.TrySend(p)) sink.Flush(wait: true);   // a full ring: wait for the kernel rather than drop
        bits += (p.Length + 24) * 8L;
        went++;
    }
    pool.ReleaseBurst(burst.AsSpan(0, n));
    sink.Flush();
    Volatile.Write(ref sent, sent + went);
    if ((count > 0 && sent >= count) || (source.IsExhausted && n == 0))
    {
        sink.Flush(wait: true);
        done = true;
    }
    return n;
}, new WorkerOptions { Core = core, ActiveWait = cl.Has('a') });

Console.WriteLine($"sending {input} out of {sink.Name}{(pps > 0 ? $" at {pps:N0} pps" : gbps > 0 ? $" at {gbps} Gbit/s" : "")}{(count > 0 ? $", {count:N0} packets" : "")}");
long last = 0, lastBits = 0;
bool warned = false;
for (int second = 1; !stop.IsCancellationRequested && !done && worker.IsRunning; second++)
{
    stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
    long now = Volatile.Read(ref sent), nowBits = Volatile.Read(ref bits);
    DeviceStats s = sink.Stats;
    Console.WriteLine($"{Stopwatch.GetElapsedTime(started).TotalSeconds,6:F0}s  {now:N0} packets sent ({(now - last) / 1e6:F3} Mpps), {s.SendFailed:N0} refused by the device");
    // A rate asked for and not reached (after the first second's start): said once, with what was reached.
    bool slow = second > 1 && !done && (pps > 0 ? now - last < 0.9 * pps : gbps > 0 && (nowBits - lastBits) / 1e9 < 0.9 * gbps);
    if (slow && !warned)
    {
        Console.Error.WriteLine($"warning: sending at {(pps > 0 ? $"{now - last:N0} pps" : $"{(nowBits - lastBits) / 1e9:F3} Gbit/s")}, below the " +
                                $"{(pps > 0 ? $"{pps:N0} pps" : $"{gbps} Gbit/s")} asked: the device, or this core, cannot send faster");
        warned = true;
    }
    last = now;
    lastBits = nowBits;
}
worker.Stop();
double elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
Console.WriteLine($"total {sent:N0} packets in {elapsed:F2} s ({sent / elapsed:N0} pps, {bits / elapsed / 1e9:F3} Gbit/s on the wire), {sink.Stats.SendFailed:N0} refused");
sink.Dispose();
source.Dispose();
cluster.Dispose();
return 0;

// zsend's stamp after the frame: seconds and nanoseconds, each 32 bits big-endian, then 0xC3.
static void AppendTime(PacketHandle p, long ns)
{
    Span<byte> tail = p.Buffer.Slice(p.Length, 9);
    System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(tail, (uint)(ns / 1_000_000_000));
    System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(tail[4..], (uint)(ns % 1_000_000_000));
    tail[8] = 0xC3;
    p.Length += 9;
}
