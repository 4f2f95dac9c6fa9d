using System.Buffers.Binary;
using ZcFlow.Buffers;
using ZcFlow.Distribution;
using ZcFlow.Graphs;

namespace ZcFlow.Tests;

/// <summary>
/// Each zbalance_ipc mode routes crafted frames where PF_RING's code sends them: the frames go
/// through a capture file, a graph built as the Balancer builds it, and its queues.
/// </summary>
public class ModeRoutingTests
{
    private const ushort GtpC = 2123, GtpU = 2152;

    // GTP-C v2: flags (version 2, T when there is a TEID), type, length, [TEID], 3-byte sequence, spare.
    private static byte[] GtpCv2(uint src, uint dst, uint sequence, uint? teid, byte type = 32)
    {
        var gtp = new Frames().Add((byte)(teid is null ? 0x40 : 0x48), type).U16((ushort)(teid is null ? 8 : 12));
        if (teid is uint t) gtp.U32(t);
        byte[] body = gtp.Add((byte)(sequence >> 16), (byte)(sequence >> 8), (byte)sequence, 0).ToArray();
        return Frames.Ethernet(0x0800).Ipv4(src, dst, 17, 8 + body.Length).Udp(GtpC, GtpC, body.Length).Add(body).ToArray();
    }

    // GTP-C v1 with a sequence number (S flag): flags, type, length, TEID, sequence, N-PDU, next extension.
    private static byte[] GtpCv1(uint src, uint dst, ushort sequence, uint teid)
    {
        byte[] body = new Frames().Add(0x32, 16).U16(4).U32(teid).U16(sequence).Add(0, 0).ToArray();
        return Frames.Ethernet(0x0800).Ipv4(src, dst, 17, 8 + body.Length).Udp(GtpC, GtpC, body.Length).Add(body).ToArray();
    }

    private static byte[] GtpUser(uint teid, uint innerSrc, uint innerDst, ushort innerSport, ushort innerDport)
    {
        byte[] inner = new Frames().Ipv4(innerSrc, innerDst, 17, 8).Udp(innerSport, innerDport, 0).ToArray();
        return Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 16 + inner.Length).Udp(GtpU, GtpU, 8 + inner.Length)
            .Add(0x30, 255).U16((ushort)inner.Length).U32(teid).Add(inner).ToArray();
    }

    private static byte[] Udp(uint src, uint dst, ushort sport, ushort dport)
        => Frames.Ethernet(0x0800).Ipv4(src, dst, 17, 8).Udp(sport, dport, 0).ToArray();

    private static byte[] Gre(uint outerSrc, uint outerDst, uint innerSrc, uint innerDst, ushort innerSport)
    {
        byte[] inner = new Frames().Ipv4(innerSrc, innerDst, 17, 8).Udp(innerSport, 53, 0).ToArray();
        return Frames.Ethernet(0x0800).Ipv4(outerSrc, outerDst, 47, 4 + inner.Length).U16(0).U16(0x0800).Add(inner).ToArray();
    }

    // A frame of EtherType `type` with a VLAN tag under it, as zbalance_ipc's -m 7 expects, then IPv4.
    private static byte[] Tagged(ushort type, ushort vlan)
        => Frames.Ethernet(type).Vlan(vlan, 0x0800).Ipv4(1, 2, 17, 8).Udp(1, 2, 0).ToArray();

    /// <summary>Sends the frames (in order, from one capture file each input) through a graph and returns what each queue received.</summary>
    private static List<byte[]>[] Route(byte[][][] inputs, int mode, int[] applications, BalancerModeOptions? options = null)
    {
        uint id = TestClusters.NextId();
        string[] files = [.. inputs.Select((_, i) => Path.Combine(Path.GetTempPath(), $"zcflow-modes-{id}-{i}.pcap"))];
        try
        {
            for (int i = 0; i < inputs.Length; i++)
            {
                using var writer = new Devices.CaptureWriter(files[i]);
                foreach (byte[] frame in inputs[i]) writer.Write(frame, 1_000_000_000);
            }
            using Graph graph = GraphBuilder.Cluster(id)
                .Options(new ClusterOptions { BufferCount = 4096, UseHugePages = false, Warn = _ => { } })
                .Input([.. files.Select(f => "pcap:" + f)])
                .Applications(applications)
                .QueueSlots(512)
                .Lossless()
                .Balance((Distribution.HashMode)mode, options ?? new BalancerModeOptions());
            var got = graph.Queues.Select(_ => new List<byte[]>()).ToArray();
            var burst = new PacketHandle[32];
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int total = inputs.Sum(i => i.Length);
            while (!(graph.InputsExhausted && (long)graph.Balancers[0].Received == total))
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"the balancer took {graph.Balancers[0].Received} of {total}");
            Thread.Sleep(50);   // the turn that took the last packets flushes the queues before it ends
            for (int q = 0; q < got.Length; q++)
                for (int n; (n = graph.Consumer(q).ReceiveBurst(burst)) != 0; graph.Consumer(q).ReleaseBurst(burst.AsSpan(0, n)))
                    foreach (PacketHandle p in burst.AsSpan(0, n)) got[q].Add(p.Data.ToArray());
            return got;
        }
        finally
        {
            foreach (string f in files) File.Delete(f);
        }
    }

    private static int QueueOf(List<byte[]>[] got, byte[] frame) => Assert.Single(Enumerable.Range(0, got.Length), q => got[q].Any(f => f.AsSpan().SequenceEqual(frame)));

    [Fact]
    public void Mode4_GtpControlBySequence_SoARequestWithoutTunnelIdAndItsResponseMeet()
    {
        // Each exchange: a v2 request with no TEID, its response with one; a v1 request with TEID 0, its response with one.
        var frames = new List<byte[]>();
        for (uint s = 0; s < 64; s++)
        {
            frames.Add(GtpCv2(0x0A000001, 0x0A000002, s, teid: null));
            frames.Add(GtpCv2(0x0A000002, 0x0A000001, s, teid: 0x1000 + s, type: 33));
            frames.Add(GtpCv1(0x0A000003, 0x0A000004, (ushort)(s + 500), 0));
            frames.Add(GtpCv1(0x0A000004, 0x0A000003, (ushort)(s + 500), 0x2000 + s));
        }
        List<byte[]>[] got = Route([[.. frames]], 4, [4]);
        Assert.Equal(frames.Count, got.Sum(q => q.Count));
        for (int i = 0; i < frames.Count; i += 2) Assert.Equal(QueueOf(got, frames[i]), QueueOf(got, frames[i + 1]));
        Assert.All(got, q => Assert.NotEmpty(q));   // by sequence, so 128 exchanges from two hosts spread
    }

    [Fact]
    public void Mode4_GtpUserByInnerIpsAndPorts_OtherTrafficByOuterIpsAndPorts()
    {
        var frames = new List<byte[]>();
        for (ushort port = 1000; port < 1064; port++)
        {
            frames.Add(GtpUser(7, 0xC0A80001, 0xC0A80002, port, 80));
            frames.Add(GtpUser(9, 0xC0A80002, 0xC0A80001, 80, port));   // the other direction, in another tunnel
            frames.Add(Udp(0x0A000001, 0x0A000002, port, 53));
            frames.Add(Udp(0x0A000002, 0x0A000001, 53, port));
        }
        List<byte[]>[] got = Route([[.. frames]], 4, [4]);
        Assert.Equal(frames.Count, got.Sum(q => q.Count));
        for (int i = 0; i < frames.Count; i += 2) Assert.Equal(QueueOf(got, frames[i]), QueueOf(got, frames[i + 1]));
        // One inner address pair, one outer pair: only the ports spread them.
        Assert.True(Enumerable.Range(0, 64).Select(i => QueueOf(got, frames[4 * i])).Distinct().Count() > 1, "GTP-U is balanced by the inner ports too");
        Assert.True(Enumerable.Range(0, 64).Select(i => QueueOf(got, frames[4 * i + 2])).Distinct().Count() > 1, "other traffic is balanced by the outer ports too");
    }

    [Fact]
    public void Mode4_DashG_SendsThatGtpControlVersionToItsQueueAlone()
    {
        var v2 = Enumerable.Range(0, 32).Select(s => GtpCv2(0x0A000001, 0x0A000002, (uint)s, teid: 5)).ToArray();
        var v1 = Enumerable.Range(0, 32).Select(s => GtpCv1(0x0A000001, 0x0A000002, (ushort)s, 5)).ToArray();
        var user = Enumerable.Range(0, 32).Select(p => GtpUser(1, 1, 2, (ushort)p, 80)).ToArray();
        byte[][] all = [.. v2, .. v1, .. user];

        // One application: -G 1:2 gives queue 1 the v2 GTP-C and nothing else; the rest spreads over 0 and 2.
        List<byte[]>[] got = Route([all], 4, [3], new BalancerModeOptions { GtpControl = (1, 2) });
        Assert.Equal(v2.Length, got[1].Count);
        Assert.All(v2, f => Assert.Equal(1, QueueOf(got, f)));
        Assert.Equal(v1.Length + user.Length, got[0].Count + got[2].Count);

        // Two applications (-n 2,1 -G 2:1): the second gets the v1 GTP-C only; the first still gets every packet.
        got = Route([all], 4, [2, 1], new BalancerModeOptions { GtpControl = (2, 1) });
        Assert.Equal(all.Length, got[0].Count + got[1].Count);
        Assert.Equal(v1.Length, got[2].Count);
        Assert.All(v1, f => Assert.Contains(got[2], g => g.AsSpan().SequenceEqual(f)));
    }

    [Fact]
    public void Mode5_GreByInnerIps_OtherTrafficByOuterIpsAndPorts()
    {
        var frames = new List<byte[]>();
        for (uint i = 0; i < 64; i++)
        {
            // One inner address pair (its ports varying) behind 64 different outer pairs: one queue.
            frames.Add(Gre(0x0A000000 + i, 0x0B000000 + i, 0xC0A80001, 0xC0A80002, (ushort)(1000 + i)));
            frames.Add(Udp(0x0A000001, 0x0A000002, (ushort)(1000 + i), 53));
        }
        List<byte[]>[] got = Route([[.. frames]], 5, [4]);
        Assert.Equal(frames.Count, got.Sum(q => q.Count));
        Assert.Single(Enumerable.Range(0, 64).Select(i => QueueOf(got, frames[2 * i])).Distinct());
        Assert.True(Enumerable.Range(0, 64).Select(i => QueueOf(got, frames[2 * i + 1])).Distinct().Count() > 1, "non-GRE traffic is balanced by the outer ports too");
    }

    [Fact]
    public void Mode6_InputDeviceIToQueueI()
    {
        byte[][] a = [.. Enumerable.Range(0, 20).Select(i => Udp((uint)i, 1, 1, 1))], b = [.. Enumerable.Range(0, 30).Select(i => Udp((uint)i, 2, 2, 2))];
        List<byte[]>[] got = Route([a, b], 6, [2]);
        Assert.Equal(a.Length, got[0].Count);
        Assert.Equal(b.Length, got[1].Count);
        Assert.All(a, f => Assert.Equal(0, QueueOf(got, f)));
    }

    [Fact]
    public void Mode7_TheVlanUnderEthertypeY_PicksTheQueue_IsRetaggedAs8021Q_AndAnUnmappedOneIsDropped()
    {
        byte[] ten = Tagged(0x8585, 10), twenty = Tagged(0x8585, 20), thirty = Tagged(0x8585, 30), plainTen = Tagged(0x8100, 10), ip = Udp(1, 2, 3, 4);
        List<byte[]>[] got = Route([[ten, twenty, thirty, plainTen, ip]], 7, [3], new BalancerModeOptions { VlanQueues = [10, 20] });
        byte[] Retagged(byte[] f) { byte[] r = [.. f]; BinaryPrimitives.WriteUInt16BigEndian(r.AsSpan(12), 0x8100); return r; }
        Assert.Equal([Retagged(ten)], got[1]);
        Assert.Equal([Retagged(twenty)], got[2]);
        Assert.Equal([plainTen, ip], got[0]);   // other EtherTypes, 802.1Q included, to queue 0; VLAN 30 dropped

        // -Y names another EtherType: then 0x8585 is just another type, to queue 0.
        got = Route([[Tagged(0x9999, 20), ten]], 7, [3], new BalancerModeOptions { VlanQueues = [10, 20], VlanEtherType = 0x9999 });
        Assert.Equal([Retagged(Tagged(0x9999, 20))], got[2]);
        Assert.Equal([ten], got[0]);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    public void SeveralApplications_AreForModes0_1_4_5_6_8_Only(int mode)
    {
        uint id = TestClusters.NextId();
        var e = Assert.Throws<ArgumentException>(() => GraphBuilder.Cluster(id).Options(new ClusterOptions { BufferCount = 256, UseHugePages = false, Warn = _ => { } })
            .Input("gen:64").Applications(1, 1).Balance((Distribution.HashMode)mode));
        Assert.Contains($"mode {mode} feeds one application", e.Message);
        Assert.Null(ZcFlow.Ipc.ClusterDirectory.Find(id));
    }
}
