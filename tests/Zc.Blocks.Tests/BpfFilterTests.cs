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
