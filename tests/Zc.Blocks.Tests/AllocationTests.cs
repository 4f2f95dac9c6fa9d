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
        EgressQueue[] queues = [cluster.CreateQueue(1024), cluster.CreateQueue(1024)];
        using IPacketSource gen = Device.OpenSource("gen:64?flows=4096", pool, 0);
        var balancer = new Balancer<PerApplication<FiveTupleHash>>(pool, [gen], queues, new PerApplication<FiveTupleHash>([2], new FiveTupleHash()));
        var fanout = new Balancer<FanOutAll>(pool, [gen], queues, new FanOutAll());
        Assert.Equal(0, AllocatedWhileMoving([balancer.DoWork, fanout.DoWork], queues, warmUp: 500_000, packets: 5_000_000));
    }

    // A topology's parts on one thread: gen -> a filter stage -> queue -> (relay) a stage merging in time order -> queue ->
    // (relay) balancer -> two queues, and a filter fused into a balancer as its source. Nothing allocates per packet.
    [Fact]
    public void SteadyState_StagesRelaysAndAFusedStage_Of_3_000_000_Packets_AllocateZeroBytes()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 8192, bufferSize: 128);
        BufferPool pool = cluster.CreatePool(4096), fusedPool = cluster.CreatePool(4096);
        EgressQueue first = cluster.CreateQueue(1024), second = cluster.CreateQueue(1024);
        EgressQueue[] outputs = [cluster.CreateQueue(1024), cluster.CreateQueue(1024), cluster.CreateQueue(1024)];
        using IPacketSource gen = Device.OpenSource("gen:64?flows=4096", pool, 0), other = Device.OpenSource("gen:64?flows=64", fusedPool, 1);
        var filter = new Pipe<Stages.Bpf>(pool, [gen], first, new Stages.Bpf(Filters.BpfFilter.Compile("udp or tcp")));
        BufferRelay relay = cluster.CreateRelay([first]);
        var merge = new Pipe<Stages.PassAll>(relay, [new StreamSource(relay, 0, "filter", () => false)], second, mergeByTime: true);
        BufferRelay relay2 = cluster.CreateRelay([second]);
        var balancer = new Balancer<FiveTupleHash>(relay2, [new StreamSource(relay2, 0, "merge", () => false)], outputs[..2], new FiveTupleHash(), lossless: true);
        var fused = new Balancer<RoundRobin>(fusedPool, [new Pipe<Stages.PassAll>(fusedPool, [other])], outputs[2..], new RoundRobin(), lossless: true);
        Assert.Equal(0, AllocatedWhileMoving([filter.DoWork, merge.DoWork, balancer.DoWork, fused.DoWork], outputs, warmUp: 300_000, packets: 3_000_000));
        Assert.Equal(0UL, pool.Errors + relay.Errors + relay2.Errors + fusedPool.Errors);
    }

    // Turns the workers on this thread and receives and releases what reaches the queues: warmUp packets first (the JIT's
    // tiers settle), then packets more, and returns the bytes this thread allocated meanwhile.
    private static long AllocatedWhileMoving(Func<int>[] workers, EgressQueue[] queues, long warmUp, long packets)
    {
        var burst = new PacketHandle[32];
        void Move(long count)
        {
            for (long done = 0; done < count;)
            {
                foreach (Func<int> work in workers) work();
                foreach (EgressQueue q in queues)
                {
                    int n = q.Consumer.ReceiveBurst(burst);
                    q.Consumer.ReleaseBurst(burst.AsSpan(0, n));
                    done += n;
                }
            }
        }
        Move(warmUp);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Move(packets);
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }
}
