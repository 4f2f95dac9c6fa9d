namespace ZcFlow.Devices;

/// <summary>
/// A source whose frames can be read where they lie, copied nowhere: a mapped capture file (<see cref="CaptureFile"/>), an
/// AF_PACKET device's ring. For a reader of this process that is done with a frame before it reads more (a capture writer,
/// a flow table, a filter); a frame for another process goes into a pool buffer instead (<see cref="IPacketSource"/>).
/// </summary>
public interface IFrameReader
{
    /// <summary>
    /// Up to <c>frames.Length</c> frames; returns how many. Each is valid until the next call, or longer where the source
    /// says so (a capture file's, until it is disposed).
    /// </summary>
    int ReadBurst(Span<CapturedFrame> frames);
}
