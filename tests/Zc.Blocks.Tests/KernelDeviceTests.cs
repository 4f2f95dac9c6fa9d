using System.Buffers.Binary;
using System.Text.RegularExpressions;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Graphs;
using ZcFlow.Stages;

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
    // With `mixed`, every fourth conversation is IPv6 and every fourth VLAN-tagged, so a hash is shown symmetric for those too.
    internal static List<byte[]> Conversations(string path, int count, int first = 0, bool mixed = false)
    {
        var frames = new List<byte[]>();
        for (int round = 0; round < 8; round++)
        {
            for (int c = 0; c < count; c++)
            {
                if (round >= 2 + c % 7) continue;
                uint a = 0x0A000001u + ((uint)(first + c) << 8), b = 0x0A800002u + ((uint)(first + c) << 8);
                ushort client = (ushort)(1000 + first + c);
                for (int direction = 0; direction < 2; direction++)
                {
                    (uint src, uint dst, ushort sp, ushort dp) = direction == 0 ? (a, b, client, (ushort)80) : (b, a, (ushort)80, client);
                    uint number = (uint)frames.Count;
                    frames.Add((mixed ? c % 4 : c % 2) switch
                    {
                        0 => Frames.Ethernet(0x0800).Ipv4(src, dst, 6, 24).Tcp(sp, dp).U32(number).ToArray(),
                        1 => Frames.Ethernet(0x0800).Ipv4(src, dst, 17, 12).Udp(sp, dp, 4).U32(number).ToArray(),
                        2 => Frames.Ethernet(0x86DD).Ipv6((UInt128)0x20010db8 << 96 | src, (UInt128)0x20010db8 << 96 | dst, 17, 12).Udp(sp, dp, 4).U32(number).ToArray(),
                        _ => Frames.Ethernet(0x8100).Vlan((ushort)(100 + c % 50), 0x0800).Ipv4(src, dst, 6, 24).Tcp(sp, dp).U32(number).ToArray(),
                    });
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
            List<byte[]> sent = Conversations(frames, 150, mixed: true);   // TCP and UDP over IPv4, UDP over IPv6, TCP under a VLAN tag
            ChildProcess[] members = [.. keys.Select(k => ChildProcess.Run("Zc.TestHost", ["member", $"af_packet:{Veth.B}?fanout=42", k], netns: veth.Namespace))];
            try
            {
                foreach (ChildProcess m in members) m.WaitFor("receiving");
                Send(veth, frames, sent.Count);
                Thread.Sleep(1300);   // the members' counters written into their clusters' listings
                // ZStat lists each member's device, in the cluster of the process that opened it: kind, ring, group and mode.
                using (ChildProcess stat = ChildProcess.Run("ZStat", []))
                {
                    Assert.Equal(0, stat.WaitForExit());
                    string[] listed = [.. stat.Output.Split(" | ").Where(l => l.Contains($"af_packet:{Veth.B}?fanout=42  ring 16,384 KiB  fanout 42 hash  received "))];
                    Assert.True(listed.Length == 3, stat.Output);
                    output.WriteLine(string.Join("\n", listed));
                }
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

    private static void PacketParserKey(in PacketHandle packet, out string flow)
    {
        Parsing.PacketParser.Parse(packet, out Parsing.PacketInfo info);
        flow = $"{info.Outer.Source}:{info.Outer.SourcePort}>{info.Outer.Destination}:{info.Outer.DestinationPort}";
    }

    // An IPv4 packet (Ethernet first) with its header checksum: protocol UDP, the datagram `id`, `offset` bytes into it,
    // `more` fragments to come, carrying `data`.
    internal static byte[] Ipv4Packet(ushort id, uint source, int offset, bool more, ReadOnlySpan<byte> data)
        => Ipv4Packet(Frames.Ethernet(0x0800).ToArray(), id, source, 0x0A000002, 17, offset, more, data);

    internal static byte[] Ipv4Packet(byte[] ethernet, ushort id, uint source, uint destination, byte protocol, int offset, bool more, ReadOnlySpan<byte> data)
    {
        byte[] frame = new byte[14 + 20 + data.Length];
        ethernet.CopyTo(frame, 0);
        Span<byte> ip = frame.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + data.Length));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], id);
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], (ushort)((more ? 0x2000 : 0) | offset / 8));
        ip[8] = 64;
        ip[9] = protocol;
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], source);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], destination);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum(ip[..20]));
        data.CopyTo(ip[20..]);
        return frame;
    }

    // The Internet checksum of `bytes`.
    internal static ushort Checksum(ReadOnlySpan<byte> bytes)
    {
        uint sum = 0;
        for (int i = 0; i + 1 < bytes.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(bytes[i..]);
        if (bytes.Length % 2 == 1) sum += (uint)bytes[^1] << 8;
        while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }

    // A UDP datagram (header and payload) of `length` bytes from port `port`, its payload numbered bytes.
    internal static byte[] Datagram(ushort port, int length)
    {
        byte[] d = new byte[length];
        BinaryPrimitives.WriteUInt16BigEndian(d, port);
        BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(2), 53);
        BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(4), (ushort)length);
        for (int i = 8; i < length; i++) d[i] = (byte)(i * 7 + port);
        return d;
    }

    // Fragments of `datagram` of `size` bytes each (the last shorter), in order.
    internal static List<byte[]> Fragment(ushort id, uint source, byte[] datagram, int size)
    {
        var fragments = new List<byte[]>();
        for (int at = 0; at < datagram.Length; at += size)
            fragments.Add(Ipv4Packet(id, source, at, at + size < datagram.Length, datagram.AsSpan(at, Math.Min(size, datagram.Length - at))));
        return fragments;
    }

    [Theory]
    [InlineData("defrag=1")]
    [InlineData("fanout=47&defrag=1")]
    public void KernelDefragmentation_DeliversDatagramsSentInFragments_Whole(string options)
    {
        using Veth veth = Veth.Create();
        string frames = TempPath("fragments.pcap");
        using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(64);
        byte[][] datagrams = [Datagram(1000, 3000), Datagram(1001, 4000), Datagram(1002, 2500), Datagram(1003, 100), Datagram(1004, 3000)];
        var sent = new List<byte[]>();
        sent.AddRange(Fragment(1, 0x0A000001, datagrams[0], 1200));                                   // in order
        sent.AddRange(Enumerable.Reverse(Fragment(2, 0x0A000001, datagrams[1], 1200)));              // out of order
        List<byte[]> third = Fragment(3, 0x0A000001, datagrams[2], 1000);
        sent.AddRange([third[0], third[1], third[1], third[2]]);                                       // one twice
        sent.Add(Ipv4Packet(4, 0x0A000001, 0, false, datagrams[3]));                                  // not fragmented
        sent.AddRange(Fragment(5, 0x0A000001, datagrams[4], 1200).Take(2));                            // never completed
        using (var writer = new CaptureWriter(frames))
            for (int i = 0; i < sent.Count; i++) writer.Write(sent[i], i);
        byte[][] expected = [.. datagrams.Take(4).Select((d, i) => Ipv4Packet((ushort)(i + 1), 0x0A000001, 0, false, d))];
        try
        {
            veth.Run(() =>
            {
                using IPacketSource device = Device.OpenSource($"af_packet:{Veth.B}?{options}", pool, 0);
                IFrameReader reader = Device.InPlace(device)!;
                Send(veth, frames, sent.Count, rate: 1000);
                var got = new List<byte[]>();
                var read = new CapturedFrame[8];
                for (var quiet = System.Diagnostics.Stopwatch.StartNew(); quiet.ElapsedMilliseconds < 500; Thread.Sleep(1))
                {
                    int n = reader.ReadBurst(read);
                    if (n > 0) quiet.Restart();
                    foreach (CapturedFrame f in read.AsSpan(0, n)) got.Add(f.Data.ToArray());
                }
                Assert.Equal(expected.Length, got.Count);
                for (int i = 0; i < expected.Length; i++)
                    Assert.True(expected[i].AsSpan().SequenceEqual(got[i]), $"datagram {i}: {got[i].Length} bytes, expected {expected[i].Length}: {Convert.ToHexString(got[i].AsSpan(0, 40))}");
            });
        }
        finally
        {
            File.Delete(frames);
        }
    }

    [Theory]
    [InlineData("multi:zcb;zcd")]
    [InlineData("zcb,zcd")]
    public void SeveralInterfacesReadAsOne_GiveEveryFrameOfEach_InOrder(string name)
    {
        using Veth veth = Veth.Create(pairs: 2);
        string one = TempPath("multi-one.pcap"), two = TempPath("multi-two.pcap");
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(4096);
        try
        {
            List<byte[]> first = Conversations(one, 40), second = Conversations(two, 30, first: 100);
            veth.Run(() =>
            {
                using IPacketSource device = Device.OpenSource(name, pool, 7);
                Assert.Equal(name, device.Name);
                using ChildProcess a = ChildProcess.Run("Send", ["-i", Veth.A, "-f", one, "-n", first.Count, "-p", 4000], netns: veth.Namespace);
                using ChildProcess c = ChildProcess.Run("Send", ["-i", Veth.C, "-f", two, "-n", second.Count, "-p", 4000], netns: veth.Namespace);
                List<byte[]> got = DrainAll([device], pool, first.Count + second.Count)[0];
                Assert.Equal(0, a.WaitForExit());
                Assert.Equal(0, c.WaitForExit());
                Assert.Equal(first.Count + second.Count, got.Count);
                // The first capture's clients are ports 1000 to 1039, the second's 1100 to 1129.
                var fromOne = got.Where(f => Math.Max(f[34] << 8 | f[35], f[36] << 8 | f[37]) < 1100).ToList();
                Assert.Equal(first.Count, fromOne.Count);
                Assert.Equal(first.Select(Number), fromOne.Select(Number));
                Assert.Equal(second.Select(Number), got.Except(fromOne).Select(Number));
                Assert.Equal((ulong)got.Count, device.Stats.Received);
            });
        }
        finally
        {
            File.Delete(one);
            File.Delete(two);
        }
        Assert.Equal(4096, pool.Available);
    }

    [Fact]
    public void StackDevice_FramesSentIntoItReachAUdpSocket_AndAPingThroughItIsAnswered()
    {
        using Veth veth = Veth.Create();
        using ZcCluster cluster = TestClusters.Create(buffers: 256, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(256);
        const uint Host = 0x0A090001, Peer = 0x0A090002;   // 10.9.0.1 on zc0, 10.9.0.2 behind it
        veth.Run(() =>
        {
            using IPacketSource source = Device.OpenSource("stack:zc0", pool, 0);
            var device = (IPacketSink)source;
            veth.Exec("ip", "addr", "add", "10.9.0.1/24", "dev", "zc0");
            veth.Exec("ip", "neigh", "add", "10.9.0.2", "lladdr", "02:00:00:00:00:01", "dev", "zc0");
            byte[] mac = Convert.FromHexString(veth.Exec("cat", "/sys/class/net/zc0/address").Trim().Replace(":", ""));
            byte[] ethernet = [.. mac, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
            void Into(byte[] frame)
            {
                Assert.True(pool.TryGet(out PacketHandle p));
                frame.CopyTo(p.Buffer);
                p.SetReceived(frame.Length, frame.Length, 0, 0);
                Assert.True(device.TrySend(p));
                pool.Release(p);
            }

            using var udp = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
            udp.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Parse("10.9.0.1"), 5000));
            udp.ReceiveTimeout = 5000;
            for (int i = 0; i < 10; i++)
            {
                byte[] payload = System.Text.Encoding.ASCII.GetBytes($"datagram {i}");
                byte[] datagram = [.. Frames.Ethernet(0).Udp(4000, 5000, payload.Length).ToArray()[14..], .. payload];
                Into(Ipv4Packet(ethernet, (ushort)i, Peer, Host, 17, 0, false, datagram));
            }
            byte[] buffer = new byte[100];
            for (int i = 0; i < 10; i++)
                Assert.Equal($"datagram {i}", System.Text.Encoding.ASCII.GetString(buffer, 0, udp.Receive(buffer)));

            // An echo request from 10.9.0.2: the stack's reply comes out of zc0, and so out of the device.
            byte[] echo = [8, 0, 0, 0, 0x12, 0x34, 0, 1, .. System.Text.Encoding.ASCII.GetBytes("zcflow ping")];
            BinaryPrimitives.WriteUInt16BigEndian(echo.AsSpan(2), Checksum(echo));
            Into(Ipv4Packet(ethernet, 99, Peer, Host, 1, 0, false, echo));
            var burst = new PacketHandle[8];
            byte[]? reply = null;
            for (var clock = System.Diagnostics.Stopwatch.StartNew(); reply is null && clock.ElapsedMilliseconds < 5000;)
            {
                if (!source.WaitReadable(100)) continue;
                int n = source.ReceiveBurst(burst);
                foreach (PacketHandle p in burst.AsSpan(0, n))
                    if (p.Length >= 34 + echo.Length && p.Data[23] == 1 && p.Data[34] == 0) reply = p.Data.ToArray();
                pool.ReleaseBurst(burst.AsSpan(0, n));
            }
            Assert.NotNull(reply);
            Assert.Equal(echo.AsSpan(4).ToArray(), reply.AsSpan(38, echo.Length - 4).ToArray());   // its id, sequence and data
            Assert.Equal(Peer, BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(30)));
            Assert.Equal(11UL, device.Stats.Sent);
        });
        Assert.Equal(256, pool.Available);
        Assert.DoesNotContain("zc0", veth.Exec("ip", "-o", "link"));   // the interface it made went with it
    }

    [Fact]
    public void StackDevice_WithoutTheRightToCreateATap_IsAClearError()
    {
        using ChildProcess zcount = ChildProcess.Run("ZCount", ["-i", "stack:zcnope0"], asUser: 65534);
        Assert.Equal(1, zcount.WaitForExit());
        Assert.Contains("a TAP interface is created with CAP_NET_ADMIN (run as root), or made beforehand for this user: ip tuntap add zcnope0 mode tap user <user>", zcount.Errors);
    }

    [Fact]
    public void Any_CapturesEveryInterface_CookedWithItsIndex_AndParsesAndHashesAsTheEthernetFrame()
    {
        using Veth veth = Veth.Create(pairs: 2);
        string one = TempPath("any-one.pcap"), two = TempPath("any-two.pcap");
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(4096);
        try
        {
            List<byte[]> first = Conversations(one, 10), second = Conversations(two, 10, first: 100);
            Dictionary<int, string> names = new[] { Veth.A, Veth.B, Veth.C, Veth.D }.ToDictionary(i => int.Parse(veth.Exec("cat", $"/sys/class/net/{i}/ifindex").Trim()), i => i);
            veth.Run(() =>
            {
                using IPacketSource any = Device.OpenSource("any", pool, 0);
                Assert.Equal(Parsing.LinkType.LinuxSll2, any.Link);
                using ChildProcess a = ChildProcess.Run("Send", ["-i", Veth.A, "-f", one, "-n", first.Count, "-p", 4000], netns: veth.Namespace);
                using ChildProcess c = ChildProcess.Run("Send", ["-i", Veth.C, "-f", two, "-n", second.Count, "-p", 4000], netns: veth.Namespace);
                var got = new List<(string Interface, byte PacketType, byte[] Frame, ulong Route, string Flow)>();
                var burst = new PacketHandle[32];
                var quiet = System.Diagnostics.Stopwatch.StartNew();
                while (got.Count < 2 * (first.Count + second.Count) && quiet.ElapsedMilliseconds < 2000)
                {
                    int n = any.ReceiveBurst(burst);
                    if (n == 0) { Thread.Sleep(1); continue; }
                    quiet.Restart();
                    foreach (PacketHandle p in burst.AsSpan(0, n))
                    {
                        Assert.Equal(276u, p.LinkType);
                        byte[] d = p.Data.ToArray();
                        PacketParserKey(p, out string flow);
                        got.Add((names.GetValueOrDefault(BinaryPrimitives.ReadInt32BigEndian(d.AsSpan(4)), "?"), d[10], d, new Distribution.FiveTupleHash().Route(p, 8), flow));
                    }
                    pool.ReleaseBurst(burst.AsSpan(0, n));
                }
                Assert.Equal(0, a.WaitForExit());
                Assert.Equal(0, c.WaitForExit());
                // Each frame twice: going out of the interface it was sent from (PACKET_OUTGOING), and coming in at its peer.
                foreach ((List<byte[]> sent, string from, string to) in new[] { (first, Veth.A, Veth.B), (second, Veth.C, Veth.D) })
                {
                    foreach ((string @interface, bool outgoing) in new[] { (from, true), (to, false) })
                    {
                        var here = got.Where(g => g.Interface == @interface).ToList();
                        Assert.True(here.Count == sent.Count, $"{here.Count} frames on {@interface}, expected {sent.Count}");
                        for (int i = 0; i < sent.Count; i++)
                        {
                            Assert.True(sent[i].AsSpan(14).SequenceEqual(here[i].Frame.AsSpan(20)), $"frame {i} on {@interface}");
                            Assert.Equal(outgoing, here[i].PacketType == 4);
                            Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(here[i].Frame));
                            // The parser, and a hash, read the cooked frame as the Ethernet one it was.
                            using ZcCluster ethernet = TestClusters.Create(buffers: 4, bufferSize: 2048);
                            BufferPool e = ethernet.CreatePool(4);
                            Assert.True(e.TryGet(out PacketHandle p));
                            sent[i].CopyTo(p.Buffer);
                            p.SetReceived(sent[i].Length, sent[i].Length, 0, 0);
                            PacketParserKey(p, out string flow);
                            Assert.Equal(flow, here[i].Flow);
                            Assert.Equal(new Distribution.FiveTupleHash().Route(p, 8), here[i].Route);
                            e.Release(p);
                        }
                    }
                }
            });
        }
        finally
        {
            File.Delete(one);
            File.Delete(two);
        }
        Assert.Equal(4096, pool.Available);
    }

    [Fact]
    public void Any_ThroughTheAggregator_WritesACaptureTcpdumpReadsAsLinuxSll2()
    {
        TestSetup.RequireTool("tcpdump");
        using Veth veth = Veth.Create();
        string frames = TempPath("any-agg.pcap"), written = TempPath("any-written.pcap");
        try
        {
            List<byte[]> sent = Conversations(frames, 20);
            using ChildProcess aggregator = ChildProcess.Run("Aggregator", ["-i", "any?outgoing=0", "-o", written, "-n", sent.Count], netns: veth.Namespace);
            Thread.Sleep(1500);   // its device open
            Send(veth, frames, sent.Count);
            Assert.Equal(0, aggregator.WaitForExit(30));
            (int code, string text, string error) = Tools.Run("tcpdump", "-nn", "-r", written);
            Assert.True(code == 0, error);
            Assert.Contains("link-type LINUX_SLL2", error);
            Assert.Equal(sent.Count, text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
            int zcb = int.Parse(veth.Exec("cat", $"/sys/class/net/{Veth.B}/ifindex").Trim());
            List<byte[]> got = LiveDeviceTests.Packets(written);
            for (int i = 0; i < sent.Count; i++)
            {
                Assert.True(sent[i].AsSpan(14).SequenceEqual(got[i].AsSpan(20)), $"record {i}");
                Assert.Equal(zcb, BinaryPrimitives.ReadInt32BigEndian(got[i].AsSpan(4)));
            }
        }
        finally
        {
            File.Delete(frames);
            File.Delete(written);
        }
    }

    [Fact]
    public void TwoFanoutDevicesOfOneProcess_EachOnItsCore_FeedOneSetOfQueues_EveryPacketOnce_EachFlowOnOneQueue()
    {
        using Veth veth = Veth.Create();
        string frames = TempPath("fanout-graph.pcap");
        try
        {
            List<byte[]> sent = Conversations(frames, 150);
            int[] cores = Workers.CpuAffinity.AllowedCores();
            veth.Run(() =>
            {
                Graphs.Topology t = Graphs.Topology.Cluster(TestClusters.NextId()).Options(new ClusterOptions { BufferCount = 8192, BufferSize = 2048, Warn = _ => { } });
                string member = $"af_packet:{Veth.B}?fanout=48";
                Graphs.PacketStream first = t.From(member).Stage(new PassAll(), cores[0], "member 0");
                Graphs.PacketStream second = t.From(member).Stage(new PassAll(), cores[^1], "member 1");
                int[] queues = t.Merge(first, second).Balance(new Distribution.FiveTupleHash(), 2, name: "balancer").ToQueues();
                output.WriteLine(t.Plan().ToString());
                using Graphs.Graph graph = t.Run();
                using ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", sent.Count, "-p", 5000], netns: veth.Namespace);
                var got = new List<byte[]>[] { [], [] };
                var burst = new PacketHandle[32];
                for (var quiet = System.Diagnostics.Stopwatch.StartNew(); got.Sum(g => g.Count) < sent.Count && quiet.ElapsedMilliseconds < 3000;)
                {
                    bool any = false;
                    for (int q = 0; q < 2; q++)
                    {
                        Queues.QueueConsumer consumer = graph.Consumer(queues[q]);
                        int n = consumer.ReceiveBurst(burst);
                        foreach (PacketHandle p in burst.AsSpan(0, n)) got[q].Add(p.Data.ToArray());
                        consumer.ReleaseBurst(burst.AsSpan(0, n));
                        any |= n > 0;
                    }
                    if (any) quiet.Restart();
                    else Thread.Sleep(1);
                }
                Assert.Equal(0, send.WaitForExit());
                DeviceStats[] members = [.. graph.Inputs.Select(d => d.Stats)];
                output.WriteLine($"{sent.Count} packets: members received {string.Join(", ", members.Select(m => m.Received))}, queues {got[0].Count}, {got[1].Count}");
                Assert.Equal(sent.Select(Number).Order(), got.SelectMany(g => g).Select(Number).Order());   // every packet, once
                Assert.All(members, m => Assert.True(m.Received > (ulong)sent.Count / 5, "both members took a share"));
                var queueOf = new Dictionary<string, int>();
                for (int q = 0; q < 2; q++)
                    foreach (byte[] f in got[q])
                        Assert.True(queueOf.TryAdd(Conversation.Key(f), q) || queueOf[Conversation.Key(f)] == q, $"conversation {Conversation.Key(f)} on both queues");
            });
        }
        finally
        {
            File.Delete(frames);
        }
    }
}
