namespace ZcFlow.Workers;

/// <summary>
/// What a worker does with a turn of its loop that found nothing to do. A worker's loop is
/// <c>while (running) idle.Idle(DoWork());</c>; <see cref="Idle"/> is told how much the
/// turn did and is free when it did something. Used by one thread; not shared.
/// </summary>
public abstract class IdleStrategy
{
    /// <summary>Called after every turn with the amount of work it did.</summary>
    public abstract void Idle(int workDone);

    /// <summary>Busy-poll: never gives the core up. Lowest latency; the core reads 100% busy.</summary>
    public static IdleStrategy BusySpin() => new BusySpinIdleStrategy();

    /// <summary>Spin, then yield, then sleep from 50 µs doubling up to <paramref name="maxSleep"/>: near-zero CPU when idle.</summary>
    public static IdleStrategy Backoff(TimeSpan? maxSleep = null) => new BackoffIdleStrategy(maxSleep ?? TimeSpan.FromMilliseconds(1));
}
