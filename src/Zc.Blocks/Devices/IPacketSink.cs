using ZcFlow.Buffers;

namespace ZcFlow.Devices;

/// <summary>
/// A device packets go out through. <see cref="TrySend"/> copies the packet into the device's
/// transmit ring and leaves the buffer with the caller, who releases it; <see cref="Flush"/>
/// hands what was queued to the wire. Used by one thread.
/// </summary>
public interface IPacketSink : IDisposable
{
    string Name { get; }

    /// <summary>Queues a copy of the packet for sending; false when the ring is full or the packet does not fit a slot.</summary>
    bool TrySend(in PacketHandle packet);

    /// <summary>Starts sending what was queued; with <paramref name="wait"/>, returns once the ring is empty.</summary>
    void Flush(bool wait = false);

    DeviceStats Stats { get; }
}
