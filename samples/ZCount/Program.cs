using System.Diagnostics;
using ZcFlow;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Filters;
using ZcFlow.Ipc;
using ZcFlow.Queues;
using ZcFlow.Samples;
using ZcFlow.Workers;

// zcount_ipc: attach to queue -i of cluster -c, count packets and bytes (those that pass -f's filter),
// print rates each second and the totals on Ctrl-C. When the cluster's owner goes, it says so and, unless -E, waits for a
// new owner of the same cluster id and attaches again by itself. zcount: -i names a device instead (eth1, xdp:eth1@0,
// a capture file), read into a cluster of its own.
var cl = new CommandLine(args, flags: "aEtw", withValue: "cigfR",
    "usage: ZCount -c <cluster> -i <queue> [-g <core>] [-a] [-E] [-f <bpf>] [-t]\n" +
    "       ZCount -i <device> [-c <cluster>] [-g <core>] [-a] [-f <bpf>] [-R <rules file>] [-t]\n" +
    "  -c  cluster id           -i  queue id (the 0 of zc:99@0), or a device: eth1, xdp:eth1@0, pcap:trace.pcap\n" +
    "  -g  pin the receiving thread to this core\n" +
    "  -a  active wait (busy-poll) instead of sleeping when idle\n" +
    "  -E  exit when the owner goes, instead of attaching again to its successor\n" +
    "  -w  wait for the cluster when it is not there yet (its owner starting), instead of an error\n" +
    "  -f  count only the packets that match this filter (tcpdump's syntax); the others are received and released\n" +
    "  -t  touch every byte of every packet (as an application that reads them would)\n" +
    "  -R  rules (one a line: drop proto udp dport 53, kernel ether arp, reflect eth2 src 10.0.0.0/8, pass …): in the kernel\n" +
    "      for xdp: and AF_PACKET devices (as the socket's filter, but reflect rules), in user space for others; SIGUSR1 reads the file again; each rule's counters at the end");
string input = cl.RequiredString('i');
bool onDevice = !input.All(char.IsAsciiDigit);
int queueId = onDevice ? -1 : (int)cl.Number('i', 0, 0, 63);
uint clusterId = onDevice ? (uint)cl.Number('c', 0x5C00_0000 + Environment.ProcessId % 0x100_0000, 0, uint.MaxValue) : (uint)cl.Required('c', 0, uint.MaxValue);
int? core = cl.Has('g') ? (int)cl.Number('g', 0, 0, 1023) : null;
bool active = cl.Has('a'), reattach = !cl.Has('E'), touch = cl.Has('t');
BpfFilter? filter = null;
if (cl.String('f') is string expression)
{
    try { filter = BpfFilter.Compile(expression); }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"error: -f: {SetupError.Describe(e)}");
        return 1;
    }
}
// -R: rules on the device; on an AF_XDP device the filter goes into its XDP program with them, so what it rejects is never
// copied up. SIGUSR1 reads the file again.
string? rulesPath = cl.String('R');
if (rulesPath is not null && !onDevice) cl.Fail("-R runs rules on a device (-i eth1, xdp:eth1@0, a capture file), not on a queue");
bool filterInKernel = filter is not null && onDevice && Device.RunsRulesInTheKernel(input);
RulesFile? rulesFile = null;
Rules? rules = null;
try
{
    if (rulesPath is not null) rules = (rulesFile = RulesFile.Open(rulesPath, filterInKernel ? filter : null)).Rules;
    else if (filterInKernel) rules = new Rules(filter: filter);
}
catch (Exception e) when (e is ArgumentException or IOException or InvalidOperationException)
{
    Console.Error.WriteLine($"error: -R: {SetupError.Describe(e)}");
    return 1;
}
using RulesFile? reload = rulesFile;
CancellationToken stop = CommandLine.StopSignal();
var burst = new PacketHandle[32];
long packets = 0, bytes = 0, filtered = 0;
ulong checksum = 0;
var clock = Stopwatch.StartNew();
int status = 0;

// The packets of a burst counted (those that pass the filter), and touched with -t.
int Count(ReadOnlySpan<PacketHandle> received)
{
    long b = 0, matched = 0;
    foreach (ref readonly PacketHandle p in received)
    {
        if (filter is not null && !filter.Matches(p)) continue;
        matched++;
        b += p.Length;
        if (touch) checksum += Touch(p.Data);
    }
    Volatile.Write(ref packets, packets + matched);
    Volatile.Write(ref bytes, bytes + b);
    if (matched != received.Length) Volatile.Write(ref filtered, filtered + received.Length - matched);
    return received.Length;
}

// Every second, the rates; returns when stopped, when the worker ends, or when the input is done.
void Report(ZcWorker worker, Func<string> dropped, Func<bool>? done = null)
{
    long lastPackets = Volatile.Read(ref packets), lastBytes = Volatile.Read(ref bytes);
    double last = clock.Elapsed.TotalSeconds;
    while (!stop.IsCancellationRequested && !worker.Join(TimeSpan.FromSeconds(1)))
    {
        if (done?.Invoke() == true) break;
        double now = clock.Elapsed.TotalSeconds, dt = now - last;
        long p = Volatile.Read(ref packets), b = Volatile.Read(ref bytes);
        Console.WriteLine($"{p,14:N0} pkts {b,18:N0} bytes | {(p - lastPackets) / dt / 1e6,8:F3} Mpps {(b - lastBytes) * 8 / dt / 1e9,8:F3} Gbps | {dropped()}");
        (lastPackets, lastBytes, last) = (p, b, now);
    }
}

if (onDevice)
{
    ZcCluster? own = null;
    IPacketSource? device = null;
    try
    {
        own = ZcCluster.Create(clusterId, new ClusterOptions { BufferCount = 8192, BufferSize = ClusterOptions.BufferSizeForMtu(9000), Warn = _ => { } });
        BufferPool pool = own.CreatePool(8192);
        device = rules is null ? Device.OpenSource(input, pool, 0) : Device.OpenSource(input, pool, 0, rules);
        using IDisposable listed = Device.ListIn(own, device);
        rulesFile?.Publish(own.Id);   // each rule's counters for ZStat, under this cluster
        Console.WriteLine($"counting {device.Name}");
        var worker = ZcWorker.Start("zcount", () =>
        {
            int n = device.ReceiveBurst(burst);
            Count(burst.AsSpan(0, n));
            pool.ReleaseBurst(burst.AsSpan(0, n));
            return n;
        }, new WorkerOptions { Core = core, ActiveWait = active });
        // A finite input (a capture file) is done once it is exhausted and the count stood still for a second after.
        long counted = -1;
        bool Finished()
        {
            long now = Volatile.Read(ref packets) + Volatile.Read(ref filtered);
            bool still = now == counted;
            counted = now;
            return device.IsExhausted && still;
        }
        Report(worker, () => $"dropped by the device {device.Stats.DroppedKernel + device.Stats.DroppedNoBuffer:N0}", Finished);
        try { worker.Stop(); }
        catch (Exception e) { Console.Error.WriteLine($"error: {SetupError.Describe(e)}"); status = 1; }
    }
    catch (Exception e) when (SetupError.Is(e))
    {
        Console.Error.WriteLine($"error: {SetupError.Describe(e)}");
        status = 1;
    }
    finally
    {
        device?.Dispose();
        own?.Dispose();
    }
    return Total();
}

AttachedQueue? attached;
if (cl.Has('w') && ClusterDirectory.Find(clusterId) is null) Console.WriteLine($"waiting for cluster {clusterId}");
try { attached = cl.Has('w') ? AttachedQueue.Attach(clusterId, queueId, Timeout.InfiniteTimeSpan, waitForOwner: true) : AttachedQueue.Attach(clusterId, queueId); }
catch (Exception e) when (SetupError.Is(e))
{
    Console.Error.WriteLine($"error: {SetupError.Describe(e)}");
    return 1;
}
while (attached is not null)
{
    bool gone = false;
    using (attached)
    {
        QueueConsumer queue = attached.Queue;
        Console.WriteLine($"attached to zc:{clusterId}@{queueId} (owner pid {attached.OwnerPid})");
        // Without -a an empty queue is slept on, until the owner's next publish wakes it (or the worker is stopped).
        using var quit = new CancellationTokenSource();
        var worker = ZcWorker.Start("zcount", () =>
        {
            int n = queue.ReceiveBurst(burst, active ? QueueWait.None : QueueWait.Passive, quit.Token);
            Count(burst.AsSpan(0, n));
            queue.ReleaseBurst(burst.AsSpan(0, n));
            return n;
        }, new WorkerOptions { Core = core, ActiveWait = active });
        Report(worker, () => $"dropped by owner {queue.Stats.Dropped:N0}");
        quit.Cancel();
        try { worker.Stop(); }
        catch (ClusterGoneException e)
        {
            Console.WriteLine($"owner gone: {e.Message}");
            gone = true;
            if (!reattach) status = 1;
        }
    }
    attached = null;
    if (!gone || !reattach) break;
    Console.WriteLine($"waiting for a new owner of cluster {clusterId}");
    while (attached is null && !stop.IsCancellationRequested)
    {
        try { attached = AttachedQueue.Attach(clusterId, queueId, TimeSpan.FromSeconds(0.5), waitForOwner: true); }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or ClusterGoneException or QueueBusyException) { }
    }
}
return Total();

int Total()
{
    double seconds = clock.Elapsed.TotalSeconds;
    Console.WriteLine($"total {packets:N0} pkts {bytes:N0} bytes in {seconds:F1} s ({packets / seconds / 1e6:F3} Mpps)"
        + (filter is null ? "" : $", {filtered:N0} filtered out") + (touch ? $", bytes summed to {checksum:x}" : ""));
    if (rules is not null)
        foreach (string line in RulesFile.Report(rules)) Console.WriteLine(line);
    return status;
}

// Every byte read, as a sum (vectorised): what -t costs is what reading the packets costs.
static ulong Touch(ReadOnlySpan<byte> data)
{
    ulong sum = 0;
    int i = 0;
    if (System.Numerics.Vector.IsHardwareAccelerated)
    {
        var acc = System.Numerics.Vector<ulong>.Zero;
        for (; i + System.Numerics.Vector<byte>.Count <= data.Length; i += System.Numerics.Vector<byte>.Count)
        {
            System.Numerics.Vector.Widen(new System.Numerics.Vector<byte>(data[i..]), out System.Numerics.Vector<ushort> lo, out System.Numerics.Vector<ushort> hi);
            System.Numerics.Vector.Widen(lo + hi, out System.Numerics.Vector<uint> a, out System.Numerics.Vector<uint> b);
            System.Numerics.Vector.Widen(a + b, out System.Numerics.Vector<ulong> c, out System.Numerics.Vector<ulong> d);
            acc += c + d;
        }
        sum = System.Numerics.Vector.Sum(acc);
    }
    for (; i < data.Length; i++) sum += data[i];
    return sum;
}
