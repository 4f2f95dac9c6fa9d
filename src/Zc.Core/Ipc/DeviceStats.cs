namespace ZcFlow.Devices;

/// <summary>A device's counters.</summary>
/// <param name="Received">Packets delivered into pool buffers.</param>
/// <param name="Bytes">Bytes of those packets.</param>
/// <param name="DroppedNoBuffer">Packets lost because the pool had no free buffer.</param>
/// <param name="DroppedKernel">Packets the kernel dropped because the device's ring was full (<c>PACKET_STATISTICS</c>, <c>XDP_STATISTICS</c>).</param>
/// <param name="Sent">Packets handed to the device's transmit ring.</param>
/// <param name="SendFailed">Packets the device could not send (ring full, too long, refused by the kernel).</param>
public readonly record struct DeviceStats(ulong Received, ulong Bytes, ulong DroppedNoBuffer, ulong DroppedKernel = 0, ulong Sent = 0, ulong SendFailed = 0);
