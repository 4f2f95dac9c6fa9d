using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Queues;
using ZcFlow.Workers;

namespace ZcFlow.Tests;

public class AllocationTests
{
    [Fact]
    public void SteadyState_GeneratorBalancerQueuesRelease_Of_5_000_000_Packets_AllocatesZeroBytes()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, bufferSize: 128);
        BufferPool pool = cluster.CreatePool(4096);
        ZcQueue[] queues = [cluster.CreateQueue(1024), cluster.CreateQueue(1024)];
        using IPacketSource gen = Device.OpenSource("gen:64?flows=4096", pool, 0);
        var balancer = new Balancer<PerApplication<FiveTupleHash>>(pool, [gen], queues, new PerApplication<FiveTupleHash>([2], new FiveTupleHash()));
        var fanout = new Balancer<FanOutAll>(pool, [gen], queues, new FanOutAll());
        var burst = new PacketHandle[32];

        long Run(long packets)
        {
            long done = 0;
            while (done < packets)
            {
                balancer.DoWork();
                fanout.DoWork();
                foreach (ZcQueue q in queues)
                {
                    int n = q.ReceiveBurst(burst);
                    q.ReleaseBurst(burst.AsSpan(0, n));
                    done += n;
                }
            }
            return done;
        }

        Run(500_000); // warm-up: the JIT settles
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run(5_000_000);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
