namespace ZcFlow.Queues;

/// <summary>What a receive on an empty queue, or a send to a full one, does.</summary>
public enum QueueWait
{
    /// <summary>Return at once: a receive returns nothing, a send drops (counted).</summary>
    None,
    /// <summary>Busy-poll until it can go on: lowest latency, one core burnt.</summary>
    Active,
    /// <summary>Sleep until it can go on: a receive sleeps on a futex the producer wakes, a send backs off.</summary>
    Passive,
}
