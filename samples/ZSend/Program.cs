using System.Diagnostics;
using ZcFlow;
using ZcFlow.Buffers;
using ZcFlow.Queues;
using ZcFlow.Samples;
using ZcFlow.Workers;

// The sending side of an IPC cluster until the balancer lands: own cluster -c with -n queues and
// send generated frames round-robin into them, each carrying a sequence number; print each second
// what every queue took and dropped. Consumers attach with ZCount -c <cluster> -i <queue>.
var cl = new CommandLine(args, flags: "a", withValue: "cnlbqgr",
    "usage: ZSend -c <cluster> -n <queues> [-l <bytes>] [-r <pps>] [-b <buffers>] [-q <slots>] [-g <core>] [-a]\n" +
    "  -c  cluster id             -n  queues to create (consumers attach to zc:<cluster>@0..n-1)\n" +
    "  -l  frame length (60)      -r  packets per second, 0 for as fast as possible (0)\n" +
    "  -b  buffers (32768)        -q  slots per queue (4096)\n" +
    "  -g  pin the sending thread to this core   -a  active wait");
uint clusterId = (uint)cl.Required('c', 0, uint.MaxValue);
int queues = (int)cl.Required('n', 1, 64);
int length = (int)cl.Number('l', 60, 8, 1536);
long rate = cl.Number('r', 0);
int buffers = (int)cl.Number('b', 32768, 64, 1 << 26);
int slots = (int)cl.Number('q', 4096, 2, 1 << 20);
int? core = cl.Has('g') ? (int)cl.Number('g', 0, 0, 1023) : null;
CancellationToken stop = CommandLine.StopSignal();

using ZcCluster cluster = ZcCluster.Create(clusterId, new ClusterOptions { BufferCount = buffers, MaxQueues = queues });
BufferPool pool = cluster.CreatePool(buffers);
var qs = new EgressQueue[queues];
for (int i = 0; i < queues; i++) pool.ReclaimFrom(qs[i] = cluster.CreateQueue(Math.Min(slots, buffers)));
Console.WriteLine($"cluster {clusterId}: {queues} queues at {cluster.SocketPath}{(cluster.OnHugePages ? " (hugepages)" : "")}");

var burst = new PacketHandle[32];
long seq = 0;
long nextCheck = 0;
var clock = Stopwatch.StartNew();
var worker = ZcWorker.Start("zsend", () =>
{
    long now = Stopwatch.GetTimestamp();
    if (now >= nextCheck)
    {
        pool.CheckConsumers(); // takes back what dead consumers held
        nextCheck = now + Stopwatch.Frequency / 10;
    }
    int want = burst.Length;
    if (rate > 0) want = (int)Math.Clamp((long)(clock.Elapsed.TotalSeconds * rate) - seq, 0, burst.Length);
    int n = pool.GetBurst(burst.AsSpan(0, want));
    for (int i = 0; i < n; i++)
    {
        PacketHandle p = burst[i];
        BitConverter.TryWriteBytes(p.Buffer, seq);
        p.Length = length;
        EgressQueue q = qs[seq++ % queues];
        if (!q.TrySend(p, flush: false)) pool.Release(p);
    }
    foreach (EgressQueue q in qs) q.Flush();
    return n;
}, new WorkerOptions { Core = core, ActiveWait = cl.Has('a') });

while (!stop.IsCancellationRequested && !worker.Join(TimeSpan.FromSeconds(1)))
{
    Console.WriteLine($"{clock.Elapsed.TotalSeconds,6:F0}s " + string.Join(" | ", qs.Select(q =>
        $"q{q.Id} sent {q.Stats.Sent:N0} dropped {q.Stats.Dropped:N0}{(q.ConsumerPid > 0 ? $" (pid {q.ConsumerPid})" : "")}")));
}
worker.Stop();
Console.WriteLine($"total {Volatile.Read(ref seq):N0} packets generated, {qs.Sum(q => (long)q.Stats.Sent):N0} delivered, {qs.Sum(q => (long)q.Stats.Dropped):N0} dropped");
return 0;
