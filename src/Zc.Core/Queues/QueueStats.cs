namespace ZcFlow.Queues;

/// <summary>A snapshot of a queue's counters, consistent per field, readable from any thread or process.</summary>
public readonly struct QueueStats(ulong sent, ulong received, ulong dropped, ulong errors) : IEquatable<QueueStats>
{
    /// <summary>Packets published by the producer.</summary>
    public ulong Sent { get; } = sent;

    /// <summary>Packets taken by the consumer.</summary>
    public ulong Received { get; } = received;

    /// <summary>Sends refused because the queue was full.</summary>
    public ulong Dropped { get; } = dropped;

    /// <summary>Values that failed a check: a bad index in a slot, an impossible head or tail, a buffer released twice.</summary>
    public ulong Errors { get; } = errors;

    /// <summary>Packets in the queue when the snapshot was taken.</summary>
    public ulong Queued => Sent >= Received ? Sent - Received : 0;

    public bool Equals(QueueStats other) => (Sent, Received, Dropped, Errors) == (other.Sent, other.Received, other.Dropped, other.Errors);

    public override bool Equals(object? obj) => obj is QueueStats other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(Sent, Received, Dropped, Errors);

    public override string ToString() => $"sent {Sent}, received {Received}, dropped {Dropped}, errors {Errors}";
}
