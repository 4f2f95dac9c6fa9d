using System.Diagnostics;
using ZcFlow.Workers;

namespace ZcFlow.Perf;

/// <summary>
/// Runs a producer and a consumer on two threads pinned to different cores, started together,
/// and measures the wall time until both finish and the bytes each allocated.
/// </summary>
internal static class PinnedPair
{
    public readonly record struct Result(double Seconds, long AllocatedBytes);

    public static Result Run(Action producer, Action consumer)
    {
        int[] cores = CpuAffinity.AllowedCores();
        int producerCore = cores[0], consumerCore = cores[^1];
        using var start = new Barrier(3);
        long allocated = 0;
        Thread Start(Action body, int core, string name)
        {
            var t = new Thread(() =>
            {
                CpuAffinity.PinCurrentThread(core);
                start.SignalAndWait();
                long before = GC.GetAllocatedBytesForCurrentThread();
                body();
                Interlocked.Add(ref allocated, GC.GetAllocatedBytesForCurrentThread() - before);
            })
            { Name = name };
            t.Start();
            return t;
        }
        Thread c = Start(consumer, consumerCore, "consumer");
        Thread p = Start(producer, producerCore, "producer");
        start.SignalAndWait();
        var clock = Stopwatch.StartNew();
        p.Join();
        c.Join();
        return new Result(clock.Elapsed.TotalSeconds, allocated);
    }
}
