using ZcFlow.Buffers;
using ZcFlow.Ipc;

namespace ZcFlow.Devices;

/// <summary>
/// A queue of another process's cluster, <c>zc:&lt;cluster&gt;@&lt;queue&gt;</c>, as a packet source.
/// Its buffers belong to that cluster, so each packet is copied once into a buffer of this
/// source's pool (with its metadata) and the original released at once.
/// </summary>
public sealed class ZcQueueSource : IPacketSource
{
    private readonly AttachedQueue _attached;
    private readonly BufferPool _pool;
    private readonly uint _index;
    private readonly PacketHandle[] _remote = new PacketHandle[32];
    private ulong _received, _bytes;

    private ZcQueueSource(string name, AttachedQueue attached, BufferPool pool, uint index)
    {
        Name = name;
        _attached = attached;
        _pool = pool;
        _index = index;
    }

    public static ZcQueueSource Open(string name, BufferPool pool, uint index) => new(name, AttachedQueue.Attach(name), pool, index);

    public string Name { get; }

    public bool IsExhausted => false;

    public DeviceStats Stats => new(Volatile.Read(ref _received), Volatile.Read(ref _bytes), 0);

    /// <summary>Copies up to a burst; throws <see cref="ClusterGoneException"/> when the other cluster is gone.</summary>
    public int ReceiveBurst(Span<PacketHandle> packets)
    {
        int n = _pool.GetBurst(packets[..Math.Min(packets.Length, _remote.Length)]);
        int got = n == 0 ? 0 : _attached.Queue.ReceiveBurst(_remote.AsSpan(0, n));
        ulong bytes = 0;
        for (int i = 0; i < got; i++)
        {
            PacketHandle from = _remote[i], to = packets[i];
            int length = Math.Min(from.Length, to.Capacity);
            from.Data[..length].CopyTo(to.Buffer);
            to.Length = length;
            to.WireLength = from.WireLength;
            to.TimestampNs = from.TimestampNs;
            to.Hash = from.Hash;
            to.Flags = from.Flags;
            to.DeviceIndex = _index;
            bytes += (ulong)length;
        }
        _attached.Queue.ReleaseBurst(_remote.AsSpan(0, got));
        _pool.ReleaseBurst(packets[got..n]);
        if (got != 0)
        {
            Volatile.Write(ref _received, _received + (ulong)got);
            Volatile.Write(ref _bytes, _bytes + bytes);
        }
        return got;
    }

    public void Dispose() => _attached.Dispose();
}
