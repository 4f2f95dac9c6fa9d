namespace ZcFlow;

/// <summary>
/// The root of the exceptions ZcFlow throws for what it meets at run time rather than for a wrong argument: a system call
/// that failed (<see cref="Native.ErrnoException"/>), a cluster no longer served, a queue that already has a consumer.
/// Catch it to handle all of them; each says in its message what happened and, where it can, what to do.
/// </summary>
public abstract class ZcFlowException : Exception
{
    protected ZcFlowException(string message)
        : base(message)
    {
    }
}
