namespace ZcFlow.Queues;

/// <summary>Which way a queue carries packets between a cluster's owner and the application at its other end.</summary>
public enum QueueRole : uint
{
    /// <summary>From the owner to an application (zbalance_ipc's egress queues): the owner sends, the application receives and releases.</summary>
    Egress = 0,

    /// <summary>
    /// From an application into the cluster: the application takes spare buffers the owner stocks
    /// (<see cref="IngressSender.TakeSpares"/>, <see cref="Buffers.BufferPool.Replenish"/>), fills and sends
    /// them; the owner receives them and then holds them like buffers of its own pool.
    /// </summary>
    Ingress = 1,
}
