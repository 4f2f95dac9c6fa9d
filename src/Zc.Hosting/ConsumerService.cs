using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ZcFlow.Buffers;
using ZcFlow.Ipc;
using ZcFlow.Queues;
using ZcFlow.Workers;

namespace ZcFlow.Hosting;

// A consumer for the host's lifetime: a thread attaches (waiting for the cluster as long as it takes), runs the
// consumer's worker until the host stops or the owner goes, and then attaches to the owner's successor.
internal sealed class ConsumerService(string queueName, IPacketConsumer consumer, ZcFlowConsumerOptions options, ILogger logger, IHostApplicationLifetime lifetime)
    : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Thread? _thread;
    private long _packets;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _thread = new Thread(Run) { Name = $"consumer {queueName}", IsBackground = true };
        _thread.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _stop.Cancel();
        _thread?.Join();
        logger.LogInformation("final stats: {Queue} consumed {Packets} packets", queueName, Volatile.Read(ref _packets));
        return Task.CompletedTask;
    }

    public void Dispose() => _stop.Dispose();

    private void Run()
    {
        var burst = new PacketHandle[Math.Max(1, options.Burst)];
        while (!_stop.IsCancellationRequested)
        {
            AttachedQueue? attached = null;
            while (attached is null && !_stop.IsCancellationRequested)
            {
                try { attached = AttachedQueue.Attach(queueName, TimeSpan.FromSeconds(0.5), waitForOwner: true); }
                catch (Exception e) when (e is InvalidOperationException or TimeoutException or ClusterGoneException or QueueBusyException) { }
                catch (Exception e)
                {
                    logger.LogError("cannot consume {Queue}: {Reason}", queueName, SetupError.Describe(e));
                    lifetime.StopApplication();
                    return;
                }
            }
            if (attached is null) return;
            using (attached)
            {
                QueueConsumer queue = attached.Queue;
                logger.LogInformation("consuming {Queue} (owner pid {Owner})", queueName, attached.OwnerPid);
                var worker = ZcWorker.Start($"consumer {queueName}", () =>
                {
                    // Passive: an empty queue is slept on until the owner's next publish (or the host stops).
                    int n = queue.ReceiveBurst(burst, options.ActiveWait ? QueueWait.None : QueueWait.Passive, _stop.Token);
                    if (n == 0) return 0;
                    try { consumer.OnPackets(burst.AsSpan(0, n)); }
                    finally { queue.ReleaseBurst(burst.AsSpan(0, n)); }
                    Volatile.Write(ref _packets, _packets + n);
                    return n;
                }, new WorkerOptions { Core = options.Core, ActiveWait = options.ActiveWait });
                while (!_stop.IsCancellationRequested && !worker.Join(TimeSpan.FromMilliseconds(100))) { }
                try
                {
                    worker.Stop();
                }
                catch (ClusterGoneException e)
                {
                    logger.LogWarning("{Queue}: {Reason}; waiting for the next owner", queueName, e.Message);
                }
                catch (Exception e)
                {
                    logger.LogError(e, "the consumer of {Queue} failed", queueName);
                    lifetime.StopApplication();
                    return;
                }
            }
        }
    }
}
