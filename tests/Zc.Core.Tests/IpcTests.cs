using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Ipc;
using ZcFlow.Queues;

namespace ZcFlow.Tests;

/// <summary>Owner and consumers in different processes, started for real, checked packet by packet.</summary>
public class IpcTests(ITestOutputHelper output)
{
    private static ZcCluster Owner(int buffers = 16384, int queues = 4, int? group = null)
        => ZcCluster.Create(TestClusters.NextId(), new ClusterOptions
        {
            BufferCount = buffers, BufferSize = 128, MaxQueues = queues, UseHugePages = false, GroupId = group, Warn = _ => { },
        });

    private static void Stamp(PacketHandle p, long seq) => Payload.Stamp(p, seq);

    [Fact]
    public void ThreeConsumerProcesses_50_000_000_SequencedPackets_EachGetsExactlyItsOwnOnceInOrder()
    {
        const long Total = 50_000_000;
        const int Consumers = 3;
        using ZcCluster cluster = Owner();
        BufferPool pool = cluster.CreatePool(cluster.BufferCount);
        var queues = Enumerable.Range(0, Consumers).Select(_ => cluster.CreateQueue(4096)).ToArray();
        foreach (EgressQueue q in queues) pool.ReclaimFrom(q);

        // Packet s goes to consumer s % 3, which expects s = i, i + 3, i + 6, ...
        var children = Enumerable.Range(0, Consumers)
            .Select(i => ChildProcess.Start("consume", [cluster.Id, i, (Total - i + Consumers - 1) / Consumers, i, Consumers])).ToArray();
        try
        {
            foreach (ChildProcess c in children) c.WaitFor("attached");
            var bursts = Enumerable.Range(0, Consumers).Select(_ => new PacketHandle[32]).ToArray();
            var filled = new int[Consumers];
            var clock = Stopwatch.StartNew();
            for (long seq = 0; seq < Total; seq++)
            {
                int q = (int)(seq % Consumers);
                PacketHandle p;
                while (!pool.TryGet(out p)) Thread.Yield();
                Stamp(p, seq);
                bursts[q][filled[q]++] = p;
                if (filled[q] == 32 || seq >= Total - Consumers)
                {
                    Assert.Equal(filled[q], queues[q].SendBurst(bursts[q].AsSpan(0, filled[q]), QueueWait.Passive, TestDeadline.Token));
                    filled[q] = 0;
                }
            }
            foreach (ChildProcess c in children) c.WaitFor("ok");
            output.WriteLine($"{Total:N0} packets to {Consumers} processes in {clock.Elapsed.TotalSeconds:F1} s");
            foreach (ChildProcess c in children) Assert.Equal(0, c.WaitForExit());
        }
        finally
        {
            foreach (ChildProcess c in children) c.Dispose();
        }
        for (int i = 0; i < Consumers; i++) Assert.Equal(0UL, queues[i].Stats.Dropped + queues[i].Stats.Errors);
        Wait.Until(() => { pool.CheckConsumers(); pool.Reclaim(); return pool.Available == pool.Capacity; }, "every buffer back in the pool");
        Assert.Equal(0UL, pool.Errors);
    }

    [Fact]
    public void ConsumerKilledMidBurst_OthersGoOn_ItsBuffersComeBack_AndANewConsumerCanAttach()
    {
        using ZcCluster cluster = Owner(buffers: 1024);
        BufferPool pool = cluster.CreatePool(1024);
        EgressQueue doomed = cluster.CreateQueue(64), survivor = cluster.CreateQueue(64);
        pool.ReclaimFrom(doomed);
        pool.ReclaimFrom(survivor);

        using ChildProcess victim = ChildProcess.Start("hold", [cluster.Id, 0, 40]);
        using ChildProcess other = ChildProcess.Start("consume", [cluster.Id, 1, 2000, 0, 1]);
        victim.WaitFor("attached");
        other.WaitFor("attached");
        long seq = 0;
        for (int i = 0; i < 40; i++) { Assert.True(pool.TryGet(out PacketHandle p)); Stamp(p, i); Assert.True(doomed.TrySend(p)); }
        victim.WaitFor("holding 40");
        victim.Kill();

        // The owner keeps sending to both: the dead queue fills and counts drops without blocking; the other receives all.
        for (int i = 0; i < 2000; i++)
        {
            Assert.True(pool.TryGet(out PacketHandle a));
            Stamp(a, 1_000_000 + i);
            if (!doomed.TrySend(a)) pool.Release(a);
            PacketHandle b;
            while (!pool.TryGet(out b)) Thread.Yield();
            Stamp(b, seq++);
            Assert.Equal(1, survivor.SendBurst([b], QueueWait.Passive, TestDeadline.Token));
        }
        other.WaitFor("ok 2000");
        Assert.Equal(64UL + 40, doomed.Stats.Sent);
        Assert.Equal(2000UL - 64, doomed.Stats.Dropped);

        // Once its death is seen, the 40 it held and the 64 queued for it come back.
        Wait.Until(() => { pool.CheckConsumers(); pool.Reclaim(); return pool.Available == pool.Capacity; }, "the dead consumer's buffers");
        Assert.Equal(0, doomed.ConsumerPid);
        Assert.True(doomed.IsEmpty);

        using ChildProcess successor = ChildProcess.Start("consume", [cluster.Id, 0, 10, 7, 1]);
        successor.WaitFor("attached");
        for (int i = 0; i < 10; i++) { Assert.True(pool.TryGet(out PacketHandle p)); Stamp(p, 7 + i); Assert.True(doomed.TrySend(p)); }
        successor.WaitFor("ok 10");
        Assert.Equal(0UL, pool.Errors);
    }

    [Fact]
    public void OwnerKilled_AnAttachedConsumerIsToldTheClusterIsGone_WithinASecond()
    {
        using ChildProcess owner = ChildProcess.Start("own", [TestClusters.NextId() is var id ? id : 0, 1]);
        owner.WaitFor("ready");
        using AttachedQueue attached = AttachedQueue.Attach($"zc:{id}@0");
        Assert.Equal(owner.Pid, attached.OwnerPid);
        owner.Kill();
        var clock = Stopwatch.StartNew();
        var gone = Assert.Throws<ClusterGoneException>(() =>
        {
            while (clock.Elapsed < TimeSpan.FromSeconds(10))
                attached.Queue.ReceiveBurst(new PacketHandle[8], QueueWait.Passive, TestDeadline.Token);
        });
        output.WriteLine($"{clock.ElapsedMilliseconds} ms: {gone.Message}");
        Assert.False(gone.Restarted);
        Assert.Contains($"pid {owner.Pid}", gone.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"took {clock.Elapsed}");

        // The stale cluster a dead owner left is detected and replaced.
        using ZcCluster replacement = ZcCluster.Create(id, new ClusterOptions { BufferCount = 64, UseHugePages = false, Warn = _ => { } });
        Assert.Equal(64, replacement.BufferCount);
    }

    [Fact]
    public void OwnerRestarted_AnAttachedConsumerIsToldToAttachAgain()
    {
        uint id = TestClusters.NextId();
        using ChildProcess first = ChildProcess.Start("own", [id, 1]);
        first.WaitFor("ready");
        using AttachedQueue attached = AttachedQueue.Attach(id, 0);
        Assert.Equal(0, first.CloseAndWait());
        using ChildProcess second = ChildProcess.Start("own", [id, 1]);
        second.WaitFor("ready");
        var gone = Assert.Throws<ClusterGoneException>(() =>
            attached.Queue.ReceiveBurst(new PacketHandle[8], QueueWait.Passive, TestDeadline.Token));
        output.WriteLine(gone.Message);
        Assert.True(gone.Restarted, gone.Message);
        using AttachedQueue again = AttachedQueue.Attach(id, 0);
        Assert.Equal(second.Pid, again.OwnerPid);
        Assert.Equal(0, second.CloseAndWait());
    }

    [Fact]
    public void SecondOwnerOfAClusterId_IsToldThePidOfTheFirst()
    {
        uint id = TestClusters.NextId();
        using ChildProcess first = ChildProcess.Start("own", [id, 1]);
        first.WaitFor("ready");
        var e = Assert.Throws<InvalidOperationException>(() => ZcCluster.Create(id, new ClusterOptions { UseHugePages = false }));
        Assert.Contains($"process {first.Pid}", e.Message);
        Assert.Equal(0, first.CloseAndWait());
    }

    [Fact]
    public void AttachWithoutPermission_FailsSayingWhatToChange_AndAGroupLetsItsMembersIn()
    {
        if (Environment.UserName != "root") Assert.Skip("running a consumer as another user needs root");
        const int Nobody = 65534;
        using (ZcCluster ownerOnly = Owner(buffers: 64))
        {
            ownerOnly.CreateQueue(8);
            using ChildProcess denied = ChildProcess.Start("attach", [ownerOnly.Id, 0], asUser: Nobody);
            Assert.Equal(1, denied.WaitForExit());
            Assert.Contains("EACCES", denied.Output);
            Assert.Contains("group", denied.Output);
        }
        using ZcCluster shared = Owner(buffers: 64, group: Nobody);
        shared.CreateQueue(8);
        using ChildProcess allowed = ChildProcess.Start("attach", [shared.Id, 0], asUser: Nobody);
        allowed.WaitFor("attached");
        Assert.Equal(0, allowed.WaitForExit());
    }

    [Fact]
    public void Attach_WithABadName_AMissingCluster_OrAQueueOutOfRange_SaysWhich()
    {
        Assert.Contains("zc:<cluster>@<queue>", Assert.Throws<ArgumentException>(() => AttachedQueue.Attach("eth0")).Message);
        Assert.Contains("no cluster", Assert.Throws<InvalidOperationException>(() => AttachedQueue.Attach(TestClusters.NextId(), 0)).Message);
        using ZcCluster cluster = Owner(buffers: 64);
        cluster.CreateQueue(8);
        Assert.Contains("has 1 queues", Assert.Throws<ArgumentOutOfRangeException>(() => AttachedQueue.Attach(cluster.Id, 3)).Message);
        using AttachedQueue first = AttachedQueue.Attach(cluster.Id, 0);
        Assert.Equal(Environment.ProcessId, ((EgressQueue)cluster.Queues[0]).ConsumerPid);
        Assert.Contains("already has a consumer", Assert.Throws<QueueBusyException>(() => AttachedQueue.Attach(cluster.Id, 0)).Message);
    }

    [Fact]
    public void ApplicationInjectingThroughAnIngressQueue_DeliversEverySpareItFilled_InOrder_AndNothingItForged()
    {
        const long Count = 200_000;
        using ZcCluster cluster = Owner(buffers: 4096);
        IngressQueue ingress = cluster.CreateIngressQueue(256);
        BufferPool pool = cluster.CreatePool(2048, [ingress]); // buffers 0..2047, its spares among them; 2048..4095 are never handed out
        using ChildProcess injector = ChildProcess.Start("inject", [cluster.Id, 0, Count, 2048, 4096]);
        injector.WaitFor("attached");

        var burst = new PacketHandle[32];
        long expected = 0;
        var clock = Stopwatch.StartNew();
        while (expected < Count)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), $"received {expected} of {Count}");
            pool.Replenish(ingress);
            int n = ingress.ReceiveBurst(burst);
            for (int k = 0; k < n; k++)
            {
                Assert.InRange(burst[k].Index, 0u, 2047u);
                Assert.Equal(expected++, BitConverter.ToInt64(burst[k].Data));
            }
            pool.ReleaseBurst(burst.AsSpan(0, n)); // received from ingress, they are the owner's
        }
        injector.WaitFor($"sent {Count}");
        Assert.Equal(0, injector.WaitForExit());
        Assert.Equal((ulong)(Count / 1000), ingress.Stats.Errors);
        Wait.Until(() => { pool.CheckConsumers(); return pool.Available == pool.Capacity; }, "the spares back after the injector left");
    }

    [Fact]
    public void List_ShowsTheClusterItsQueuesAndTheirConsumers()
    {
        using ZcCluster cluster = Owner(buffers: 64);
        BufferPool pool = cluster.CreatePool(64);
        EgressQueue queue = cluster.CreateQueue(8);
        Assert.True(pool.TryGet(out PacketHandle p));
        Assert.True(queue.TrySend(p));
        using AttachedQueue consumer = AttachedQueue.Attach(cluster.Id, 0);
        // The owner's socket thread copies the counters into the directory every tenth of a second.
        ClusterInfo info = null!;
        Wait.Until(() => (info = Assert.Single(ClusterDirectory.List(), c => c.Id == cluster.Id)).Queues.Single().ConsumerPid != 0, "the consumer in the listing", seconds: 5);
        Assert.True(info.Live);
        Assert.Equal(Environment.ProcessId, info.OwnerPid);
        QueueInfo q = Assert.Single(info.Queues);
        Assert.Equal(Environment.ProcessId, q.ConsumerPid);
        Assert.Equal(1UL, q.Stats.Sent);
        Assert.Equal(1, q.Held);
        Assert.Equal(16, q.Quota);
        Assert.False(q.Stuck);
        PoolInfo listed = Assert.Single(info.Pools);
        Assert.Equal((0, 0, 64, 64), (listed.Id, listed.FirstBuffer, listed.Count, listed.Free));
    }

    [Fact]
    public void List_ShowsTheDevicesByName_WithTheCountersLastPublished()
    {
        using ZcCluster cluster = Owner(buffers: 64);
        int eth = cluster.AddDevice("af_packet:eth1?latency=10");
        int longName = cluster.AddDevice("pcap:/" + new string('x', 100) + ".pcap");
        cluster.PublishDeviceStats(eth, new DeviceStats(received: 1000, bytes: 64_000, droppedNoBuffer: 3, droppedKernel: 7, sent: 5, sendFailed: 1));
        ClusterInfo info = Assert.Single(ClusterDirectory.List(), c => c.Id == cluster.Id);
        Assert.Equal(2, info.Devices.Count);
        Assert.Equal((eth, "af_packet:eth1?latency=10", new DeviceStats(1000, 64_000, 3, 7, 5, 1)), (info.Devices[0].Id, info.Devices[0].Name, info.Devices[0].Stats));
        Assert.Equal(("pcap:/" + new string('x', 100))[..56], info.Devices[longName].Name);   // cut to fit
        Assert.Equal(default, info.Devices[longName].Stats);
        Assert.Throws<ArgumentOutOfRangeException>(() => cluster.PublishDeviceStats(2, default));
        for (int i = 2; i < ZcFlow.Memory.ArenaLayout.MaxDevices; i++) cluster.AddDevice($"gen:{i}");
        Assert.Contains("maximum of 64 devices", Assert.Throws<InvalidOperationException>(() => cluster.AddDevice("one too many")).Message);
    }
}
