using System.Diagnostics;
using ZcFlow.Devices;
using ZcFlow.Ipc;
using ZcFlow.Native;

namespace ZcFlow.Tests;

/// <summary>
/// libzcflow-pcap.so behind the real programs of Debian, unmodified: tcpdump, tshark, softflowd, ngrep, tcpflow, p0f and
/// bittwist read and write a Balancer process's queues through it, and what they make of the traffic is checked against
/// what they make of the same traffic read from the file it came from.
/// </summary>
[Collection(NativeLibraries.Name)]
public class PcapDropInTests(NativeLibraries library)
{
    private const int SIGINT = 2;

    /// <summary>
    /// A capture of <paramref name="flows"/> flows of <paramref name="perFlow"/> packets each, interleaved: TCP to port 80 and
    /// to 443, UDP to 53, each packet numbered in its payload, stamped to the nanosecond (none on a whole microsecond).
    /// </summary>
    internal static (string Path, byte[][] Frames, long[] Stamps) Traffic(int flows = 64, int perFlow = 16)
    {
        string path = Path.Combine(Path.GetTempPath(), $"zcflow-dropin-{Guid.NewGuid():N}.pcap");
        var frames = new List<byte[]>();
        var stamps = new List<long>();
        long t = 1_700_000_000_123_456_789;
        using (var writer = new CaptureWriter(path))
        {
            for (int k = 0; k < perFlow; k++)
                for (int f = 0; f < flows; f++)
                {
                    uint a = 0x0A000001 + (uint)f, b = 0xC0A80001;
                    bool back = k % 2 == 1;
                    (uint src, uint dst) = back ? (b, a) : (a, b);
                    ushort port = (ushort)(20_000 + f), service = (f % 3) switch { 0 => 80, 1 => 443, _ => 53 };
                    (ushort sp, ushort dp) = back ? (service, port) : (port, service);
                    byte[] payload = BitConverter.GetBytes(k * flows + f);
                    byte[] frame = f % 3 == 2
                        ? Frames.Ethernet(0x0800).Ipv4(src, dst, 17, 8 + 4 + f).Udp(sp, dp, 4 + f).Add(payload).Add(new byte[f]).ToArray()
                        : Frames.Ethernet(0x0800).Ipv4(src, dst, 6, 20 + 4 + f).Tcp(sp, dp).Add(payload).Add(new byte[f]).ToArray();
                    writer.Write(frame, t);
                    frames.Add(frame);
                    stamps.Add(t);
                    t += 1_000_003;
                }
        }
        return (path, [.. frames], [.. stamps]);
    }

    /// <summary>Every record of a capture file, bytes and time stamp, in file order.</summary>
    internal static List<(byte[] Frame, long Stamp)> Records(string path)
    {
        var records = new List<(byte[], long)>();
        using CaptureFile file = CaptureFile.Open(path);
        while (file.TryNext(out ReadOnlySpan<byte> data, out long ns, out _)) records.Add((data.ToArray(), ns));
        return records;
    }

    /// <summary>The Balancer, lossless, replaying <paramref name="input"/> once its queues' consumers have come.</summary>
    private static ChildProcess Balancer(uint cluster, string input, int queues, params object[] more)
        => ChildProcess.Run("Balancer", ["-c", cluster, "-n", queues, "-m", 8, "-i", input, "-L", .. more]);

    /// <summary>Waits until every packet of the file has gone to a queue and been taken from it.</summary>
    private static ClusterInfo AllTaken(uint cluster, int count)
        => Listing.WaitFor(cluster, i => i.Devices.Sum(d => (long)d.Stats.Received) == count
            && i.Queues.Where(q => q.Role == Queues.QueueRole.Egress).Sum(q => (long)q.Stats.Sent) == count
            && i.Queues.All(q => q.Stats.Received == q.Stats.Sent), $"all {count} packets taken from the queues");

    /// <summary>Waits until tcpdump, writing with -U, has put <paramref name="count"/> records in <paramref name="path"/>.</summary>
    private static void Written(string path, int count)
    {
        var clock = Stopwatch.StartNew();
        int n = 0;
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            try
            {
                if ((n = Records(path).Count) >= count) return;
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
            }
            Thread.Sleep(50);
        }
        Assert.Fail($"{path} holds {n} records, not {count}");
    }

    private static string TempFile(string suffix)
    {
        // tcpdump writes its -w file as user tcpdump, once it has opened the queue as root
        string dir = Path.Combine(Path.GetTempPath(), $"zcflow-dropin-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, (UnixFileMode)0x1FF);
        return Path.Combine(dir, "capture" + suffix);
    }

    private static void Remove(params string[] paths)
    {
        foreach (string p in paths)
        {
            if (File.Exists(p)) File.Delete(p);
            string? dir = Path.GetDirectoryName(p);
            if (dir is not null && Path.GetFileName(dir).StartsWith("zcflow-dropin-", StringComparison.Ordinal) && Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void TwoTcpdumps_OnTheBalancersQueues_WriteExactlyTheInput_ToTheNanosecond_InOrderPerFlow()
    {
        TestSetup.RequireTool("tcpdump");
        (string input, byte[][] frames, long[] stamps) = Traffic();
        string a = TempFile(".pcap"), b = TempFile(".pcap");
        uint cluster = TestClusters.NextId();
        try
        {
            using ChildProcess balancer = Balancer(cluster, input, 2);
            Listing.WaitForRunning(cluster, balancer);
            using ChildProcess first = library.Preloaded("tcpdump", "--time-stamp-precision=nano", "-U", "-i", $"zc:{cluster}@0", "-w", a);
            using ChildProcess second = library.Preloaded("tcpdump", "--time-stamp-precision=nano", "-U", "-i", $"zc:{cluster}@1", "-w", b);
            ClusterInfo info = AllTaken(cluster, frames.Length);
            Written(a, (int)info.Queues[0].Stats.Sent);
            Written(b, (int)info.Queues[1].Stats.Sent);
            Libc.Kill(first.Pid, SIGINT);
            Libc.Kill(second.Pid, SIGINT);
            Assert.Equal(0, first.WaitForExit());
            Assert.Equal(0, second.WaitForExit());
            // tcpdump's own count, then libpcap's (pcap_stats): the queue's packets, and its drops
            Assert.Contains($"{info.Queues[0].Stats.Sent} packets captured", first.Errors);
            Assert.Contains($"{info.Queues[0].Stats.Sent} packets received by filter", first.Errors);
            Assert.Contains("0 packets dropped by kernel", first.Errors);
            Assert.Contains($"{info.Queues[1].Stats.Sent} packets received by filter", second.Errors);
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());

            List<(byte[] Frame, long Stamp)> q0 = Records(a), q1 = Records(b);
            Assert.True(q0.Count > 0 && q1.Count > 0, $"both queues get packets: {q0.Count} and {q1.Count}");
            Assert.Equal(frames.Length, q0.Count + q1.Count);
            // Every packet once, each with its bytes and its stamp; within each file in input order, which keeps each flow's.
            var index = new Dictionary<string, int>();
            for (int i = 0; i < frames.Length; i++) index[Convert.ToHexString(frames[i])] = i;
            foreach (List<(byte[] Frame, long Stamp)> q in new[] { q0, q1 })
            {
                int last = -1;
                foreach ((byte[] frame, long stamp) in q)
                {
                    Assert.True(index.Remove(Convert.ToHexString(frame), out int i), "a packet that is not the input's, or twice");
                    Assert.Equal(stamps[i], stamp);
                    Assert.True(i > last, "packets out of order");
                    last = i;
                }
            }
            Assert.Empty(index);
        }
        finally
        {
            Remove(input, a, b);
        }
    }

    [Fact]
    public void Tcpdump_c_StopsAfterThatManyPackets_ThatPassItsFilter()
    {
        TestSetup.RequireTool("tcpdump");
        (string input, byte[][] frames, _) = Traffic();
        string got = TempFile(".pcap"), expected = TempFile(".pcap");
        uint cluster = TestClusters.NextId();
        try
        {
            Assert.Equal(0, Tools.Run("tcpdump", "-r", input, "-w", expected, "tcp port 80").Code);
            List<(byte[] Frame, long Stamp)> web = Records(expected);
            Assert.InRange(web.Count, 101, frames.Length - 1);
            using ChildProcess balancer = Balancer(cluster, input, 1);
            Listing.WaitForRunning(cluster, balancer);
            using ChildProcess tcpdump = library.Preloaded("tcpdump", "-c", 100, "-i", $"zc:{cluster}@0", "-w", got, "tcp port 80");
            Assert.Equal(0, tcpdump.WaitForExit());
            Assert.Contains("100 packets captured", tcpdump.Errors);
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
            Assert.Equal(web.Take(100).Select(r => Convert.ToHexString(r.Frame)), Records(got).Select(r => Convert.ToHexString(r.Frame)));
        }
        finally
        {
            Remove(input, got, expected);
        }
    }

    [Fact]
    public void TcpdumpD_ListsEveryQueue_AndLookupNetAndTheLinkTypesAnswerForOne()
    {
        TestSetup.RequireTool("tcpdump");
        uint cluster = TestClusters.NextId();
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", cluster, "-n", "2,1", "-m", 1, "-i", "gen:64?rate=100"]);
        Listing.WaitForRunning(cluster, balancer);
        using ChildProcess list = library.Preloaded("tcpdump", "-D");
        Assert.Equal(0, list.WaitForExit());
        string[] ours = list.Output.Split(" | ").Where(l => l.Contains($"zc:{cluster}@")).ToArray();
        Assert.Equal(3, ours.Length);
        Assert.Contains($"zc:{cluster}@0 (ZcFlow cluster {cluster} (owner pid {balancer.Pid}), queue 0: free)", ours[0]);
        Assert.Contains($"zc:{cluster}@2 ", ours[2]);
        Assert.Contains("lo", list.Output);   // the system's devices first, as without the drop-in
        using ChildProcess links = library.Preloaded("tcpdump", "-L", "-i", $"zc:{cluster}@1");
        Assert.Equal(0, links.WaitForExit());
        Assert.Contains("EN10MB (Ethernet)", links.Errors);   // tcpdump -L writes the list to standard error
        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());
    }
}
