using System.Buffers.Binary;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Flows;
using ZcFlow.Stages;

namespace ZcFlow.Tests;

/// <summary>The <see cref="Defragment"/> stage: crafted fragments of every kind, IPv4 and IPv6, bounds, and hostile captures.</summary>
public class DefragmentTests
{
    private const long Second = 1_000_000_000;

    // Feeds `frames` (with their times) through the stage in bursts of `burst`, and returns what went on, in order.
    private static List<byte[]> Run(Defragment stage, IEnumerable<(byte[] Frame, long Time)> frames, int burst = 4, int bufferSize = 9216)
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: bufferSize);
        BufferPool pool = cluster.CreatePool(64);
        var got = new List<byte[]>();
        var packets = new PacketHandle[burst];
        int n = 0;
        void Flush()
        {
            int kept = stage.Process(packets.AsSpan(0, n));
            for (int k = 0; k < kept; k++) got.Add(packets[k].Data.ToArray());
            pool.ReleaseBurst(packets.AsSpan(0, n));
            n = 0;
        }
        foreach ((byte[] frame, long time) in frames)
        {
            Assert.True(pool.TryGet(out packets[n]));
            int length = Math.Min(frame.Length, packets[n].Capacity);
            frame.AsSpan(0, length).CopyTo(packets[n].Buffer);
            packets[n].SetReceived(length, frame.Length, time, 0);
            if (++n == burst) Flush();
        }
        Flush();
        Assert.Equal(64, pool.Available);
        return got;
    }

    private static IEnumerable<(byte[], long)> At(IEnumerable<byte[]> frames, long time = Second) => frames.Select(f => (f, time));

    private static byte[] Whole(ushort id, byte[] datagram) => KernelDeviceTests.Ipv4Packet(id, 0x0A000001, 0, false, datagram);

    [Fact]
    public void Ipv4_InOrderReversedDoubled_AreWhole_AndTinyOverlappingAndUnfinished_AreCountedExactly()
    {
        var stage = new Defragment();
        byte[][] d = [KernelDeviceTests.Datagram(1000, 3000), KernelDeviceTests.Datagram(1001, 4000), KernelDeviceTests.Datagram(1002, 2500), KernelDeviceTests.Datagram(1003, 100)];
        var frames = new List<(byte[], long)>();
        frames.AddRange(At(KernelDeviceTests.Fragment(1, 0x0A000001, d[0], 1200)));                              // in order
        frames.AddRange(At(Enumerable.Reverse(KernelDeviceTests.Fragment(2, 0x0A000001, d[1], 1200))));          // reversed
        List<byte[]> third = KernelDeviceTests.Fragment(3, 0x0A000001, d[2], 1000);
        frames.AddRange(At([third[0], third[1], third[1], third[2]]));                                              // one twice
        frames.Add((Whole(4, d[3]), Second));                                                                       // not a fragment
        // Tiny: a first fragment of 0 bytes' worth of ports (RFC 1858), then the rest.
        byte[] tiny = KernelDeviceTests.Datagram(1004, 1000);
        frames.Add((KernelDeviceTests.Ipv4Packet(5, 0x0A000001, 0, true, tiny.AsSpan(0, 0)), Second));
        frames.Add((KernelDeviceTests.Ipv4Packet(5, 0x0A000001, 0, false, tiny), Second));
        // Teardrop: the second fragment reaches back into the first; then the rest of it, which is dropped with it.
        byte[] tear = KernelDeviceTests.Datagram(1005, 2000);
        frames.Add((KernelDeviceTests.Ipv4Packet(6, 0x0A000001, 0, true, tear.AsSpan(0, 1000)), Second));
        frames.Add((KernelDeviceTests.Ipv4Packet(6, 0x0A000001, 992, true, tear.AsSpan(992, 504)), Second));
        frames.Add((KernelDeviceTests.Ipv4Packet(6, 0x0A000001, 1496, false, tear.AsSpan(1496)), Second));
        // Never finished: its first half, then, 31 s later, a packet that is not a fragment.
        byte[] half = KernelDeviceTests.Datagram(1006, 2000);
        frames.Add((KernelDeviceTests.Ipv4Packet(7, 0x0A000001, 0, true, half.AsSpan(0, 1000)), Second));
        frames.Add((Whole(8, d[3]), 32 * Second));

        List<byte[]> got = Run(stage, frames);
        Assert.Equal(6, got.Count);
        Assert.Equal(Whole(1, d[0]), got[0]);
        Assert.Equal(Whole(2, d[1]), got[1]);
        Assert.Equal(Whole(3, d[2]), got[2]);
        Assert.Equal(Whole(4, d[3]), got[3]);
        Assert.Equal(Whole(5, tiny), got[4]);   // not a fragment: it goes on, whatever was refused under its id
        Assert.Equal(Whole(8, d[3]), got[5]);
        Assert.Equal(new DefragmentStats(Fragments: 3 + 4 + 4 + 1 + 3 + 1, Reassembled: 3, Duplicates: 1, Refused: 2, TimedOut: 1, Evicted: 0, Unreassembled: 0, Pending: 0), stage.Stats);
    }

    [Fact]
    public void Ipv6_FragmentsInAnyOrder_AreTheDatagramWithoutItsFragmentHeader()
    {
        byte[] datagram = KernelDeviceTests.Datagram(2000, 3500);
        byte[] whole = Ipv6(datagram, fragment: null);
        var fragments = new List<byte[]>();
        for (int at = 0; at < datagram.Length; at += 1232)
            fragments.Add(Ipv6(datagram.AsSpan(at, Math.Min(1232, datagram.Length - at)).ToArray(), (at, at + 1232 < datagram.Length)));
        var stage = new Defragment();
        List<byte[]> got = Run(stage, At([fragments[1], fragments[2], fragments[0]]));
        Assert.Single(got);
        Assert.Equal(whole, got[0]);
        Parsing.PacketParser.Parse(got[0], out Parsing.PacketInfo info);
        Assert.Equal((2000, 53), (info.Outer.SourcePort, info.Outer.DestinationPort));
        Assert.Equal(1UL, stage.Stats.Reassembled);
    }

    // An IPv6 packet (Ethernet first) with a hop-by-hop header before the fragment header, to show the unfragmentable part kept.
    private static byte[] Ipv6(byte[] data, (int Offset, bool More)? fragment)
    {
        var f = Frames.Ethernet(0x86DD).Ipv6((UInt128)0x20010db8 << 96 | 1, (UInt128)0x20010db8 << 96 | 2, 0, 8 + (fragment is null ? 0 : 8) + data.Length);
        f.Add(fragment is null ? (byte)17 : (byte)44, 0, 1, 4, 0, 0, 0, 0);   // hop-by-hop: PadN of 4
        if (fragment is { } fr) f.Add(17, 0).U16((ushort)(fr.Offset | (fr.More ? 1 : 0))).U32(0xC0FFEE);
        return f.Add(data).ToArray();
    }

    [Fact]
    public void MemoryIsBounded_TheOldestGoesFirst_AndAShortBufferGetsTheDatagramCut()
    {
        var stage = new Defragment(new DefragmentOptions { MaxDatagrams = 8 });
        byte[] datagram = KernelDeviceTests.Datagram(1000, 3000);
        var frames = new List<(byte[], long)>();
        for (int i = 0; i < 100; i++) frames.Add((KernelDeviceTests.Fragment((ushort)i, 0x0A000001, datagram, 1200)[0], Second + i));
        // The last eight are still held: their other fragments make them whole.
        for (int i = 92; i < 100; i++) frames.AddRange(KernelDeviceTests.Fragment((ushort)i, 0x0A000001, datagram, 1200).Skip(1).Select(f => (f, 2 * Second)));
        List<byte[]> got = Run(stage, frames, burst: 7, bufferSize: 2048);
        Assert.Equal(8, got.Count);
        Assert.All(got, g => Assert.Equal(2048, g.Length));   // cut to the buffer, as a snap length cuts
        Assert.Equal(Whole(92, datagram).AsSpan(0, 2048).ToArray().AsSpan(34).ToArray(), got[0].AsSpan(34).ToArray());
        Assert.Equal(new DefragmentStats(100 + 16, 8, 0, 0, 0, 92, 0, 0), stage.Stats);
    }

    [Fact]
    public void TheFlowTable_CountsAReassembledDatagramUnderItsPorts()
    {
        byte[] datagram = KernelDeviceTests.Datagram(1234, 3000);
        List<byte[]> fragments = KernelDeviceTests.Fragment(9, 0x0A000001, datagram, 1200);
        List<byte[]> got = Run(new Defragment(), At(fragments));
        var records = new List<FlowRecord>();
        var table = new FlowTable<Collect>(16, new Collect(records));
        using ZcCluster cluster = TestClusters.Create(buffers: 4, bufferSize: 9216);
        BufferPool pool = cluster.CreatePool(4);
        Assert.True(pool.TryGet(out PacketHandle p));
        got[0].CopyTo(p.Buffer);
        p.SetReceived(got[0].Length, got[0].Length, Second, 0);
        Assert.True(table.Add(p));
        pool.Release(p);
        table.ExpireAll();
        FlowRecord r = Assert.Single(records);
        Assert.Equal((1234, 53, 1UL, 20UL + 3000), (r.SourcePort, r.DestinationPort, r.Packets, r.Bytes));
    }

    private readonly struct Collect(List<FlowRecord> records) : IFlowExport
    {
        public void Export(in FlowRecord record) => records.Add(record);
    }

    [Fact]
    public void EveryCorpusCapture_GoesThrough_WithBoundedMemoryAndNoCrash()
    {
        Corpus.SkipIfMissing();
        var stage = new Defragment(new DefragmentOptions { MaxDatagrams = 16 });
        long frames = 0;
        foreach (string file in Corpus.Files())
        {
            using CaptureFile capture = CaptureFile.Open(file);
            var all = new List<(byte[], long)>();
            while (capture.TryNext(out ReadOnlySpan<byte> data, out long time, out Parsing.LinkType link) && all.Count < 20000)
                if (link == Parsing.LinkType.Ethernet) all.Add((data.ToArray(), time));
            frames += Run(stage, all, burst: 32).Count;
        }
        DefragmentStats s = stage.Stats;
        Assert.True(s.Pending <= 16);
        Assert.True(s.Fragments > 0 && frames > 0, $"{s}");
    }

    [Fact]
    public void Reassembling_AllocatesNothingPerPacket()
    {
        var stage = new Defragment();
        List<byte[]> fragments = KernelDeviceTests.Fragment(1, 0x0A000001, KernelDeviceTests.Datagram(1000, 3000), 1200);
        using ZcCluster cluster = TestClusters.Create(buffers: 16, bufferSize: 9216);
        BufferPool pool = cluster.CreatePool(16);
        var burst = new PacketHandle[fragments.Count];
        void Once(ushort id)
        {
            for (int i = 0; i < fragments.Count; i++)
            {
                pool.TryGet(out burst[i]);
                fragments[i].CopyTo(burst[i].Buffer);
                BinaryPrimitives.WriteUInt16BigEndian(burst[i].Buffer[18..], id);
                burst[i].SetReceived(fragments[i].Length, fragments[i].Length, Second, 0);
            }
            stage.Process(burst);
            pool.ReleaseBurst(burst);
        }
        for (int i = 0; i < 30_000; i++) Once((ushort)i);   // warm-up: long enough for the JIT to finish tiering what runs here
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100_000; i++) Once((ushort)i);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(130_000UL, stage.Stats.Reassembled);
    }
}
