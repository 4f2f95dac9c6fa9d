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
    /// A capture of <paramref name="flows"/> flows of <paramref name="perFlow"/> packets each, interleaved, each way in turn: TCP
    /// to port 80 and to 443 (a request line, then a response line, in sequence), UDP to 53, each packet numbered in its payload,
    /// stamped to the nanosecond (none on a whole microsecond).
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
                    byte[] payload = System.Text.Encoding.ASCII.GetBytes($"{(back ? "HTTP/1.0 200 " : "GET /")}{k * flows + f:D6}\r\n").Concat(new byte[f]).ToArray();
                    uint seq = 1000 + (uint)(k / 2 * payload.Length), ack = 5000 + (uint)((k + 1) / 2 * payload.Length);
                    byte[] frame = f % 3 == 2
                        ? Frames.Ethernet(0x0800).Ipv4(src, dst, 17, 8 + payload.Length).Udp(sp, dp, payload.Length).Add(payload).ToArray()
                        : Frames.Ethernet(0x0800).Ipv4(src, dst, 6, 20 + payload.Length).U16(sp).U16(dp).U32(back ? ack : seq).U32(back ? seq : ack)
                            .Add(0x50, 0x18).U16(1024).U16(0).U16(0).Add(payload).ToArray();   // ACK and PSH, in sequence each way
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

    [Fact]
    public void Tshark_ThroughDumpcap_WritesTheSameBytes()
    {
        TestSetup.RequireTool("tshark");
        (string input, byte[][] frames, long[] stamps) = Traffic(flows: 16, perFlow: 8);
        string got = TempFile(".pcapng");
        uint cluster = TestClusters.NextId();
        try
        {
            using ChildProcess balancer = Balancer(cluster, input, 1);
            Listing.WaitForRunning(cluster, balancer);
            using ChildProcess tshark = library.Preloaded("tshark", "-i", $"zc:{cluster}@0", "-c", frames.Length, "-w", got);
            Assert.Equal(0, tshark.WaitForExit());
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
            List<(byte[] Frame, long Stamp)> records = Records(got);
            Assert.Equal(frames.Select(Convert.ToHexString), records.Select(r => Convert.ToHexString(r.Frame)));
            Assert.Equal(stamps.Select(t => t / 1000), records.Select(r => r.Stamp / 1000));   // dumpcap asks for microseconds
        }
        finally
        {
            Remove(input, got);
        }
    }

    [Fact]
    public void Softflowd_OnAQueue_ExportsTheFlowsItExportsFromTheFile()
    {
        TestSetup.RequireTool("softflowd");
        TestSetup.RequireTool("nfcapd");
        (string input, byte[][] frames, _) = Traffic();
        uint cluster = TestClusters.NextId();
        try
        {
            using var buffers = new FlowExportTests.LargeSocketBuffers();
            using var fromFile = new FlowExportTests.Nfcapd();
            using var fromQueue = new FlowExportTests.Nfcapd();
            Assert.Equal(0, Tools.Run("softflowd", "-r", input, "-n", fromFile.Address, "-v", "9", "-d").Code);
            using ChildProcess balancer = Balancer(cluster, input, 1);
            Listing.WaitForRunning(cluster, balancer);
            // softflowd reads "N:" before an interface's name as its index: "0:" keeps the whole queue name
            using ChildProcess softflowd = library.Preloaded("softflowd", "-i", $"0:zc:{cluster}@0", "-n", fromQueue.Address, "-v", "9", "-d");
            AllTaken(cluster, frames.Length);
            Thread.Sleep(500);
            softflowd.Terminate();   // softflowd expires every flow it holds on SIGTERM, and exports them
            softflowd.WaitForExit();
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
            Dictionary<string, (long Packets, long Bytes)> expected = fromFile.Flows(), got = fromQueue.Flows();
            Assert.Equal(frames.Length, expected.Values.Sum(f => f.Packets));
            Assert.Equal(expected.OrderBy(f => f.Key), got.OrderBy(f => f.Key));
        }
        finally
        {
            Remove(input);
        }
    }

    /// <summary>ngrep, tcpflow and ndpiReader, each on a queue of a fan-out balancer that gives every queue every packet.</summary>
    [Fact]
    public void Ngrep_Tcpflow_AndNdpiReader_OnQueues_SayWhatTheySayOfTheFile()
    {
        foreach (string tool in new[] { "ngrep", "tcpflow", "ndpiReader" }) TestSetup.RequireTool(tool);
        (string input, byte[][] frames, _) = Traffic();
        string fileFlows = TempFile(""), queueFlows = TempFile("");
        Directory.CreateDirectory(fileFlows);
        Directory.CreateDirectory(queueFlows);
        uint cluster = TestClusters.NextId();
        try
        {
            (int code, string ngrepFile, _) = Tools.Run("ngrep", "-q", "-I", input, "");
            Assert.Equal(0, code);
            Assert.Equal(0, Tools.Run("tcpflow", "-r", input, "-o", fileFlows).Code);
            (code, string ndpiFile, _) = Tools.Run("ndpiReader", "-i", input);
            Assert.Equal(0, code);

            using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", cluster, "-n", 3, "-m", 2, "-i", input, "-L"]);
            Listing.WaitForRunning(cluster, balancer);
            using ChildProcess ngrep = library.Preloaded("ngrep", "-q", "-l", "-d", $"zc:{cluster}@0", "");
            using ChildProcess tcpflow = library.Preloaded("tcpflow", "-i", $"zc:{cluster}@1", "-o", queueFlows);
            using ChildProcess ndpi = library.Preloaded("ndpiReader", "-i", $"zc:{cluster}@2", "-s", 4);
            Listing.WaitFor(cluster, i => i.Queues.All(q => q.Stats.Received == (ulong)frames.Length), "every queue's packets taken");
            Thread.Sleep(500);
            Libc.Kill(ngrep.Pid, SIGINT);
            Libc.Kill(tcpflow.Pid, SIGINT);
            ngrep.WaitForExit();
            tcpflow.WaitForExit();
            Assert.Equal(0, ndpi.WaitForExit());
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());

            // ngrep: every packet and its payload as from the file, after the lines that name its input (file or interface) and filter
            static string Packets(IEnumerable<string> lines) => string.Join('\n', lines.SkipWhile(l => l.Length != 0)).Trim();
            string expectedPackets = Packets(ngrepFile.Split('\n'));
            Assert.Contains("GET /000000", expectedPackets);
            Assert.Equal(expectedPackets, Packets(ngrep.Output.Split(" | ")));
            // tcpflow: the same streams, byte for byte
            static Dictionary<string, string> Streams(string dir) => Directory.EnumerateFiles(dir).Where(f => !f.EndsWith(".xml", StringComparison.Ordinal))
                .ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexString(File.ReadAllBytes(f)));
            Dictionary<string, string> expectedStreams = Streams(fileFlows);
            Assert.Equal(Enumerable.Range(0, 64).Count(f => f % 3 != 2) * 2, expectedStreams.Count);   // each TCP flow, each way
            Assert.Equal(expectedStreams.OrderBy(s => s.Key), Streams(queueFlows).OrderBy(s => s.Key));
            // ndpiReader: the same packets, flows and protocols
            static string[] Findings(string text) => text.Split(["\n", " | "], StringSplitOptions.None).Select(l => l.Trim())
                .Where(l => l.StartsWith("IP packets:", StringComparison.Ordinal) || l.StartsWith("Unique flows:", StringComparison.Ordinal)
                    || l.StartsWith("TCP Packets:", StringComparison.Ordinal) || l.StartsWith("UDP Packets:", StringComparison.Ordinal) || l.Contains("packets:", StringComparison.Ordinal))
                .Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries))).ToArray();
            Assert.NotEmpty(Findings(ndpiFile));
            Assert.Equal(Findings(ndpiFile), Findings(ndpi.Output));
        }
        finally
        {
            Remove(input, fileFlows, queueFlows);
        }
    }

    [Fact]
    public void Bittwist_SendsAFile_IntoTheBalancersIngressQueue_AndItComesOutByteForByte()
    {
        TestSetup.RequireTool("bittwist");
        (string nanoseconds, byte[][] frames, _) = Traffic();
        string input = TempFile(".pcap"), got = TempFile(".pcap");
        uint cluster = TestClusters.NextId();
        try
        {
            Assert.Equal(0, Tools.Run("tcpdump", "-r", nanoseconds, "-w", input).Code);   // bittwist reads microsecond captures only
            using ChildProcess balancer = Balancer(cluster, "Q", 1);                     // Q: ingress queue 0, then egress queue 1
            Listing.WaitForRunning(cluster, balancer);
            using ChildProcess tcpdump = library.Preloaded("tcpdump", "-c", frames.Length, "-i", $"zc:{cluster}@1", "-w", got);
            using ChildProcess bittwist = library.Preloaded("bittwist", "-i", $"zc:{cluster}@0", input);
            Assert.Equal(0, bittwist.WaitForExit());
            Assert.Contains($"{frames.Length} packets ({frames.Sum(f => f.Length)} bytes) sent", bittwist.Errors);
            Assert.Equal(0, tcpdump.WaitForExit());
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
            Assert.Equal(frames.Select(Convert.ToHexString), Records(got).Select(r => Convert.ToHexString(r.Frame)));
        }
        finally
        {
            Remove(nanoseconds, input, got);
        }
    }

    /// <summary>
    /// An event loop's libpcap program (c/pcap_epoll.c, compiled here) waits with epoll on pcap_get_selectable_fd: woken by
    /// each packet of a paced generator, it reads it with a non-blocking pcap_dispatch; then, with nothing coming, it sleeps.
    /// </summary>
    [Fact]
    public void AnEpollLoop_OnTheSelectableDescriptor_WakesForEachPacket_AndUsesNoCpuWhileIdle()
    {
        TestSetup.RequireTool("gcc");
        string program = Path.Combine(library.Directory, "pcap_epoll");
        var gcc = Tools.Run("gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", program, Path.Combine(Tools.Repository!, "tests", "Zc.Blocks.Tests", "c", "pcap_epoll.c"), "-lpcap");
        Assert.True(gcc.Code == 0, gcc.Error);
        uint cluster = TestClusters.NextId();
        // 100 packets a second, after a second's wait for the consumer (which the generator then catches up on at once:
        // those are not timed), with the balancer polling actively, so that what is timed is the consumer's wake-up
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", cluster, "-n", 1, "-m", 0, "-a", "-i", "gen:64?rate=100&count=350", "-W", 1]);
        Listing.WaitFor(cluster, i => i.Queues.Count == 1, "the queue");
        using ChildProcess epoll = library.Preloaded(program, $"zc:{cluster}@0", 150, 200, 2000);
        epoll.WaitFor("waiting");
        string[] latency = epoll.WaitFor("latency_us").Split(' ');
        string[] idle = epoll.WaitFor("idle").Split(' ');
        Assert.Equal(0, epoll.WaitForExit());
        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());
        // Woken by the owner's write for each packet, not by its tenth-of-a-second check (which would put the median near
        // 50 ms); the bound leaves room for a busy host, whose scheduler alone can cost milliseconds.
        Assert.True(int.Parse(latency[2]) < 20_000, $"half the packets are read within 20 ms of being made: {string.Join(' ', latency)}");
        Assert.True(int.Parse(idle[2]) < 40, $"idle for 2 s, it uses under 2% of a core: {string.Join(' ', idle)}");
        Assert.Equal("0", idle[4]);   // and is not woken for nothing
    }

    /// <summary>With the drop-in in front of it, libpcap reads every file of tcpdump's own tests, good and hostile, as without it.</summary>
    [Fact]
    public void TcpdumpR_OfEveryCorpusFile_PrintsWhatItPrintsWithoutTheDropIn()
    {
        TestSetup.RequireTool("tcpdump");
        Corpus.SkipIfMissing();
        string[] files = Corpus.Files();
        Assert.True(files.Length > 800, $"{files.Length} corpus files");
        var env = new Dictionary<string, string> { ["LD_PRELOAD"] = library.PcapDropIn };
        var differ = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.ForEach(files, new ParallelOptions { MaxDegreeOfParallelism = 2 }, file =>
        {
            var plain = Tools.Run("tcpdump", "-nn", "-vv", "-r", file);
            var preloaded = Tools.RunWith(env, "tcpdump", "-nn", "-vv", "-r", file);
            if (plain != preloaded) differ.Add($"{Path.GetFileName(file)}: exit {plain.Code} / {preloaded.Code}, {plain.Output.Length} / {preloaded.Output.Length} bytes out");
        });
        Assert.True(differ.IsEmpty, $"{differ.Count} files print otherwise: {string.Join("; ", differ.Take(10))}");
    }

    /// <summary>On an interface, libpcap is the system's: two tcpdumps side by side, one with the drop-in, print the same.</summary>
    [Fact]
    public async Task TcpdumpI_OfAVeth_PrintsWhatItPrintsWithoutTheDropIn()
    {
        TestSetup.RequireTool("tcpdump");
        TestSetup.RequireTool("tcpreplay");
        (string input, byte[][] frames, _) = Traffic(flows: 8, perFlow: 8);
        try
        {
            using Veth veth = Veth.Create();
            string[] args = ["tcpdump", "-nn", "-t", "-l",   // no time stamps: each socket may take its own
                "-c", frames.Length.ToString(), "-i", Veth.A];
            using Process plain = veth.Start(args[0], args[1..]);
            using Process preloaded = veth.Start("env", [$"LD_PRELOAD={library.PcapDropIn}", .. args]);
            foreach (Process p in new[] { plain, preloaded })
                Assert.StartsWith("tcpdump: verbose output suppressed", p.StandardError.ReadLine());
            Thread.Sleep(200);
            veth.Exec("tcpreplay", "-q", "-i", Veth.B, input);
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            limit.CancelAfter(TimeSpan.FromSeconds(30));   // each stops by itself once it has seen every frame
            string a = await plain.StandardOutput.ReadToEndAsync(limit.Token), b = await preloaded.StandardOutput.ReadToEndAsync(limit.Token);
            await plain.WaitForExitAsync(limit.Token);
            await preloaded.WaitForExitAsync(limit.Token);
            Assert.Equal(frames.Length, a.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
            Assert.Equal(a, b);
        }
        finally
        {
            Remove(input);
        }
    }

    /// <summary>Each way an open fails, in libpcap's terms and with what to do, as tcpdump prints it; the program's exit is its own.</summary>
    [Fact]
    public void MissingClusters_QueuesOutOfRange_BusyQueues_BadNames_AndNoPermission_AreLibpcapErrorsWithReasons()
    {
        TestSetup.RequireTool("tcpdump");
        uint cluster = TestClusters.NextId(), missing = TestClusters.NextId();
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", cluster, "-n", 1, "-m", 0, "-i", "gen:64?rate=100"]);
        Listing.WaitForRunning(cluster, balancer);
        string Fails(string name, params string[] more)
        {
            using ChildProcess tcpdump = library.Preloaded(more.Length > 0 ? more[0] : "tcpdump", [.. more.Skip(1), .. more.Length > 0 ? new[] { "tcpdump" } : [], "-c", "1", "-i", name]);
            Assert.Equal(1, tcpdump.WaitForExit());
            return tcpdump.Errors;
        }
        Assert.Contains($"zc:{missing}@0: No such device exists\n(zc:{missing}@0: there is no cluster {missing} on this host", Fails($"zc:{missing}@0"));
        Assert.Contains($"zc:{cluster}@5: No such device exists\n(zc:{cluster}@5: cluster {cluster} has 1 queues, numbered from 0 (tcpdump -D lists its queues))", Fails($"zc:{cluster}@5"));
        Assert.Contains("(zc:99: 'zc:99' is not a queue name: write zc:<cluster>@<queue>, for example zc:99@0)", Fails("zc:99"));
        using (ChildProcess first = library.Preloaded("tcpdump", "-i", $"zc:{cluster}@0", "-w", "/dev/null"))
        {
            Listing.WaitFor(cluster, i => i.Queues[0].ConsumerPid == first.Pid, "the first tcpdump on the queue");
            Assert.Contains($"zc:{cluster}@0: queue 0 of cluster {cluster} already has a consumer, process {first.Pid}: one consumer per queue", Fails($"zc:{cluster}@0"));
            first.Terminate();
            Assert.Equal(0, first.WaitForExit());
        }
        // another user: the cluster was made owner-only
        Assert.Contains($"zc:{cluster}@0: You don't have permission to perform this capture on that device", Fails($"zc:{cluster}@0", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"));
        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());
    }

    /// <summary>
    /// The owner going away ends tcpdump's loop with PCAP_ERROR and the reason; a tcpdump started once a new owner has
    /// made the cluster again reads it; one killed while it holds packets leaves its queue to the next.
    /// </summary>
    [Fact]
    public void AnOwnerThatGoes_EndsTheLoopWithTheReason_AndAConsumerKilledMidBurst_LeavesTheQueueAttachable()
    {
        TestSetup.RequireTool("tcpdump");
        uint cluster = TestClusters.NextId();
        using (ChildProcess owner = ChildProcess.Run("Balancer", ["-c", cluster, "-n", 1, "-m", 0, "-i", "gen:64?rate=1000"]))
        {
            Listing.WaitForRunning(cluster, owner);
            using ChildProcess tcpdump = library.Preloaded("tcpdump", "-i", $"zc:{cluster}@0", "-w", "/dev/null");
            Listing.WaitFor(cluster, i => i.Queues[0].Stats.Received > 100, "tcpdump reading");
            owner.Kill();
            Assert.Equal(1, tcpdump.WaitForExit(10));
            Assert.Contains($"zc:{cluster}@0: cluster {cluster} is gone: its owner (pid {owner.Pid}) exited without closing it", tcpdump.Errors);
        }
        using ChildProcess again = ChildProcess.Run("Balancer", ["-c", cluster, "-n", 1, "-m", 0, "-i", "gen:64?rate=100000"]);
        Listing.WaitForRunning(cluster, again);
        using (ChildProcess killed = library.Preloaded("tcpdump", "-i", $"zc:{cluster}@0", "-w", "/dev/null"))
        {
            Listing.WaitFor(cluster, i => i.Queues[0].Stats.Received > 10_000, "tcpdump reading");
            killed.Kill();
        }
        using ChildProcess next = library.Preloaded("tcpdump", "-c", 1000, "-i", $"zc:{cluster}@0", "-w", "/dev/null");
        Assert.Equal(0, next.WaitForExit());
        Assert.Contains("1000 packets captured", next.Errors);
        again.Terminate();
        Assert.Equal(0, again.WaitForExit());
    }
}
