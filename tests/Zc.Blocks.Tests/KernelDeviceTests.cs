using System.Buffers.Binary;
using System.Text.RegularExpressions;
using ZcFlow.Buffers;
using ZcFlow.Devices;

namespace ZcFlow.Tests;

/// <summary>
/// PF_RING's kernel half on a veth pair of the test's own: fanout groups (per flow, round-robin, a member that goes),
/// the kernel's reassembly, one receive queue of an interface.
/// </summary>
public partial class KernelDeviceTests(ITestOutputHelper output)
{
    private static string TempPath(string what) => Path.Combine(Path.GetTempPath(), $"zcflow-{what}-{Environment.ProcessId}-{Guid.NewGuid():N}");

    // `count` conversations, TCP and UDP alternately, conversation c with 2 + c % 7 packets in each direction, the
    // directions and conversations interleaved; each frame numbered in its last four bytes. Returns the frames written.
    internal static List<byte[]> Conversations(string path, int count)
    {
        var frames = new List<byte[]>();
        for (int round = 0; round < 8; round++)
        {
            for (int c = 0; c < count; c++)
            {
                if (round >= 2 + c % 7) continue;
                uint a = 0x0A000001u + ((uint)c << 8), b = 0x0A800002u + ((uint)c << 8);
                ushort client = (ushort)(1000 + c);
                for (int direction = 0; direction < 2; direction++)
                {
                    (uint src, uint dst, ushort sp, ushort dp) = direction == 0 ? (a, b, client, (ushort)80) : (b, a, (ushort)80, client);
                    uint number = (uint)frames.Count;
                    frames.Add(c % 2 == 0
                        ? Frames.Ethernet(0x0800).Ipv4(src, dst, 6, 24).Tcp(sp, dp).U32(number).ToArray()
                        : Frames.Ethernet(0x0800).Ipv4(src, dst, 17, 12).Udp(sp, dp, 4).U32(number).ToArray());
                }
            }
        }
        using var writer = new CaptureWriter(path);
        for (int i = 0; i < frames.Count; i++) writer.Write(frames[i], i);
        return frames;
    }

    private static uint Number(byte[] frame) => BinaryPrimitives.ReadUInt32BigEndian(frame.AsSpan(frame.Length - 4));

    private static void Send(Veth veth, string frames, int count, int rate = 5000)
    {
        using ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", count, "-p", rate], netns: veth.Namespace);
        Assert.Equal(0, send.WaitForExit());
    }

    // What a member process wrote: conversation and direction → packets.
    private static Dictionary<(string Conversation, string Direction), long> Seen(string file) => File.ReadAllLines(file)
        .Select(l => l.Split('\t')).ToDictionary(f => (f[0], f[1]), f => long.Parse(f[2]));

    [GeneratedRegex(@"total ([\d,]+) pkts ([\d,]+) bytes")]
    private static partial Regex Total();

    [GeneratedRegex(@"^\s*([\d,]+) pkts")]
    private static partial Regex Report();

    private static long Packets(Match m) => long.Parse(m.Groups[1].Value.Replace(",", ""));

    [Fact]
    public void HashGroup_ThreeProcesses_ShareEveryPacketOnce_EachConversationsTwoDirectionsOnOneMember()
    {
        using Veth veth = Veth.Create();
        string frames = TempPath("fanout.pcap");
        string[] keys = [.. Enumerable.Range(0, 3).Select(m => TempPath($"member{m}"))];
        try
        {
            List<byte[]> sent = Conversations(frames, 150);
            ChildProcess[] members = [.. keys.Select(k => ChildProcess.Run("Zc.TestHost", ["member", $"af_packet:{Veth.B}?fanout=42", k], netns: veth.Namespace))];
            try
            {
                foreach (ChildProcess m in members) m.WaitFor("receiving");
                Send(veth, frames, sent.Count);
                Thread.Sleep(300);
                long[] got = [.. members.Select(m => { m.CloseAndWait(); return long.Parse(m.WaitFor("ok").Split(' ')[1]); })];
                output.WriteLine($"{sent.Count} packets of 150 conversations over three members: {string.Join(", ", got)}");
                Assert.Equal(sent.Count, got.Sum());
                var owner = new Dictionary<string, int>();
                for (int m = 0; m < 3; m++)
                {
                    foreach (((string conversation, string _), long _) in Seen(keys[m]))
                    {
                        if (owner.TryGetValue(conversation, out int other))
                            Assert.True(other == m, $"conversation {conversation} reached members {other} and {m}");
                        owner[conversation] = m;
                    }
                    Dictionary<(string, string), long> seen = Seen(keys[m]);
                    foreach ((string conversation, string _) in seen.Keys)
                        Assert.True(seen.ContainsKey((conversation, "up")) && seen.ContainsKey((conversation, "down")), $"member {m} has one direction of {conversation}");
                }
                Assert.Equal(150, owner.Count);
                // 150 conversations of similar sizes hashed over three: each member's share far from nothing and from all.
                foreach (long g in got) Assert.True(g > sent.Count * 0.15 && g < sent.Count * 0.55, $"shares {string.Join(", ", got)} of {sent.Count}");
            }
            finally
            {
                foreach (ChildProcess m in members) m.Dispose();
            }
        }
        finally
        {
            foreach (string f in keys.Append(frames)) File.Delete(f);
        }
    }

    [Fact]
    public void RoundRobinGroup_OfThreeZCounts_CountsEvenly_AndAMemberKilled_TheOthersTakeAllThatFollows()
    {
        using Veth veth = Veth.Create();
        string frames = TempPath("lb.pcap");
        try
        {
            List<byte[]> sent = Conversations(frames, 200);
            ChildProcess[] members = [.. Enumerable.Range(0, 3).Select(_ => ChildProcess.Run("ZCount", ["-i", $"af_packet:{Veth.B}?fanout=43&fanout_mode=lb"], netns: veth.Namespace))];
            try
            {
                foreach (ChildProcess m in members) m.WaitFor("counting");
                Send(veth, frames, sent.Count);
                Thread.Sleep(1500);   // a report line after the last packet
                members[0].Kill();
                long first = LastReport(members[0]);
                Send(veth, frames, sent.Count);
                Thread.Sleep(300);
                long[] totals = [.. members.Skip(1).Select(m =>
                {
                    m.Terminate();
                    Assert.Equal(0, m.WaitForExit());
                    return Packets(Total().Match(m.Output));
                })];
                output.WriteLine($"round-robin over three: {first} to the killed member, {string.Join(", ", totals)} to the others over both rounds of {sent.Count}");
                Assert.Equal(2 * sent.Count, first + totals.Sum());
                // In the first round each had a third, within 1%; in the second the two had everything.
                foreach (long t in totals)
                {
                    long firstRound = t - sent.Count / 2;
                    Assert.True(Math.Abs(firstRound - first) <= sent.Count / 100 + 1 && Math.Abs(t - totals[0]) <= sent.Count / 50 + 2, $"{first} and {string.Join(", ", totals)}");
                }
            }
            finally
            {
                foreach (ChildProcess m in members) m.Dispose();
            }
        }
        finally
        {
            File.Delete(frames);
        }
    }

    // The count of the last report line a ZCount printed.
    private static long LastReport(ChildProcess zcount) => zcount.Output.Split(" | ").Select(l => Report().Match(l)).Where(m => m.Success).Select(Packets).LastOrDefault();

    [Theory]
    [InlineData("af_packet:zcb?fanout=44&fanout_mode=roundrobin", "fanout_mode is hash (per flow, both directions), lb (round-robin), cpu, rollover, rnd or qm; not 'roundrobin'")]
    [InlineData("af_packet:zcb?fanout_mode=lb", "fanout_mode= is the mode of a fanout group: name the group with fanout=ID")]
    [InlineData("af_packet:zcb?fanout=70000", "a fanout group id is 0 to 65535")]
    [InlineData("af_packet:zcb?fanout=44&fanout_mode=lb&defrag=1", "the kernel reassembles fragments for fanout groups in hash mode only")]
    [InlineData("zcb@4", "zcb has 4 receive queues, 0 to 3")]
    [InlineData("af_packet:zcb@x", "after @ comes a receive queue number")]
    public void BadKernelOptions_AreClearErrors(string name, string said)
    {
        using Veth veth = Veth.Create(queues: 4);
        using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(64);
        var e = Assert.Throws<ArgumentException>(() => veth.Run(() => Device.OpenSource(name, pool, 0).Dispose()));
        Assert.Contains(said, e.Message);
        Assert.Equal(64, pool.Available);
    }

    [Fact]
    public void AFanoutGroupInUseWithAnotherMode_IsRefused_SayingSo()
    {
        using Veth veth = Veth.Create();
        using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(64);
        veth.Run(() =>
        {
            using IPacketSource first = Device.OpenSource($"af_packet:{Veth.B}?fanout=45", pool, 0);
            var e = Assert.Throws<ArgumentException>(() => Device.OpenSource($"af_packet:{Veth.B}?fanout=45&fanout_mode=lb", pool, 1).Dispose());
            Assert.Contains("fanout group 45 is in use in this network namespace with another mode", e.Message);
            var other = Assert.Throws<ArgumentException>(() => Device.OpenSource($"af_packet:{Veth.A}?fanout=45", pool, 1).Dispose());
            Assert.Contains("on another interface", other.Message);
            using IPacketSource second = Device.OpenSource($"af_packet:{Veth.B}?fanout=45&fanout_mode=hash", pool, 2);   // the same mode joins
        });
    }

    [Fact]
    public void OneReceiveQueue_TakesOnlyItsPackets_AndTheQueuesTogetherTakeEverything()
    {
        using Veth veth = Veth.Create(queues: 4);
        string frames = TempPath("queues.pcap");
        using ZcCluster cluster = TestClusters.Create(buffers: 8192, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(8192);
        try
        {
            List<byte[]> sent = Conversations(frames, 200);
            veth.Run(() =>
            {
                IPacketSource[] queues = [.. Enumerable.Range(0, 4).Select(q => Device.OpenSource($"{Veth.B}@{q}", pool, (uint)q))];
                try
                {
                    // Read while it sends: a TPACKET_V3 ring hands a block over once its latency passed, however little it holds.
                    using ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", sent.Count, "-p", 5000], netns: veth.Namespace);
                    List<byte[]>[] got = DrainAll(queues, pool, sent.Count);
                    Assert.Equal(0, send.WaitForExit());
                    output.WriteLine($"{sent.Count} packets over receive queues 0 to 3: {string.Join(", ", got.Select(g => g.Count))}; kernel drops {string.Join(", ", queues.Select(q => q.Stats.DroppedKernel))}");
                    Assert.Equal(sent.Count, got.Sum(g => g.Count));
                    Assert.Equal(sent.Select(Number).Order(), got.SelectMany(g => g).Select(Number).Order());
                    Assert.True(got.Count(g => g.Count > 0) >= 2, "the sender spread its flows over more than one queue");
                    // The sender's queue is chosen per flow: a conversation's direction is on one receive queue.
                    var queueOf = new Dictionary<string, int>();
                    for (int q = 0; q < 4; q++)
                    {
                        foreach (byte[] f in got[q])
                        {
                            PacketParserKey(f, out string flow);
                            Assert.True(queueOf.TryAdd(flow, q) || queueOf[flow] == q, $"flow {flow} on queues {queueOf[flow]} and {q}");
                        }
                    }
                }
                finally
                {
                    foreach (IPacketSource q in queues) q.Dispose();
                }
            });
        }
        finally
        {
            File.Delete(frames);
        }
    }

    // Receives from every one of `devices` in turn until `expected` packets came or nothing came for two seconds.
    internal static List<byte[]>[] DrainAll(IPacketSource[] devices, BufferPool pool, int expected)
    {
        List<byte[]>[] got = [.. devices.Select(_ => new List<byte[]>())];
        var burst = new PacketHandle[32];
        var quiet = System.Diagnostics.Stopwatch.StartNew();
        while (got.Sum(g => g.Count) < expected && quiet.ElapsedMilliseconds < 2000)
        {
            bool any = false;
            for (int d = 0; d < devices.Length; d++)
            {
                int n = devices[d].ReceiveBurst(burst);
                foreach (PacketHandle p in burst.AsSpan(0, n)) got[d].Add(p.Data.ToArray());
                pool.ReleaseBurst(burst.AsSpan(0, n));
                any |= n > 0;
            }
            if (any) quiet.Restart();
            else Thread.Sleep(1);
        }
        return got;
    }

    private static void PacketParserKey(byte[] frame, out string flow)
    {
        Parsing.PacketParser.Parse(frame, out Parsing.PacketInfo info);
        flow = $"{info.Outer.Source}:{info.Outer.SourcePort}>{info.Outer.Destination}:{info.Outer.DestinationPort}";
    }
}
