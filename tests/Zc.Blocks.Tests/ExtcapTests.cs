using ZcFlow.Ipc;

namespace ZcFlow.Tests;

/// <summary>
/// zcflow-extcap linked into tshark's extcap folder, as a user installs it: tshark lists a Balancer's queues and captures
/// from one what the Balancer sent there, byte for byte, with a capture filter when given one.
/// </summary>
public sealed class ExtcapTests : IDisposable
{
    private const int Frames = 1000;
    private readonly string _pcap = Path.Combine(Path.GetTempPath(), $"zcflow-extcap-{Guid.NewGuid():N}.pcap");
    private readonly string _link;

    public ExtcapTests()
    {
        var folders = Tools.Run("tshark", "-G", "folders");
        string folder = folders.Output.Split('\n').Select(l => l.Split('\t', 2)).Single(f => f[0].StartsWith("Extcap path:", StringComparison.Ordinal))[1].Trim();
        _link = Path.Combine(folder, $"zcflow-extcap-test-{Guid.NewGuid():N}");
        File.CreateSymbolicLink(_link, Path.Combine(AppContext.BaseDirectory, "zcflow-extcap"));
        Write(_pcap, Enumerable.Range(0, Frames));
    }

    // Frame i: UDP from port i, its own length, time and source address.
    private static void Write(string file, IEnumerable<int> frames)
    {
        using var writer = new Devices.CaptureWriter(file);
        foreach (int i in frames)
            writer.Write(Tests.Frames.Ethernet(0x0800).Ipv4((uint)i, 0x0A000001, 17, 8 + i % 64).Udp((ushort)i, 53, i % 64).Add(new byte[i % 64]).ToArray(), 1_700_000_000_000_000_000 + i * 1000L);
    }

    // What tcpdump reads from a file made of just those frames.
    private static string Expected(IEnumerable<int> frames)
    {
        string file = Path.Combine(Path.GetTempPath(), $"zcflow-extcap-{Guid.NewGuid():N}.pcap");
        Write(file, frames);
        try { return Dump(file); }
        finally { File.Delete(file); }
    }

    public void Dispose()
    {
        File.Delete(_link);
        File.Delete(_pcap);
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    // tcpdump's reading of a capture, packet by packet: nanosecond time, headers and every byte in hex.
    private static string Dump(string file)
    {
        var dump = Tools.Run("tcpdump", "-nn", "--nano", "-xx", "-r", file);
        Assert.True(dump.Code == 0, dump.Error);
        return dump.Output;
    }

    private (ChildProcess Balancer, uint Cluster) StartBalancer()
    {
        uint cluster = TestClusters.NextId();
        // Lossless and held back 3 s: tshark attaches before the first packet, and the queue keeps them all.
        var balancer = ChildProcess.Run("Balancer", ["-c", cluster, "-n", 2, "-m", 0, "-i", _pcap, "-L", "-W", 3]);
        Listing.WaitForRunning(cluster, balancer);
        return (balancer, cluster);
    }

    [Fact]
    public void TsharkListsEveryQueue_AndCapturesWhatTheBalancerSentThere_ByteForByte()
    {
        (ChildProcess balancer, uint cluster) = StartBalancer();
        using (balancer)
        {
            string[] listed = Lines(Tools.Run("tshark", "-D").Output);
            Assert.Contains(listed, l => l.EndsWith($". zc:{cluster}@0 (ZcFlow cluster {cluster} queue 0)", StringComparison.Ordinal));
            Assert.Contains(listed, l => l.EndsWith($". zc:{cluster}@1 (ZcFlow cluster {cluster} queue 1)", StringComparison.Ordinal));

            string output = Path.Combine(Path.GetTempPath(), $"zcflow-extcap-{Guid.NewGuid():N}.pcapng");
            try
            {
                var capture = Tools.Run("timeout", "60", "tshark", "-i", $"zc:{cluster}@1", "-c", "100", "-w", output);
                Assert.True(capture.Code == 0, capture.Error);
                Assert.Contains("pcapng", Lines(Tools.Run("capinfos", "-t", output).Output).Single(l => l.StartsWith("File type:", StringComparison.Ordinal)));
                // Round robin over two queues: queue 1 has the odd frames of the file, in order.
                string expected = Expected(Enumerable.Range(0, 100).Select(k => 2 * k + 1));
                Assert.Equal(expected, Dump(output));
                Assert.Equal(100, Lines(expected).Count(l => l.Contains(" IP ")));
            }
            finally
            {
                File.Delete(output);
            }
            // tshark took its 100 and stopped the extcap, which detached.
            Listing.WaitFor(cluster, i => i.Queues[1].ConsumerPid == 0, "the extcap gone from the queue");
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
        }
    }

    [Fact]
    public void ACaptureFilter_IsAppliedByTheExtcap_AndABadOneIsRefusedWithItsReason()
    {
        (ChildProcess balancer, uint cluster) = StartBalancer();
        using (balancer)
        {
            string output = Path.Combine(Path.GetTempPath(), $"zcflow-extcap-{Guid.NewGuid():N}.pcapng");
            try
            {
                // Queue 0 has the even frames; of those, source ports 500-599 are 50.
                var capture = Tools.Run("timeout", "60", "tshark", "-i", $"zc:{cluster}@0", "-f", "udp src portrange 500-599", "-c", "50", "-w", output);
                Assert.True(capture.Code == 0, capture.Error);
                string expected = Expected(Enumerable.Range(250, 50).Select(k => 2 * k));
                Assert.Equal(expected, Dump(output));
                Assert.Equal(50, Lines(expected).Count(l => l.Contains(" IP ")));
            }
            finally
            {
                File.Delete(output);
            }
            var check = Tools.Run(_link, "--extcap-interface", $"zc:{cluster}@0", "--extcap-capture-filter", "udp prt 5");
            Assert.Equal(1, check.Code);
            Assert.Contains("can't parse filter expression", check.Output);
            // in a capture, the reason goes to standard error, which tshark shows (it was lost on standard output)
            var refused = Tools.Run(_link, "--extcap-interface", $"zc:{cluster}@0", "--capture", "--fifo", "/dev/null", "--extcap-capture-filter", "tcp port 8o");
            Assert.Equal(1, refused.Code);
            Assert.Equal("error: filter 'tcp port 8o': unknown port '8o'", refused.Error.Trim());
            Assert.Equal(0, Tools.Run(_link, "--extcap-interface", $"zc:{cluster}@0", "--extcap-capture-filter", "udp port 5").Code);
            var missing = Tools.Run(_link, "--extcap-interface", $"zc:{TestClusters.NextId()}@0", "--capture", "--fifo", "/dev/null");
            Assert.Equal(1, missing.Code);
            Assert.Contains("there is no cluster", missing.Error);
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
        }
    }
}
