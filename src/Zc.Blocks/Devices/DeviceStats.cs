namespace ZcFlow.Devices;

/// <summary>A device's counters.</summary>
/// <param name="Received">Packets delivered into pool buffers.</param>
/// <param name="Bytes">Bytes of those packets.</param>
/// <param name="DroppedNoBuffer">Packets lost because the pool had no free buffer.</param>
public readonly record struct DeviceStats(ulong Received, ulong Bytes, ulong DroppedNoBuffer);
