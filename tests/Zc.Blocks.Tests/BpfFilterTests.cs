using ZcFlow.Devices;
using ZcFlow.Filters;
using ZcFlow.Parsing;

namespace ZcFlow.Tests;

public class BpfFilterTests
{
    [Fact]
    public void ABadExpression_SaysWhatLibpcapSays()
    {
        var e = Assert.Throws<ArgumentException>(() => BpfFilter.Compile("tcp port eighty"));
        Assert.Contains("tcp port eighty", e.Message);
        Assert.True(BpfFilter.Compile("").Matches(new byte[60]));
    }

    [Fact]
    public void AFilterFile_IsReadLikeTcpdumpF_WithComments()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "# web traffic\ntcp port 80   # plain http\n  or tcp port 443\n");
            Assert.Equal("tcp port 80 or tcp port 443", BpfFilter.Load(path).Expression);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void InUserSpace_KeepsExactlyWhatTcpdumpKeeps_OverTheCorpus()
    {
        Corpus.SkipIfMissing();
        TestSetup.RequireTool("tcpdump");
        string[] expressions = ["tcp port 80 or udp port 53", "vlan or mpls", "ip6 and not icmp6", "greater 500 and ip[8] < 64"];
        int files = 0, kept = 0;
        foreach (string file in Corpus.Files().Where((_, i) => i % 4 == 0))
        {
            List<(byte[] Data, int Wire)>? packets = EthernetOnly(file);
            if (packets is null || packets.Count == 0) continue;
            files++;
            foreach (string expression in expressions)
            {
                BpfFilter filter = BpfFilter.Compile(expression);
                List<byte[]> ours = [.. packets.Where(p => filter.Matches(p.Data, p.Wire)).Select(p => p.Data)];
                List<byte[]> tcpdumps = LiveDeviceTests.TcpdumpKeeps(file, expression);
                Assert.True(ours.Count == tcpdumps.Count, $"'{expression}' over {Path.GetFileName(file)}: we keep {ours.Count}, tcpdump {tcpdumps.Count}");
                for (int i = 0; i < ours.Count; i++) Assert.True(ours[i].AsSpan().SequenceEqual(tcpdumps[i]), $"'{expression}' over {file}: packet {i}");
                kept += ours.Count;
            }
        }
        Assert.True(files > 50 && kept > 100, $"{files} files, {kept} packets kept");
    }

    // Programs that use every kind of instruction pcap_compile makes: loads of each size, absolute and indexed, the IPv4
    // header length, scratch memory, arithmetic, shifts, masks, every jump. Compiled, each returns what libpcap's
    // interpreter returns, over the corpus's frames, every cut of them, and random bytes.
    private static readonly string[] Programs =
    [
        "ip", "tcp port 80 or udp port 53", "vlan or mpls", "ip6 and not icmp6", "greater 500 and ip[8] < 64", "not arp",
        "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0", "ip[2:2] / 4 > 10", "ip[2:2] % 7 = 3", "len - 14 > 100", "(ip[0] & 0xf) * 4 > 20",
        "ether[0] & 1 = 1", "net 10.0.0.0/8", "ip6 and tcp port 443", "icmp[icmptype] = icmp-echo",
        "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420", "ip[6:2] & 0x1fff != 0", "udp and udp[8:2] = 0x1234", "vlan 100 and ip",
        "pppoes and ip", "ether host 02:00:00:00:00:01", "ip[1] ^ 0xff = 0xff", "ip[8] << 2 > 100", "ip[3] - ip[2] > 0",
        "ip[2:2] / ip[9] > 3", "ip[2:2] % ip[8] = 1", "ip[2:2] % (ip[9] - 6) = 1", "ip and (ip[9] = 6 or ip[9] = 17) and ip[12:4] > ip[16:4]",
    ];

    [Fact]
    public void CompiledToMachineCode_EveryProgramReturnsWhatLibpcapsInterpreterReturns_OverEveryFrameAndEveryCut()
    {
        var frames = new List<byte[]>();
        foreach (string file in Corpus.Files().Where((_, i) => i % 3 == 0))
            if (EthernetOnly(file) is { } packets) frames.AddRange(packets.Take(40).Select(p => p.Item1));
        var random = new Random(12);
        for (int i = 0; i < 3000; i++)
        {
            var frame = new byte[random.Next(0, 160)];
            random.NextBytes(frame);
            if (frame.Length > 14 && i % 2 == 0) (frame[12], frame[13], frame[14]) = (0x08, 0x00, (byte)(0x40 | random.Next(16)));   // IPv4 now and then
            frames.Add(frame);
        }
        Assert.True(frames.Count > 3500, $"{frames.Count} frames");
        int compared = 0;
        foreach (string expression in Programs)
        {
            BpfFilter filter = BpfFilter.Compile(expression);
            Assert.True(filter.IsCompiled, $"'{expression}' was not compiled");
            foreach (byte[] frame in frames)
                for (int cut = frame.Length; cut >= 0; cut -= cut > 70 ? 23 : 1)
                {
                    ReadOnlySpan<byte> part = frame.AsSpan(0, cut);
                    uint wire = (uint)frame.Length;
                    uint expected = filter.Interpret(part, wire), got = filter.Run(part, wire);
                    if (got != expected) Assert.Fail($"'{expression}' over a frame of {frame.Length} bytes cut to {cut}: {got}, libpcap {expected}: {Convert.ToHexString(part)}");
                    compared++;
                }
        }
        Assert.True(compared > 1_000_000, $"{compared} runs compared");
    }

    // The packets of a capture read cleanly and wholly Ethernet, or null.
    private static List<(byte[], int)>? EthernetOnly(string file)
    {
        try
        {
            using CaptureFile capture = CaptureFile.Open(file);
            var packets = new List<(byte[], int)>();
            while (capture.TryNext(out ReadOnlySpan<byte> data, out _, out LinkType link))
            {
                if (link != LinkType.Ethernet) return null;
                packets.Add((data.ToArray(), capture.WireLength));
            }
            return capture.Problem is null && capture.Skipped == 0 ? packets : null;
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }
}
