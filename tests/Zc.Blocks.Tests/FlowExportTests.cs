using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ZcFlow.Devices;
using ZcFlow.Ipc;

namespace ZcFlow.Tests;

/// <summary>
/// FlowExport against the collectors and the exporter people run: nfcapd/nfdump, pmacct's nfacctd and
/// tshark read what it sends, and softflowd, given the same capture, reports the same flows.
/// </summary>
public class FlowExportTests(ITestOutputHelper output)
{
    // Export packets a second: a burst of ended flows is then spread out, as a collector's socket needs on a busy host.
    private const int Pace = 5000;

    internal static string CorpusFile(string name) => Path.Combine(ZcFlow.Tests.Corpus.Directory ?? throw new InvalidOperationException("no corpus beside the checkout"), name);

    private static int FreeUdpPort()
    {
        using var probe = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.Client.LocalEndPoint!).Port;
    }

    private static void WaitListening(int port)
    {
        string hex = $":{port:X4} ";
        Wait.Until(() => File.ReadAllText("/proc/net/udp").Contains(hex) || File.ReadAllText("/proc/net/udp6").Contains(hex), $"a collector on UDP port {port}", seconds: 10);
    }

    /// <summary>Waits until the socket on <paramref name="port"/> has nothing left to read (its queue in /proc/net/udp is empty), and a little more.</summary>
    private static void WaitRead(int port)
    {
        string hex = $":{port:X4} ";
        Wait.Until(() => File.ReadAllLines("/proc/net/udp").Where(l => l.Contains(hex)).All(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[4].EndsWith(":00000000")),
            $"the collector on port {port} to read what it was sent", seconds: 20);
        Thread.Sleep(200);
    }

    /// <summary>
    /// The largest socket receive buffer a process may ask for, raised while a collector runs and put back after: softflowd
    /// sends the flows left at the end of a capture in one burst, faster than nfcapd reads, and nfcapd asks for 16 MiB (-B).
    /// </summary>
    internal sealed class LargeSocketBuffers : IDisposable
    {
        private const string Path = "/proc/sys/net/core/rmem_max";
        private readonly string _before = File.ReadAllText(Path).Trim();

        public LargeSocketBuffers()
        {
            if (long.Parse(_before) < 1 << 24) File.WriteAllText(Path, (1 << 24).ToString());
        }

        public void Dispose() => File.WriteAllText(Path, _before);
    }

    /// <summary>nfcapd on a port of its own; <see cref="Flows"/> stops it and asks nfdump for the flows, summed per address, port and protocol pair.</summary>
    internal sealed class Nfcapd : IDisposable
    {
        private readonly Process _process;
        private readonly string _directory = Path.Combine(Path.GetTempPath(), $"zcflow-nfcapd-{Guid.NewGuid():N}");

        public Nfcapd()
        {
            Directory.CreateDirectory(_directory);
            Port = FreeUdpPort();
            _process = Process.Start(new ProcessStartInfo("nfcapd", ["-p", Port.ToString(), "-w", _directory, "-t", "3600", "-B", (1 << 24).ToString()]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            WaitListening(Port);
        }

        public int Port { get; }

        public string Address => $"127.0.0.1:{Port}";

        /// <param name="aggregate">Summed per key by nfdump (-A); without, its records as they came, summed per key here
        /// (nfdump's aggregation shows ICMP's type and code as 0.0, its records show them).</param>
        public Dictionary<string, (long Packets, long Bytes)> Flows(bool aggregate = true)
        {
            // Once nfcapd has read all that came, it writes out what it holds on SIGTERM. -6: IPv6 addresses whole, not shortened.
            WaitRead(Port);
            ZcFlow.Native.Libc.Kill(_process.Id, 15);
            Assert.True(_process.WaitForExit(20_000), "nfcapd did not stop");
            string[] args = ["-R", _directory, "-q", "-N", "-6", .. aggregate ? new[] { "-A", "srcip,dstip,srcport,dstport,proto" } : [], "-o", "fmt:%sa %da %sp %dp %pr %pkt %byt"];
            var nfdump = Process.Start(new ProcessStartInfo("nfdump", args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            string text = nfdump.StandardOutput.ReadToEnd();
            nfdump.WaitForExit();
            var flows = new Dictionary<string, (long, long)>();
            foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (line.StartsWith("No matching", StringComparison.Ordinal)) continue;
                string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                string key = string.Join(' ', f[..^2]);
                (long packets, long bytes) = flows.GetValueOrDefault(key);
                flows[key] = (packets + long.Parse(f[^2]), bytes + long.Parse(f[^1]));
            }
            return flows;
        }

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill();
            _process.Dispose();
            Directory.Delete(_directory, recursive: true);
        }
    }

    internal static string FlowExport(params object[] args)
    {
        using ChildProcess export = ChildProcess.Run("FlowExport", args);
        Assert.Equal(0, export.WaitForExit(120));
        return export.Output;
    }

    private static void Softflowd(string capture, string collector, int version)
    {
        using var softflowd = Process.Start(new ProcessStartInfo("softflowd", ["-r", capture, "-n", collector, "-v", version.ToString(), "-d"]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        softflowd.StandardOutput.ReadToEnd();
        Assert.True(softflowd.WaitForExit(120_000), "softflowd did not finish");
    }

    /// <summary>Pings each way over IPv4 and IPv6, a port unreachable, a time exceeded: ICMP flows of several types and codes.</summary>
    private static string Icmp()
    {
        string pcap = Path.Combine(Path.GetTempPath(), $"zcflow-flows-icmp-{Environment.ProcessId}.pcap");
        using var writer = new CaptureWriter(pcap);
        long t = 1_700_000_000_000_000_000;
        uint a = 0x0A000001, b = 0x0A000002, c = 0x0A000003;
        UInt128 a6 = ((UInt128)0x20010DB8_00000000 << 64) | 1, b6 = ((UInt128)0x20010DB8_00000000 << 64) | 2;
        byte[] Echo(byte type, int seq) => [type, 0, 0, 0, 0, 7, 0, (byte)seq, .. new byte[32]];
        for (int i = 0; i < 3; i++, t += 1_000_000)
        {
            writer.Write(Frames.Ethernet(0x0800).Ipv4(a, b, 1, 40).Add(Echo(8, i)).ToArray(), t);
            writer.Write(Frames.Ethernet(0x0800).Ipv4(b, a, 1, 40).Add(Echo(0, i)).ToArray(), t + 1000);
            writer.Write(Frames.Ethernet(0x86DD).Ipv6(a6, b6, 58, 40).Add(Echo(128, i)).ToArray(), t + 2000);
            writer.Write(Frames.Ethernet(0x86DD).Ipv6(b6, a6, 58, 40).Add(Echo(129, i)).ToArray(), t + 3000);
        }
        writer.Write(Frames.Ethernet(0x0800).Ipv4(b, a, 1, 36).Add(3, 3, 0, 0, 0, 0, 0, 0).Add(new byte[28]).ToArray(), t);
        writer.Write(Frames.Ethernet(0x0800).Ipv4(c, a, 1, 36).Add(11, 0, 0, 0, 0, 0, 0, 0).Add(new byte[28]).ToArray(), t + 1000);
        return pcap;
    }

    /// <summary>A capture of <paramref name="flows"/> flows, UDP and TCP, each a packet each way; no frame is padded.</summary>
    internal static string Generated(int flows)
    {
        string pcap = Path.Combine(Path.GetTempPath(), $"zcflow-flows-{flows}-{Environment.ProcessId}.pcap");
        using var writer = new CaptureWriter(pcap);
        long t = 1_700_000_000_000_000_000;
        for (int i = 0; i < flows; i++, t += 200_000)
        {
            uint a = 0x0A000000 + (uint)(i >> 8), b = 0xC0A80000 + (uint)(i & 0xFF);
            ushort port = (ushort)(1024 + i % 50_000);
            if (i % 2 == 0)
            {
                writer.Write(Frames.Ethernet(0x0800).Ipv4(a, b, 17, 8 + 40).Udp(port, 53, 40).Add(new byte[40]).ToArray(), t);
                writer.Write(Frames.Ethernet(0x0800).Ipv4(b, a, 17, 8 + 100).Udp(53, port, 100).Add(new byte[100]).ToArray(), t + 50_000);
            }
            else
            {
                writer.Write(Frames.Ethernet(0x0800).Ipv4(a, b, 6, 20 + 20).Tcp(port, 443).Add(new byte[20]).ToArray(), t);
                writer.Write(Frames.Ethernet(0x0800).Ipv4(b, a, 6, 20 + 60).Tcp(443, port).Add(new byte[60]).ToArray(), t + 50_000);
            }
        }
        return pcap;
    }

    // Same flows, same packet counts; the bytes alike but for Ethernet padding, which softflowd counts as IP bytes and NetFlow does not.
    private static void AssertSameFlows(Dictionary<string, (long Packets, long Bytes)> ours, Dictionary<string, (long Packets, long Bytes)> softflowd, bool padded)
    {
        Assert.NotEmpty(ours);
        Assert.Equal(softflowd.Keys.Order(), ours.Keys.Order());
        foreach ((string key, (long packets, long bytes)) in ours)
        {
            Assert.True(packets == softflowd[key].Packets, $"{key}: {packets} packets here, {softflowd[key].Packets} from softflowd");
            long padding = softflowd[key].Bytes - bytes;
            Assert.True(padded ? padding >= 0 && padding <= 46 * packets : padding == 0, $"{key}: {bytes} bytes here, {softflowd[key].Bytes} from softflowd");
        }
    }

    [Theory]
    [InlineData(9)]
    [InlineData(10)]
    public void TheSameCaptures_ThroughFlowExportAndSoftflowd_GiveNfdumpTheSameFlows(int version)
    {
        string generated = Generated(100_000), icmp = Icmp();
        try
        {
            // UDP and ICMP; PIM and more; IPv6 over Linux cooked capture; BGP over TCP; RADIUS; EIGRP with padded frames; 100,000 generated flows;
            // ICMP and ICMPv6 of several types (their type and code in the destination port, as collectors read them).
            using var buffers = new LargeSocketBuffers();
            foreach ((string capture, bool padded) in ((string, bool)[])[(CorpusFile("afs.pcap"), false), (CorpusFile("pim-packet-assortment.pcap"), false),
                (CorpusFile("babel.pcap"), false), (CorpusFile("bgp-infinite-loop.pcap"), false), (CorpusFile("RADIUS-RFC4675.pcap"), false),
                (CorpusFile("EIGRP_adjacency.pcap"), true), (generated, false), (icmp, false)])
            {
                if (capture == icmp && version == 10) continue;   // softflowd's IPFIX leaves ICMP's type and code out: below
                using var ours = new Nfcapd();
                using var theirs = new Nfcapd();
                string printed = FlowExport("-i", capture, "-n", ours.Address, "-v", version, "-l", Pace);
                Assert.Contains("0 dropped", printed);
                Softflowd(capture, theirs.Address, version);
                var a = ours.Flows();
                var b = theirs.Flows();
                output.WriteLine($"{Path.GetFileName(capture)}: {a.Count} flows here, {b.Count} from softflowd");
                AssertSameFlows(a, b, padded);
            }
            // In IPFIX, ICMP's type and code are in icmpTypeCodeIPv4, as nfdump reads them: the flows softflowd's v9 gives.
            using var v9 = new Nfcapd();
            using var ipfix = new Nfcapd();
            Softflowd(icmp, v9.Address, 9);
            FlowExport("-i", icmp, "-n", ipfix.Address, "-v", 10);
            Dictionary<string, (long Packets, long Bytes)> icmpHere = ipfix.Flows(aggregate: false), icmpThere = v9.Flows(aggregate: false);
            AssertSameFlows(icmpHere, icmpThere, padded: false);
            Assert.Equal((1, 56), icmpHere["10.0.0.2 10.0.0.1 0 3.3 1"]);   // the port unreachable: a flow of its own, its type.code shown
            Assert.Equal((3, 180), icmpHere["10.0.0.1 10.0.0.2 0 8.0 1"]);  // the echo requests; their replies are another flow, as in softflowd
        }
        finally
        {
            File.Delete(generated);
            File.Delete(icmp);
        }
    }

    [Fact]
    public void WithARulesFile_OnlyWhatGoesToTheApplicationIsCounted_AndEachRuleSaysWhatItTook()
    {
        string capture = Path.Combine(Path.GetTempPath(), $"zcflow-flows-rules-{Environment.ProcessId}.pcap"), rules = capture + ".rules";
        using (var writer = new CaptureWriter(capture))
            for (int i = 0; i < 90; i++)
                writer.Write(Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000002, 17, 12).Udp(1000, (ushort)(i % 3 == 0 ? 53 : 80 + i % 3), 4).U32((uint)i).ToArray(), (i + 1) * 1_000_000L);
        File.WriteAllLines(rules, ["drop proto udp dport 53", "kernel proto udp dport 82"]);
        try
        {
            using var collector = new Nfcapd();
            string printed = FlowExport("-i", capture, "-n", collector.Address, "-v", 10, "-R", rules);
            Assert.Contains("rule 0 'drop proto 17 dport 53': 30 pkts", printed);
            Assert.Contains("rule 1 'kernel proto 17 dport 82': 30 pkts", printed);
            Dictionary<string, (long Packets, long Bytes)> flows = collector.Flows();
            Assert.Equal((30, 30 * 32), Assert.Single(flows).Value);   // only port 81's, its IP bytes
            Assert.Contains(" 1000 81 ", Assert.Single(flows).Key);
        }
        finally
        {
            File.Delete(capture);
            File.Delete(rules);
        }
    }

    [Fact]
    public void FragmentedDatagrams_AsSoftflowdCountsThem_AndWithDOnceEachUnderTheirPorts()
    {
        // Three UDP datagrams in fragments (one reversed, one with a fragment twice), and one that is not fragmented.
        string capture = Path.Combine(Path.GetTempPath(), $"zcflow-flows-frag-{Environment.ProcessId}.pcap");
        var frames = new List<byte[]>();
        for (int d = 0; d < 3; d++)
        {
            List<byte[]> f = KernelDeviceTests.Fragment((ushort)(d + 1), 0x0A000001, KernelDeviceTests.Datagram((ushort)(1000 + d), 3000), 1200);
            if (d == 1) f.Reverse();
            if (d == 2) f.Insert(1, f[1]);
            frames.AddRange(f);
        }
        frames.Add(KernelDeviceTests.Ipv4Packet(9, 0x0A000001, 0, false, KernelDeviceTests.Datagram(1003, 100)));
        using (var writer = new CaptureWriter(capture))
            for (int i = 0; i < frames.Count; i++) writer.Write(frames[i], (i + 1) * 1_000_000L);
        try
        {
            using (var ours = new Nfcapd())
            using (var theirs = new Nfcapd())
            {
                FlowExport("-i", capture, "-n", ours.Address, "-v", 10);
                Softflowd(capture, theirs.Address, 10);
                AssertSameFlows(ours.Flows(), theirs.Flows(), padded: false);
            }
            using var whole = new Nfcapd();
            string printed = FlowExport("-i", capture, "-n", whole.Address, "-v", 10, "-D");
            Assert.Contains("fragments 10, datagrams 3 reassembled, 0 refused, 0 timed out or evicted, 1 duplicates", printed);
            Dictionary<string, (long Packets, long Bytes)> flows = whole.Flows();
            output.WriteLine(string.Join("; ", flows.Select(f => $"{f.Key}: {f.Value}")));
            Assert.Equal(4, flows.Count);
            for (int d = 0; d < 3; d++) Assert.Equal((1, 3020), flows.Single(f => f.Key.Contains($" {1000 + d} 53 ")).Value);
            Assert.Equal((1, 120), flows.Single(f => f.Key.Contains(" 1003 53 ")).Value);

            // A real capture: afs.pcap's 200 fragments are the 51 datagrams tshark puts back together too.
            TestSetup.RequireTool("tshark");
            (_, string reassembled, _) = Tools.Run("tshark", "-r", CorpusFile("afs.pcap"), "-Y", "ip.fragments");
            int datagrams = reassembled.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
            using var afs = new Nfcapd();
            Assert.Contains($"fragments 200, datagrams {datagrams} reassembled, 0 refused", FlowExport("-i", CorpusFile("afs.pcap"), "-n", afs.Address, "-v", 10, "-D"));
            Assert.Equal(601 - 200 + datagrams, afs.Flows().Values.Sum(f => f.Packets));
        }
        finally
        {
            File.Delete(capture);
        }
    }

    [Theory]
    [InlineData(9, false)]
    [InlineData(10, false)]
    [InlineData(10, true)]
    public async Task Tshark_DecodesEveryExportPacket_WithNothingMalformed_AndNfacctdCountsTheSame(int version, bool biflow)
    {
        string generated = Generated(5_000);
        string pcap = Path.Combine(Path.GetTempPath(), $"zcflow-export-{version}{biflow}-{Environment.ProcessId}.pcap");
        string csv = Path.Combine(Path.GetTempPath(), $"zcflow-nfacctd-{version}{biflow}-{Environment.ProcessId}.csv");
        try
        {
            // The export packets, caught by a socket of ours and written as a capture for tshark.
            using var sink = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
            int port = ((IPEndPoint)sink.Client.LocalEndPoint!).Port;
            var datagrams = new List<byte[]>();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            sink.Client.ReceiveBufferSize = 1 << 24;
            Task reader = Task.Run(async () =>
            {
                try
                {
#pragma warning disable xUnit1051 // stop is linked to the test's token
                    while (true) datagrams.Add((await sink.ReceiveAsync(stop.Token)).Buffer);
#pragma warning restore xUnit1051
                }
                catch (OperationCanceledException)
                {
                }
            }, TestContext.Current.CancellationToken);
            object[] args = ["-i", generated, "-n", $"127.0.0.1:{port}", "-v", version, "-l", Pace];
            string printed = FlowExport(biflow ? [.. args, "-b"] : args);
            await Task.Delay(300, TestContext.Current.CancellationToken);
            stop.Cancel();
            await reader;
            Assert.True(datagrams.Count > 10, printed);
            AssertTsharkDecodes(datagrams, pcap, biflow ? 5_000 : 10_000);

            // nfacctd takes them too, and sums the same packets (its print plugin writes them out when it stops).
            if (biflow) return;
            int nfPort = FreeUdpPort();
            using var nfacctd = Process.Start(new ProcessStartInfo("nfacctd", ["-L", "127.0.0.1", "-l", nfPort.ToString(), "-P", "print", "-c", "proto", "-O", "csv", "-o", csv, "-r", "3600"])
            { RedirectStandardOutput = true, RedirectStandardError = true })!;
            try
            {
                WaitListening(nfPort);
                FlowExport("-i", generated, "-n", $"127.0.0.1:{nfPort}", "-v", version, "-l", 300);   // nfacctd's core hands on to its plugin through a pipe that a burst overflows
                WaitRead(nfPort);
                ZcFlow.Native.Libc.Kill(nfacctd.Id, 2);
                Assert.True(nfacctd.WaitForExit(20_000), "nfacctd did not stop");
                long Sum() => File.Exists(csv) ? File.ReadAllLines(csv).Skip(1).Sum(l => long.TryParse(l.Split(',')[^2], out long n) ? n : 0) : 0;
                Wait.Until(() => Sum() == 10_000, $"nfacctd's count of the 10,000 packets (it has {Sum()})", seconds: 20);
            }
            finally
            {
                if (!nfacctd.HasExited) nfacctd.Kill(entireProcessTree: true);
            }
        }
        finally
        {
            File.Delete(generated);
            File.Delete(pcap);
            File.Delete(csv);
        }
    }

    // The export messages, as UDP datagrams in a capture: tshark finds nothing malformed or in error, and every record
    // (one source address each; a biflow is one record for both directions).
    private static void AssertTsharkDecodes(List<byte[]> messages, string pcap, int expectedRecords)
    {
        const ushort Port = 4739;
        using (var writer = new CaptureWriter(pcap))
            for (int i = 0; i < messages.Count; i++)
                writer.Write(Frames.Ethernet(0x0800).Ipv4(0x7F000001, 0x7F000001, 17, 8 + messages[i].Length).Udp(40000, Port, messages[i].Length).Add(messages[i]).ToArray(),
                    1_700_000_000_000_000_000 + i);
        string Tshark(params string[] args)
        {
            using var tshark = Process.Start(new ProcessStartInfo("tshark", ["-n", "-r", pcap, "-d", $"udp.port=={Port},cflow", .. args]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            string text = tshark.StandardOutput.ReadToEnd();
            tshark.WaitForExit();
            return text;
        }
        Assert.Equal("", Tshark("-Y", "_ws.malformed || _ws.expert.severity >= error || !cflow").Trim());
        Assert.Equal(expectedRecords, Tshark("-T", "fields", "-e", "cflow.srcaddr").Split([',', '\n'], StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public async Task IpfixOverTcp_ReachesTheCollectorAsWholeMessages_TemplatesFirst()
    {
        string generated = Generated(5_000);
        string pcap = Path.Combine(Path.GetTempPath(), $"zcflow-export-tcp-{Environment.ProcessId}.pcap");
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            Task<byte[]> stream = Task.Run(async () =>
            {
                using TcpClient client = await listener.AcceptTcpClientAsync(TestContext.Current.CancellationToken);
                var all = new MemoryStream();
                await client.GetStream().CopyToAsync(all, TestContext.Current.CancellationToken);   // until the exporter closes
                return all.ToArray();
            }, TestContext.Current.CancellationToken);
            string printed = FlowExport("-i", generated, "-n", $"tcp://127.0.0.1:{port}", "-v", 10);
            Assert.Contains("0 dropped", printed);
            byte[] bytes = await stream;
            // The stream, cut where each message's header says it ends, is whole messages and nothing else.
            var messages = new List<byte[]>();
            for (int at = 0; at < bytes.Length;)
            {
                Assert.Equal(10, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(at)));
                int length = System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(at + 2));
                Assert.InRange(length, 16, bytes.Length - at);
                messages.Add(bytes[at..(at + length)]);
                at += length;
            }
            Assert.Equal(2, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(messages[0].AsSpan(16)));   // a template set first
            AssertTsharkDecodes(messages, pcap, 10_000);
        }
        finally
        {
            listener.Stop();
            File.Delete(generated);
            File.Delete(pcap);
        }
    }

    [Fact]
    public void BehindABalancer_TwoExportersToOneCollector_ExportEveryPacketOnce()
    {
        string generated = Generated(20_000);
        uint id = TestClusters.NextId();
        try
        {
            using var collector = new Nfcapd();
            // -W: the queues are there, and the balancer waits for the exporters to attach before it starts.
            using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-i", generated, "-n", 2, "-m", 1, "-L", "-W", 3]);
            Listing.WaitFor(id, c => c.Queues.Count == 2, "the balancer's queues");
            using ChildProcess first = ChildProcess.Run("FlowExport", ["-i", $"zc:{id}@0", "-n", collector.Address, "-v", 10, "-l", Pace]);
            using ChildProcess second = ChildProcess.Run("FlowExport", ["-i", $"zc:{id}@1", "-n", collector.Address, "-v", 10, "-l", Pace]);
            first.WaitFor("zc:");
            second.WaitFor("zc:");
            Listing.WaitFor(id, c => c.Queues.All(q => q.Stats.Sent == q.Stats.Received) && c.Queues.Sum(q => (long)q.Stats.Sent) == 40_000,
                "every packet through the exporters", seconds: 60);
            Assert.Contains("observation domain 1", second.Output);
            first.Terminate();
            second.Terminate();
            Assert.Equal(0, first.WaitForExit());
            Assert.Equal(0, second.WaitForExit());
            var flows = collector.Flows();
            Assert.Equal(40_000, flows.Values.Sum(f => f.Packets));
            Assert.Equal(20_000 * (68 + 128 + 60 + 100) / 2, flows.Values.Sum(f => f.Bytes));
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
        }
        finally
        {
            File.Delete(generated);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("tcp://")]
    public void AnUnreachableCollector_LosesRecordsCounted_AndNothingWaits(string transport)
    {
        string generated = Generated(20_000);
        try
        {
            var clock = Stopwatch.StartNew();
            string printed = FlowExport("-i", generated, "-n", $"{transport}127.0.0.1:{FreeUdpPort()}", "-v", 10);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60));
            // UDP: port unreachable comes back for the first packet, and later sends see it and fail. TCP: no connection, none made
            // in the background. Every record is counted one way or the other.
            var m = System.Text.RegularExpressions.Regex.Match(printed, @"records ([\d,]+) sent, ([\d,]+) dropped");
            Assert.True(m.Success, printed);
            long sent = long.Parse(m.Groups[1].Value.Replace(",", "")), dropped = long.Parse(m.Groups[2].Value.Replace(",", ""));
            Assert.Equal(40_000, sent + dropped);
            Assert.True(dropped > 0, printed);
        }
        finally
        {
            File.Delete(generated);
        }
    }

    [Fact]
    public void HostileCaptures_GiveFlowsOrCountedPackets_NeverACrash()
    {
        long files = 0, flows = 0, ignored = 0;
        Corpus.SkipIfMissing();
        foreach (string path in Corpus.Files())
        {
            using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: 2048);
            var pool = cluster.CreatePool(64);
            IPacketSource source;
            try
            {
                source = Device.OpenSource("pcap:" + path, pool, 0);
            }
            catch (InvalidDataException)
            {
                continue;   // rejected as a capture: the corpus tests check that
            }
            using (source)
            {
                var table = new Flows.FlowTable<Flows.FlowEncoder>(1024, new Flows.FlowEncoder(new Flows.FlowEncoderOptions(), _ => true));
                if (source is PcapFileDevice file) table.Link = file.LinkType;
                var burst = new Buffers.PacketHandle[32];
                long read = 0;
                int n;
                try
                {
                    while ((n = source.ReceiveBurst(burst)) > 0)
                    {
                        foreach (Buffers.PacketHandle p in burst.AsSpan(0, n)) table.Add(p);
                        pool.ReleaseBurst(burst.AsSpan(0, n));
                        read += n;
                        table.Expire();
                    }
                }
                catch (InvalidDataException)
                {
                    // a capture damaged part way: what came before it counts
                }
                table.ExpireAll();
                table.Export.Flush();
                Assert.Equal((ulong)read, table.Packets + table.Ignored);
                files++;
                flows += (long)table.Created;
                ignored += (long)table.Ignored;
            }
        }
        output.WriteLine($"{files} captures: {flows} flows, {ignored} packets not IP");
        Assert.True(files > 700);
    }
}
