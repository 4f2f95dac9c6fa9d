using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Ipc;
using ZcFlow.Queues;

namespace ZcFlow.Tests;

/// <summary>
/// What a consumer process can and cannot do to the owner and to the other consumers: each test
/// runs real consumer processes beside an owner in this process and checks every packet the
/// honest ones receive (sequence and bytes).
/// </summary>
public class IsolationTests(ITestOutputHelper output)
{
    // An owner with one pool of every buffer and two queues of 256 slots whose buffers come back to it.
    private static (ZcCluster Cluster, BufferPool Pool, EgressQueue First, EgressQueue Second) Owner(int buffers)
    {
        ZcCluster cluster = ZcCluster.Create(TestClusters.NextId(), new ClusterOptions
        {
            BufferCount = buffers, BufferSize = 128, MaxQueues = 4, UseHugePages = false, Warn = _ => { },
        });
        BufferPool pool = cluster.CreatePool(buffers);
        EgressQueue first = cluster.CreateQueue(256), second = cluster.CreateQueue(256);
        pool.ReclaimFrom(first);
        pool.ReclaimFrom(second);
        return (cluster, pool, first, second);
    }

    private static PacketHandle Take(BufferPool pool, int seconds = 30)
    {
        var clock = Stopwatch.StartNew();
        PacketHandle p;
        while (!pool.TryGet(out p))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(seconds), $"the pool stayed empty for {seconds} s: {pool.Available} of {pool.Capacity} free");
            Thread.Yield();
        }
        return p;
    }

    [Fact]
    public void HostileConsumer_ThatResizesScribblesAndWritesIntoPackets_HurtsOnlyItself()
    {
        const long HonestPackets = 300_000;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        (ZcCluster cluster, BufferPool pool, EgressQueue hostile, EgressQueue honest) = Owner(buffers: 4096);
        using ZcCluster owned = cluster;
        using ChildProcess vandal = ChildProcess.Start("vandal", [cluster.Id, 0, 20261125, 400]);
        using ChildProcess good = ChildProcess.Start("consume", [cluster.Id, 1, HonestPackets, 0, 1]);
        vandal.WaitFor("attached");
        good.WaitFor("attached");

        var burst = new PacketHandle[16];
        long seq = 0;
        while (seq < HonestPackets)
        {
            // Keep the hostile queue busy too, while its consumer lives: whatever it does, sends there only fail and count.
            // (Once it is gone, what is sent there waits for the queue's next consumer, who expects its own packets.)
            PacketHandle h = Take(pool);
            Payload.Stamp(h, -1);
            if (hostile.ConsumerPid == 0 || !hostile.TrySend(h)) pool.Release(h);
            int n = pool.GetBurst(burst.AsSpan(0, (int)Math.Min(16, HonestPackets - seq)));
            for (int k = 0; k < n; k++) Payload.Stamp(burst[k], seq++);
            Assert.Equal(n, honest.SendBurst(burst.AsSpan(0, n), QueueWait.Passive, timeout.Token));
            if (seq % 4096 == 0 || n == 0) pool.CheckConsumers();
        }
        good.WaitFor($"ok {HonestPackets}");
        string truncate = vandal.WaitFor("truncate refused", seconds: 120);
        vandal.WaitFor("writing into a packet", seconds: 120);
        int status = vandal.WaitForExit();
        output.WriteLine($"vandal: {truncate}; exit status {status}; {vandal.Output}");
        Assert.Matches(@"^truncate refused (\d+) of \1$", truncate);
        Assert.DoesNotContain("wrote into a packet", vandal.Output);
        Assert.NotEqual(0, status);   // the write into a read-only packet killed it

        Wait.Until(() => { pool.CheckConsumers(); pool.Reclaim(); return pool.Available == pool.Capacity; }, "every buffer back after the vandal died");
        output.WriteLine($"owner counted {hostile.Stats.Errors} errors on the hostile queue, the pool refused {pool.Errors} returned indices; the honest queue: {honest.Stats}");
        Assert.True(hostile.Stats.Errors + pool.Errors > 0);
        Assert.Equal(0UL, honest.Stats.Errors);
        Assert.Equal(0UL, honest.Stats.Dropped);

        // The queue the vandal wrecked works again for an honest consumer, on fresh memory.
        using ChildProcess next = ChildProcess.Start("consume", [cluster.Id, 0, 100, 0, 1]);
        next.WaitFor("attached");
        for (int i = 0; i < 100; i++)
        {
            PacketHandle p = Take(pool);
            Payload.Stamp(p, i);
            Assert.Equal(1, hostile.SendBurst([p], QueueWait.Passive, timeout.Token));
        }
        next.WaitFor("ok 100");
    }

    /// <summary>
    /// An ingress application is given its own spares to write, and nothing else: one that scribbles over every mapping it
    /// may write and then writes into another dies of it, alone; the other input's packets reach their consumer intact and
    /// in order; its queue serves the next application.
    /// </summary>
    [Fact]
    public void HostileIngressApplication_CanWriteOnlyItsOwnSpares_TheOtherInputArrivesIntact_AndItsQueueServesTheNext()
    {
        const long HonestPackets = 300_000;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        using ZcCluster cluster = ZcCluster.Create(TestClusters.NextId(), new ClusterOptions
        {
            BufferCount = 4096, BufferSize = 128, MaxQueues = 4, UseHugePages = false, Warn = _ => { },
        });
        IngressQueue ingress = cluster.CreateIngressQueue(256);
        EgressQueue honest = cluster.CreateQueue(256);
        BufferPool pool = cluster.CreatePool(4096, [ingress], sparesEach: 1024);
        pool.ReclaimFrom(honest);
        using ChildProcess vandal = ChildProcess.Start("ingress-vandal", [cluster.Id, 0, 20261202]);
        using ChildProcess good = ChildProcess.Start("consume", [cluster.Id, 1, HonestPackets, 0, 1]);
        vandal.WaitFor("attached");
        good.WaitFor("attached");

        var burst = new PacketHandle[16];
        var injected = new PacketHandle[32];
        long seq = 0, fromIngress = 0;
        while (seq < HonestPackets)
        {
            pool.Replenish(ingress);
            int m = ingress.ReceiveBurst(injected);
            fromIngress += m;
            pool.ReleaseBurst(injected.AsSpan(0, m));
            int n = pool.GetBurst(burst.AsSpan(0, (int)Math.Min(16, HonestPackets - seq)));
            for (int k = 0; k < n; k++) Payload.Stamp(burst[k], seq++);
            Assert.Equal(n, honest.SendBurst(burst.AsSpan(0, n), QueueWait.Passive, timeout.Token));
            if (seq % 4096 == 0 || n == 0) pool.CheckConsumers();
        }
        good.WaitFor($"ok {HonestPackets}");
        string scribbled = vandal.WaitFor("sent ", seconds: 60);
        vandal.WaitFor("writing into", seconds: 60);
        int status = vandal.WaitForExit();
        output.WriteLine($"vandal: {vandal.Output}; exit status {status}; {fromIngress} packets came from it; ingress queue {ingress.Stats}");
        Assert.NotEqual(0, status);   // the write into a read-only mapping killed it
        Assert.DoesNotContain("error: wrote", vandal.Output);
        // what it could write: its queue's rings and its own spares, nothing of the cluster's other memory
        string[] writable = scribbled[(scribbled.IndexOf(": ", StringComparison.Ordinal) + 2)..].Split(", ");
        Assert.Equal([$"/memfd:zcflow-{cluster.Id}@0", $"/memfd:zcflow-{cluster.Id}@0-spares"], writable.Order().ToArray());
        Assert.Equal(0UL, honest.Stats.Errors + honest.Stats.Dropped);

        try
        {
            // back in the pool, or stocked in the queue for its next application
            Wait.Until(() => { pool.CheckConsumers(); pool.Reclaim(); return pool.Available + ingress.SparesOut == pool.Capacity; }, "every buffer back after the vandal died", seconds: 10);
        }
        finally
        {
            output.WriteLine($"{pool.Available} of {pool.Capacity} free, {ingress.SparesOut} stocked in the ingress queue, {honest.Held} held by the honest one, {pool.Errors} errors");
        }
        // The next application of that queue sends, and every packet arrives, in order.
        using ChildProcess next = ChildProcess.Start("inject", [cluster.Id, 0, 999, 0, 1]);
        next.WaitFor("attached");
        Injected.ReceiveInOrder(pool, ingress, 999);
        next.WaitFor("sent 999");
        Assert.Equal(0, next.WaitForExit());
    }

    /// <summary>
    /// The header and directories of a running cluster overwritten by a process with full access (root, writing through the
    /// owner's <c>/proc/&lt;pid&gt;/map_files</c>): the owner puts them back and counts it, and consumers that attach afterwards,
    /// to every queue, receive every packet. Nothing a consumer builds comes from that memory.
    /// </summary>
    [Fact]
    public void HeaderAndDirectoriesOverwritten_ConsumersAttachAfterwardsToEveryQueue_AndTheOwnerCountsTheRepair()
    {
        if (Environment.UserName != "root") Assert.Skip("writing into another process's shared memory through /proc/<pid>/map_files needs root");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        using ZcCluster cluster = ZcCluster.Create(TestClusters.NextId(), new ClusterOptions { BufferCount = 1024, BufferSize = 128, MaxQueues = 4, UseHugePages = false, Warn = _ => { } });
        BufferPool pool = cluster.CreatePool(1024);
        EgressQueue[] queues = [cluster.CreateQueue(64), cluster.CreateQueue(64), cluster.CreateQueue(64)];
        foreach (EgressQueue q in queues) pool.ReclaimFrom(q);
        cluster.AddDevice("gen:64");

        // The cluster memory as the owner maps it: /proc/<pid>/maps names it memfd:zcflow-<id>; its file in map_files is that range.
        string mapping = File.ReadAllLines($"/proc/{Environment.ProcessId}/maps").Single(l => l.EndsWith($"/memfd:zcflow-{cluster.Id} (deleted)", StringComparison.Ordinal));
        string file = $"/proc/{Environment.ProcessId}/map_files/{mapping.Split(' ')[0]}";
        // Another process: random bytes over the whole header and directories, then random 4-byte writes all over the first
        // 64 KiB for two seconds, racing the owner's repairs.
        var start = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("""
            import os, random, sys, time
            f = os.open(sys.argv[1], os.O_RDWR)
            os.pwrite(f, os.urandom(24576), 0)
            end = time.time() + 2
            while time.time() < end:
                os.pwrite(f, os.urandom(4), random.randrange(0, 65536, 4))
            os.close(f)
            print("written")
            """);
        start.ArgumentList.Add(file);
        using (Process writer = Process.Start(start)!)
        {
            string said = writer.StandardOutput.ReadToEnd(), error = writer.StandardError.ReadToEnd();
            writer.WaitForExit();
            Assert.True(writer.ExitCode == 0 && said.Contains("written"), error);
        }
        Wait.Until(() => ClusterDirectory.List().SingleOrDefault(c => c.Id == cluster.Id) is { Problem: null, Queues.Count: 3, Repairs: > 0 } c
            && c.Devices.SingleOrDefault()?.Name == "gen:64", "the listing to read the cluster again, with the repairs counted", seconds: 5);
        output.WriteLine($"{cluster.Repairs} repairs");
        Assert.True(cluster.Repairs > 0);

        for (int q = 0; q < queues.Length; q++)
        {
            using ChildProcess consumer = ChildProcess.Start("consume", [cluster.Id, q, 500, 0, 1]);
            consumer.WaitFor("attached");
            for (int i = 0; i < 500; i++)
            {
                PacketHandle p = Take(pool);
                Payload.Stamp(p, i);
                Assert.Equal(1, queues[q].SendBurst([p], QueueWait.Passive, timeout.Token));
            }
            consumer.WaitFor("ok 500");
            Assert.Equal(0, consumer.WaitForExit());
        }
    }

    [Fact]
    public void ConsumerThatNeverReleases_HoldsOnlyItsQuota_TheOtherQueueLosesNothing()
    {
        const long Packets = 300_000;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        (ZcCluster cluster, BufferPool pool, EgressQueue hoard, EgressQueue honest) = Owner(buffers: 2048);
        using ZcCluster owned = cluster;
        Assert.Equal(512, hoard.Quota);   // twice its slots, unless the owner says otherwise
        using ChildProcess hoarder = ChildProcess.Start("hold", [cluster.Id, 0, 1_000_000]);
        using ChildProcess good = ChildProcess.Start("consume", [cluster.Id, 1, Packets, 0, 1]);
        hoarder.WaitFor("attached");
        good.WaitFor("attached");

        long seq = 0;
        while (seq < Packets)
        {
            PacketHandle h = Take(pool);   // would starve without the quota: the hoarder would have the whole pool
            Payload.Stamp(h, -1);
            if (!hoard.TrySend(h)) pool.Release(h);
            PacketHandle p = Take(pool);
            Payload.Stamp(p, seq++);
            Assert.Equal(1, honest.SendBurst([p], QueueWait.Passive, timeout.Token));
            if (seq % 4096 == 0) pool.CheckConsumers();
        }
        good.WaitFor($"ok {Packets}");
        output.WriteLine($"hoarder holds {hoard.Held} of its quota of {hoard.Quota}; its queue dropped {hoard.Stats.Dropped}; the honest queue {honest.Stats}");
        Assert.Equal(hoard.Quota, hoard.Held);
        Assert.True(hoard.Stats.Dropped > 0);
        Assert.Equal(0UL, honest.Stats.Dropped + honest.Stats.Errors);

        // A second without a release while it holds its whole quota: the owner flags it stuck.
        Wait.Until(() => { pool.CheckConsumers(); return hoard.IsStuck; }, "the hoarder flagged stuck", seconds: 5);
        Assert.False(hoard.IsWaitedFor);   // a lossless sender stops waiting for it
        QueueInfo listed = null!;
        Wait.Until(() => (listed = ClusterDirectory.List().Single(c => c.Id == cluster.Id).Queues[0]).Stuck, "the listing to show it stuck", seconds: 5);
        Assert.Equal(512, listed.Held);

        hoarder.Kill();
        Wait.Until(() => { pool.CheckConsumers(); pool.Reclaim(); return pool.Available == pool.Capacity; }, "the hoard back in the pool");
        Assert.Equal(0, hoard.Held);
    }

    [Fact]
    public void ConsumerInAnotherPidNamespace_IsSeenAliveWhileItIs_AndItsQueueIsFreedWhenItGoes()
    {
        if (Environment.UserName != "root") Assert.Skip("a PID namespace of its own (unshare --pid) needs root");
        (ZcCluster cluster, BufferPool pool, EgressQueue queue, _) = Owner(buffers: 512);
        using ZcCluster owned = cluster;
        using ChildProcess inside = ChildProcess.Run("Zc.TestHost", ["peek", cluster.Id, 0], newPidNamespace: true);
        string[] said = inside.WaitFor("attached ").Split(' ');   // "attached <its pid> owner <owner pid>", as it sees them
        int innerPid = int.Parse(said[1]), ownerAsSeen = int.Parse(said[3]);
        int outerPid = queue.ConsumerPid;
        output.WriteLine($"the consumer is pid {innerPid} in its namespace and {outerPid} in the owner's; it sees the owner as pid {ownerAsSeen}");
        Assert.NotEqual(0, outerPid);
        Assert.NotEqual(innerPid, outerPid);
        Assert.Equal(0, ownerAsSeen);   // the owner is outside its namespace
        string nspid = File.ReadLines($"/proc/{outerPid}/status").Single(l => l.StartsWith("NSpid:", StringComparison.Ordinal));
        Assert.EndsWith($"\t{innerPid}", nspid);

        // Alive: packets flow to it and come back, and nothing takes its queue from it.
        for (int i = 0; i < 1000; i++)
        {
            PacketHandle p = Take(pool);
            Payload.Stamp(p, i);
            while (!queue.TrySend(p)) { pool.CheckConsumers(); Thread.Yield(); }
        }
        Wait.Until(() => { pool.CheckConsumers(); pool.Reclaim(); return pool.Available == pool.Capacity; }, "its releases");
        Assert.Equal(outerPid, queue.ConsumerPid);

        Assert.Equal(0, inside.CloseAndWait());
        Wait.Until(() => { pool.CheckConsumers(); return queue.ConsumerPid == 0 && !queue.ConsumerGone; }, "its queue freed", seconds: 5);
        using AttachedQueue next = AttachedQueue.Attach(cluster.Id, 0);
    }
}
