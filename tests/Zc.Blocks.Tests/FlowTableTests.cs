using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Flows;
using ZcFlow.Parsing;

namespace ZcFlow.Tests;

public sealed class FlowTableTests : IDisposable
{
    private const long Second = 1_000_000_000;
    private readonly ZcCluster _cluster = TestClusters.Create(buffers: 256, bufferSize: 2048);
    private readonly BufferPool _pool;

    public FlowTableTests() => _pool = _cluster.CreatePool(256);

    public void Dispose() => _cluster.Dispose();

    /// <summary>Keeps what the table exports (a struct, as a user's exporter would be; the list is shared by its copies).</summary>
    private readonly struct Collect(List<FlowRecord> flows) : IFlowExport
    {
        public void Export(in FlowRecord flow) => flows.Add(flow);
    }

    private struct Count : IFlowExport
    {
        public long Flows, Packets;

        public void Export(in FlowRecord flow)
        {
            Flows++;
            Packets += (long)(flow.Packets + flow.ReversePackets);
        }
    }

    private static byte[] Udp(uint src, uint dst, ushort sport, ushort dport, int payload = 32)
        => Frames.Ethernet(0x0800).Ipv4(src, dst, 17, 8 + payload).Udp(sport, dport, payload).Add(new byte[payload]).ToArray();

    private static byte[] Tcp(uint src, uint dst, ushort sport, ushort dport, byte flags)
    {
        byte[] f = Frames.Ethernet(0x0800).Ipv4(src, dst, 6, 20).Tcp(sport, dport).ToArray();
        f[14 + 20 + 13] = flags;
        return f;
    }

    private void Add<T>(FlowTable<T> table, byte[] frame, long timeNs) where T : IFlowExport
    {
        Assert.True(_pool.TryGet(out PacketHandle p));
        frame.CopyTo(p.Buffer);
        p.SetReceived(frame.Length, frame.Length, timeNs, 0);
        table.Add(p);
        _pool.Release(p);
    }

    [Fact]
    public void BothDirections_AreOneFlow_CountingIpBytes_TimesAndFlagsEach()
    {
        var flows = new List<FlowRecord>();
        var table = new FlowTable<Collect>(16, new Collect(flows));
        // A 42-byte frame is padded to 60 on the wire: the IP packet (28 bytes) is what counts.
        byte[] small = Frames.Ethernet(0x0800).Ipv4(0x0A000002, 0x0A000001, 17, 8).Udp(53, 1000, 0).Add(new byte[18]).ToArray();
        Add(table, Udp(0x0A000001, 0x0A000002, 1000, 53), 10 * Second);
        Add(table, small, 11 * Second);
        Add(table, Udp(0x0A000001, 0x0A000002, 1000, 53), 12 * Second);
        Assert.Equal(1, table.Count);
        table.ExpireAll();
        FlowRecord f = Assert.Single(flows);
        Assert.Equal((UInt128)0x0A000001, f.SourceAddress);   // the side that sent first
        Assert.Equal((1000, 53), (f.SourcePort, f.DestinationPort));
        Assert.Equal((2UL, 2 * 60UL), (f.Packets, f.Bytes));
        Assert.Equal((1UL, 28UL), (f.ReversePackets, f.ReverseBytes));
        Assert.Equal((10 * Second, 12 * Second, 11 * Second, 11 * Second), (f.FirstNs, f.LastNs, f.ReverseFirstNs, f.ReverseLastNs));
        Assert.Equal(FlowEnd.Forced, f.End);

        flows.Clear();
        var tcp = new FlowTable<Collect>(16, new Collect(flows));
        Add(tcp, Tcp(1, 2, 5000, 80, 0x02), Second);
        Add(tcp, Tcp(2, 1, 80, 5000, 0x12), Second);
        Add(tcp, Tcp(1, 2, 5000, 80, 0x18), Second);
        tcp.ExpireAll();
        Assert.Equal((0x1A, 0x12), (Assert.Single(flows).TcpFlags, flows[0].ReverseTcpFlags));
    }

    [Fact]
    public void FlowsEnd_WhenIdle_WhenOld_AndASecondAfterRstOrFinsBothWays()
    {
        var flows = new List<FlowRecord>();
        var table = new FlowTable<Collect>(16, new Collect(flows)) { IdleTimeoutNs = 15 * Second, ActiveTimeoutNs = 60 * Second };
        Add(table, Udp(1, 2, 1, 1), 0 + Second);             // idle after 15 s
        for (long t = 0; t <= 70; t += 10) Add(table, Udp(3, 4, 1, 1), t * Second + Second);   // active: split at 60 s
        Add(table, Tcp(5, 6, 1, 80, 0x02), 20 * Second);
        Add(table, Tcp(6, 5, 80, 1, 0x04), 21 * Second);        // RST
        Add(table, Tcp(7, 8, 1, 80, 0x11), 30 * Second);        // FIN one way: still open
        Add(table, Tcp(8, 7, 80, 1, 0x11), 31 * Second);        // FIN the other way
        Add(table, Tcp(7, 8, 1, 80, 0x10), 31 * Second + 1000); // the last ACK, still in it
        Assert.Equal(0, table.Expire(16 * Second + 1));   // idle since 16 s: found within a sixteenth of the timeout after
        Assert.Equal(1, table.Expire(17 * Second));
        Assert.Equal(FlowEnd.Idle, flows[^1].End);
        Assert.Equal(2, table.Expire(32 * Second + 1000));
        Assert.Equal([FlowEnd.EndOfFlow, FlowEnd.EndOfFlow], flows[^2..].Select(f => f.End));
        Assert.Equal(3UL, flows[^1].Packets + flows[^1].ReversePackets);   // FIN, FIN, ACK
        Assert.Contains(flows, f => f.End == FlowEnd.Active && f.Packets == 6);   // 1 s to 51 s; the packet at 61 s starts again
        table.ExpireAll();
        Assert.Equal(2UL, flows[^1].Packets);   // 61 s and 71 s
        Assert.Equal(0, table.Count);
    }

    [Fact]
    public void AFullTable_EndsTheLeastRecentlySeenFlow_AndCountsIt()
    {
        var flows = new List<FlowRecord>();
        var table = new FlowTable<Collect>(4, new Collect(flows));
        for (uint i = 0; i < 4; i++) Add(table, Udp(i, 100, 1, 1), Second);
        Add(table, Udp(0, 100, 1, 1), 2 * Second);   // flow 0 seen again: flow 1 is now the oldest
        Add(table, Udp(9, 100, 1, 1), 3 * Second);
        Assert.Equal(1UL, table.Evicted);
        Assert.Equal((UInt128)1, Assert.Single(flows).SourceAddress);
        Assert.Equal(FlowEnd.LackOfResources, flows[0].End);
        Assert.Equal(4, table.Count);
    }

    [Fact]
    public void ABurst_CountsAsEachPacketOneByOne()
    {
        var one = new List<FlowRecord>();
        var many = new List<FlowRecord>();
        var byOne = new FlowTable<Collect>(64, new Collect(one)) { IdleTimeoutNs = Second };
        var byBurst = new FlowTable<Collect>(64, new Collect(many)) { IdleTimeoutNs = Second };
        var burst = new PacketHandle[40];   // more than the table's own burst of 32
        for (int i = 0; i < burst.Length; i++) Assert.True(_pool.TryGet(out burst[i]));
        var random = new Random(3);
        for (int round = 0; round < 50; round++)
        {
            for (int i = 0; i < burst.Length; i++)
            {
                int flow = random.Next(100);
                byte[] frame = flow % 10 == 0 ? Frames.Ethernet(0x0806).Add(new byte[28]).ToArray() : Udp((uint)flow, 7, (ushort)flow, 53);
                frame.CopyTo(burst[i].Buffer);
                burst[i].SetReceived(frame.Length, frame.Length, (round * burst.Length + i) * 10_000_000L, 0);
                byOne.Add(burst[i]);
            }
            byBurst.AddBurst(burst);
            byOne.Expire();
            byBurst.Expire();
        }
        byOne.ExpireAll();
        byBurst.ExpireAll();
        _pool.ReleaseBurst(burst);
        Assert.Equal((byOne.Packets, byOne.Ignored, byOne.Evicted), (byBurst.Packets, byBurst.Ignored, byBurst.Evicted));
        Assert.Equal(one.Select(f => (f.SourceAddress, f.Packets, f.Bytes, f.End)), many.Select(f => (f.SourceAddress, f.Packets, f.Bytes, f.End)));
    }

    [Fact]
    public void ACaptureFileReadInPlace_GivesTheFlowsOfItsPacketsCopiedIntoBuffers()
    {
        Corpus.SkipIfMissing();
        int compared = 0;
        foreach (string path in Corpus.Files())
        {
            // The pcap device gives no link type per packet: files whose interfaces differ are left out.
            using (CaptureFile links = CaptureFile.Open(path))
            {
                bool mixed = false;
                while (links.TryNext(out _, out _, out LinkType link)) mixed |= link != links.LinkType;
                if (mixed) continue;
            }
            var copied = new List<FlowRecord>();
            var inPlace = new List<FlowRecord>();
            var byDevice = new FlowTable<Collect>(256, new Collect(copied)) { IdleTimeoutNs = Second };
            var byFile = new FlowTable<Collect>(256, new Collect(inPlace)) { IdleTimeoutNs = Second };
            using (var device = (PcapFileDevice)Device.OpenSource(path, _pool, 0))
            {
                byDevice.Link = device.LinkType;
                var burst = new PacketHandle[32];
                for (int n; (n = device.ReceiveBurst(burst)) > 0;)
                {
                    byDevice.AddBurst(burst.AsSpan(0, n));
                    _pool.ReleaseBurst(burst.AsSpan(0, n));
                    byDevice.Expire();
                }
            }
            using (CaptureFile file = CaptureFile.Open(path))
            {
                var frames = new CapturedFrame[32];
                for (int n; (n = file.ReadBurst(frames)) > 0;)
                {
                    byFile.AddBurst(frames.AsSpan(0, n));
                    byFile.Expire();
                }
            }
            byDevice.ExpireAll();
            byFile.ExpireAll();
            Assert.True((byDevice.Packets, byDevice.Ignored, byDevice.Created) == (byFile.Packets, byFile.Ignored, byFile.Created), $"{Path.GetFileName(path)}: {(byDevice.Packets, byDevice.Ignored, byDevice.Created)} copied, {(byFile.Packets, byFile.Ignored, byFile.Created)} in place");
            Assert.Equal(copied, inPlace);
            compared++;
        }
        Assert.True(compared > 700, $"only {compared} corpus files compared");
    }

    [Fact]
    public void UnderChurn_EveryPacketIsInExactlyOneExportedFlow_AndNothingIsAllocated()
    {
        var table = new FlowTable<Count>(4096, default) { IdleTimeoutNs = 2 * Second };
        var frames = Enumerable.Range(0, 20_000).Select(i => Udp((uint)i, (uint)(i * 7), (ushort)i, 53)).ToArray();
        var p = new PacketHandle[1];
        Assert.True(_pool.TryGet(out p[0]));
        int[] order = [.. Enumerable.Range(0, 200_000).Select(_ => Random.Shared.Next(frames.Length))];
        void Run(int packets)
        {
            for (int i = 0; i < packets; i++)
            {
                byte[] frame = frames[order[i]];
                frame.CopyTo(p[0].Buffer);
                p[0].SetReceived(frame.Length, frame.Length, (long)i * 100_000, 0);
                table.Add(p[0]);
                if (i % 1000 == 0) table.Expire();
            }
        }
        Run(50_000);   // warm up: the JIT's tiers, the table's arrays
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run(200_000);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        table.ExpireAll();
        _pool.Release(p[0]);
        Assert.Equal(0, allocated);
        Assert.Equal(250_000, table.Export.Packets);
        Assert.True(table.Evicted > 0 && table.Export.Flows == (long)table.Created, $"{table.Evicted} evicted, {table.Export.Flows} exported of {table.Created}");
    }
}
