using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Ipc;
using ZcFlow.Queues;
using ZcFlow.Samples;
using ZcFlow.Workers;

// zcount_ipc: attach to queue -i of cluster -c, count packets and bytes, print rates each second
// and the totals on Ctrl-C. When the cluster's owner goes, it says so and, unless -E, waits for a
// new owner of the same cluster id and attaches again by itself.
var cl = new CommandLine(args, flags: "aE", withValue: "cig",
    "usage: ZCount -c <cluster> -i <queue> [-g <core>] [-a] [-E]\n" +
    "  -c  cluster id           -i  queue id (the 0 of zc:99@0)\n" +
    "  -g  pin the receiving thread to this core\n" +
    "  -a  active wait (busy-poll) instead of sleeping when idle\n" +
    "  -E  exit when the owner goes, instead of attaching again to its successor");
uint clusterId = (uint)cl.Required('c', 0, uint.MaxValue);
int queueId = (int)cl.Required('i', 0, 63);
int? core = cl.Has('g') ? (int)cl.Number('g', 0, 0, 1023) : null;
bool active = cl.Has('a'), reattach = !cl.Has('E');
CancellationToken stop = CommandLine.StopSignal();

AttachedQueue? attached;
try { attached = AttachedQueue.Attach(clusterId, queueId); }
catch (Exception e) when (e is InvalidOperationException or ArgumentException or TimeoutException or ClusterGoneException or System.IO.InvalidDataException or ZcFlow.Native.ErrnoException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
var burst = new PacketHandle[32];
long packets = 0, bytes = 0;
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
            long b = 0;
            for (int i = 0; i < n; i++) b += burst[i].Length;
            queue.ReleaseBurst(burst.AsSpan(0, n));
            Volatile.Write(ref packets, packets + n);
            Volatile.Write(ref bytes, bytes + b);
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
Console.WriteLine($"total {packets:N0} pkts {bytes:N0} bytes in {seconds:F1} s ({packets / seconds / 1e6:F3} Mpps)");
return status;
