using System.Diagnostics;
using ZcFlow.Ipc;

namespace ZcFlow.Tests;

/// <summary>
/// The Balancer sample as users run it, a process of its own, with consumer processes attached
/// and killed around it: what arrives is checked packet by packet, what the owner holds through
/// the host's listing.
/// </summary>
public class BalancerProcessTests(ITestOutputHelper output)
{
    [Fact]
    public void OneHundredMillionPackets_ThroughTheBalancerProcess_ToThreeConsumerProcesses_ArriveExactlyOnce_InOrderPerFlow()
    {
        const long Count = 100_000_000;
        const int Flows = 4096;
        uint cluster = TestClusters.NextId();
        string input = $"gen:64?flows={Flows}&count={Count}";
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", cluster, "-n", 3, "-m", 8, "-i", input, "-L", "-W", 2]);
        var consumers = Enumerable.Range(0, 3).Select(q => ChildProcess.Start("flows", [cluster, q, Flows])).ToArray();
        try
        {
            foreach (ChildProcess c in consumers) c.WaitFor("attached");
            var clock = Stopwatch.StartNew();
            ClusterInfo done = Listing.WaitFor(cluster,
                i => i.Devices.SingleOrDefault(d => d.Name == input)?.Stats.Received == Count && i.Queues.All(q => q.Stats.Received == q.Stats.Sent),
                "every packet generated and received", seconds: 600);
            double seconds = clock.Elapsed.TotalSeconds;
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
            long[] got = consumers.Select(c => long.Parse(c.WaitFor("ok").Split(' ')[1])).ToArray();
            output.WriteLine($"{Count:N0} packets in {seconds:F1} s ({Count / seconds / 1e6:F1} Mpps): consumers got {string.Join(" + ", got)}; queues {string.Join("; ", done.Queues.Select(q => q.Stats))}");
            Assert.Equal(Count, got.Sum());
            Assert.All(done.Queues, q => Assert.Equal(0UL, q.Stats.Dropped + q.Stats.Errors));
        }
        finally
        {
            foreach (ChildProcess c in consumers) c.Dispose();
        }
    }

    [Fact]
    public void Chaos_200ConsumersKilledAtRandom_NoBufferLeaks_TheHonestConsumerGetsEveryPacketRoutedToIt()
    {
        const int Kills = 200;
        const long Count = 3_000_000;
        uint cluster = TestClusters.NextId();
        string input = $"gen:64?flows=1024&rate=100000&count={Count}";
        string keys = Path.Combine(Path.GetTempPath(), $"zcflow-chaos-{Environment.ProcessId}-{cluster}");
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", cluster, "-n", 3, "-m", 0, "-q", 1024, "-i", input, "-L", "-W", 1]);
        using ChildProcess honest = ChildProcess.Start("drain", [cluster, 2, keys + "-2"]);
        honest.WaitFor("attached");

        // Two queues, each a stream of consumers killed with SIGKILL at a random moment after they attached.
        var random = new Random(20261125);
        int[][] delays = [.. Enumerable.Range(0, 2).Select(_ => Enumerable.Range(0, Kills / 2).Select(_ => random.Next(0, 300)).ToArray())];
        output.WriteLine("seed 20261125");
        Parallel.For(0, 2, q =>
        {
            foreach (int delay in delays[q])
            {
                using ChildProcess victim = ChildProcess.Start("spin", [cluster, q]);
                victim.WaitFor("attached");
                Thread.Sleep(delay);
                victim.Kill();
            }
        });

        // Then honest consumers empty the two queues, and everything comes to rest.
        using ChildProcess drain0 = ChildProcess.Start("drain", [cluster, 0, keys + "-0"]);
        using ChildProcess drain1 = ChildProcess.Start("drain", [cluster, 1, keys + "-1"]);
        drain0.WaitFor("attached");
        drain1.WaitFor("attached");
        ClusterInfo rest = Listing.WaitFor(cluster,
            i => i.Devices.SingleOrDefault(d => d.Name == input)?.Stats.Received == Count && i.Queues.All(q => q.Stats.Received == q.Stats.Sent && q.Held == 0)
                 && i.Pools.All(p => p.Free == p.Count),
            "every buffer back in the pool", seconds: 180);
        PoolInfo pool = Assert.Single(rest.Pools);
        QueueInfo honestQueue = rest.Queues[2];
        output.WriteLine($"after {Kills} kills: pool {pool.Free} of {pool.Count} free; queues {string.Join("; ", rest.Queues.Select(q => q.Stats))}");
        Assert.Equal(pool.Count, pool.Free);
        Assert.Equal(0UL, honestQueue.Stats.Dropped + honestQueue.Stats.Errors);

        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());
        long received = long.Parse(honest.WaitFor("ok").Split(' ')[1]);
        Assert.Equal((long)honestQueue.Stats.Sent, received);
        Assert.Equal(Count / 3, received);   // round robin: every third packet, all of them
        foreach (string f in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(keys) + "*")) File.Delete(f);
    }

    [Fact]
    public void ZCountWithAFilterAndTouch_CountsOnlyTheMatchingPackets_AndReleasesTheRest()
    {
        // zcount_ipc's -f, and -t: 300 DNS packets among 200 TCP ones, all queued before ZCount attaches.
        string pcap = Path.Combine(Path.GetTempPath(), $"zcflow-zcount-{Environment.ProcessId}.pcap");
        long dnsBytes = 0;
        using (var writer = new Devices.CaptureWriter(pcap))
            for (int i = 0; i < 500; i++)
            {
                byte[] frame = i % 5 < 3
                    ? Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 8 + i % 50).Udp(5000, 53, i % 50).Add(new byte[i % 50]).ToArray()
                    : Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 6, 20).Tcp(5000, 80).ToArray();
                if (i % 5 < 3) dnsBytes += frame.Length;
                writer.Write(frame, i);
            }
        try
        {
            uint cluster = TestClusters.NextId();
            using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", cluster, "-n", 1, "-i", "pcap:" + pcap]);
            ClusterInfo info = Listing.WaitFor(cluster, i => i.Queues[0].Stats.Sent == 500, "the capture queued", seconds: 30);
            using ChildProcess zcount = ChildProcess.Run("ZCount", ["-c", cluster, "-i", 0, "-f", "udp port 53", "-t"]);
            Listing.WaitFor(cluster, i => i.Queues[0].Stats.Received == 500 && i.Queues[0].Held == 0, "every packet received and released", seconds: 30);
            zcount.Terminate();
            Assert.Equal(0, zcount.WaitForExit());
            Assert.Contains($"total 300 pkts {dnsBytes:N0} bytes", zcount.Output);
            Assert.Contains("200 filtered out, bytes summed to", zcount.Output);
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());

            using ChildProcess bad = ChildProcess.Run("ZCount", ["-c", cluster, "-i", 0, "-f", "udp prot 53"]);
            Assert.Equal(1, bad.WaitForExit());
            Assert.Contains("error: -f: filter 'udp prot 53'", bad.Errors);
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Fact]
    public void ZBounceIpc_TakesAQueueOfOneClusterIntoAnotherClustersIngressQueue_EveryPacketInOrder()
    {
        // zbounce_ipc: cluster 1's queue 0 -> ZBounce -> cluster 2's ingress queue 0 -> its Balancer -> queue 1, read here.
        const int Count = 3000;
        string pcap = Path.Combine(Path.GetTempPath(), $"zcflow-bounce-ipc-{Environment.ProcessId}.pcap");
        using (var writer = new Devices.CaptureWriter(pcap))
            for (int i = 0; i < Count; i++)
                writer.Write(Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 12).Udp(1000, 53, 4).U32((uint)i).ToArray(), i);
        try
        {
            uint from = TestClusters.NextId(), to = TestClusters.NextId();
            using ChildProcess second = ChildProcess.Run("Balancer", ["-c", to, "-i", "Q", "-n", 1]);
            Listing.WaitForRunning(to, second);
            using AttachedQueue consumer = AttachedQueue.Attach(to, 1);
            using ChildProcess first = ChildProcess.Run("Balancer", ["-c", from, "-i", "pcap:" + pcap, "-n", 1, "-L", "-W", 2]);
            Listing.WaitForRunning(from, first);
            using ChildProcess bounce = ChildProcess.Run("ZBounce", ["-i", $"zc:{from}@0", "-o", $"zc:{to}@0"]);
            bounce.WaitFor("bouncing");
            var got = new List<uint>();
            var burst = new Buffers.PacketHandle[32];
            var clock = Stopwatch.StartNew();
            while (got.Count < Count && clock.Elapsed < TimeSpan.FromSeconds(60))
            {
                int n = consumer.Queue.ReceiveBurst(burst);
                if (n == 0) Thread.Sleep(1);
                foreach (Buffers.PacketHandle p in burst.AsSpan(0, n)) got.Add(System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(p.Data[42..]));
                consumer.Queue.ReleaseBurst(burst.AsSpan(0, n));
            }
            Assert.Equal(Enumerable.Range(0, Count).Select(i => (uint)i), got);
            bounce.Terminate();
            Assert.Equal(0, bounce.WaitForExit());
            Assert.Contains($"total {Count:N0} pkts zc:{from}@0 -> zc:{to}@0", bounce.Output);
            first.Terminate();
            second.Terminate();
            Assert.Equal(0, first.WaitForExit());
            Assert.Equal(0, second.WaitForExit());
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Fact]
    public void OwnerKilled_ZCountSaysSoWithinASecond_AndAttachesToTheNextOwnerByItself()
    {
        uint cluster = TestClusters.NextId();
        object[] balancerArgs = ["-c", cluster, "-n", 1, "-i", "gen:64?flows=16&rate=20000"];
        using ChildProcess first = ChildProcess.Run("Balancer", balancerArgs);
        Listing.WaitFor(cluster, _ => true, "the first owner", seconds: 30);
        using ChildProcess zcount = ChildProcess.Run("ZCount", ["-c", cluster, "-i", 0]);
        zcount.WaitFor("attached to");
        zcount.WaitFor(" ");   // a stats line

        first.Kill();
        var clock = Stopwatch.StartNew();
        string gone = zcount.WaitFor("owner gone", seconds: 10);
        TimeSpan noticed = clock.Elapsed;
        output.WriteLine($"{noticed.TotalMilliseconds:F0} ms: {gone}");
        Assert.True(noticed < TimeSpan.FromSeconds(1), $"ZCount took {noticed} to notice");

        using ChildProcess second = ChildProcess.Run("Balancer", balancerArgs);
        clock.Restart();
        zcount.WaitFor("attached to", seconds: 30);
        output.WriteLine($"attached again {clock.ElapsedMilliseconds} ms after the second owner started");
        Listing.WaitFor(cluster, i => i.Queues[0].ConsumerPid == zcount.Pid && i.Queues[0].Stats.Received > 1000, "packets to the reattached ZCount", seconds: 30);

        zcount.Terminate();
        Assert.Equal(0, zcount.WaitForExit());
        Assert.Contains("total ", zcount.Output);
        second.Terminate();
        Assert.Equal(0, second.WaitForExit());
    }
}
