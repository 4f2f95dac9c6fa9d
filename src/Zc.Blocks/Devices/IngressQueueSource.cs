using ZcFlow.Buffers;
using ZcFlow.Queues;

namespace ZcFlow.Devices;

/// <summary>
/// An ingress queue of this process's cluster as a packet source (zbalance_ipc's <c>-i Q</c>): another
/// process attaches to it (<c>Send -i zc:&lt;cluster&gt;@&lt;queue&gt;</c>, <see cref="IngressSink"/>),
/// fills the spare buffers this source stocks it with from its pool, and sends them back full. What
/// comes back is checked (only spares given to that queue, each once) and is then this source's
/// caller's, as from any device. If the application goes, its spares come back to the pool.
/// </summary>
internal sealed class IngressQueueSource : IPacketSource
{
    private readonly IngressQueue _queue;
    private readonly BufferPool _pool;
    private readonly uint _index;
    private ulong _received, _bytes;

    /// <param name="queue">An ingress queue of the cluster <paramref name="pool"/> belongs to.</param>
    /// <param name="pool">The pool whose buffers the application fills and which takes back those the balancer drops.</param>
    /// <param name="index">The device index the packets get.</param>
    /// <param name="name">The device's name, <c>zc:&lt;cluster&gt;@&lt;queue&gt;</c>.</param>
    public IngressQueueSource(IngressQueue queue, BufferPool pool, uint index, string name)
    {
        if (queue.Role != QueueRole.Ingress) throw new ArgumentException($"queue {queue.Id} is not an ingress queue", nameof(queue));
        _queue = queue;
        _pool = pool;
        _index = index;
        Name = name;
        pool.Replenish(queue);
    }

    public string Name { get; }

    /// <summary>The queue applications send into.</summary>
    public IngressQueue Queue => _queue;

    public bool IsExhausted => false;

    public DeviceStats Stats => new(Volatile.Read(ref _received), Volatile.Read(ref _bytes), 0);

    public int ReceiveBurst(Span<PacketHandle> packets)
    {
        int n = _queue.ReceiveBurst(packets);
        _pool.Replenish(_queue);   // spares for those that came back full, or for an application waiting for its first
        if (n == 0) return 0;
        ulong bytes = 0;
        foreach (PacketHandle p in packets[..n])
        {
            p.DeviceIndex = _index;
            bytes += (uint)p.Length;
        }
        Volatile.Write(ref _received, _received + (ulong)n);
        Volatile.Write(ref _bytes, _bytes + bytes);
        return n;
    }

    public void Dispose()
    {
    }
}
