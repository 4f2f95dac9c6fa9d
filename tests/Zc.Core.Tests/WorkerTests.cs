using ZcFlow.Workers;

namespace ZcFlow.Tests;

public class WorkerTests
{
    [Fact]
    public void Start_PinnedToACore_RunsOnThatCore()
    {
        int core = CpuAffinity.AllowedCores().Last();
        int seen = -1;
        using var ran = new ManualResetEventSlim();
        using (ZcWorker.Start("pinned", () => { seen = CpuAffinity.CurrentCore; ran.Set(); return 0; }, new WorkerOptions { Core = core }))
            ran.Wait(TestDeadline.Token);
        Assert.Equal(core, seen);
    }

    [Fact]
    public void Start_OnACoreTheProcessCannotUse_FailsAtOnceSayingWhich()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ZcWorker.Start("nowhere", () => 0, new WorkerOptions { Core = 1000 }));
        Assert.Contains("core 1000", e.Message);
    }

    [Fact]
    public void Stop_EndsTheLoopAndJoins_AndIsIdempotent()
    {
        long turns = 0;
        var worker = ZcWorker.Start("counter", () => { Interlocked.Increment(ref turns); return 1; }, new WorkerOptions { ActiveWait = true });
        SpinWait.SpinUntil(() => Interlocked.Read(ref turns) > 1000);
        worker.Stop();
        Assert.False(worker.IsRunning);
        long after = Interlocked.Read(ref turns);
        worker.Dispose();
        Assert.Equal(after, Interlocked.Read(ref turns));
    }

    [Fact]
    public void AnExceptionInTheLoop_StopsTheWorker_AndIsRethrownToTheOwner()
    {
        int turns = 0;
        var worker = ZcWorker.Start("faulty", () => ++turns == 3 ? throw new InvalidDataException("bad packet") : 1);
        Assert.True(worker.Join(TimeSpan.FromSeconds(10)));
        Assert.IsType<InvalidDataException>(worker.Fault);
        var e = Assert.Throws<InvalidDataException>(worker.Stop);
        Assert.Equal("bad packet", e.Message);
        worker.Dispose();
    }

    [Fact]
    public void BackoffIdle_AfterAWhileIdle_SleepsInsteadOfSpinning()
    {
        var idle = IdleStrategy.Backoff(TimeSpan.FromMilliseconds(2));
        for (int i = 0; i < 200; i++) idle.Idle(0);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        idle.Idle(0);
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(1), $"an idle turn after 200 empty ones took {clock.Elapsed}");
    }
}
