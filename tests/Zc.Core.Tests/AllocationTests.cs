using ZcFlow.Buffers;
using ZcFlow.Queues;

namespace ZcFlow.Tests;

/// <summary>The packet path allocates no managed memory: measured, not assumed.</summary>
public class AllocationTests
{
    [Fact]
    public void SteadyState_SendReceiveRecycle_Of_10_000_000_Packets_AllocatesZeroBytes()
    {
        const int Packets = 10_000_000;
        using ZcCluster cluster = TestClusters.Create(buffers: 1024, bufferSize: 64);
        BufferPool pool = cluster.CreatePool(1024);
        EgressQueue queue = cluster.CreateQueue(256);
        EgressQueue second = cluster.CreateQueue(256);
        pool.ReclaimFrom(queue);
        pool.ReclaimFrom(second);
        var multi = new MultiQueue(queue, second);
        var burst = new PacketHandle[32];
        var received = new PacketHandle[32];

        void Run(int packets)
        {
            for (int done = 0; done < packets;)
            {
                // Bursts: get, write, send, receive, release.
                int n = pool.GetBurst(burst);
                for (int k = 0; k < n; k++) { BitConverter.TryWriteBytes(burst[k].Buffer, done + k); burst[k].Length = 4; }
                queue.SendBurst(burst.AsSpan(0, n));
                int m = queue.Consumer.ReceiveBurst(received);
                queue.Consumer.ReleaseBurst(received.AsSpan(0, m));
                done += m;
                // Single items, and a fan-out of one packet to two queues.
                if (pool.TryGet(out PacketHandle one) && queue.TrySend(one) && queue.Consumer.TryReceive(out PacketHandle back)) queue.Consumer.Release(back);
                if (pool.TryGet(out PacketHandle fan) && multi.Send(fan, multi.All) == 2)
                {
                    if (queue.Consumer.TryReceive(out PacketHandle a)) queue.Consumer.Release(a);
                    if (second.Consumer.TryReceive(out PacketHandle b)) second.Consumer.Release(b);
                }
            }
        }

        Run(1_000_000); // warm-up: let the JIT finish tiering
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run(Packets);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.Equal(0UL, queue.Stats.Errors);
        Assert.Equal(0UL, pool.Errors);
    }

    [Fact]
    public void SteadyState_IngressWithSparesOfTheirOwn_ReplenishFillSendReceiveRelease_AllocatesZeroBytes()
    {
        const int Packets = 5_000_000;
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, bufferSize: 64);
        IngressQueue ingress = cluster.CreateIngressQueue(256);
        BufferPool pool = cluster.CreatePool(4096, [ingress]);
        var spares = new PacketHandle[32];
        var received = new PacketHandle[32];

        void Run(int packets)
        {
            for (int done = 0; done < packets;)
            {
                pool.Replenish(ingress);
                int n = ingress.Application.TakeSpares(spares);
                for (int k = 0; k < n; k++) { BitConverter.TryWriteBytes(spares[k].Buffer, done + k); spares[k].Length = 4; }
                ingress.Application.SendBurst(spares.AsSpan(0, n));
                int m = ingress.ReceiveBurst(received);
                pool.ReleaseBurst(received.AsSpan(0, m));
                done += m;
            }
        }

        Run(500_000);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run(Packets);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.Equal(0UL, ingress.Stats.Errors);
        Assert.Equal(0UL, pool.Errors);
    }
}
