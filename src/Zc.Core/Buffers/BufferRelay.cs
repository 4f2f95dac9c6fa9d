using System.Runtime.CompilerServices;
using ZcFlow.Queues;

namespace ZcFlow.Buffers;

/// <summary>
/// The buffers of a stage that receives from queues of this process (<see cref="ReceiveFrom"/>) and sends into others
/// (<see cref="ZcCluster.CreateRelay"/>): it holds what it receives as a pool holds what it hands out, takes back what its
/// own queues' consumers release with the same checks (<see cref="BufferOwner"/>), and gives each buffer back to the queue
/// it came from once none of its queues holds it. So stages chain across threads, and every queue's producer looks after
/// its consumers, gone ones included, with no buffer ever owned by two threads.
/// </summary>
public sealed class BufferRelay : BufferOwner
{
    private readonly QueueConsumer[] _inputs; // the queues it receives from, to which each buffer goes back
    private readonly byte[]? _origin;         // with several inputs: which of them each buffer came from, by cluster index

    // Any of the cluster's buffers may come through, so the record covers them all (first index 0), and the record of
    // which of its queues hold each is its own: the thread a buffer came from keeps writing its own queues' bits meanwhile
    // (a fan-out may have sent the buffer to a consumer's queue too), and two threads must never write one word.
    internal BufferRelay(BufferRegion buffers, QueueConsumer[] inputs)
        : base(buffers, 0, buffers.Count, new ulong[buffers.Count])
    {
        _inputs = inputs;
        if (inputs.Length > 1) _origin = new byte[buffers.Count];
    }

    private protected override void Adopt(EgressQueue queue)
    {
        if (Array.IndexOf(_inputs, queue.Consumer) >= 0) throw new ArgumentException($"queue {queue.Id} is one this relay receives from: it cannot also send into it", nameof(queue));
        queue.RecordHoldersIn(_holders);
    }

    /// <summary>
    /// Receives up to <c>packets.Length</c> packets from its input <paramref name="input"/> (a queue of this process, named
    /// when the relay was made) and holds them: send them on, or <see cref="BufferOwner.Release"/> them, and each goes back
    /// to that queue once none of the relay's queues holds it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int ReceiveFrom(int input, Span<PacketHandle> packets)
    {
        int n = _inputs[input].ReceiveBurst(packets), got = 0;
        byte[]? origin = _origin;
        bool[] held = _out;
        for (int i = 0; i < n; i++)
        {
            uint index = packets[i].Index;
            if (held[index])
            {
                // Received while this relay still holds it: a producer sent it twice. Counted, never held twice.
                _errors++;
                continue;
            }
            held[index] = true;
            if (origin is not null) origin[index] = (byte)input;
            packets[got++] = packets[i];
        }
        return got;
    }

    // Each back to the queue it came from, then on its way up.
    private protected override void Free(ReadOnlySpan<uint> indices)
    {
        byte[]? origin = _origin;
        foreach (uint index in indices) _inputs[origin is null ? 0 : origin[index]].ReleaseUpstream(index);
        foreach (QueueConsumer input in _inputs) input.FlushReleases();
    }
}
