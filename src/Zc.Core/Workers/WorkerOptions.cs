namespace ZcFlow.Workers;

/// <summary>Where a worker runs and how it waits.</summary>
public sealed class WorkerOptions
{
    /// <summary>The core to pin the thread to; null lets the scheduler choose.</summary>
    public int? Core { get; init; }

    /// <summary>True: busy-poll (zbalance_ipc's <c>-a</c>). False: back off when idle. Ignored when <see cref="Idle"/> is set.</summary>
    public bool ActiveWait { get; init; }

    /// <summary>A custom idle strategy, made on the worker's own thread.</summary>
    public Func<IdleStrategy>? Idle { get; init; }
}
