using System.Runtime.CompilerServices;
using System.Threading.Channels;
using System.Threading.Tasks.Dataflow;
using ZcFlow.Buffers;
using ZcFlow.Queues;

namespace ZcFlow.Adapters;

/// <summary>
/// The edge of a graph, where the async world takes over: a queue read as an
/// <see cref="IAsyncEnumerable{T}"/>, a <see cref="ChannelReader{T}"/> or a Dataflow source block.
/// Each of them is the queue's consumer (one at a time), and each gives every packet back to
/// the queue once it is done with it, so a packet handle never outlives its lease.
/// </summary>
public static class QueueAdapters
{
    /// <summary>
    /// The queue's packets as an async stream. A handle is valid until the next
    /// <c>MoveNextAsync</c>, which releases it. Waits without a thread when the queue is empty
    /// (polling every millisecond or less).
    /// </summary>
    public static async IAsyncEnumerable<PacketHandle> ReadAllAsync(this QueueConsumer queue, [EnumeratorCancellation] CancellationToken cancel = default)
    {
        var burst = new PacketHandle[32];
        int idle = 0, i = 0, n = 0;
        try
        {
            while (!cancel.IsCancellationRequested)
            {
                n = queue.ReceiveBurst(burst);
                i = 0;
                if (n == 0)
                {
                    if (++idle < 16) await Task.Yield();
                    else await Task.Delay(1, cancel).ConfigureAwait(false);
                    continue;
                }
                idle = 0;
                for (; i < n; i++)
                {
                    yield return burst[i];
                    queue.Release(burst[i]);
                }
            }
        }
        finally
        {
            // A consumer that stops early gives back what it was handed and what was still to come.
            for (; i < n; i++) queue.Release(burst[i]);
        }
    }

    /// <summary>
    /// A pump thread that takes the queue's packets, turns each into a <typeparamref name="T"/>
    /// with <paramref name="select"/> (copy the bytes, parse a record: the handle is released
    /// right after), and writes them to a bounded channel of <paramref name="capacity"/>, waiting
    /// when it is full. The channel completes when <paramref name="cancel"/> is signalled, or
    /// with the exception that stopped the pump.
    /// </summary>
    public static ChannelReader<T> ToChannelReader<T>(this QueueConsumer queue, Func<PacketHandle, T> select, int capacity = 1024, CancellationToken cancel = default)
    {
        var channel = Channel.CreateBounded<T>(new BoundedChannelOptions(capacity) { SingleReader = false, SingleWriter = true });
        Pump(queue, select, channel.Writer, cancel);
        return channel.Reader;
    }

    /// <summary>As <see cref="ToChannelReader{T}"/>, as a Dataflow source block to link into a pipeline.</summary>
    public static ISourceBlock<T> ToSourceBlock<T>(this QueueConsumer queue, Func<PacketHandle, T> select, int capacity = 1024, CancellationToken cancel = default)
    {
        var block = new BufferBlock<T>(new DataflowBlockOptions { BoundedCapacity = capacity });
        var channel = Channel.CreateBounded<T>(new BoundedChannelOptions(capacity) { SingleReader = true, SingleWriter = true });
        Pump(queue, select, channel.Writer, cancel);
        _ = Forward(channel.Reader, block);
        return block;
    }

    private static async Task Forward<T>(ChannelReader<T> from, BufferBlock<T> to)
    {
        try
        {
            await foreach (T item in from.ReadAllAsync().ConfigureAwait(false))
                await to.SendAsync(item).ConfigureAwait(false);
            to.Complete();
        }
        catch (Exception e)
        {
            ((IDataflowBlock)to).Fault(e);
        }
    }

    private static void Pump<T>(QueueConsumer queue, Func<PacketHandle, T> select, ChannelWriter<T> writer, CancellationToken cancel)
    {
        var thread = new Thread(() =>
        {
            var burst = new PacketHandle[32];
            try
            {
                while (!cancel.IsCancellationRequested)
                {
                    int n = queue.ReceiveBurst(burst, QueueWait.Passive, cancel);
                    for (int i = 0; i < n; i++)
                    {
                        T item;
                        try { item = select(burst[i]); }
                        finally { queue.Release(burst[i]); }
                        while (!writer.TryWrite(item))
                            if (!writer.WaitToWriteAsync(cancel).AsTask().GetAwaiter().GetResult()) return;
                    }
                }
                writer.TryComplete();
            }
            catch (OperationCanceledException)
            {
                writer.TryComplete();
            }
            catch (Exception e)
            {
                writer.TryComplete(e);
            }
        })
        { Name = $"queue {queue.Id} pump", IsBackground = true };
        thread.Start();
    }
}
