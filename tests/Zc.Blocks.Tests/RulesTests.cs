using System.Buffers.Binary;
using ZcFlow.Filters;
using ZcFlow.Native;

namespace ZcFlow.Tests;

/// <summary>The rules model, its text, and its two back ends (user space, and the kernel's XDP program run on test frames).</summary>
public class RulesTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("drop proto udp dport 53", "drop proto 17 dport 53")]
    [InlineData("kernel ether arp", "kernel ether 0x0806")]
    [InlineData("reflect zcd src 10.0.0.0/8 dport 1000-2000", "reflect zcd src 10.0.0.0/8 dport 1000-2000")]
    [InlineData("pass vlan 10 proto tcp src 192.0.2.1 sport 80 dst 198.51.100.7 dport 40000", "pass vlan 10 proto 6 src 192.0.2.1/32 dst 198.51.100.7/32 sport 80 dport 40000")]
    [InlineData("drop src 2001:db8::/32 proto icmp6", "drop proto 58 src 2001:db8::/32")]
    public void ARule_ReadsFromItsLine_AndWritesItBack(string line, string written)
    {
        Rule rule = Rule.Parse(line);
        Assert.Equal(written, rule.ToString());
        Assert.Equal(rule, Rule.Parse(rule.ToString()));
    }

    [Theory]
    [InlineData("accept proto tcp", "'accept' is not an action")]
    [InlineData("drop proto tcp dport", "'dport' needs a value")]
    [InlineData("drop dport 70000", "dport takes a port or a range")]
    [InlineData("drop dport 2000-1000", "dport takes a port or a range")]
    [InlineData("drop src 10.0.0.0/33", "src takes an address or a prefix")]
    [InlineData("drop src 10.0.0.1 dst ::1", "src and dst are of different IP versions")]
    [InlineData("drop colour red", "unknown field 'colour'")]
    [InlineData("reflect", "reflect names the interface")]
    public void ABadRule_IsAClearError(string line, string said)
    {
        var e = Assert.Throws<ArgumentException>(() => Rule.Parse(line));
        Assert.Contains(said, e.Message);
    }

    [Fact]
    public void TheKernelProgram_Loads_AndDecidesAsUserSpaceDoes()
    {
        if (Environment.UserName != "root") Assert.Skip("loading BPF programs needs root");
        var rules = new Rules();
        rules.Add(Rule.Parse("drop proto udp dport 53"));
        using var kernel = new KernelRules(rules);
        output.WriteLine($"program loaded: fd {kernel.ProgramFd}");
        byte[] dns = Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 12).Udp(1000, 53, 4).U32(1).ToArray();
        byte[] web = Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 6, 24).Tcp(1000, 80).U32(1).ToArray();
        Assert.Equal(1u, kernel.TestRun(dns));
        Assert.Equal(2u, kernel.TestRun(web));   // to the application, with no socket: the kernel
        Assert.Equal((1UL, (ulong)dns.Length), kernel.Counters(0));
    }

    [Fact]
    public void ZbalanceAddressRules_InTheKernel_DropWhatTheBalancerWouldDrop_AndLeaveTheRestToIt()
    {
        if (Environment.UserName != "root") Assert.Skip("loading BPF programs needs root");
        using var kernel = new KernelRules(new Rules());
        using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: 2048);
        Buffers.BufferPool pool = cluster.CreatePool(64);
        Assert.True(pool.TryGet(out Buffers.PacketHandle p));
        UInt128 a6 = ((UInt128)0x20010DB8_00000000 << 64) | 1, b6 = ((UInt128)0x20010DB8_00000000 << 64) | 2;
        byte[] V4(uint src, uint dst) => Frames.Ethernet(0x0800).Ipv4(src, dst, 17, 12).Udp(1000, 53, 4).U32(1).ToArray();
        byte[][] frames =
        [
            V4(0x0A000001, 0x0A000002), V4(0x0A000002, 0x0A000001), V4(0x0A000003, 0x0A000009), V4(0x0A000009, 0x0A000003), V4(0x0B000001, 0x0B000002),
            Frames.Ethernet(0x86DD).Ipv6(a6, b6, 17, 12).Udp(1, 2, 4).U32(1).ToArray(), Frames.Ethernet(0x86DD).Ipv6(b6, a6, 17, 12).Udp(1, 2, 4).U32(1).ToArray(),
            Frames.Ethernet(0x8100).Vlan(7, 0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 12).Udp(1, 2, 4).U32(1).ToArray(),
            Frames.Ethernet(0x88A8).Vlan(7, 0x8100).Vlan(8, 0x0800).Ipv4(0x0A000003, 0x0A000002, 17, 12).Udp(1, 2, 4).U32(1).ToArray(),
            Frames.Ethernet(0x0806).Add(new byte[28]).ToArray(),                              // ARP: no address, the default
            V4(0x0A000001, 0x0A000002)[..20],                                                  // cut inside the IP header
        ];
        foreach (bool acceptByDefault in new[] { true, false })
        {
            var set = new IpRules(acceptByDefault,
            [
                new IpRule(4, 0x0A000001, Source: true, Accept: false), new IpRule(4, 0x0A000003, Source: true, Accept: true),
                new IpRule(4, 0x0A000009, Source: false, Accept: false), new IpRule(6, b6, Source: true, Accept: false),
                new IpRule(4, 0x0B000002, Source: false, Accept: true),
            ]);
            kernel.SetAddresses(set);
            int dropped = 0;
            foreach (byte[] frame in frames)
            {
                frame.CopyTo(p.Buffer);
                p.SetReceived(frame.Length, frame.Length, 0, 0);
                uint action = kernel.TestRun(frame);
                bool passes = set.Passes(p);
                // The kernel drops only what the balancer would drop; what it lets up, the balancer decides on again.
                Assert.True(action == 1 ? !passes : action == 2, $"frame of {frame.Length} bytes: the kernel's {action}, the balancer's {(passes ? "pass" : "drop")}");
                if (action == 1) dropped++;
                else if (!passes) Assert.True(frame.Length < 34 || frame[12] == 0x08 && frame[13] == 0x06, "an IP packet the kernel parsed and let up that the balancer drops");
            }
            output.WriteLine($"default {(acceptByDefault ? "pass" : "drop")}: {dropped} of {frames.Length} dropped in the kernel");
            Assert.Equal(acceptByDefault ? 3 : 6, dropped);
            Assert.Equal((ulong)(acceptByDefault ? 3 : 9), kernel.AddressDropped.Packets);
        }
        kernel.SetAddresses(null);   // none: everything up
        Assert.All(frames, f => Assert.Equal(2u, kernel.TestRun(f)));
        pool.Release(p);
    }

    private static readonly string[] Mixed =
    [
        "pass proto tcp src 10.1.0.1 sport 1000 dst 10.2.0.2 dport 80",
        "drop proto udp src 10.1.0.2 sport 5000 dst 10.2.0.1 dport 53",
        "kernel vlan 10 proto tcp src 10.1.0.3 sport 1001 dst 10.2.0.2 dport 443",
        "drop proto tcp src 2001:db8::1 sport 1000 dst 2001:db8::2 dport 80",
        "drop proto udp dport 53",
        "kernel ether arp",
        "kernel proto icmp",
        "pass src 10.1.0.0/16 dport 1000-2000",
        "drop vlan 20",
        "reflect lo proto tcp dst 10.3.0.0/24",
        "drop src 2001:db8::/64 proto udp sport 7-9",
        "kernel ether 0x88cc",
        "drop proto 132",
        "pass dst 10.2.0.0/31",
        "drop proto 47",
    ];

    // Frames of every shape the rules read: Ethernet, one or two VLAN tags, ARP and others, IPv4 with options, bad
    // versions and lengths, fragments, IPv6 with extension headers and fragments, ports from small sets (so the rules
    // match often), every one cut short at a random length now and then.
    private static byte[] RandomFrame(Random r)
    {
        var f = new List<byte> { 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1 };
        void U16(int v) { f.Add((byte)(v >> 8)); f.Add((byte)v); }
        int tags = r.Next(10) switch { < 6 => 0, < 9 => 1, _ => 2 };
        for (int t = 0; t < tags; t++)
        {
            U16(r.Next(4) switch { 0 => 0x88A8, 1 => 0x9100, _ => 0x8100 });
            U16((r.Next(4) << 13) | (r.Next(3) switch { 0 => 10, 1 => 20, _ => r.Next(4096) }));
        }
        int kind = r.Next(20);
        uint[] v4 = [0x0A010001, 0x0A010002, 0x0A010003, 0x0A020001, 0x0A020002, 0x0A030005, 0x0B000001];
        int[] ports = [53, 80, 443, 1000, 1001, 1500, 5000, 7, 8, 9, 2001];
        byte[] protos = [6, 17, 132, 1, 47, 58, 6, 17];
        if (kind < 9)
        {
            U16(0x0800);
            int ihl = r.Next(8) == 0 ? r.Next(16) : 5 + (r.Next(4) == 0 ? r.Next(11) : 0);
            f.Add((byte)((r.Next(10) == 0 ? r.Next(16) : 4) << 4 | ihl));
            f.Add(0);
            U16(100);
            U16(r.Next(65536));
            U16(r.Next(5) == 0 ? r.Next(65536) : r.Next(2) * 0x4000);
            f.Add(64);
            f.Add(protos[r.Next(protos.Length)]);
            U16(0);
            foreach (uint a in new[] { v4[r.Next(v4.Length)], v4[r.Next(v4.Length)] }) { U16((int)(a >> 16)); U16((int)(a & 0xFFFF)); }
            for (int o = 20; o < ihl * 4; o++) f.Add(1);
            U16(ports[r.Next(ports.Length)]);
            U16(ports[r.Next(ports.Length)]);
        }
        else if (kind < 15)
        {
            U16(0x86DD);
            f.AddRange([(byte)(r.Next(10) == 0 ? r.Next(256) : 0x60), 0, 0, 0]);
            U16(100);
            byte[] chain = [.. Enumerable.Range(0, r.Next(5)).Select(_ => (byte)(r.Next(5) switch { 0 => 0, 1 => 43, 2 => 60, _ => 44 }))];
            byte last = protos[r.Next(protos.Length)];
            f.Add(chain.Length > 0 ? chain[0] : last);
            f.Add(64);
            for (int a = 0; a < 2; a++)
            {
                f.AddRange([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                f.Add((byte)r.Next(1, 4));
            }
            for (int e = 0; e < chain.Length; e++)
            {
                byte next = e + 1 < chain.Length ? chain[e + 1] : last;
                if (chain[e] == 44) { f.Add(next); f.Add(0); U16(r.Next(3) == 0 ? r.Next(65536) & 0xFFF9 : r.Next(2)); f.AddRange([1, 2, 3, 4]); }
                else { int len = r.Next(3); f.Add(next); f.Add((byte)len); for (int k = 2; k < (len + 1) * 8; k++) f.Add(0); }
            }
            U16(ports[r.Next(ports.Length)]);
            U16(ports[r.Next(ports.Length)]);
        }
        else
        {
            U16(r.Next(4) switch { 0 => 0x0806, 1 => 0x88CC, 2 => 0x8100, _ => r.Next(65536) });
        }
        for (int k = r.Next(30); k > 0; k--) f.Add((byte)r.Next(256));
        byte[] frame = [.. f];
        if (r.Next(6) == 0) frame = frame[..Math.Max(14, r.Next(frame.Length + 1))];
        return frame;
    }

    // Crafted: one frame of each precise rule's 6-tuple, plain and VLAN-tagged, and each cut short byte by byte.
    private static readonly byte[][] Crafted =
    [
        Frames.Ethernet(0x0800).Ipv4(0x0A010001, 0x0A020002, 6, 24).Tcp(1000, 80).U32(0).ToArray(),
        Frames.Ethernet(0x0800).Ipv4(0x0A010002, 0x0A020001, 17, 12).Udp(5000, 53, 4).U32(0).ToArray(),
        Frames.Ethernet(0x8100).Vlan(10, 0x0800).Ipv4(0x0A010003, 0x0A020002, 6, 24).Tcp(1001, 443).U32(0).ToArray(),
        Frames.Ethernet(0x8100).Vlan(11, 0x0800).Ipv4(0x0A010003, 0x0A020002, 6, 24).Tcp(1001, 443).U32(0).ToArray(),
        Frames.Ethernet(0x86DD).Ipv6((UInt128)0x20010db8 << 96 | 1, (UInt128)0x20010db8 << 96 | 2, 6, 24).Tcp(1000, 80).U32(0).ToArray(),
    ];
    private static readonly byte[][] Cut = [.. Crafted.SelectMany(c => Enumerable.Range(14, c.Length - 13).Select(n => c[..n]))];

    [Fact]
    public void BothBackEnds_GiveAMillionRandomAndCraftedFrames_TheSameDecision_AndCountTheSame()
    {
        if (Environment.UserName != "root") Assert.Skip("loading BPF programs needs root");
        var rules = new Rules();
        int[] ids = [.. Mixed.Select(l => rules.Add(Rule.Parse(l)))];
        using var kernel = new KernelRules(rules);
        var random = new Random(20261204);
        var decisions = new int[4];
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 1_000_000; i++)
        {
            byte[] frame = i % 100 == 0 ? Cut[i / 100 % Cut.Length] : RandomFrame(random);
            RuleAction action = rules.Decide(frame, 0, out int id);
            uint expected = action switch { RuleAction.Drop => 1u, RuleAction.Reflect => 4u, _ => 2u };   // no socket: the application's go to the kernel
            uint got = kernel.TestRun(frame);
            if (got != expected)
                Assert.Fail($"frame {i} ({Convert.ToHexString(frame)}): user space says {action} (rule {id}: {(id >= 0 ? Mixed[Array.IndexOf(ids, id)] : "default")}), the kernel returned {got}");
            decisions[(int)action]++;
        }
        output.WriteLine($"1,000,000 frames in {clock.Elapsed.TotalSeconds:F1} s: {string.Join(", ", Enum.GetValues<RuleAction>().Select(a => $"{a} {decisions[(int)a]:N0}"))}");
        foreach (int id in ids.Append(-1))
        {
            Assert.Equal(rules.UserSpaceCounters(id), kernel.Counters(id));
            output.WriteLine($"  {(id >= 0 ? Mixed[Array.IndexOf(ids, id)] : "default"),-70} {rules.UserSpaceCounters(id).Packets,9:N0} packets");
        }
        Assert.All(ids, id => Assert.True(rules.UserSpaceCounters(id).Packets > 0, $"rule {Mixed[Array.IndexOf(ids, id)]} matched nothing"));
    }

    [Fact]
    public void AsAPacketSocketsFilter_TheKernelProgram_GivesAMillionFrames_TheDecisionsOfUserSpace_AndCountsTheSame()
    {
        if (Environment.UserName != "root") Assert.Skip("loading BPF programs needs root");
        // The mixed rules but those a socket filter refuses (reflect): refused with the reason, the rules unchanged.
        string[] lines = [.. Mixed.Where(l => !l.StartsWith("reflect", StringComparison.Ordinal))];
        var rules = new Rules();
        int[] ids = [.. lines.Select(l => rules.Add(Rule.Parse(l)))];
        using var kernel = KernelRules.ForPacketSocket(rules);
        var e = Assert.Throws<ArgumentException>(() => rules.Add(Rule.Parse("reflect lo proto tcp")));
        Assert.Contains("user space", e.Message);
        Assert.Equal(ids.Length, rules.List().Count);
        Assert.NotNull(KernelRules.SocketFilterRefuses(new Rules(filter: Filters.BpfFilter.Compile("udp"))));
        var random = new Random(20261205);
        var decisions = new int[4];
        for (int i = 0; i < 1_000_000; i++)
        {
            byte[] frame = i % 100 == 0 ? Cut[i / 100 % Cut.Length] : RandomFrame(random);
            RuleAction action = rules.Decide(frame, 0, out int id);
            uint kept = kernel.TestRun(frame);
            if ((kept != 0) != (action == RuleAction.ToApplication))
                Assert.Fail($"frame {i} ({Convert.ToHexString(frame)}): user space says {action} (rule {id}: {(id >= 0 ? lines[Array.IndexOf(ids, id)] : "default")}), the socket filter kept {kept} bytes");
            decisions[(int)action]++;
        }
        output.WriteLine(string.Join(", ", Enum.GetValues<RuleAction>().Select(a => $"{a} {decisions[(int)a]:N0}")));
        foreach (int id in ids.Append(-1)) Assert.Equal(rules.UserSpaceCounters(id), kernel.Counters(id));
        Assert.All(ids, id => Assert.True(rules.UserSpaceCounters(id).Packets > 0, $"rule {lines[Array.IndexOf(ids, id)]} matched nothing"));
    }

    [Fact]
    public void ASetOfRulesThatCannotAllRun_IsRefusedWhole_AndTheRulesStayAsTheyWere()
    {
        if (Environment.UserName != "root") Assert.Skip("loading BPF programs needs root");
        var rules = new Rules();
        int dns = rules.Add(Rule.Parse("drop proto udp dport 53"));
        rules.Decide(Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 12).Udp(1000, 53, 4).U32(0).ToArray(), 0, out _);
        using var kernel = KernelRules.ForPacketSocket(rules);
        string[] before = [.. rules.List().Select(r => $"{r.Id} {r.Rule}")];
        // A file read again on SIGUSR1 is such a set: one rule the socket filter cannot run, two precise rules for one
        // 6-tuple, more wildcard rules than are held.
        Assert.Contains("cannot reflect", Assert.Throws<ArgumentException>(() => rules.Replace([Rule.Parse("drop dport 80"), Rule.Parse("reflect lo proto tcp")])).Message);
        string tuple = "proto udp src 10.0.0.1 sport 1 dst 10.0.0.2 dport 2";
        Assert.Contains("one 6-tuple", Assert.Throws<ArgumentException>(() => rules.Replace([Rule.Parse("drop " + tuple), Rule.Parse("pass " + tuple)])).Message);
        Assert.Throws<InvalidOperationException>(() => rules.Replace(Enumerable.Range(1, Rules.MaxWildcards + 1).Select(p => Rule.Parse($"drop dport {p}"))));
        Assert.Equal(before, rules.List().Select(r => $"{r.Id} {r.Rule}"));
        Assert.Equal(1UL, rules.Counters(dns).Packets);
        // A device given rules whose name names a rules file as well: two sets for one device.
        string file = Path.Combine(Path.GetTempPath(), $"zcflow-two-sets-{Environment.ProcessId}.rules");
        File.WriteAllLines(file, ["drop proto udp"]);
        try
        {
            using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: 2048);
            var e = Assert.Throws<ArgumentException>(() => Devices.Device.OpenSource($"lo?rules={file}", cluster.CreatePool(64), 0, rules));
            Assert.Contains("give one of them", e.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }

    // `count` UDP frames, numbered in their last four bytes, to the port `port(i)` gives.
    internal static List<byte[]> Udp(string path, int count, Func<int, ushort> port)
    {
        var frames = Enumerable.Range(0, count).Select(i => Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 12).Udp(1000, port(i), 4).U32((uint)i).ToArray()).ToList();
        using var writer = new Devices.CaptureWriter(path);
        for (int i = 0; i < frames.Count; i++) writer.Write(frames[i], i);
        return frames;
    }

    // Sends the frames of the capture from the pair's far end; the device receives every one but each third, in order, byte for byte.
    private static void SendAndReceiveAllButEveryThird(Veth veth, string capture, List<byte[]> sent, Devices.IPacketSource device, Buffers.BufferPool pool)
    {
        using ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", capture, "-n", sent.Count, "-p", 3000], netns: veth.Namespace);
        List<byte[]> kept = [.. sent.Where((_, i) => i % 3 != 0)];
        List<byte[]> got = Drain(device, pool, kept.Count);
        Assert.Equal(0, send.WaitForExit());
        Assert.Equal(kept.Count, got.Count);
        for (int i = 0; i < kept.Count; i++) Assert.True(kept[i].AsSpan().SequenceEqual(got[i]), $"frame {i}");
    }

    internal static List<byte[]> Drain(Devices.IPacketSource device, Buffers.BufferPool pool, int expected)
        => KernelDeviceTests.DrainAll([device], pool, expected)[0];

    [Theory]
    [InlineData("skb")]      // generic XDP, which every interface has
    [InlineData("native")]   // the veth driver's own
    public void InTheKernel_ADropRuleKeepsItsPacketsFromUserSpace_AndPingWorksThroughAToTheKernelRule(string mode)
    {
        using Veth veth = Veth.Create(mtu: 1500);   // veth's driver takes an XDP program up to a page's MTU
        string frames = Path.Combine(Path.GetTempPath(), $"zcflow-rules-{Environment.ProcessId}.pcap"), file = frames + ".rules";
        File.WriteAllLines(file, ["drop proto udp dport 53   # DNS", "kernel proto icmp", "kernel ether arp"]);
        veth.Exec("ip", "addr", "add", "10.9.1.2/24", "dev", Veth.B);
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, bufferSize: 2048);
        Buffers.BufferPool pool = cluster.CreatePool(4096);
        try
        {
            List<byte[]> sent = Udp(frames, 300, i => (ushort)(i % 3 == 0 ? 53 : 80));
            veth.Run(() =>
            {
                using var device = (Devices.XdpDevice)Devices.Device.OpenSource($"xdp:{Veth.B}@0?mode={mode}&rules={file}", pool, 0);
                Assert.Equal(3, device.Rules!.List().Count);
                SendAndReceiveAllButEveryThird(veth, frames, sent, device, pool);
                Assert.Equal((100UL, 100UL * (ulong)sent[0].Length), device.RuleCounters(0));
                Assert.Equal(0UL, device.Rules.UserSpaceCounters(0).Packets);   // decided in the kernel, not here
                Assert.Equal(100UL, device.Rules.Counters(0).Packets);
                // ICMP and ARP go to the stack, which answers: ping from the far end (a namespace of its own) works while the
                // device takes the rest.
                string peer = veth.Peer(Veth.A);
                (int _, string added, string _) = Tools.Run("ip", "netns", "exec", peer, "ip", "addr", "add", "10.9.1.1/24", "dev", Veth.A);
                (int code, string ping, string error) = Tools.Run("ip", "netns", "exec", peer, "ping", "-c", "3", "-W", "2", "10.9.1.2");
                Assert.True(code == 0, $"{added}{ping}{error}");
                output.WriteLine("" + ping.Split('\n').FirstOrDefault(l => l.Contains("packets transmitted")));
                Assert.Contains("3 received", ping);
                Assert.True(device.RuleCounters(1).Packets >= 3, "the echo requests went through the kernel rule");
                // None of the pings or ARP reached user space.
                Assert.DoesNotContain(Drain(device, pool, 1000), f => f[12] == 0x08 && (f[13] == 0x06 || f[13] == 0x00 && f[23] == 1));
            });
        }
        finally
        {
            File.Delete(frames);
            File.Delete(file);
        }
        Assert.Equal(4096, pool.Available);
    }

    [Fact]
    public void OnAfPacket_TheRulesRunAsTheSocketsFilter_DecidingAsUserSpaceForTaggedFramesToo_AndRulesChangeWhileItRuns()
    {
        using Veth veth = Veth.Create();
        string frames = Path.Combine(Path.GetTempPath(), $"zcflow-afp-rules-{Environment.ProcessId}.pcap");
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, bufferSize: 2048);
        Buffers.BufferPool pool = cluster.CreatePool(4096);
        try
        {
            // Untagged, VLAN 5 and QinQ (outer 7, inner 5) UDP to ports 53, 80 and 443 in turn. The kernel takes the outer
            // tag off before the filter sees a frame; the filter puts it back in its copy as the device puts it back for us.
            var sent = Enumerable.Range(0, 600).Select(i => ((i % 3) switch
            {
                0 => Frames.Ethernet(0x0800),
                1 => Frames.Ethernet(0x8100).Vlan(5, 0x0800),
                _ => Frames.Ethernet(0x88A8).Vlan(7, 0x8100).Vlan(5, 0x0800),
            }).Ipv4(0x0A000001, 0x0A000002, 17, 12).Udp(1000, (ushort)((i / 3 % 3) switch { 0 => 53, 1 => 80, _ => 443 }), 4).U32((uint)i).ToArray()).ToList();
            using (var writer = new Devices.CaptureWriter(frames))
                for (int i = 0; i < sent.Count; i++) writer.Write(sent[i], i);
            var rules = new Rules();
            var mirror = new Rules();   // the same rules in user space, over the same frames: what the filter must decide
            void Add(string line) { rules.Add(Rule.Parse(line)); mirror.Add(Rule.Parse(line)); }
            Add("drop proto udp dport 53");
            veth.Run(() =>
            {
                using Devices.IPacketSource device = Devices.Device.OpenSource(Veth.B, pool, 0, rules);
                Assert.Equal("AfPacketDevice", device.GetType().Name);   // no user-space layer in front of it
                SendAndReceiveAsUserSpaceDecides(veth, frames, sent, device, pool, mirror);
                Assert.Equal(mirror.UserSpaceCounters(0), rules.Counters(0));
                Assert.Equal(0UL, rules.UserSpaceCounters(0).Packets);   // decided in the kernel

                // Rules added while it runs: by the outer VLAN, by the EtherType past the tags, a precise one (its VLAN is
                // the frame's: untagged only); one a socket filter cannot run is refused, and the device keeps its rules.
                Add("kernel vlan 7 dport 80");
                Add("drop proto udp src 10.0.0.1 sport 1000 dst 10.0.0.2 dport 443");
                Add("drop vlan 5 dport 443");
                Add("kernel ether 0x8100 dport 80");
                Assert.Contains("user space", Assert.Throws<ArgumentException>(() => rules.Add(Rule.Parse("reflect lo dport 80"))).Message);
                Assert.Equal(5, rules.List().Count);
                SendAndReceiveAsUserSpaceDecides(veth, frames, sent, device, pool, mirror);
                for (int id = -1; id < 5; id++) Assert.Equal(mirror.UserSpaceCounters(id), rules.Counters(id));
                Assert.All(Enumerable.Range(1, 3), id => Assert.True(rules.Counters(id).Packets > 0, $"rule {rules.List()[id].Rule} matched nothing"));
                Assert.Equal(0UL, rules.Counters(4).Packets);   // ether 0x8100: a tag is not the EtherType past the tags
            });
            // Rules a socket filter cannot run stay in user space, in front of the device.
            var reflecting = new Rules();
            reflecting.Add(Rule.Parse("reflect lo proto tcp"));
            veth.Run(() =>
            {
                using Devices.IPacketSource device = Devices.Device.OpenSource(Veth.B, pool, 0, reflecting);
                Assert.Equal("RuledSource", device.GetType().Name);
            });
        }
        finally
        {
            File.Delete(frames);
        }
        Assert.Equal(4096, pool.Available);
    }

    // Sends the frames of the capture from the pair's far end; the device receives, in order and byte for byte, exactly
    // those <paramref name="decide"/>'s rules give the application in user space (which count them).
    private static void SendAndReceiveAsUserSpaceDecides(Veth veth, string capture, List<byte[]> sent, Devices.IPacketSource device, Buffers.BufferPool pool, Rules decide)
    {
        List<byte[]> kept = [.. sent.Where(f => decide.Decide(f, 0, out _) == RuleAction.ToApplication)];
        using ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", capture, "-n", sent.Count, "-p", 3000], netns: veth.Namespace);
        List<byte[]> got = Drain(device, pool, kept.Count);
        Assert.Equal(0, send.WaitForExit());
        Assert.Empty(Drain(device, pool, 1));
        Assert.Equal(kept.Count, got.Count);
        for (int i = 0; i < kept.Count; i++) Assert.True(kept[i].AsSpan().SequenceEqual(got[i]), $"frame {i}: {Convert.ToHexString(kept[i])} against {Convert.ToHexString(got[i])}");
    }

    [Fact]
    public void InTheKernel_AReflectRuleSendsItsFramesOutOfAnotherInterface_ByteForByte_AndUserSpaceSeesNone()
    {
        TestSetup.RequireTool("tcpdump");
        using Veth veth = Veth.Create(pairs: 2);
        string frames = Path.Combine(Path.GetTempPath(), $"zcflow-reflect-{Environment.ProcessId}.pcap"), captured = frames + ".out.pcap";
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, bufferSize: 2048);
        Buffers.BufferPool pool = cluster.CreatePool(4096);
        try
        {
            List<byte[]> sent = Udp(frames, 200, i => (ushort)(i % 2 == 0 ? 9999 : 80));
            var rules = new Rules();
            int reflect = rules.Add(Rule.Parse($"reflect {Veth.C} proto udp dport 9999"));
            veth.Run(() =>
            {
                using var device = (Devices.XdpDevice)Devices.XdpDevice.Open($"xdp:{Veth.B}@0?mode=skb", pool, 0, rules);
                using System.Diagnostics.Process tcpdump = veth.Start("tcpdump", "-i", Veth.D, "-U", "-n", "-s", "0", "-Q", "in", "-w", captured);
                var line = tcpdump.StandardError.ReadLineAsync();
                Assert.True(line.Wait(10_000), "tcpdump did not start");
                Thread.Sleep(200);
                List<byte[]> got;
                using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", sent.Count, "-p", 3000], netns: veth.Namespace))
                {
                    got = Drain(device, pool, 100);
                    Assert.Equal(0, send.WaitForExit());
                }
                Thread.Sleep(500);
                Native.Libc.Kill(tcpdump.Id, 15);
                tcpdump.WaitForExit();
                Assert.Equal(sent.Where((_, i) => i % 2 == 1).Select(f => Convert.ToHexString(f)), got.Select(f => Convert.ToHexString(f)));
                Assert.Equal(sent.Where((_, i) => i % 2 == 0).Select(f => Convert.ToHexString(f)), LiveDeviceTests.Packets(captured).Select(f => Convert.ToHexString(f)));
                Assert.Equal(100UL, device.RuleCounters(reflect).Packets);
            });
        }
        finally
        {
            File.Delete(frames);
            File.Delete(captured);
        }
    }

    [Fact]
    public void TenThousandPreciseRules_AddedWhileTrafficFlows_LoseNoOtherPacket_AndEachCountsItsOwn()
    {
        using Veth veth = Veth.Create();
        string before = Path.Combine(Path.GetTempPath(), $"zcflow-many-{Environment.ProcessId}.pcap"), after = before + ".matched.pcap";
        using ZcCluster cluster = TestClusters.Create(buffers: 8192, bufferSize: 2048);
        Buffers.BufferPool pool = cluster.CreatePool(8192);
        const int Count = 10_000;
        try
        {
            List<byte[]> unmatched = Udp(before, 6000, _ => 80);
            // Then each rule's own frames: rule k's 6-tuple k % 3 + 1 times, and unmatched ones between.
            var matched = new List<byte[]>();
            var expected = new int[Count];
            for (int round = 0; round < 3; round++)
                for (int k = 0; k < Count; k++)
                    if (round <= k % 3)
                    {
                        matched.Add(Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 12).Udp(1000, (ushort)(20000 + k), 4).U32((uint)k).ToArray());
                        expected[k]++;
                    }
            using (var writer = new Devices.CaptureWriter(after))
                for (int i = 0; i < matched.Count; i++) writer.Write(matched[i], i);
            var rules = new Rules();
            veth.Run(() =>
            {
                using var device = Devices.XdpDevice.Open($"xdp:{Veth.B}@0?mode=skb&ring=4096", pool, 0, rules);
                int[] ids = new int[Count];
                var adding = System.Diagnostics.Stopwatch.StartNew();
                List<byte[]> got;
                using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", before, "-n", unmatched.Count, "-p", 6000], netns: veth.Namespace))
                {
                    var adder = new Thread(() =>
                    {
                        Thread.Sleep(200);
                        for (int k = 0; k < Count; k++) ids[k] = rules.Add(Rule.Parse($"drop proto udp src 10.0.0.1 sport 1000 dst 10.0.0.2 dport {20000 + k}"));
                        adding.Stop();
                    });
                    adder.Start();
                    got = Drain(device, pool, unmatched.Count);
                    adder.Join();
                    Assert.Equal(0, send.WaitForExit());
                }
                output.WriteLine($"{Count:N0} precise rules added in {adding.Elapsed.TotalMilliseconds:F0} ms while {unmatched.Count:N0} other packets came, {got.Count:N0} of them received");
                Assert.Equal(unmatched.Select(Convert.ToHexString), got.Select(Convert.ToHexString));   // every one, in order
                using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", after, "-n", matched.Count, "-p", 20000], netns: veth.Namespace))
                    Assert.Equal(0, send.WaitForExit());
                Thread.Sleep(300);
                Assert.Empty(Drain(device, pool, 1));
                for (int k = 0; k < Count; k++)
                    Assert.True(device.RuleCounters(ids[k]).Packets == (ulong)expected[k], $"rule {k}: {device.RuleCounters(ids[k]).Packets} packets, expected {expected[k]}");
            });
        }
        finally
        {
            File.Delete(before);
            File.Delete(after);
        }
        Assert.Equal(8192, pool.Available);
    }

    [Fact]
    public void InTheKernel_TheProgramOfAKilledProcess_GoesWithIt_AndTheNextDeviceHasTheInterface()
    {
        using Veth veth = Veth.Create();
        string file = Path.Combine(Path.GetTempPath(), $"zcflow-takeover-{Environment.ProcessId}.rules"), keys = file + ".keys";
        File.WriteAllLines(file, ["drop proto udp dport 53"]);
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, bufferSize: 2048);
        Buffers.BufferPool pool = cluster.CreatePool(4096);
        string name = $"xdp:{Veth.B}@0?mode=skb&rules={file}";
        try
        {
            using (ChildProcess first = ChildProcess.Run("Zc.TestHost", ["member", name, keys], netns: veth.Namespace))
            {
                first.WaitFor("receiving");
                Assert.Contains("xdp", veth.Exec("ip", "link", "show", Veth.B));
                first.Kill();   // SIGKILL: its program is held by a BPF link, which the kernel closes with the process
            }
            for (var clock = System.Diagnostics.Stopwatch.StartNew(); veth.Exec("ip", "link", "show", Veth.B).Contains("xdp") && clock.ElapsedMilliseconds < 5000;) Thread.Sleep(50);
            Assert.DoesNotContain("xdp", veth.Exec("ip", "link", "show", Veth.B));
            string frames = file + ".pcap";
            List<byte[]> sent = Udp(frames, 100, i => (ushort)(i % 2 == 0 ? 53 : 80));
            veth.Run(() =>
            {
                using var device = (Devices.XdpDevice)Devices.Device.OpenSource(name, pool, 0);
                using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", sent.Count, "-p", 3000], netns: veth.Namespace))
                {
                    List<byte[]> got = Drain(device, pool, 50);
                    Assert.Equal(0, send.WaitForExit());
                    Assert.Equal(sent.Where((_, i) => i % 2 == 1).Select(Convert.ToHexString), got.Select(Convert.ToHexString));
                }
                Assert.Equal(50UL, device.RuleCounters(0).Packets);
            });
            File.Delete(frames);
            Assert.DoesNotContain("xdp", veth.Exec("ip", "link", "show", Veth.B));   // and ours went with the device
        }
        finally
        {
            File.Delete(file);
            File.Delete(keys);
        }
    }

    [Theory]
    [InlineData(true)]    // ZCount -R FILE
    [InlineData(false)]   // the device's own option, -i eth1?rules=FILE
    public void ZCountWithARulesFile_OnAfPacket_RunsThemInTheSocketsFilter_AndReadsThemAgainOnSigusr1(bool dashR)
    {
        using Veth veth = Veth.Create();
        string frames = Path.Combine(Path.GetTempPath(), $"zcflow-zcount-rules-{Environment.ProcessId}.pcap"), file = frames + ".rules";
        File.WriteAllLines(file, ["# DNS out", "drop proto udp dport 53"]);
        try
        {
            List<byte[]> sent = Udp(frames, 300, i => (ushort)(i % 3 == 0 ? 53 : 80));
            using ChildProcess zcount = ChildProcess.Run("ZCount", dashR ? ["-i", Veth.B, "-R", file] : ["-i", $"{Veth.B}?rules={file}"], netns: veth.Namespace);
            zcount.WaitFor("counting");
            using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", sent.Count, "-p", 3000], netns: veth.Namespace))
                Assert.Equal(0, send.WaitForExit());
            File.WriteAllLines(file, ["drop proto udp dport 80", "drop proto udp dport 80-81"]);
            Thread.Sleep(1200);   // what came is counted before the rules change
            Native.Libc.Kill(zcount.Pid, 10);
            zcount.WaitForError("rules read again");
            using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", sent.Count, "-p", 3000], netns: veth.Namespace))
                Assert.Equal(0, send.WaitForExit());
            Thread.Sleep(500);
            zcount.Terminate();
            Assert.Equal(0, zcount.WaitForExit());
            output.WriteLine(zcount.Output);
            Assert.Contains("total 300 pkts", zcount.Output);   // 200 of port 80, then 100 of port 53
            if (!dashR) return;   // ZCount reports the rules it was given
            Assert.Contains("'drop proto 17 dport 80': 200 pkts", zcount.Output);
            Assert.Contains("'drop proto 17 dport 80-81': 0 pkts", zcount.Output);
        }
        finally
        {
            File.Delete(frames);
            File.Delete(file);
        }
    }

    [Fact]
    public void TheBalancerWithARulesFile_RunsThemOnEveryInput_AndZStatShowsEachRulesCounters()
    {
        string frames = Path.Combine(Path.GetTempPath(), $"zcflow-balancer-rules-{Environment.ProcessId}.pcap"), file = frames + ".rules";
        File.WriteAllLines(file, ["drop proto udp dport 53", "pass proto udp dport 80"]);
        uint id = TestClusters.NextId();
        try
        {
            Udp(frames, 300, i => (ushort)(i % 3 == 0 ? 53 : i % 3 == 1 ? 80 : 81));
            // Two inputs, each the capture: the rules run on both, and count both.
            using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-i", $"{frames},{frames}", "-n", 1, "-F", file]);
            Assert.Contains("in user space", balancer.WaitFor("rules of"));
            Listing.WaitFor(id, c => c.Queues.Count == 1 && c.Queues[0].Stats.Sent == 400, "the packets no rule dropped");
            string shown = "";
            Wait.Until(() =>
            {
                using ChildProcess zstat = ChildProcess.Run("ZStat", []);
                Assert.Equal(0, zstat.WaitForExit());
                return (shown = zstat.Output).Contains("'drop proto 17 dport 53': 200 pkts");
            }, "ZStat to show the rules' counters", seconds: 10);
            output.WriteLine(shown);
            Assert.Contains($"pid {balancer.Pid} rules {file}", shown);
            Assert.Contains("'pass proto 17 dport 80': 200 pkts", shown);
            Assert.Contains("no rule (ToApplication): 200 pkts", shown);
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
            Assert.Contains("'drop proto 17 dport 53': 200 pkts", balancer.Output);
            Assert.False(File.Exists($"/run/zcflow/rules/{id}"), "the counters' file outlived the Balancer");
        }
        finally
        {
            File.Delete(frames);
            File.Delete(file);
        }
    }

    [Fact]
    public void TheBalancerWithARulesFile_OnAnXdpInput_RunsThemInTheKernel()
    {
        using Veth veth = Veth.Create(mtu: 1500);
        string frames = Path.Combine(Path.GetTempPath(), $"zcflow-balancer-xdp-rules-{Environment.ProcessId}.pcap"), file = frames + ".rules";
        File.WriteAllLines(file, ["drop proto udp dport 53"]);
        uint id = TestClusters.NextId();
        try
        {
            List<byte[]> sent = Udp(frames, 300, i => (ushort)(i % 3 == 0 ? 53 : 80));
            using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-i", $"xdp:{Veth.B}@0?mode=skb", "-n", 1, "-F", file], netns: veth.Namespace);
            Assert.Contains("in the kernel", balancer.WaitFor("rules of"));   // printed once it serves
            using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", sent.Count, "-p", 3000], netns: veth.Namespace))
                Assert.Equal(0, send.WaitForExit());
            Listing.WaitFor(id, c => c.Queues.Count == 1 && c.Queues[0].Stats.Sent == 200, "the packets the kernel left to us");
            Thread.Sleep(300);
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
            output.WriteLine(balancer.Output);
            Assert.Contains("'drop proto 17 dport 53': 100 pkts", balancer.Output);   // counted in the kernel's program
        }
        finally
        {
            File.Delete(frames);
            File.Delete(file);
        }
    }

    [Theory]
    [InlineData("xdp:{0}@0?mode=skb")]
    [InlineData("multi:xdp:{0}@0?mode=skb;{0}")]   // an AF_XDP member of several read as one, beside an AF_PACKET one
    public void TheBalancersZeroMqRules_OnAnXdpInput_DropInTheKernel_NothingOfItCopiedUp(string input)
    {
        using Veth veth = Veth.Create(mtu: 1500);
        string frames = Path.Combine(Path.GetTempPath(), $"zcflow-balancer-xdp-zmq-{Environment.ProcessId}.pcap");
        uint id = TestClusters.NextId();
        string endpoint = $"tcp://127.0.0.1:{ClickHouseServer.FreePort()}";
        try
        {
            List<byte[]> sent = Udp(frames, 300, i => 53);   // 10.0.0.1 to 10.0.0.2
            veth.Exec("ip", "link", "set", "lo", "up");       // for ZeroMQ, in the namespace
            using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-i", string.Format(System.Globalization.CultureInfo.InvariantCulture, input, Veth.B), "-n", 1, "-Z", "-E", endpoint, "-A", 1], netns: veth.Namespace);
            balancer.WaitFor("rules through ZeroMQ");
            Assert.Equal("OK", BalancerServiceTests.ClientIn(veth.Namespace, endpoint, "src:drop:10.0.0.1:0"));
            using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", sent.Count, "-p", 3000], netns: veth.Namespace))
                Assert.Equal(0, send.WaitForExit());
            Thread.Sleep(500);
            var info = Listing.WaitFor(id, c => c.Queues.Count == 1, "the balancer's queue");
            Assert.Equal(0ul, info.Queues[0].Stats.Sent);
            Assert.Equal(0ul, info.Devices.Aggregate(0ul, (n, d) => n + d.Stats.Received));   // dropped in the kernel: none reached a socket
            // Accepted now: every one comes up, and through.
            Assert.Equal("OK", BalancerServiceTests.ClientIn(veth.Namespace, endpoint, "src:accept:10.0.0.1:0"));
            using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", sent.Count, "-p", 3000], netns: veth.Namespace))
                Assert.Equal(0, send.WaitForExit());
            Listing.WaitFor(id, c => c.Queues[0].Stats.Sent == 300, "the accepted packets through the balancer");
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
        }
        finally
        {
            File.Delete(frames);
        }
    }

    [Theory]
    [InlineData("udp port 53")]
    [InlineData("tcp and (port 80 or port 443)")]
    [InlineData("vlan and ip")]
    [InlineData("ip6 and tcp")]
    [InlineData("ip[6:2] & 0x1fff != 0")]
    [InlineData("ether broadcast or ether multicast")]
    [InlineData("icmp or icmp6")]
    [InlineData("len > 200 and not arp")]
    [InlineData("net 10.0.0.0/8 and udp")]
    [InlineData("tcp[tcpflags] & (tcp-syn|tcp-fin) != 0")]
    public void AFilterTranslatedIntoTheXdpProgram_KeepsWhatLibpcapKeeps_OverTheCorpus(string expression)
    {
        if (Environment.UserName != "root") Assert.Skip("loading BPF programs needs root");
        Corpus.SkipIfMissing();
        BpfFilter filter = BpfFilter.Compile(expression);
        using var kernel = new KernelRules(new Rules(filter: filter));
        long frames = 0, kept = 0;
        void Check(ReadOnlySpan<byte> data, string what)
        {
            ulong before = kernel.FilteredOut;
            Assert.Equal(2u, kernel.TestRun(data));   // to the application with no socket, or turned to the kernel: XDP_PASS both
            bool keeps = kernel.FilteredOut == before;
            bool libpcap = filter.Matches(data);
            if (keeps != libpcap) Assert.Fail($"'{expression}' over {what}: libpcap {(libpcap ? "keeps" : "rejects")} it, the XDP program {(keeps ? "keeps" : "rejects")} it: {Convert.ToHexString(data)}");
            frames++;
            if (keeps) kept++;
        }
        foreach (string file in Corpus.Files())
        {
            using var capture = Devices.CaptureFile.Open(file);
            int taken = 0;
            while (capture.TryNext(out ReadOnlySpan<byte> data, out _, out Parsing.LinkType link) && taken < 2000)
                if (link == Parsing.LinkType.Ethernet && data.Length is >= 14 and <= 3000) Check(data, $"{Path.GetFileName(file)} frame {++taken}");
        }
        // and the random frames of every shape the rules are tested with
        var random = new Random(expression.GetHashCode(StringComparison.Ordinal));
        for (int i = 0; i < 50_000; i++) Check(RandomFrame(random), $"random frame {i}");
        output.WriteLine($"'{expression}': {kept:N0} of {frames:N0} corpus and random frames kept by both");
        Assert.True(frames > 50_000, $"{frames} frames");
    }

    [Fact]
    public void AFilteredAfXdpCapture_ReceivesExactlyWhatTcpdumpsFilterMatches_AndCopiesNothingElse()
    {
        TestSetup.RequireTool("tcpdump");
        using Veth veth = Veth.Create();
        string frames = Path.Combine(Path.GetTempPath(), $"zcflow-xdp-filter-{Environment.ProcessId}.pcap");
        try
        {
            var random = new Random(53);
            var all = new List<byte[]>();
            for (int i = 0; i < 600; i++)
                all.Add((i % 4) switch
                {
                    0 => Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 12).Udp((ushort)random.Next(1024, 65535), 53, 4).U32((uint)i).ToArray(),
                    1 => Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 6, 24).Tcp(1000, 53).U32((uint)i).ToArray(),
                    2 => Frames.Ethernet(0x86DD).Ipv6((UInt128)0x20010db8 << 96 | 1, (UInt128)0x20010db8 << 96 | 2, 17, 12).Udp(53, 2000, 4).U32((uint)i).ToArray(),
                    _ => RandomFrame(random),
                });
            using (var writer = new Devices.CaptureWriter(frames))
                for (int i = 0; i < all.Count; i++) writer.Write(all[i], i);
            (_, string text, _) = Tools.Run("tcpdump", "-nr", frames, "udp port 53");
            int expected = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
            Assert.True(expected >= 300, $"{expected}");
            using ChildProcess zcount = ChildProcess.Run("ZCount", ["-i", $"xdp:{Veth.B}@0?mode=skb", "-f", "udp port 53"], netns: veth.Namespace);
            zcount.WaitFor("counting");
            using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", all.Count, "-p", 3000], netns: veth.Namespace))
                Assert.Equal(0, send.WaitForExit());
            Thread.Sleep(500);
            zcount.Terminate();
            Assert.Equal(0, zcount.WaitForExit());
            output.WriteLine(zcount.Output);
            Assert.Contains($"total {expected:N0} pkts", zcount.Output);
            Assert.Contains(", 0 filtered out", zcount.Output);   // what the filter rejects never reached user space
        }
        finally
        {
            File.Delete(frames);
        }
    }

    [Fact]
    public void ARuleTheKernelRefuses_IsAnErrorNamingIt_AndTheRulesStayAsTheyWere()
    {
        if (Environment.UserName != "root") Assert.Skip("loading BPF programs needs root");
        var rules = new Rules();
        int drop = rules.Add(Rule.Parse("drop proto udp dport 53"));
        using var kernel = new KernelRules(rules);
        var e = Assert.Throws<ArgumentException>(() => rules.Add(Rule.Parse("reflect nosuch0 proto tcp")));
        Assert.Contains("rule 'reflect nosuch0 proto 6': there is no interface 'nosuch0' to reflect to", e.Message);
        Assert.Equal([(drop, Rule.Parse("drop proto udp dport 53"))], rules.List());
        byte[] dns = Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 12).Udp(1000, 53, 4).U32(1).ToArray();
        byte[] web = Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 6, 24).Tcp(1000, 80).U32(1).ToArray();
        Assert.Equal(1u, kernel.TestRun(dns));   // the rules it had still run
        Assert.Equal(2u, kernel.TestRun(web));
        // A precise rule for a 6-tuple that has one already, and one wildcard rule too many, are refused the same way.
        rules.Add(Rule.Parse("drop proto tcp src 10.0.0.1 sport 1000 dst 10.0.0.2 dport 80"));
        Assert.Contains("a precise rule for this 6-tuple is there already", Assert.Throws<ArgumentException>(() => rules.Add(Rule.Parse("pass proto tcp src 10.0.0.1 sport 1000 dst 10.0.0.2 dport 80"))).Message);
        Assert.Equal(1u, kernel.TestRun(web));
        for (int i = rules.List().Count(r => !r.Rule.IsPrecise); i < Rules.MaxWildcards; i++) rules.Add(Rule.Parse($"drop proto udp dport {10000 + i}"));
        Assert.Contains("64 wildcard rules are held already", Assert.Throws<InvalidOperationException>(() => rules.Add(Rule.Parse("drop proto udp dport 9"))).Message);
        Assert.Equal(1u, kernel.TestRun(dns));
    }

    [Fact]
    public void ASecondRulesProgramOnABusyInterface_IsRefused_AndTheFirstKeepsItsPlace()
    {
        using Veth veth = Veth.Create(queues: 2);
        using ZcCluster cluster = TestClusters.Create(buffers: 4096, bufferSize: 2048);
        Buffers.BufferPool pool = cluster.CreatePool(4096);
        veth.Run(() =>
        {
            using var first = Devices.XdpDevice.Open($"xdp:{Veth.B}@0?mode=skb", pool, 0, new Rules());
            var e = Assert.Throws<ErrnoException>(() => Devices.XdpDevice.Open($"xdp:{Veth.B}@1?mode=skb", pool, 1, new Rules()).Dispose());
            Assert.Contains($"attaching the rules' XDP program to {Veth.B} failed", e.Message);
            Assert.Contains("another XDP program is on the interface", e.Message);
            Assert.Contains("zcflow_rules", veth.Exec("ip", "link", "show", Veth.B));   // the first's, still there
        });
        Assert.Equal(4096, pool.Available);
    }

    [Fact]
    public void TheBalancer_WithRulesInItsDevicesName_ForwardsOnlyWhatTheyPassToTheApplication()
    {
        using Veth veth = Veth.Create();
        string frames = Path.Combine(Path.GetTempPath(), $"zcflow-balancer-rules-{Environment.ProcessId}.pcap"), file = frames + ".rules", keys = frames + ".keys";
        File.WriteAllLines(file, ["drop proto udp dport 53", "kernel proto udp dport 82"]);
        uint cluster = TestClusters.NextId();
        try
        {
            List<byte[]> sent = Udp(frames, 300, i => (ushort)(i % 3 == 0 ? 53 : 80 + i % 3));
            using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", cluster, "-i", $"{Veth.B}?rules={file}", "-n", 1, "-m", 8, "-W", 1], netns: veth.Namespace);
            using ChildProcess drain = ChildProcess.Start("drain", [cluster, 0, keys]);
            drain.WaitFor("attached");
            balancer.WaitFor("serving on");
            using (ChildProcess send = ChildProcess.Run("Send", ["-i", Veth.A, "-f", frames, "-n", sent.Count, "-p", 3000], netns: veth.Namespace))
                Assert.Equal(0, send.WaitForExit());
            Thread.Sleep(1000);
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
            Assert.Equal(100, long.Parse(drain.WaitFor("ok").Split(' ')[1]));   // port 81's: 53 dropped, 82 left to the kernel
        }
        finally
        {
            foreach (string f in new[] { frames, file, keys }) File.Delete(f);
        }
    }

    [Fact]
    public void InUserSpace_RulesReadCookedAndRawFrames_AsTheEthernetOnesTheyWere()
    {
        var rules = new Rules();
        int dns = rules.Add(Rule.Parse("drop proto udp dport 53"));
        byte[] ethernet = Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 12).Udp(1000, 53, 4).U32(1).ToArray();
        byte[] ip = ethernet[14..];
        byte[] sll2 = [0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, .. ip];
        byte[] sll = [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00, .. ip];
        foreach ((byte[] frame, Parsing.LinkType link) in new[] { (ethernet, Parsing.LinkType.Ethernet), (sll2, Parsing.LinkType.LinuxSll2), (sll, Parsing.LinkType.LinuxSll), (ip, Parsing.LinkType.Raw) })
        {
            Assert.Equal(RuleAction.Drop, rules.Decide(frame, 0, link, out int id));
            Assert.Equal(dns, id);
        }
        Assert.Equal(RuleAction.ToApplication, rules.Decide(sll2, 0, out _));   // read as Ethernet, it is something else
    }
}

/// <summary>
/// A bpffs mounted at /sys/fs/bpf is seen by every process and thread of the host, and libxdp, once it has found one, keeps
/// looking there for the rest of the process (its dispatcher's pins): so a test that mounts one runs alone, and what uses
/// XDP while it is mounted runs in processes of its own.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MountsBpffs
{
    public const string Name = "mounts a bpffs";
}

[Collection(MountsBpffs.Name)]
public class BpffsRulesTests(ITestOutputHelper output)
{
    [Fact]
    public void WithABpffsMounted_TheRulesProgramAndLibxdpsServeSideBySide()
    {
        using Veth veth = Veth.Create(mtu: 1500);
        const string Bpffs = "/sys/fs/bpf";
        bool mounted = File.ReadAllText("/proc/self/mounts").Contains($" {Bpffs} bpf ");
        if (!mounted)
        {
            Directory.CreateDirectory(Bpffs);
            (int code, _, string error) = Tools.Run("mount", "-t", "bpf", "bpf", Bpffs);
            Assert.True(code == 0, $"mount -t bpf: {error}");
        }
        string frames = Path.Combine(Path.GetTempPath(), $"zcflow-rules-bpffs-{Environment.ProcessId}.pcap"), file = frames + ".rules";
        File.WriteAllLines(file, ["drop proto udp dport 53"]);
        try
        {
            List<byte[]> sent = RulesTests.Udp(frames, 300, i => (ushort)(i % 3 == 0 ? 53 : 80));
            // One interface with ZcFlow's rules program, the other with libxdp's: through its dispatcher where it has a bpffs
            // and the kernel takes the dispatcher's extension programs (this host's refuses them, EPERM, and libxdp then loads
            // its alone). Each in a process that sees the bpffs: in the namespace's network only, with the host's mounts.
            using ChildProcess ruled = ChildProcess.Run("ZCount", ["-i", $"xdp:{Veth.B}@0?mode=skb", "-R", file], netns: veth.Namespace, hostMounts: true);
            using ChildProcess plain = ChildProcess.Run("ZCount", ["-i", $"xdp:{Veth.A}@0?mode=skb"], netns: veth.Namespace, hostMounts: true);
            ruled.WaitFor("counting");
            plain.WaitFor("counting");
            foreach (string from in new[] { Veth.A, Veth.B })
                using (ChildProcess send = ChildProcess.Run("Send", ["-i", from, "-f", frames, "-n", sent.Count, "-p", 3000], netns: veth.Namespace))
                    Assert.Equal(0, send.WaitForExit());
            Thread.Sleep(1500);   // what came is counted
            output.WriteLine(veth.Exec("ip", "link", "show", Veth.A) + veth.Exec("ip", "link", "show", Veth.B));
            ruled.Terminate();
            plain.Terminate();
            Assert.Equal(0, ruled.WaitForExit());
            Assert.Equal(0, plain.WaitForExit());
            output.WriteLine(ruled.Output + plain.Output);
            Assert.Contains("total 200 pkts", ruled.Output);
            Assert.Contains("'drop proto 17 dport 53': 100 pkts", ruled.Output);
            Assert.Contains("total 300 pkts", plain.Output);
            // Both programs went with their devices.
            Assert.DoesNotContain("xdp", veth.Exec("ip", "link", "show", Veth.A) + veth.Exec("ip", "link", "show", Veth.B));
        }
        finally
        {
            if (!mounted) Tools.Run("umount", Bpffs);
            File.Delete(frames);
            File.Delete(file);
        }
    }
}
