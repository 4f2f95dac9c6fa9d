using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Filters;

namespace ZcFlow.Tests;

/// <summary>
/// Devices on real links: a veth pair in a network namespace of the test's own, traffic from
/// tcpreplay and tcpdump on the far end, corpus captures as the packets.
/// </summary>
public class LiveDeviceTests(ITestOutputHelper output)
{
    // Ethernet captures whose every record is whole and fits a 1514-byte frame; some are VLAN tagged (also 802.1ad).
    private static readonly string[] Replayed =
        ["afs.pcap", "mptcp-v0.pcap", "vrrp.pcap", "ptp_ethernet.pcap", "802.1ad_QinQ.pcap", "various_gre.pcap", "rpvstp-trunk-native-vid5.pcap", "MSTP_Intra-Region_BPDUs.pcap"];

    internal static List<byte[]> Packets(string file, Func<byte[], bool>? keep = null)
    {
        var packets = new List<byte[]>();
        using CaptureFile capture = CaptureFile.Open(file);
        while (capture.TryNext(out ReadOnlySpan<byte> data, out _, out _))
            if (keep is null || keep(data.ToArray())) packets.Add(data.ToArray());
        Assert.Null(capture.Problem);
        return packets;
    }

    // Receives until `expected` packets came or nothing came for a while (a second by default).
    internal static List<byte[]> Drain(IPacketSource device, BufferPool pool, int expected, int quietMs = 1000)
    {
        var got = new List<byte[]>();
        var burst = new PacketHandle[32];
        var quiet = Stopwatch.StartNew();
        while (got.Count < expected && quiet.ElapsedMilliseconds < quietMs)
        {
            int n = device.ReceiveBurst(burst);
            if (n == 0) { Thread.Sleep(1); continue; }
            quiet.Restart();
            foreach (PacketHandle p in burst.AsSpan(0, n)) got.Add(p.Data.ToArray());
            pool.ReleaseBurst(burst.AsSpan(0, n));
        }
        return got;
    }

    private static void AssertSame(List<byte[]> expected, List<byte[]> got, string what)
    {
        Assert.True(expected.Count == got.Count, $"{what}: {got.Count} packets, expected {expected.Count}");
        for (int i = 0; i < expected.Count; i++)
            Assert.True(expected[i].AsSpan().SequenceEqual(got[i]), $"{what}: packet {i} differs ({got[i].Length} bytes, expected {expected[i].Length})");
    }

    [Fact]
    public void AfPacket_CapturesReplayedCorpusCaptures_ByteForByte_InOrder_WithTheirVlanTags()
    {
        Corpus.SkipIfMissing();
        TestSetup.RequireTool("tcpreplay");
        using Veth veth = Veth.Create();
        using ZcCluster cluster = TestClusters.Create(buffers: 2048, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(2048);
        int total = 0;
        veth.Run(() =>
        {
            using var device = (AfPacketDevice)Device.OpenSource($"af_packet:{Veth.B}", pool, 3);
            foreach (string name in Replayed)
            {
                string file = Path.Combine(Corpus.Directory!, name);
                List<byte[]> expected = Packets(file);
                veth.Exec("tcpreplay", "-q", "-t", "-i", Veth.A, file);
                List<byte[]> got = Drain(device, pool, expected.Count);
                AssertSame(expected, got, name);
                total += got.Count;
            }
            DeviceStats stats = device.Stats;
            Assert.Equal((ulong)total, stats.Received);
            Assert.Equal(0UL, stats.DroppedKernel);
        });
        Assert.True(total > 1000);
        Assert.Equal(2048, pool.Available);
    }

    // Reads in place until `expected` frames came or nothing came for a while.
    private static List<byte[]> DrainInPlace(IFrameReader device, int expected, int quietMs = 1000)
    {
        var got = new List<byte[]>();
        var frames = new CapturedFrame[32];
        var quiet = Stopwatch.StartNew();
        while (got.Count < expected && quiet.ElapsedMilliseconds < quietMs)
        {
            int n = device.ReadBurst(frames);
            if (n == 0) { Thread.Sleep(1); continue; }
            quiet.Restart();
            foreach (CapturedFrame f in frames.AsSpan(0, n)) got.Add(f.Data.ToArray());
        }
        // One more read: nothing more came, and the blocks the last frames lay in go back to the kernel.
        Assert.Equal(0, device.ReadBurst(frames));
        return got;
    }

    // Frames read where they lie in the ring: the same bytes as copied, VLAN tags put back in place, with and without a
    // filter; and a ring of four blocks that takes more than its size, so every block read through went back.
    [Theory]
    [InlineData(null)]
    [InlineData("vlan and ip")]
    [InlineData("udp or icmp")]
    public void AfPacket_InPlace_GivesTheFramesByteForByte_WithTheirVlanTags_AndGivesEveryBlockBack(string? expression)
    {
        Corpus.SkipIfMissing();
        TestSetup.RequireTool("tcpreplay");
        TestSetup.RequireTool("tcpdump");
        using Veth veth = Veth.Create();
        using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(64);
        veth.Run(() =>
        {
            // The ring takes a whole replay before it is read: blocks handed over when full or 100 ms old, so a replay the
            // host slows down does not retire four nearly empty blocks and fill the ring (the kernel would drop, and the test say so).
            var options = new AfPacketOptions { BlockSize = 1 << 20, BlockCount = 4, BlockTimeoutMs = 100, Filter = expression is null ? null : BpfFilter.Compile(expression) };
            using AfPacketDevice device = AfPacketDevice.Open(Veth.B, pool, 0, options);
            Assert.Same(device, Device.InPlace(device));
            long bytes = 0;
            int total = 0;
            for (int round = 0; round < 8; round++)
            {
                foreach (string name in Replayed)
                {
                    string file = Path.Combine(Corpus.Directory!, name);
                    List<byte[]> expected = expression is null ? Packets(file) : TcpdumpKeeps(file, expression);
                    veth.Exec("tcpreplay", "-q", "-t", "-i", Veth.A, file);
                    List<byte[]> got = DrainInPlace(device, expected.Count, quietMs: expected.Count == 0 ? 100 : 1000);
                    AssertSame(expected, got, $"in place, '{expression}' over {name}");
                    bytes += got.Sum(f => f.Length);
                    total += got.Count;
                }
            }
            Assert.True(bytes > 4 * options.BlockSize || expression is not null, $"{bytes} bytes: not enough to go round the ring");
            DeviceStats stats = device.Stats;
            Assert.Equal((ulong)total, stats.Received);
            Assert.Equal(0UL, stats.DroppedKernel);
        });
        Assert.Equal(64, pool.Available);   // nothing copied into the pool
    }

    [Fact]
    public void Xdp_CapturesReplayedCorpusCaptures_IntoPoolBuffers_ByteForByte_AndGivesThemAllBack()
    {
        Corpus.SkipIfMissing();
        TestSetup.RequireTool("tcpreplay");
        using Veth veth = Veth.Create(mtu: 1500);
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, bufferSize: 1792);
        BufferPool pool = cluster.CreatePool(4096);
        veth.Run(() =>
        {
            using (var device = (XdpDevice)Device.OpenSource($"xdp:{Veth.B}@0", pool, 1))
            {
                Assert.False(device.IsZeroCopy);   // veth has copy mode only
                foreach (string name in Replayed)   // XDP sees frames before the kernel takes VLAN tags off
                {
                    string file = Path.Combine(Corpus.Directory!, name);
                    List<byte[]> expected = Packets(file);
                    veth.Exec("tcpreplay", "-q", "-t", "-i", Veth.A, file);
                    AssertSame(expected, Drain(device, pool, expected.Count), name);
                }
                Assert.Equal(0UL, device.Errors);
                Assert.Equal(0UL, device.Stats.DroppedKernel);
                Assert.True(pool.Available < 4096);   // the fill ring holds buffers while open
            }
            Assert.Equal(4096, pool.Available);
            // the program went with the socket: the interface has none left
            Assert.DoesNotContain("xdp", veth.Exec("ip", "link", "show", Veth.B));
        });
    }

    [Fact]
    public void Xdp_AProgramLeftByAKilledProcess_DoesNotStopTheNextOne()
    {
        Corpus.SkipIfMissing();
        TestSetup.RequireTool("tcpreplay");
        using Veth veth = Veth.Create(mtu: 1500);
        uint id = TestClusters.NextId();
        using (ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-i", $"xdp:{Veth.B}@0"], netns: veth.Namespace))
        {
            balancer.WaitFor("serving on");
            Assert.Contains("xdp", veth.Exec("ip", "link", "show", Veth.B));
            balancer.Kill();
        }
        Assert.Contains("xdp", veth.Exec("ip", "link", "show", Veth.B));   // left behind
        using ZcCluster cluster = TestClusters.Create(buffers: 1024, bufferSize: 1792);
        BufferPool pool = cluster.CreatePool(1024);
        string file = Path.Combine(Corpus.Directory!, "vrrp.pcap");
        List<byte[]> expected = Packets(file);
        veth.Run(() =>
        {
            using var device = (XdpDevice)Device.OpenSource($"xdp:{Veth.B}@0", pool, 0);
            veth.Exec("tcpreplay", "-q", "-t", "-i", Veth.A, file);
            AssertSame(expected, Drain(device, pool, expected.Count), "after a killed owner");
        });
    }

    [Theory]
    [InlineData("af_packet:" + Veth.B)]
    [InlineData("xdp:" + Veth.B + "@0")]
    public void Receiving_AllocatesNothingPerPacket(string name)
    {
        Corpus.SkipIfMissing();
        TestSetup.RequireTool("tcpreplay");
        using Veth veth = Veth.Create(mtu: 1500);
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, bufferSize: 1792);
        BufferPool pool = cluster.CreatePool(4096);
        string file = Path.Combine(Corpus.Directory!, "afs.pcap");
        int perReplay = Packets(file).Count;
        veth.Run(() =>
        {
            using IPacketSource device = Device.OpenSource(name, pool, 0);
            var burst = new PacketHandle[32];
            long Receive(int expected)
            {
                long got = 0, bytes = 0, deadline = Environment.TickCount64 + 5000;
                while (got < expected && Environment.TickCount64 < deadline)
                {
                    int n = device.ReceiveBurst(burst);
                    for (int i = 0; i < n; i++) bytes += burst[i].Data[^1];
                    pool.ReleaseBurst(burst.AsSpan(0, n));
                    got += n;
                }
                return got;
            }
            // the XDP socket's receive ring holds 2048 descriptors: replay no more than that at once
            veth.Exec("tcpreplay", "-q", "-t", "-i", Veth.A, file);
            Assert.Equal(perReplay, Receive(perReplay));   // warm-up: first calls compile
            veth.Exec("tcpreplay", "-q", "-t", "-l", "3", "-i", Veth.A, file);
            long before = GC.GetAllocatedBytesForCurrentThread();
            long received = Receive(3 * perReplay);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(3 * perReplay, received);
            Assert.Equal(0, allocated);
        });
    }

    [Theory]
    [InlineData("af_packet:" + Veth.B + "?latency=20")]
    [InlineData("xdp:" + Veth.B + "@0?latency=20")]
    public void WaitingWithALatency_TakesPacketsInBatches_AndLosesNone(string name)
    {
        Corpus.SkipIfMissing();
        TestSetup.RequireTool("tcpreplay");
        using Veth veth = Veth.Create(mtu: 1500);
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, bufferSize: 1792);
        BufferPool pool = cluster.CreatePool(4096);
        string file = Path.Combine(Corpus.Directory!, "afs.pcap");
        List<byte[]> once = Packets(file);
        List<byte[]> expected = [.. once, .. once];
        veth.Run(() =>
        {
            using IPacketSource device = Device.OpenSource(name, pool, 0);
            var got = new List<byte[]>();
            var burst = new PacketHandle[64];
            int wakes = 0;
            // 10,000 packets a second: a wake-up a packet unless the device lets them gather
            using Process replay = veth.Start("tcpreplay", "-q", "-p", "10000", "-l", "2", "-i", Veth.A, file);
            long deadline = Environment.TickCount64 + 10_000;
            while (got.Count < expected.Count && Environment.TickCount64 < deadline)
            {
                int n = device.ReceiveBurst(burst);
                if (n == 0)
                {
                    if (device.WaitReadable(100)) wakes++;
                    continue;
                }
                foreach (PacketHandle p in burst.AsSpan(0, n)) got.Add(p.Data.ToArray());
                pool.ReleaseBurst(burst.AsSpan(0, n));
            }
            replay.WaitForExit();
            AssertSame(expected, got, name);
            Assert.Equal(0UL, device.Stats.DroppedKernel);
            Assert.True(wakes * 20 <= got.Count, $"{got.Count} packets took {wakes} wake-ups: fewer than 20 a wake-up");
        });
    }

    [Fact]
    public void ZeroCopyOnADriverWithout_SaysSo()
    {
        using Veth veth = Veth.Create(mtu: 1500);
        using ZcCluster cluster = TestClusters.Create(buffers: 256, bufferSize: 1792);
        BufferPool pool = cluster.CreatePool(256);
        veth.Run(() =>
        {
            var e = Assert.Throws<InvalidOperationException>(() => Device.OpenSource($"zc:{Veth.B}@0", pool, 0));
            Assert.Contains("zero copy", e.Message);
            Assert.Contains($"xdp:{Veth.B}@0", e.Message);
            Assert.Throws<ArgumentException>(() => Device.OpenSource($"xdp:{Veth.B}@7", pool, 0));
        });
        Assert.Equal(256, pool.Available);
    }

    [Theory]
    [InlineData("af_packet:" + Veth.B + "?latency=0", "BlockTimeoutMs (latency=) is 1 to 1000")]
    [InlineData("af_packet:" + Veth.B + "?latency=soon", "latency=MS")]
    [InlineData("af_packet:" + Veth.B + "?speed=1", "unknown option 'speed'")]
    [InlineData("xdp:" + Veth.B + "@0?ring=1000", "not 'ring=1000'")]
    [InlineData("xdp:" + Veth.B + "@0?latency=-1", "not 'latency=-1'")]
    [InlineData("xdp:" + Veth.B + "@0?mode=fast", "not 'mode=fast'")]
    public void BadDeviceOptions_AreClearErrors_AndLeaveNothingBehind(string name, string said)
    {
        using Veth veth = Veth.Create(mtu: 1500);
        using ZcCluster cluster = TestClusters.Create(buffers: 256, bufferSize: 1792);
        BufferPool pool = cluster.CreatePool(256);
        veth.Run(() =>
        {
            Assert.Contains(said, Assert.Throws<ArgumentException>(() => Device.OpenSource(name, pool, 0)).Message);
            Assert.DoesNotContain("xdp", veth.Exec("ip", "link", "show", Veth.B));
        });
        Assert.Equal(256, pool.Available);
    }

    [Theory]
    [InlineData("af_packet:" + Veth.A)]
    [InlineData("xdp:" + Veth.A + "@0")]
    public void Sending_TcpdumpOnTheFarEndSeesTheSameBytes(string device)
    {
        Corpus.SkipIfMissing();
        TestSetup.RequireTool("tcpdump");
        using Veth veth = Veth.Create(mtu: 1500);
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(4096);
        string output = Path.Combine(Path.GetTempPath(), $"zcflow-sent-{Environment.ProcessId}-{device.Length}.pcap");
        List<byte[]> expected = [.. Replayed.SelectMany(f => Packets(Path.Combine(Corpus.Directory!, f)))];
        try
        {
            using Process tcpdump = veth.Start("tcpdump", "-i", Veth.B, "-U", "-n", "-s", "0", "-c", $"{expected.Count}", "-w", output);
            WaitListening(tcpdump);
            veth.Run(() =>
            {
                using IPacketSink sink = Device.OpenSink(device, pool);
                foreach (byte[] frame in expected)
                {
                    Assert.True(pool.TryGet(out PacketHandle p));
                    frame.CopyTo(p.Buffer);
                    p.Length = frame.Length;
                    while (!sink.TrySend(p)) sink.Flush(wait: true);
                    pool.Release(p);
                }
                sink.Flush(wait: true);
                Assert.Equal((ulong)expected.Count, sink.Stats.Sent);
            });
            Assert.Equal(4096, pool.Available);   // what the device copied into to send came back
            Assert.True(tcpdump.WaitForExit(10_000), "tcpdump did not see every packet");
            AssertSame(expected, Packets(output), "tcpdump's capture");
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("udp or icmp")]
    [InlineData("vlan")]
    [InlineData("vlan and ip")]
    [InlineData("greater 300")]
    public void AfPacket_KernelFilter_KeepsExactlyWhatTcpdumpKeeps(string expression)
    {
        Corpus.SkipIfMissing();
        TestSetup.RequireTool("tcpreplay");
        TestSetup.RequireTool("tcpdump");
        BpfFilter filter = BpfFilter.Compile(expression);
        using Veth veth = Veth.Create();
        using ZcCluster cluster = TestClusters.Create(buffers: 2048, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(2048);
        veth.Run(() =>
        {
            using AfPacketDevice device = AfPacketDevice.Open(Veth.B, pool, 0, new AfPacketOptions { Filter = filter });
            foreach (string name in Replayed)
            {
                string file = Path.Combine(Corpus.Directory!, name);
                List<byte[]> expected = TcpdumpKeeps(file, expression);
                veth.Exec("tcpreplay", "-q", "-t", "-i", Veth.A, file);
                AssertSame(expected, Drain(device, pool, int.MaxValue, quietMs: 100), $"'{expression}' over {name}");
            }
        });
    }

    // What tcpdump -r keeps of a capture with a filter.
    internal static List<byte[]> TcpdumpKeeps(string file, string expression)
    {
        string kept = Path.Combine(Path.GetTempPath(), $"zcflow-kept-{Environment.ProcessId}-{Guid.NewGuid():N}.pcap");
        try
        {
            (int code, _, string err) = Tools.Run("tcpdump", "-r", file, "-w", kept, expression);
            Assert.True(code == 0, $"tcpdump -r {file} '{expression}': {err}");
            return Packets(kept);
        }
        finally
        {
            File.Delete(kept);
        }
    }

    [Fact]
    public void BalancerProcess_OnALiveInterface_KeepsWhatItsFilterFileKeeps_AndSendsAQueueOutOfAnotherInterface()
    {
        Corpus.SkipIfMissing();
        TestSetup.RequireTool("tcpreplay");
        TestSetup.RequireTool("tcpdump");
        using Veth veth = Veth.Create(pairs: 2);
        const string Expression = "udp or tcp";
        string[] files = [.. new[] { "afs.pcap", "mptcp-v0.pcap", "vrrp.pcap" }.Select(f => Path.Combine(Corpus.Directory!, f))];
        int expected = files.Sum(f => TcpdumpKeeps(f, Expression).Count);
        string prefix = Path.Combine(Path.GetTempPath(), $"zcflow-live-{Environment.ProcessId}-");
        File.WriteAllText(prefix + "filter", $"# what the analysis wants\n{Expression}\n");
        uint cluster = TestClusters.NextId();
        try
        {
            // queue 0 to a consumer process, queue 1 out of zcc, where tcpdump listens on its peer
            using ChildProcess balancer = ChildProcess.Run("Balancer",
                ["-c", cluster, "-i", Veth.B, "-n", 2, "-m", 8, "-f", prefix + "filter", "-r", $"1:{Veth.C}", "-W", 1, "-p"], netns: veth.Namespace);
            using ChildProcess drain = ChildProcess.Start("drain", [cluster, 0, prefix + "keys"]);
            drain.WaitFor("attached");
            balancer.WaitFor("serving on");
            using Process tcpdump = veth.Start("tcpdump", "-i", Veth.D, "-U", "-n", "-s", "0", "-w", prefix + "out.pcap");
            WaitListening(tcpdump);
            foreach (string file in files) veth.Exec("tcpreplay", "-q", "-t", "-i", Veth.A, file);
            Thread.Sleep(1000);
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
            long drained = long.Parse(drain.WaitFor("ok").Split(' ')[1]);
            Native.Libc.Kill(tcpdump.Id, 15);
            tcpdump.WaitForExit();
            List<byte[]> sent = Packets(prefix + "out.pcap");
            Assert.True(drained + sent.Count == expected, $"{drained} consumed + {sent.Count} sent, expected {expected}: {balancer.Output}");
            Assert.True(drained > 0 && sent.Count > 0, $"{drained} consumed, {sent.Count} sent");
            // one rule for an output sent out of a device: what the device sent is what was forwarded there (its queue is not counted)
            string final = balancer.Output[balancer.Output.LastIndexOf("=========================", StringComparison.Ordinal)..];
            Assert.Matches($@"Q +1: +{sent.Count:N0} pkts sent out of {Veth.C} +0 dropped", final);
            Assert.Contains($"Forwarded {expected:N0} pkts (dropped 0)", final);
            // the device as the user named it, without the direction the Balancer chose for it
            Assert.True(balancer.Output.Contains($"| {Veth.B}: ", StringComparison.Ordinal), balancer.Output);
            Assert.DoesNotContain("outgoing=", balancer.Output);
            // each conversation went one way only
            var sentFlows = sent.Select(p => Conversation.Key(p)).ToHashSet();
            Assert.Empty(File.ReadAllLines(prefix + "keys").Intersect(sentFlows));
        }
        finally
        {
            foreach (string f in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(prefix) + "*")) File.Delete(f);
        }
    }

    [Fact]
    public void SendSample_SendsACaptureLooped_AtItsRate_WithTheDestinationMacRewritten()
    {
        Corpus.SkipIfMissing();
        TestSetup.RequireTool("tcpdump");
        using Veth veth = Veth.Create();
        const int Count = 1000, Rate = 2000;
        string file = Path.Combine(Corpus.Directory!, "afs.pcap");
        List<byte[]> packets = Packets(file);
        string output = Path.Combine(Path.GetTempPath(), $"zcflow-send-{Environment.ProcessId}.pcap");
        try
        {
            using Process tcpdump = veth.Start("tcpdump", "-i", Veth.B, "-U", "-n", "-s", "0", "-c", $"{Count}", "-w", output);
            WaitListening(tcpdump);
            using ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", file, "-n", Count, "-p", Rate, "-m", "02:00:00:00:00:2a"], netns: veth.Namespace);
            string total = send.WaitFor("total");
            Assert.Equal(0, send.WaitForExit());
            double seconds = double.Parse(total.Split(" in ")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(tcpdump.WaitForExit(10_000), $"tcpdump did not see {Count} packets; Send said: {total}");
            List<byte[]> got = Packets(output);
            Assert.Equal(Count, got.Count);
            for (int i = 0; i < Count; i++)
            {
                byte[] original = packets[i % packets.Count];
                Assert.Equal([0x02, 0, 0, 0, 0, 0x2a], got[i][..6]);
                Assert.True(original.AsSpan(6).SequenceEqual(got[i].AsSpan(6)), $"packet {i} differs past its destination MAC");
            }
            Assert.True(seconds >= 0.9 * Count / Rate, $"{Count} packets at {Rate} pps took only {seconds:F2} s");
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Fact]
    public void ZBounce_BridgesTwoInterfaces_BothWays_EveryFrameByteForByte_InOrder_NeverHearingItself()
    {
        TestSetup.RequireTool("tcpdump");
        using Veth veth = Veth.Create(pairs: 2);
        const int Count = 400;
        string prefix = Path.Combine(Path.GetTempPath(), $"zcflow-bounce-{Environment.ProcessId}-");
        string frames = prefix + "frames.pcap";
        using (var writer = new CaptureWriter(frames))
            for (int i = 0; i < Count; i++)
                writer.Write(Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 8 + 4 + i % 100).Udp((ushort)(1000 + i), 53, 4 + i % 100).U32((uint)i).Add(new byte[i % 100]).ToArray(), i);
        List<byte[]> sent = Packets(frames);
        try
        {
            // zca -> zcb, bounced out of zcc -> zcd; and back: zcd -> zcc, bounced out of zcb -> zca.
            using ChildProcess bounce = ChildProcess.Run("ZBounce", ["-i", Veth.B, "-o", Veth.C, "-b"], netns: veth.Namespace);
            bounce.WaitFor("bouncing");
            foreach ((string from, string to, string name) in new[] { (Veth.A, Veth.D, "forth"), (Veth.D, Veth.A, "back") })
            {
                List<byte[]>[] captured = CaptureWhile(veth, prefix + name + "-", [to], () => SendFrames(veth, from, frames, Count, 4000));
                AssertSame(sent, captured[0], $"bounced {name}");
            }
            bounce.Terminate();
            Assert.Equal(0, bounce.WaitForExit());
            Assert.Contains($"total {Count:N0} pkts {Veth.B} -> {Veth.C}, {Count:N0} pkts {Veth.C} -> {Veth.B}", bounce.Output);
        }
        finally
        {
            foreach (string f in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(prefix) + "*")) File.Delete(f);
        }
    }

    [Fact]
    public void ZBounceWithLists_ReplicatesEveryFrameOfEveryInput_OutOfEveryOutput_InOrder()
    {
        // zreplicator: -i zca,zcb -o zcc,zcd. Frames sent out of zcb come in on zca and the other way; what goes out of
        // zcc comes in on zcd and the other way: each capture there holds both inputs' frames, each input's in order.
        TestSetup.RequireTool("tcpdump");
        using Veth veth = Veth.Create(pairs: 2);
        const int Count = 300;
        string prefix = Path.Combine(Path.GetTempPath(), $"zcflow-replicate-{Environment.ProcessId}-");
        foreach (int port in new[] { 1000, 2000 }) Numbered($"{prefix}{port}.pcap", Count, _ => ((ushort)port, 53));
        try
        {
            using ChildProcess replicate = ChildProcess.Run("ZBounce", ["-i", $"{Veth.A},{Veth.B}", "-o", $"{Veth.C},{Veth.D}"], netns: veth.Namespace);
            replicate.WaitFor("bouncing");
            string[] outputs = [Veth.C, Veth.D];
            List<byte[]>[] captured = CaptureWhile(veth, prefix, outputs, () =>
            {
                using ChildProcess one = ChildProcess.Run("Send", ["-i", Veth.B, "-f", prefix + "1000.pcap", "-n", Count, "-p", 3000], netns: veth.Namespace);
                using ChildProcess two = ChildProcess.Run("Send", ["-i", Veth.A, "-f", prefix + "2000.pcap", "-n", Count, "-p", 3000], netns: veth.Namespace);
                Assert.Equal(0, one.WaitForExit());
                Assert.Equal(0, two.WaitForExit());
            });
            for (int o = 0; o < outputs.Length; o++)
            {
                string output = outputs[o];
                List<byte[]> got = captured[o];
                Assert.True(got.Count == 2 * Count, $"{got.Count} frames came out towards {output}, expected {2 * Count}");
                foreach (int port in new[] { 1000, 2000 })
                    AssertSame(Packets($"{prefix}{port}.pcap"), got.Where(f => (f[34] << 8 | f[35]) == port).ToList(), $"the frames of port {port} towards {output}");
            }
            replicate.Terminate();
            Assert.Equal(0, replicate.WaitForExit());
            Assert.Contains($"total {2 * Count:N0} pkts {Veth.A},{Veth.B} -> {Veth.C},{Veth.D}", replicate.Output);
        }
        finally
        {
            foreach (string f in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(prefix) + "*")) File.Delete(f);
        }
    }

    [Fact]
    public void ZCountOnADevice_CountsWhatItsFilterKeeps_AndStopsAtTheEndOfAFile()
    {
        // zcount: -i a device of its own, with -f and -t.
        TestSetup.RequireTool("tcpdump");
        using Veth veth = Veth.Create();
        string frames = Numbered(Path.Combine(Path.GetTempPath(), $"zcflow-zcount-dev-{Environment.ProcessId}.pcap"), 300, i => (1000, (ushort)(i % 3 == 0 ? 80 : 53)));
        try
        {
            using ChildProcess zcount = ChildProcess.Run("ZCount", ["-i", Veth.B, "-f", "udp dst port 53", "-t"], netns: veth.Namespace);
            zcount.WaitFor("counting");
            using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", 300, "-p", 3000], netns: veth.Namespace))
                Assert.Equal(0, send.WaitForExit());
            Thread.Sleep(500);
            zcount.Terminate();
            Assert.Equal(0, zcount.WaitForExit());
            Assert.Contains("total 200 pkts 9,200 bytes", zcount.Output);
            Assert.Contains("100 filtered out, bytes summed to", zcount.Output);

            using ChildProcess file = ChildProcess.Run("ZCount", ["-i", "pcap:" + frames]);
            Assert.Equal(0, file.WaitForExit(30));
            Assert.Contains("total 300 pkts 13,800 bytes", file.Output);
        }
        finally
        {
            File.Delete(frames);
        }
    }

    [Fact]
    public void SendWithTimestamps_AppendsEachFramesSendTime_AsZsendDoes()
    {
        // zsend -S: seconds and nanoseconds (big-endian) and 0xC3 after each frame, paced by the same pulse (-P).
        TestSetup.RequireTool("tcpdump");
        using Veth veth = Veth.Create();
        const int Count = 100;
        string prefix = Path.Combine(Path.GetTempPath(), $"zcflow-stamp-{Environment.ProcessId}-");
        List<byte[]> frames = Packets(Numbered(prefix + "frames.pcap", Count, _ => (1000, 53)));
        try
        {
            using Process tcpdump = veth.Start("tcpdump", "-i", Veth.B, "-U", "-n", "-s", "0", "-c", $"{Count}", "-w", prefix + "got.pcap");
            WaitListening(tcpdump);
            int core = ZcFlow.Workers.CpuAffinity.AllowedCores()[0];
            long before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
            using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", prefix + "frames.pcap", "-n", Count, "-p", 2000, "-S", core, "-P", core], netns: veth.Namespace))
                Assert.Equal(0, send.WaitForExit());
            long after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000 + 1_000_000;
            Assert.True(tcpdump.WaitForExit(10_000), "tcpdump did not see every frame");
            List<byte[]> got = Packets(prefix + "got.pcap");
            Assert.Equal(Count, got.Count);
            long last = 0;
            for (int i = 0; i < Count; i++)
            {
                Assert.Equal(frames[i].Length + 9, got[i].Length);
                Assert.True(frames[i].AsSpan().SequenceEqual(got[i].AsSpan(0, frames[i].Length)), $"frame {i} changed");
                ReadOnlySpan<byte> tail = got[i].AsSpan(frames[i].Length);
                long ns = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(tail) * 1_000_000_000L + System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(tail[4..]);
                Assert.Equal(0xC3, tail[8]);
                Assert.InRange(ns, Math.Max(before, last), after);
                last = ns;
            }
            // 100 frames at 2000 a second, paced by the pulse, span about 50 ms; less when Send starts late on a busy host and catches
            // up in bursts of up to 32 (three of them would leave some 5 ms); unpaced, they would span well under 1 ms.
            Assert.InRange(last - (System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(got[0].AsSpan(frames[0].Length)) * 1_000_000_000L
                + System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(got[0].AsSpan(frames[0].Length + 4))), 4_000_000, 1_000_000_000);
        }
        finally
        {
            foreach (string f in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(prefix) + "*")) File.Delete(f);
        }
    }

    [Fact]
    public void ZBounceWithADelay_SendsEachFrameOnItsDelayAfterItCameIn_NeverSooner()
    {
        TestSetup.RequireTool("tcpdump");
        using Veth veth = Veth.Create(pairs: 2);
        const int Count = 200, DelayUs = 20_000;
        string prefix = Path.Combine(Path.GetTempPath(), $"zcflow-delay-{Environment.ProcessId}-");
        string frames = Numbered(prefix + "frames.pcap", Count, _ => (1000, 53));
        try
        {
            using ChildProcess delay = ChildProcess.Run("ZBounce", ["-i", Veth.B + "?latency=1", "-o", Veth.C, "-d", DelayUs, "-a"], netns: veth.Namespace);
            delay.WaitFor("bouncing");
            // The times each frame left zca and reached zcd, on the one clock of the namespace's kernel.
            using Process sent = veth.Start("tcpdump", "-i", Veth.A, "-U", "-n", "-Q", "out", "--time-stamp-precision=nano", "-w", prefix + "sent.pcap");
            WaitListening(sent);
            using Process got = veth.Start("tcpdump", "-i", Veth.D, "-U", "-n", "-Q", "in", "--time-stamp-precision=nano", "-w", prefix + "got.pcap");
            WaitListening(got);
            using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", Count, "-p", 1000], netns: veth.Namespace))
                Assert.Equal(0, send.WaitForExit());
            Thread.Sleep(500);
            Stop(sent);
            Stop(got);
            List<(byte[] Frame, long Ns)> Timed(string file)
            {
                var list = new List<(byte[], long)>();
                using CaptureFile capture = CaptureFile.Open(file);
                while (capture.TryNext(out ReadOnlySpan<byte> data, out long ns, out _)) list.Add((data.ToArray(), ns));
                return list;
            }
            var left = Timed(prefix + "sent.pcap");
            var came = Timed(prefix + "got.pcap");
            AssertSame(left.Select(x => x.Frame).ToList(), came.Select(x => x.Frame).ToList(), "delayed");
            double[] delays = [.. left.Zip(came, (l, c) => (c.Ns - l.Ns) / 1e3).Order()];
            double median = delays[delays.Length / 2];
            output.WriteLine($"delays for {DelayUs} us asked: min {delays[0]:F0} us, median {median:F0}, p99 {delays[delays.Length * 99 / 100]:F0}, max {delays[^1]:F0}");
            Assert.True(delays[0] >= DelayUs, $"a frame came {delays[0]:F0} us after it left: sooner than {DelayUs} us");
            // Never sooner is the contract; how much later is the host's scheduling (a benchmark's business): the bound only catches a
            // delay counted twice, or from the wrong clock.
            Assert.True(median < DelayUs * 1.5, $"the median delay is {median:F0} us for {DelayUs} us asked (min {delays[0]:F0}, max {delays[^1]:F0})");
            delay.Terminate();
            Assert.Equal(0, delay.WaitForExit());
        }
        finally
        {
            foreach (string f in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(prefix) + "*")) File.Delete(f);
        }
    }

    [Fact]
    public void ZPipelineIpc_ItsTwoEndsWithAMiddleStageInAnotherProcess_ForwardEveryFrameByteForByte_InOrder()
    {
        // zpipeline_ipc: frames sent out of zcb come in on zca -> queue 0 -> ZBounce (another process) -> ingress queue 1 -> out of zcd -> in on zcc.
        TestSetup.RequireTool("tcpdump");
        using Veth veth = Veth.Create(pairs: 2);
        const int Count = 500;
        string prefix = Path.Combine(Path.GetTempPath(), $"zcflow-zpipeline-{Environment.ProcessId}-");
        string frames = Numbered(prefix + "frames.pcap", Count, i => ((ushort)(1000 + i % 7), 53));
        try
        {
            uint id = TestClusters.NextId();
            using ChildProcess ends = ChildProcess.Run("ZPipeline", ["-c", id, "-i", $"{Veth.A};0", "-o", $"{Veth.D};1"], netns: veth.Namespace);
            ends.WaitFor("forwarding");
            using ChildProcess middle = ChildProcess.Run("ZBounce", ["-i", $"zc:{id}@0", "-o", $"zc:{id}@1"], netns: veth.Namespace);
            middle.WaitFor("bouncing");
            List<byte[]>[] captured = CaptureWhile(veth, prefix, [Veth.C], () => SendFrames(veth, Veth.B, frames, Count, 4000));
            AssertSame(Packets(frames), captured[0], "through the pipeline");
            middle.Terminate();
            ends.Terminate();
            Assert.Equal(0, middle.WaitForExit());
            Assert.Equal(0, ends.WaitForExit());
            Assert.Contains($"total {Count:N0} pkts {Veth.A} -> zc:{id}@0, {Count:N0} pkts zc:{id}@1 -> {Veth.D}", ends.Output);
        }
        finally
        {
            foreach (string f in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(prefix) + "*")) File.Delete(f);
        }
    }

    // A capture of `count` UDP frames from 10.0.0.1 to 10.0.0.2, each numbered in its 4-byte payload, with the ports given for it.
    private static string Numbered(string path, int count, Func<int, (ushort Source, ushort Destination)> ports)
    {
        using var writer = new CaptureWriter(path);
        for (int i = 0; i < count; i++)
        {
            (ushort source, ushort destination) = ports(i);
            writer.Write(Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 12).Udp(source, destination, 4).U32((uint)i).ToArray(), i);
        }
        return path;
    }

    // What comes in on each of `interfaces` (tcpdump, into `{prefix}{interface}.pcap`) while `send` runs, and half a second after.
    private static List<byte[]>[] CaptureWhile(Veth veth, string prefix, string[] interfaces, Action send)
    {
        Process[] tcpdumps = [.. interfaces.Select(i => veth.Start("tcpdump", "-i", i, "-U", "-n", "-s", "0", "-Q", "in", "-w", $"{prefix}{i}.pcap"))];
        try
        {
            foreach (Process t in tcpdumps) WaitListening(t);
            send();
            Thread.Sleep(500);
        }
        finally
        {
            foreach (Process t in tcpdumps)
            {
                Stop(t);
                t.Dispose();
            }
        }
        return [.. interfaces.Select(i => Packets($"{prefix}{i}.pcap"))];
    }

    // Sends `count` frames of a capture out of `device` at `rate` a second, with the Send sample, and waits for it.
    private static void SendFrames(Veth veth, string device, string frames, int count, int rate)
    {
        using ChildProcess send = ChildProcess.Run("Send", ["-i", device, "-f", frames, "-n", count, "-p", rate], netns: veth.Namespace);
        Assert.Equal(0, send.WaitForExit());
    }

    private static void Stop(Process tcpdump)
    {
        Native.Libc.Kill(tcpdump.Id, 15);
        tcpdump.WaitForExit();
    }

    private static void WaitListening(Process tcpdump)
    {
        // tcpdump says "listening on <if>" once its socket is bound
        var line = tcpdump.StandardError.ReadLineAsync();
        Assert.True(line.Wait(10_000) && line.Result?.Contains("listening") == true, $"tcpdump did not start: {line.Result}");
        Thread.Sleep(100);
    }
}
