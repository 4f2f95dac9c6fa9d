using ZcFlow;
using ZcFlow.Buffers;
using ZcFlow.Queues;
using ZcFlow.Samples;
using ZcFlow.Workers;

// zsanitycheck: every buffer of a cluster is written with a pattern of its own (its number in the first 8 bytes, the
// number's low byte in every other), sent through a queue to a thread on another core, and read back there and checked,
// whole: so the cluster's memory (hugepages where the host has them) holds and shows across cores what was written.
// -x n spoils one byte of the n-th buffer once it is written, to see the check catch it.
var cl = new CommandLine(args, flags: "u", withValue: "cbgx",
    "usage: ZSanityCheck [-c <cluster>] [-b <buffers>] [-g <core>] [-u] [-x <n>]\n" +
    "  -c  cluster id (default from the pid)    -b  buffers to check (32768)\n" +
    "  -g  core of the writing thread (the checking one is the last other core allowed)\n" +
    "  -u  hugepages or nothing (else normal shared pages when the host has none)\n" +
    "  -x  spoil a byte of the n-th buffer once it is written (the check must report it)");
uint clusterId = (uint)cl.Number('c', 0x5A00_0000 + Environment.ProcessId % 1_000_000, 0, uint.MaxValue);
int count = (int)cl.Number('b', 32768, 1, 1 << 24);
int? core = cl.Has('g') ? (int)cl.Number('g', 0, 0, 1023) : null;
long spoil = cl.Has('x') ? cl.Number('x', 0, 0, count - 1) : -1;

ZcCluster cluster;
try
{
    cluster = ZcCluster.Create(clusterId, new ClusterOptions { BufferCount = count, MaxQueues = 1, RequireHugePages = cl.Has('u'), Warn = w => Console.Error.WriteLine(w) });
}
catch (Exception e) when (SetupError.Is(e))
{
    Console.Error.WriteLine($"error: {SetupError.Describe(e)}");
    return 1;
}
using (cluster)
{
    BufferPool pool = cluster.CreatePool(count);
    EgressQueue queue = cluster.CreateQueue(Math.Min(count, 4096));
    queue.Quota = count;
    Console.WriteLine($"cluster {clusterId}: {count:N0} buffers of {pool.BufferCapacity:N0} bytes; writing and sending them");
    // The writer owns the pool: it takes every buffer, in turn, writes it whole and sends it.
    var writer = new Thread(() =>
    {
        if (core is int c) CpuAffinity.PinCurrentThread(c);
        var burst = new PacketHandle[32];
        for (long n = 0; n < count;)
        {
            int got = pool.GetBurst(burst.AsSpan(0, (int)Math.Min(burst.Length, count - n)));
            for (int i = 0; i < got; i++) Fill(burst[i], n + i);
            if (spoil >= n && spoil < n + got) burst[(int)(spoil - n)].Buffer[^1] ^= 0xFF;
            queue.SendBurst(burst.AsSpan(0, got), QueueWait.Active);
            n += got;
        }
    })
    { Name = "zsanitycheck writer" };
    writer.Start();

    // The checker, here: every buffer in the order sent, every byte.
    int[] allowed = CpuAffinity.AllowedCores();
    int checkCore = allowed.LastOrDefault(c => c != core, allowed[^1]);
    CpuAffinity.PinCurrentThread(checkCore);
    var received = new PacketHandle[32];
    long checkedCount = 0, bad = 0;
    var clock = System.Diagnostics.Stopwatch.StartNew();
    while (checkedCount < count)
    {
        int n = queue.Consumer.ReceiveBurst(received, QueueWait.Active);
        for (int i = 0; i < n; i++, checkedCount++)
            if (Check(received[i], checkedCount) is string problem)
            {
                Console.WriteLine($"buffer #{checkedCount} (index {received[i].Index}) does not match: {problem}");
                bad++;
            }
        queue.Consumer.ReleaseBurst(received.AsSpan(0, n));
        if (clock.Elapsed > TimeSpan.FromMinutes(5)) break;
    }
    writer.Join();
    if (bad != 0 || checkedCount != count)
    {
        Console.WriteLine($"Test failed: {bad:N0} of {checkedCount:N0} buffers inspected do not match{(checkedCount != count ? $", {count - checkedCount:N0} never came" : "")}");
        return 1;
    }
    Console.WriteLine($"Test completed, {checkedCount:N0} buffers inspected");
    return 0;
}

// The n-th buffer's pattern: n in its first 8 bytes, n's low byte in all the others.
static void Fill(PacketHandle p, long n)
{
    Span<byte> data = p.Buffer[..p.Capacity];
    data.Fill((byte)n);
    BitConverter.TryWriteBytes(data, n);
    p.Length = data.Length;
}

static string? Check(PacketHandle p, long n)
{
    ReadOnlySpan<byte> data = p.Data;
    if (data.Length != p.Capacity) return $"its length is {data.Length}, not {p.Capacity}";
    if (BitConverter.ToInt64(data) != n) return $"it says it is #{BitConverter.ToInt64(data)}";
    int wrong = data[8..].IndexOfAnyExcept((byte)n);
    return wrong < 0 ? null : $"byte {wrong + 8} is 0x{data[wrong + 8]:x2}, not 0x{(byte)n:x2}";
}
