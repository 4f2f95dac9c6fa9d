namespace ZcFlow.Queues;

/// <summary>A snapshot of a queue's counters, consistent per field, readable from any thread or process.</summary>
/// <param name="Sent">Packets published by the producer.</param>
/// <param name="Received">Packets taken by the consumer.</param>
/// <param name="Dropped">Sends refused because the queue was full.</param>
/// <param name="Errors">Values that failed a check: a bad index in a slot, an impossible head or tail, a buffer released twice.</param>
public readonly record struct QueueStats(ulong Sent, ulong Received, ulong Dropped, ulong Errors)
{
    /// <summary>Packets in the queue when the snapshot was taken.</summary>
    public ulong Queued => Sent >= Received ? Sent - Received : 0;
}
