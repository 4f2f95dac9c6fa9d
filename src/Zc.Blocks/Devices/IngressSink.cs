using ZcFlow.Buffers;
using ZcFlow.Ipc;
using ZcFlow.Queues;

namespace ZcFlow.Devices;

/// <summary>
/// <c>zc:&lt;cluster&gt;@&lt;queue&gt;</c> as a device to send through, when that queue is an ingress queue
/// of another process's cluster (a Balancer's <c>-i Q</c>, as PF_RING's <c>zsend -i zc:99@0</c>). Each
/// packet is copied into a spare buffer the cluster's owner stocked the queue with, and sent.
/// </summary>
internal sealed class IngressSink : IPacketSink
{
    private readonly AttachedQueue _attached;
    private readonly PacketHandle[] _spares = new PacketHandle[32];
    private int _next, _count;
    private ulong _sent, _failed;

    private IngressSink(string name, AttachedQueue attached)
    {
        Name = name;
        _attached = attached;
    }

    /// <summary>Attaches to the ingress queue <paramref name="name"/>; an egress queue, or no such cluster, is an error.</summary>
    public static IngressSink Open(string name)
    {
        AttachedQueue attached = AttachedQueue.Attach(name);
        try
        {
            return Over(attached, name);
        }
        catch
        {
            attached.Dispose();
            throw;
        }
    }

    /// <summary>Sends through <paramref name="attached"/>, an ingress queue attached already; disposing the sink detaches it.</summary>
    public static IngressSink Over(AttachedQueue attached, string name)
    {
        if (attached.Role != QueueRole.Ingress)
            throw new ArgumentException($"'{name}' is a queue consumers receive from; packets go into a cluster through its ingress queues (a Balancer's -i Q)", nameof(name));
        return new IngressSink(name, attached);
    }

    public string Name { get; }

    public DeviceStats Stats => new(0, 0, 0, sent: Volatile.Read(ref _sent), sendFailed: Volatile.Read(ref _failed));

    public bool TrySend(in PacketHandle packet) => TrySend(packet.Data, packet.WireLength, packet.TimestampNs);

    /// <summary>
    /// Copies <paramref name="frame"/> into a spare buffer and sends it (published at the next <see cref="Flush"/>); false,
    /// counted as failed, when the owner has stocked no spare just now or the frame is larger than a buffer.
    /// </summary>
    public bool TrySend(ReadOnlySpan<byte> frame, int wireLength, long timestampNs)
    {
        IngressSender queue = _attached.Sender;
        if (_next == _count)
        {
            _count = queue.TakeSpares(_spares);
            _next = 0;
        }
        if (_next == _count || frame.Length > _spares[_next].Capacity)
        {
            Volatile.Write(ref _failed, _failed + 1);
            return false;
        }
        PacketHandle spare = _spares[_next];
        frame.CopyTo(spare.Buffer);
        spare.SetReceived(frame.Length, wireLength, timestampNs, 0);
        if (!queue.TrySend(spare, flush: false))
        {
            Volatile.Write(ref _failed, _failed + 1);
            return false;
        }
        _next++;
        Volatile.Write(ref _sent, _sent + 1);
        return true;
    }

    public void Flush(bool wait = false)
    {
        _attached.Sender.Flush();
        // Waiting means: until the owner has stocked spares again, so that the next send can go.
        if (wait && _next == _count) Thread.Sleep(1);
    }

    public void Dispose() => _attached.Dispose();
}
