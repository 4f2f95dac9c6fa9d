using ZcFlow.Buffers;

namespace ZcFlow.Devices;

/// <summary>
/// The output queue of another stage of the same graph, as the input of a stage on a thread of its own: received
/// through that stage's relay (<see cref="ZcCluster.CreateRelay"/>), which sends every buffer back up when done.
/// Exhausted once the stage before has finished and nothing of it is left in the queue.
/// </summary>
internal sealed class StreamSource(BufferRelay relay, int input, string name, Func<bool> upstreamFinished) : IPacketSource
{
    private ulong _received;
    private bool _exhausted;

    public string Name => name;

    public bool IsExhausted => Volatile.Read(ref _exhausted);

    /// <summary>Packets received; bytes are not counted here: the stage before counted them as they came in.</summary>
    public DeviceStats Stats => new(Volatile.Read(ref _received), 0, 0);

    public int ReceiveBurst(Span<PacketHandle> packets)
    {
        // Finished before the look at the queue: then an empty queue is one that will stay empty.
        bool finished = upstreamFinished();
        int n = relay.ReceiveFrom(input, packets);
        if (n == 0)
        {
            if (finished) Volatile.Write(ref _exhausted, true);
            return 0;
        }
        Volatile.Write(ref _received, _received + (ulong)n);
        return n;
    }

    public void Dispose() { }
}
