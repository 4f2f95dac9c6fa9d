using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Ipc;

namespace ZcFlow.Devices;

/// <summary>
/// A queue of another process's cluster, <c>zc:&lt;cluster&gt;@&lt;queue&gt;</c>, as a packet source.
/// Its buffers belong to that cluster, so each packet is copied once into a buffer of this
/// source's pool (with its metadata) and the original released at once.
///
/// When that cluster's owner goes, the source delivers nothing and tries every tenth of a second
/// to attach again, so it goes on by itself once an owner of the same cluster id is back (a
/// restarted Balancer). <see cref="Reattached"/> counts how often that happened.
/// </summary>
internal sealed class ZcQueueSource : IPacketSource
{
    private static readonly long RetryPeriod = Stopwatch.Frequency / 10;

    private readonly uint _clusterId;
    private readonly int _queueId;
    private readonly BufferPool _pool;
    private readonly uint _index;
    private readonly PacketHandle[] _remote = new PacketHandle[32];
    private AttachedQueue? _attached;
    private long _nextAttempt;
    private ulong _received, _bytes, _reattached;

    private ZcQueueSource(string name, AttachedQueue attached, BufferPool pool, uint index)
    {
        Name = name;
        _attached = attached;
        _clusterId = attached.ClusterId;
        _queueId = attached.QueueId;
        _pool = pool;
        _index = index;
    }

    /// <summary>Attaches to <paramref name="name"/>; a cluster that is not there is an error now (later, it is waited for).</summary>
    public static ZcQueueSource Open(string name, BufferPool pool, uint index)
    {
        AttachedQueue attached = AttachedQueue.Attach(name);
        if (attached.Role == Queues.QueueRole.Ingress)
        {
            attached.Dispose();
            throw new ArgumentException($"'{name}' is an ingress queue: applications send into it (Send -i {name}), and its cluster's owner receives", nameof(name));
        }
        return new(name, attached, pool, index);
    }

    public string Name { get; }

    public bool IsExhausted => false;

    public DeviceStats Stats => new(Volatile.Read(ref _received), Volatile.Read(ref _bytes), 0);

    /// <summary>How many times the source attached again after the other cluster's owner went.</summary>
    public ulong Reattached => Volatile.Read(ref _reattached);

    /// <summary>Copies up to a burst; 0 while the other cluster is gone and not back.</summary>
    public int ReceiveBurst(Span<PacketHandle> packets)
    {
        AttachedQueue? attached = _attached ?? TryAttach();
        if (attached is null) return 0;
        int n = _pool.GetBurst(packets[..Math.Min(packets.Length, _remote.Length)]);
        int got;
        try
        {
            got = n == 0 ? 0 : attached.Queue.ReceiveBurst(_remote.AsSpan(0, n));
        }
        catch (ClusterGoneException)
        {
            _pool.ReleaseBurst(packets[..n]);
            attached.Dispose();
            _attached = null;
            _nextAttempt = Stopwatch.GetTimestamp() + RetryPeriod;
            return 0;
        }
        ulong bytes = 0;
        for (int i = 0; i < got; i++)
        {
            PacketHandle from = _remote[i], to = packets[i];
            ReadOnlySpan<byte> data = from.Data;   // its length read once: the other process may change it meanwhile
            int length = Math.Min(data.Length, to.Capacity);
            data[..length].CopyTo(to.Buffer);
            to.Length = length;
            to.WireLength = from.WireLength;
            to.TimestampNs = from.TimestampNs;
            to.Hash = from.Hash;
            to.Flags = from.Flags;
            to.LinkType = from.LinkType;
            to.DeviceIndex = _index;
            bytes += (ulong)length;
        }
        attached.Queue.ReleaseBurst(_remote.AsSpan(0, got));
        _pool.ReleaseBurst(packets[got..n]);
        if (got != 0)
        {
            Volatile.Write(ref _received, _received + (ulong)got);
            Volatile.Write(ref _bytes, _bytes + bytes);
        }
        return got;
    }

    private AttachedQueue? TryAttach()
    {
        long now = Stopwatch.GetTimestamp();
        if (now < _nextAttempt) return null;
        _nextAttempt = now + RetryPeriod;
        try
        {
            _attached = AttachedQueue.Attach(_clusterId, _queueId, TimeSpan.Zero);
            Volatile.Write(ref _reattached, _reattached + 1);
            return _attached;
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or ClusterGoneException or QueueBusyException or ArgumentOutOfRangeException or InvalidDataException)
        {
            return null;
        }
    }

    public void Dispose() => _attached?.Dispose();
}
