using System.Buffers.Binary;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Parsing;
using ZcFlow.Queues;
using ZcFlow.Workers;

namespace ZcFlow.Tests;

public class BalancerTests(ITestOutputHelper output)
{
    [Fact]
    public void Generator_GivesBothDirectionsOfEachFlow_WithSequenceNumbers_AndStopsAtItsCount()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(64);
        using IPacketSource gen = Device.OpenSource("gen:64?flows=3&count=10", pool, 5);
        var burst = new PacketHandle[16];
        Assert.Equal(10, gen.ReceiveBurst(burst));
        Assert.True(gen.IsExhausted);
        Assert.Equal(0, gen.ReceiveBurst(burst));
        for (int i = 0; i < 10; i++)
        {
            Assert.Equal(64, burst[i].Length);
            Assert.Equal(5u, burst[i].DeviceIndex);
            Assert.Equal(i, BinaryPrimitives.ReadInt64BigEndian(burst[i].Data[GeneratorDevice.SequenceOffset..]));
            PacketParser.Parse(burst[i].Data, out PacketInfo info);
            Assert.Equal(ParseStop.Complete, info.Stop);
        }
        PacketParser.Parse(burst[0].Data, out PacketInfo there);
        PacketParser.Parse(burst[1].Data, out PacketInfo back);
        Assert.Equal(there.Outer.Source, back.Outer.Destination);
        Assert.Equal(there.Outer.SourcePort, back.Outer.DestinationPort);
    }

    // Packet i is template i % (2 x flows), of size Imix[i % 12] for imix, whatever bursts it came in: the frames repeat
    // with that period but for their sequence numbers, each direction of a flow the other's mirror, every IPv4 header checksummed.
    [Theory]
    [InlineData("gen:60?flows=3", 6)]
    [InlineData("gen:64?flows=5", 10)]
    [InlineData("gen:100?flows=2", 4)]
    [InlineData("gen:imix?flows=3", 12)]
    public void Generator_RepeatsItsFlowsInOrder_AcrossBurstsOfAnySize(string name, int period)
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 256, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(256);
        using IPacketSource gen = Device.OpenSource(name, pool, 0);
        var frames = new List<byte[]>();
        var burst = new PacketHandle[64];
        for (int call = 0; frames.Count < 200; call++)
        {
            int n = gen.ReceiveBurst(burst.AsSpan(0, 1 + call * 7 % 64));
            foreach (PacketHandle p in burst.AsSpan(0, n)) frames.Add(p.Data.ToArray());
            pool.ReleaseBurst(burst.AsSpan(0, n));
        }
        for (int i = 0; i < frames.Count; i++)
        {
            byte[] frame = frames[i];
            Assert.Equal(i, BinaryPrimitives.ReadInt64BigEndian(frame.AsSpan(GeneratorDevice.SequenceOffset)));
            uint sum = 0;
            for (int k = 14; k < 34; k += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(k));
            while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
            Assert.Equal(0xFFFFu, sum);
            if (i % 2 == 1)
            {
                Assert.Equal(frames[i - 1].AsSpan(26, 4).ToArray(), frame.AsSpan(30, 4).ToArray());   // source and destination swapped
                Assert.Equal(frames[i - 1].AsSpan(34, 2).ToArray(), frame.AsSpan(36, 2).ToArray());   // and the ports
            }
            if (i < period) continue;
            byte[] earlier = frames[i - period];
            Assert.Equal(earlier.Length, frame.Length);
            Assert.True(frame.AsSpan(0, GeneratorDevice.SequenceOffset).SequenceEqual(earlier.AsSpan(0, GeneratorDevice.SequenceOffset)), $"packet {i} is not packet {i - period}'s flow");
            Assert.True(frame.AsSpan(GeneratorDevice.SequenceOffset + 8).SequenceEqual(earlier.AsSpan(GeneratorDevice.SequenceOffset + 8)), $"packet {i}'s payload differs from packet {i - period}'s");
        }
    }

    // The generator writes a buffer's payload once and afterwards its headers and sequence number; a buffer that another device of the
    // same pool received into meanwhile is written whole again. Every frame equals, byte for byte, a generator's whose
    // buffers were never used before.
    [Theory]
    [InlineData("gen:64?flows=3")]
    [InlineData("gen:imix?flows=2")]
    public void Generator_ReusingItsBuffers_SendsTheSameFrames_AsOnFreshBuffers_AfterAnotherDeviceWroteThem(string name)
    {
        const int Packets = 600;
        using ZcCluster cluster = TestClusters.Create(buffers: Packets + 16, bufferSize: 2048);
        BufferPool fresh = cluster.CreatePool(Packets), reused = cluster.CreatePool(16);
        using IPacketSource reference = Device.OpenSource(name, fresh, 0), gen = Device.OpenSource(name, reused, 0);
        var expected = new PacketHandle[Packets];
        Assert.Equal(Packets, reference.ReceiveBurst(expected));
        var burst = new PacketHandle[16];
        for (int at = 0, call = 0; at < Packets; call++)
        {
            if (call % 5 == 4)
            {
                // Another device of this pool: garbage in some buffers, then back to the pool.
                int taken = reused.GetBurst(burst.AsSpan(0, 1 + call % 7));
                foreach (PacketHandle p in burst.AsSpan(0, taken))
                {
                    p.Buffer.Fill(0xAB);
                    p.SetReceived(1514, 1514, 0, deviceIndex: 9);
                }
                reused.ReleaseBurst(burst.AsSpan(0, taken));
            }
            int n = gen.ReceiveBurst(burst.AsSpan(0, Math.Min(1 + call * 5 % 16, Packets - at)));
            for (int i = 0; i < n; i++, at++)
                Assert.True(burst[i].Data.SequenceEqual(expected[at].Data), $"packet {at} differs from the generator's on a fresh buffer");
            reused.ReleaseBurst(burst.AsSpan(0, n));
        }
        fresh.ReleaseBurst(expected);
    }

    [Fact]
    public void ImixGenerator_SendsSevenSmallFourMediumOneLargeInEveryTwelve_EachAWholeUdpPacket_AndCountsTheirBytes()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(64);
        using IPacketSource gen = Device.OpenSource("gen:imix?flows=5&count=24", pool, 0);
        var burst = new PacketHandle[32];
        Assert.Equal(24, gen.ReceiveBurst(burst));
        int[] sizes = [.. burst.Take(24).Select(p => p.Length)];
        Assert.Equal([.. GeneratorDevice.Imix, .. GeneratorDevice.Imix], sizes);
        Assert.Equal(2 * (7 * 60 + 4 * 590 + 1514), (int)gen.Stats.Bytes);
        for (int i = 0; i < 24; i++)
        {
            Span<byte> frame = burst[i].Data;
            PacketParser.Parse(frame, out PacketInfo info);
            Assert.Equal(ParseStop.Complete, info.Stop);
            Assert.Equal(frame.Length - 14, BinaryPrimitives.ReadUInt16BigEndian(frame[16..]));   // the IP total length
            Assert.Equal(i, BinaryPrimitives.ReadInt64BigEndian(frame[GeneratorDevice.SequenceOffset..]));
        }
        pool.ReleaseBurst(burst.AsSpan(0, 24));
    }

    [Theory]
    [InlineData("gen:64?flows=x")]
    [InlineData("gen:big")]
    [InlineData("gen:64?speed=9")]
    [InlineData("nosuch0")]
    [InlineData("af_packet:nosuch0")]
    [InlineData("af_packet:nosuch0?snaplen=x")]
    [InlineData("xdp:nosuch0@0")]
    public void OpeningABadDeviceName_SaysWhatIsSupported(string name)
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 8, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(8);
        var e = Assert.Throws<ArgumentException>(() => Device.OpenSource(name, pool, 0));
        Assert.Contains(name.Split('?')[0], e.Message);
    }

    [Fact]
    public void Balancer_1_000_000_GeneratedPackets_EveryFlowBothWaysOnOneQueue_InOrder_NoneLost()
    {
        const int Count = 1_000_000, Queues = 4;
        using ZcCluster cluster = TestClusters.Create(buffers: 8192, bufferSize: 128);
        BufferPool pool = cluster.CreatePool(8192);
        var queues = Enumerable.Range(0, Queues).Select(_ => cluster.CreateQueue(1024)).ToArray();
        IPacketSource gen = Device.OpenSource($"gen:64?flows=1000&count={Count}", pool, 0);
        var balancer = new Balancer<FiveTupleHash>(pool, [gen], queues, new FiveTupleHash(), lossless: true);

        var queueOfFlow = new Dictionary<(UInt128, UInt128, ushort, ushort), int>();
        var lastSeq = new long[Queues];
        Array.Fill(lastSeq, -1);
        long received = 0;
        var burst = new PacketHandle[32];
        using (var worker = ZcWorker.Start("balancer", balancer.DoWork))
        {
            while (received < Count)
            {
                int idle = 0;
                for (int q = 0; q < Queues; q++)
                {
                    int n = queues[q].Consumer.ReceiveBurst(burst);
                    if (n == 0) { idle++; continue; }
                    for (int k = 0; k < n; k++)
                    {
                        long seq = BinaryPrimitives.ReadInt64BigEndian(burst[k].Data[GeneratorDevice.SequenceOffset..]);
                        Assert.True(seq > lastSeq[q], $"queue {q}: packet {seq} after {lastSeq[q]}");
                        lastSeq[q] = seq;
                        PacketParser.Parse(burst[k].Data, out PacketInfo info);
                        FlowKey f = info.Outer;
                        var conversation = f.Source < f.Destination ? (f.Source, f.Destination, f.SourcePort, f.DestinationPort) : (f.Destination, f.Source, f.DestinationPort, f.SourcePort);
                        if (queueOfFlow.TryGetValue(conversation, out int seen)) Assert.Equal(seen, q);
                        else queueOfFlow[conversation] = q;
                    }
                    queues[q].Consumer.ReleaseBurst(burst.AsSpan(0, n));
                    received += n;
                }
                if (idle == Queues) Assert.True(worker.IsRunning, $"the balancer stopped after {received} packets: {worker.Fault}");
            }
        }
        output.WriteLine($"{received} packets, {queueOfFlow.Count} conversations over {Queues} queues");
        Assert.Equal(Count, received);
        Assert.Equal(1000, queueOfFlow.Count);
        Assert.Equal(Queues, queueOfFlow.Values.Distinct().Count());
        Assert.All(queues, q => Assert.Equal(0UL, q.Stats.Dropped));
        Assert.Equal((ulong)Count, balancer.Received);
        pool.Reclaim();
        Assert.Equal(pool.Capacity, pool.Available);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(1024)]
    public void LosslessBalancer_WithQueuesOfAnySize_AndTwoInputs_LosesNothing(int slots)
    {
        const int Count = 20_000;
        using ZcCluster cluster = TestClusters.Create(buffers: 1024, bufferSize: 128);
        BufferPool pool = cluster.CreatePool(1024);
        EgressQueue queue = cluster.CreateQueue(slots);
        IPacketSource a = Device.OpenSource($"gen:64?flows=10&count={Count}", pool, 0), b = Device.OpenSource($"gen:64?flows=10&count={Count}", pool, 1);
        var balancer = new Balancer<RoundRobin>(pool, [a, b], [queue], new RoundRobin(), lossless: true);
        long received = 0;
        var burst = new PacketHandle[32];
        using (var worker = ZcWorker.Start("balancer", balancer.DoWork))
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (received < 2 * Count)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"{received} of {2 * Count} after 30 s with {slots}-slot queues: {worker.Fault}");
                int n = queue.Consumer.ReceiveBurst(burst);
                queue.Consumer.ReleaseBurst(burst.AsSpan(0, n));
                received += n;
            }
        }
        Assert.Equal(2 * Count, received);
        Assert.Equal(0UL, queue.Stats.Dropped);
    }

    [Fact]
    public void LosslessBalancer_DoesNotWaitForAStuckConsumer_ItsQueueDrops_TheOtherGetsEverything()
    {
        const int Count = 200_000;
        using ZcCluster cluster = TestClusters.Create(buffers: 2048, bufferSize: 128);
        BufferPool pool = cluster.CreatePool(2048);
        EgressQueue stuck = cluster.CreateQueue(256), live = cluster.CreateQueue(256);
        IPacketSource gen = Device.OpenSource($"gen:64?flows=64&count={Count}", pool, 0);
        var balancer = new Balancer<RoundRobin>(pool, [gen], [stuck, live], new RoundRobin(), lossless: true);
        long received = 0, taken = 0;
        var burst = new PacketHandle[32];
        using (var worker = ZcWorker.Start("balancer", balancer.DoWork))
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (received < Count / 2)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"{received} of {Count / 2} after 20 s: the balancer waited for the stuck queue ({worker.Fault}): stuck {stuck.IsStuck}, held {stuck.Held}, waited for {stuck.IsWaitedFor}, full {stuck.IsFull}, {stuck.Stats}");
                if (taken < 100) taken += stuck.Consumer.ReceiveBurst(burst.AsSpan(0, 4));   // takes a few, then never again (and never releases)
                int n = live.Consumer.ReceiveBurst(burst);
                live.Consumer.ReleaseBurst(burst.AsSpan(0, n));
                received += n;
            }
            output.WriteLine($"the live queue got {received} in {clock.Elapsed.TotalSeconds:F1} s; the stuck one dropped {stuck.Stats.Dropped}, flagged stuck: {stuck.IsStuck}");
        }
        Assert.Equal(Count / 2, received);
        Assert.Equal(0UL, live.Stats.Dropped);
        Assert.True(stuck.IsStuck);
        Assert.True(stuck.Stats.Dropped > 0);
    }

    [Fact]
    public void BalancerProcess_WithTwoConsumerProcesses_DeliversEveryPacketOnce_EachConversationToOneConsumer()
    {
        const long Count = 2_000_000;
        uint cluster = TestClusters.NextId();
        string keys = Path.Combine(Path.GetTempPath(), $"zcflow-keys-{Environment.ProcessId}-");
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", cluster, "-n", 2, "-m", 8, "-i", $"gen:64?flows=5000&count={Count}", "-L", "-W", 1]);
        using ChildProcess first = ChildProcess.Start("drain", [cluster, 0, keys + "0"]);
        using ChildProcess second = ChildProcess.Start("drain", [cluster, 1, keys + "1"]);
        first.WaitFor("attached");
        second.WaitFor("attached");

        // Wait, through the host's listing of clusters, until every packet has been received.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var info = ZcFlow.Ipc.ClusterDirectory.List().SingleOrDefault(c => c.Id == cluster);
            if (info is { Queues.Count: 2 } && info.Queues.Sum(q => (long)q.Stats.Received) + info.Queues.Sum(q => (long)q.Stats.Dropped) >= Count) break;
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), $"the consumers did not get every packet: {balancer.Output}");
            Thread.Sleep(20);
        }
        var stats = ZcFlow.Ipc.ClusterDirectory.List().Single(c => c.Id == cluster).Queues;
        // The listing shows the input device too, with the counters the owner writes every second.
        string input = $"gen:64?flows=5000&count={Count}";
        while (ZcFlow.Ipc.ClusterDirectory.List().Single(c => c.Id == cluster).Devices.SingleOrDefault(d => d.Name == input)?.Stats.Received != Count)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), "the listing never showed the input's count");
            Thread.Sleep(20);
        }
        using (ChildProcess zstat = ChildProcess.Run("ZStat", []))
        {
            Assert.Equal(0, zstat.WaitForExit());
            Assert.Contains($"  {input}  received {Count:N0} ", zstat.Output);
        }
        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());
        long a = long.Parse(first.WaitFor("ok").Split(' ')[1]), b = long.Parse(second.WaitFor("ok").Split(' ')[1]);
        ulong dropped = (ulong)stats.Sum(q => (long)q.Stats.Dropped);
        output.WriteLine($"consumers got {a} + {b}, {dropped} dropped");
        Assert.Equal(Count, a + b + (long)dropped);
        Assert.Equal(0UL, dropped);
        string[] k0 = File.ReadAllLines(keys + "0"), k1 = File.ReadAllLines(keys + "1");
        File.Delete(keys + "0");
        File.Delete(keys + "1");
        Assert.Equal(5000, k0.Length + k1.Length);
        Assert.Empty(k0.Intersect(k1));
    }
}
