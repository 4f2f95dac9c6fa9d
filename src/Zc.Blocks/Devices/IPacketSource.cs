using ZcFlow.Buffers;

namespace ZcFlow.Devices;

/// <summary>
/// A device packets come in from. It writes each packet once, into a buffer of the pool it was
/// opened with, and hands the buffers over: the caller then holds them. Used by one thread.
/// </summary>
public interface IPacketSource : IDisposable
{
    /// <summary>The name it was opened with (<c>gen:64</c>, <c>pcap:trace.pcap</c>…).</summary>
    string Name { get; }

    /// <summary>Fills up to <c>packets.Length</c> packets and returns how many: 0 when none is ready (or the pool is empty).</summary>
    int ReceiveBurst(Span<PacketHandle> packets);

    /// <summary>True once a finite source (a capture file not looped, a generator with a count) has given everything.</summary>
    bool IsExhausted { get; }

    /// <summary>
    /// What its packets start with (each packet says so too, <see cref="PacketHandle.LinkType"/>): Ethernet, unless it is a
    /// capture file of another link type or <c>any</c> (<c>LINUX_SLL2</c>). A capture written of its packets is of this type.
    /// </summary>
    Parsing.LinkType Link => Parsing.LinkType.Ethernet;

    /// <summary>Packets delivered, and packets lost because the pool had no buffer.</summary>
    DeviceStats Stats { get; }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> for packets, for a caller that would rather sleep than
    /// spin when <see cref="ReceiveBurst"/> found none; false when none came. Sockets wait in the
    /// kernel; a source with nothing to wait on (a file, a generator, a queue) sleeps up to 1 ms.
    /// </summary>
    bool WaitReadable(int timeoutMs)
    {
        if (IsExhausted) return false;
        Thread.Sleep(Math.Clamp(timeoutMs, 0, 1));
        return true;
    }
}
