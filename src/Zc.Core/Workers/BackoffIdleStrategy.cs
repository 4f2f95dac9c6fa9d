using System.Diagnostics;

namespace ZcFlow.Workers;

/// <summary>
/// Passive wait: after a run of empty turns, spins a little, then yields the core, then
/// sleeps for a period that doubles up to a ceiling. Any work resets it.
/// </summary>
public sealed class BackoffIdleStrategy : IdleStrategy
{
    private const int Spins = 64;
    private const int Yields = 16;
    private static readonly long MinSleepTicks = Stopwatch.Frequency / 20_000; // 50 µs

    private readonly long _maxSleepTicks;
    private int _empty;
    private long _sleepTicks;

    public BackoffIdleStrategy(TimeSpan maxSleep)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSleep, TimeSpan.Zero);
        _maxSleepTicks = Math.Max(MinSleepTicks, (long)(maxSleep.TotalSeconds * Stopwatch.Frequency));
        _sleepTicks = MinSleepTicks;
    }

    public override void Idle(int workDone)
    {
        if (workDone != 0)
        {
            _empty = 0;
            _sleepTicks = MinSleepTicks;
            return;
        }
        int n = ++_empty;
        if (n <= Spins) Thread.SpinWait(8);
        else if (n <= Spins + Yields) Thread.Yield();
        else
        {
            Thread.Sleep(TimeSpan.FromSeconds((double)_sleepTicks / Stopwatch.Frequency));
            _sleepTicks = Math.Min(_sleepTicks * 2, _maxSleepTicks);
        }
    }
}
