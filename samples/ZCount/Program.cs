using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Filters;
using ZcFlow.Ipc;
using ZcFlow.Queues;
using ZcFlow.Samples;
using ZcFlow.Workers;

// zcount_ipc: attach to queue -i of cluster -c, count packets and bytes (those that pass -f's filter),
// print rates each second and the totals on Ctrl-C. When the cluster's owner goes, it says so and, unless -E, waits for a
// new owner of the same cluster id and attaches again by itself.
var cl = new CommandLine(args, flags: "aEt", withValue: "cigf",
    "usage: ZCount -c <cluster> -i <queue> [-g <core>] [-a] [-E] [-f <bpf>] [-t]\n" +
    "  -c  cluster id           -i  queue id (the 0 of zc:99@0)\n" +
    "  -g  pin the receiving thread to this core\n" +
    "  -a  active wait (busy-poll) instead of sleeping when idle\n" +
    "  -E  exit when the owner goes, instead of attaching again to its successor\n" +
    "  -f  count only the packets that match this filter (tcpdump's syntax); the others are received and released\n" +
    "  -t  touch every byte of every packet (as an application that reads them would)");
uint clusterId = (uint)cl.Required('c', 0, uint.MaxValue);
int queueId = (int)cl.Required('i', 0, 63);
int? core = cl.Has('g') ? (int)cl.Number('g', 0, 0, 1023) : null;
bool active = cl.Has('a'), reattach = !cl.Has('E'), touch = cl.Has('t');
BpfFilter? filter = null;
if (cl.String('f') is string expression)
{
    try { filter = BpfFilter.Compile(expression); }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"error: -f: {e.Message}");
        return 1;
    }
}
CancellationToken stop = CommandLine.StopSignal();

AttachedQueue? attached;
try { attached = AttachedQueue.Attach(clusterId, queueId); }
catch (Exception e) when (e is InvalidOperationException or ArgumentException or TimeoutException or ClusterGoneException or System.IO.InvalidDataException or ZcFlow.Native.ErrnoException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
var burst = new PacketHandle[32];
long packets = 0, bytes = 0, filtered = 0;
ulong checksum = 0;
var clock = Stopwatch.StartNew();
int status = 0;
while (attached is not null)
{
    bool gone = false;
    using (attached)
    {
        ZcQueue queue = attached.Queue;
        Console.WriteLine($"attached to zc:{clusterId}@{queueId} (owner pid {attached.OwnerPid})");
        // Without -a an empty queue is slept on, until the owner's next publish wakes it (or the worker is stopped).
        using var quit = new CancellationTokenSource();
        var worker = ZcWorker.Start("zcount", () =>
        {
            int n = queue.ReceiveBurst(burst, active ? QueueWait.None : QueueWait.Passive, quit.Token);
            long b = 0, matched = 0;
            for (int i = 0; i < n; i++)
            {
                if (filter is not null && !filter.Matches(burst[i])) continue;
                matched++;
                b += burst[i].Length;
                if (touch) checksum += Touch(burst[i].Data);
            }
            queue.ReleaseBurst(burst.AsSpan(0, n));
            Volatile.Write(ref packets, packets + matched);
            Volatile.Write(ref bytes, bytes + b);
            if (matched != n) Volatile.Write(ref filtered, filtered + n - matched);
            return n;
        }, new WorkerOptions { Core = core, ActiveWait = active });

        long lastPackets = Volatile.Read(ref packets), lastBytes = Volatile.Read(ref bytes);
        double last = clock.Elapsed.TotalSeconds;
        while (!stop.IsCancellationRequested && !worker.Join(TimeSpan.FromSeconds(1)))
        {
            double now = clock.Elapsed.TotalSeconds, dt = now - last;
            long p = Volatile.Read(ref packets), b = Volatile.Read(ref bytes);
            Console.WriteLine($"{p,14:N0} pkts {b,18:N0} bytes | {(p - lastPackets) / dt / 1e6,8:F3} Mpps {(b - lastBytes) * 8 / dt / 1e9,8:F3} Gbps | dropped by owner {queue.Stats.Dropped:N0}");
            (lastPackets, lastBytes, last) = (p, b, now);
        }
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
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or ClusterGoneException) { }
    }
}
double seconds = clock.Elapsed.TotalSeconds;
Console.WriteLine($"total {packets:N0} pkts {bytes:N0} bytes in {seconds:F1} s ({packets / seconds / 1e6:F3} Mpps)"
    + (filter is null ? "" : $", {filtered:N0} filtered out") + (touch ? $", bytes summed to {checksum:x}" : ""));
return status;

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
