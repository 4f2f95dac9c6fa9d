namespace ZcFlow.Ipc;

/// <summary>
/// The cluster a consumer is attached to is no longer served: its owner closed it, died, or
/// was replaced by a new owner (a restart). Attach again to go on.
/// </summary>
public sealed class ClusterGoneException(uint clusterId, bool restarted, string message) : ZcFlowException(message)
{
    public uint ClusterId { get; } = clusterId;

    /// <summary>True when a new owner has created the cluster again: attaching now works.</summary>
    public bool Restarted { get; } = restarted;
}

/// <summary>The queue asked for already has a consumer (a queue has one at a time).</summary>
public sealed class QueueBusyException(string message) : ZcFlowException(message);
