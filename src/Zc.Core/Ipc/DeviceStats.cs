namespace ZcFlow.Devices;

/// <summary>A device's counters.</summary>
public readonly struct DeviceStats(ulong received, ulong bytes, ulong droppedNoBuffer, ulong droppedKernel = 0, ulong sent = 0, ulong sendFailed = 0)
    : IEquatable<DeviceStats>
{
    /// <summary>Packets delivered into pool buffers.</summary>
    public ulong Received { get; } = received;

    /// <summary>Bytes of those packets.</summary>
    public ulong Bytes { get; } = bytes;

    /// <summary>Packets lost because the pool had no free buffer.</summary>
    public ulong DroppedNoBuffer { get; } = droppedNoBuffer;

    /// <summary>Packets the kernel dropped because the device's ring was full (<c>PACKET_STATISTICS</c>, <c>XDP_STATISTICS</c>).</summary>
    public ulong DroppedKernel { get; } = droppedKernel;

    /// <summary>Packets handed to the device's transmit ring.</summary>
    public ulong Sent { get; } = sent;

    /// <summary>Packets the device could not send (ring full, too long, refused by the kernel).</summary>
    public ulong SendFailed { get; } = sendFailed;

    public bool Equals(DeviceStats other)
        => (Received, Bytes, DroppedNoBuffer, DroppedKernel, Sent, SendFailed) == (other.Received, other.Bytes, other.DroppedNoBuffer, other.DroppedKernel, other.Sent, other.SendFailed);

    public override bool Equals(object? obj) => obj is DeviceStats other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(Received, Bytes, DroppedNoBuffer, DroppedKernel, Sent, SendFailed);

    public override string ToString() => $"received {Received} ({Bytes} B), no buffer {DroppedNoBuffer}, kernel drops {DroppedKernel}, sent {Sent}, send failed {SendFailed}";
}
