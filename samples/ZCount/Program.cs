using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Ipc;
using ZcFlow.Queues;
using ZcFlow.Samples;
using ZcFlow.Workers;

// zcount_ipc: attach to queue -i of cluster -c, count packets and bytes, print rates each second
// and the totals on Ctrl-C.
var cl = new CommandLine(args, flags: "a", withValue: "cig",
    "usage: ZCount -c <cluster> -i <queue> [-g <core>] [-a]\n" +
    "  -c  cluster id           -i  queue id (the 0 of zc:99@0)\n" +
    "  -g  pin the receiving thread to this core\n" +
    "  -a  active wait (busy-poll) instead of sleeping when idle");
uint clusterId = (uint)cl.Required('c', 0, uint.MaxValue);
int queueId = (int)cl.Required('i', 0, 63);
int? core = cl.Has('g') ? (int)cl.Number('g', 0, 0, 1023) : null;
bool active = cl.Has('a');
CancellationToken stop = CommandLine.StopSignal();

AttachedQueue attached;
try { attached = AttachedQueue.Attach(clusterId, queueId); }
catch (Exception e) when (e is InvalidOperationException or ArgumentException or TimeoutException or ClusterGoneException or System.IO.InvalidDataException or ZcFlow.Native.ErrnoException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
using (attached)
{
    ZcQueue queue = attached.Queue;
    var burst = new PacketHandle[32];
    long packets = 0, bytes = 0;
    Console.WriteLine($"attached to zc:{clusterId}@{queueId} (owner pid {attached.OwnerPid})");

    var worker = ZcWorker.Start("zcount", () =>
    {
        int n = queue.ReceiveBurst(burst);
        long b = 0;
        for (int i = 0; i < n; i++) b += burst[i].Length;
        queue.ReleaseBurst(burst.AsSpan(0, n));
        Volatile.Write(ref packets, packets + n);
        Volatile.Write(ref bytes, bytes + b);
        return n;
    }, new WorkerOptions { Core = core, ActiveWait = active });

    var clock = Stopwatch.StartNew();
    long lastPackets = 0, lastBytes = 0;
    double last = 0;
    while (!stop.IsCancellationRequested && !worker.Join(TimeSpan.FromSeconds(1)))
    {
        double now = clock.Elapsed.TotalSeconds, dt = now - last;
        long p = Volatile.Read(ref packets), b = Volatile.Read(ref bytes);
        Console.WriteLine($"{p,14:N0} pkts {b,18:N0} bytes | {(p - lastPackets) / dt / 1e6,8:F3} Mpps {(b - lastBytes) * 8 / dt / 1e9,8:F3} Gbps | dropped by owner {queue.Stats.Dropped:N0}");
        (lastPackets, lastBytes, last) = (p, b, now);
    }
    int status = 0;
    try { worker.Stop(); }
    catch (ClusterGoneException e) { Console.Error.WriteLine($"error: {e.Message}"); status = 1; }
    double seconds = clock.Elapsed.TotalSeconds;
    Console.WriteLine($"total {packets:N0} pkts {bytes:N0} bytes in {seconds:F1} s ({packets / seconds / 1e6:F3} Mpps)");
    return status;
}
