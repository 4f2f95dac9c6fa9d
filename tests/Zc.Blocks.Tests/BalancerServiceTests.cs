using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ZcFlow.Buffers;
using ZcFlow.Ipc;

namespace ZcFlow.Tests;

/// <summary>
/// The Balancer as a service, as zbalance_ipc runs: in the background as another user, fed through an
/// ingress queue, stamping packets from its time pulse, and taking rules from a ZeroMQ client that is not ours.
/// </summary>
public class BalancerServiceTests(ITestOutputHelper output)
{
    private static int FreeTcpPort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    // 20 frames 10.0.0.1 -> 10.0.0.9 and 20 frames 10.0.0.2 -> 10.0.0.8, alternating, each stamped at 1 s past the epoch.
    private static string WriteCapture(uint id)
    {
        string pcap = Path.Combine(Path.GetTempPath(), $"zcflow-ingress-{id}.pcap");
        using var writer = new Devices.CaptureWriter(pcap);
        for (int i = 0; i < 40; i++)
            writer.Write(i % 2 == 0 ? Frames.Ethernet(0x0800).Ipv4(0x0A000001, 0x0A000009, 17, 8).Udp(1000, 53, 0).ToArray()
                                    : Frames.Ethernet(0x0800).Ipv4(0x0A000002, 0x0A000008, 17, 8).Udp(1000, 53, 0).ToArray(), 1_000_000_000);
        return pcap;
    }

    /// <summary>Sends the capture's 40 frames into the ingress queue zc:id@0 with the Send sample; returns what queue 1's consumer got.</summary>
    private static List<(uint Source, long TimestampNs)> SendThrough(uint id, string pcap, AttachedQueue consumer, int expected)
    {
        using (ChildProcess send = ChildProcess.Run("Send", ["-i", $"zc:{id}@0", "-f", pcap, "-n", 40]))
            Assert.Equal(0, send.WaitForExit());
        var got = new List<(uint, long)>();
        var burst = new PacketHandle[32];
        var clock = Stopwatch.StartNew();
        TimeSpan? settled = null;   // once the expected count is in, a little longer: nothing more may come
        while (settled is null || clock.Elapsed < settled)
        {
            int n = consumer.Queue.ReceiveBurst(burst);
            foreach (PacketHandle p in burst.AsSpan(0, n)) got.Add((System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(p.Data[26..]), p.TimestampNs));
            consumer.Queue.ReleaseBurst(burst.AsSpan(0, n));
            if (n == 0) Thread.Sleep(5);
            if (got.Count >= expected) settled ??= clock.Elapsed + TimeSpan.FromMilliseconds(300);
            else Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"the consumer got {got.Count} of {expected}");
        }
        return got;
    }

    [Fact]
    public void IngressQueue_TakesWhatSendInjects_AndTheTimePulseStampsIt()
    {
        uint id = TestClusters.NextId();
        string pcap = WriteCapture(id);
        try
        {
            using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-i", "Q", "-n", 1, "-S", ZcFlow.Workers.CpuAffinity.AllowedCores()[0], "-R", 1000]);
            ClusterInfo info = Listing.WaitForRunning(id, balancer);
            Assert.Equal(2, info.Queues.Count);   // as zbalance_ipc numbers them: the ingress queue 0, then the output 1
            balancer.WaitFor("  send into zc:");
            using AttachedQueue consumer = AttachedQueue.Attach(id, 1);
            List<(uint Source, long TimestampNs)> got = SendThrough(id, pcap, consumer, 40);
            Assert.Equal(40, got.Count);
            Assert.Equal(20, got.Count(g => g.Source == 0x0A000001));
            long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
            Assert.All(got, g => Assert.InRange(g.TimestampNs, now - 60_000_000_000, now + 1_000_000_000));   // the pulse's time, not the capture's
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
            Assert.Contains("Recv 40 pkts", balancer.Output);
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Fact]
    public void ZeroMqRules_FromPfRingsClientFormat_PassAndDropByAddress()
    {
        uint id = TestClusters.NextId();
        string pcap = WriteCapture(id);
        int port = FreeTcpPort();
        string endpoint = $"tcp://127.0.0.1:{port}";
        try
        {
            using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-i", "Q", "-n", 1, "-Z", "-E", endpoint, "-A", 1]);
            Listing.WaitForRunning(id, balancer);
            balancer.WaitFor("rules through ZeroMQ");
            using AttachedQueue consumer = AttachedQueue.Attach(id, 1);

            // Drop what comes from 10.0.0.1 (a source rule, for ever); the rest passes by default.
            Assert.Equal("OK", Client(endpoint, "src:drop:10.0.0.1:0"));
            List<(uint Source, long _)> got = SendThrough(id, pcap, consumer, 20);
            Assert.Equal(20, got.Count);
            Assert.All(got, g => Assert.Equal(0x0A000002u, g.Source));

            // A message under another key is refused, and changes nothing.
            Assert.Equal("DECODING ERROR", Client(endpoint, "--key=wrong", "src:accept:10.0.0.1:0"));

            // The source rule now accepts 10.0.0.1; a destination rule drops what goes to 10.0.0.8 (that is, from 10.0.0.2).
            Assert.Equal("OK", Client(endpoint, "src:accept:10.0.0.1:0", "dst:drop:10.0.0.8:0"));
            got = SendThrough(id, pcap, consumer, 20);
            Assert.Equal(20, got.Count);
            Assert.All(got, g => Assert.Equal(0x0A000001u, g.Source));

            // Removing a rule (both sides of 10.0.0.8) lets its traffic through again; a rule with a lifetime of one second ends by itself.
            Assert.Equal("OK", Client(endpoint, "both:drop:10.0.0.8:0:remove", "src:drop:10.0.0.1:1", "dst:drop:10.0.0.7:0"));
            Thread.Sleep(2500);
            got = SendThrough(id, pcap, consumer, 40);
            Assert.Equal(40, got.Count);

            ZcFlow.Native.Libc.Kill(balancer.Pid, 1 /* SIGHUP: print the rules */);
            balancer.WaitFor("  dst IPv4 10.0.0.7 DROP [lifetime forever]");
            Assert.DoesNotContain("10.0.0.1", balancer.Output[balancer.Output.LastIndexOf("rules in force")..]);
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
            output.WriteLine(balancer.Output);
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Fact]
    public void DaemonMode_AsAnotherUser_LogsToItsFile_AndLeavesNothingBehind()
    {
        if (ZcFlow.Native.Libc.GetEuid() != 0) Assert.Skip("-D needs root");
        uint nobody = ZcFlow.Native.Libc.LookUpUser("nobody")!.Value.Uid;
        uint id = TestClusters.NextId();
        string log = Path.Combine(Path.GetTempPath(), $"zcflow-{id}.log"), pid = Path.Combine(Path.GetTempPath(), $"zcflow-{id}.pid");
        string stats = $"/run/zcflow/stats/{id}";
        try
        {
            using (ChildProcess start = ChildProcess.Run("Balancer", ["-c", id, "-i", "gen:64?rate=1000", "-n", 2, "-d", "-D", "nobody", "-l", log, "-P", pid, "-p", "-J"]))
                Assert.Equal(0, start.WaitForExit());   // the foreground process ends once the daemon is set up
            int daemon = int.Parse(File.ReadAllText(pid).Trim());
            try
            {
                string[] status = File.ReadAllLines($"/proc/{daemon}/status");
                Assert.StartsWith($"Uid:\t{nobody}\t{nobody}", status.Single(l => l.StartsWith("Uid:")));
                string[] stat = File.ReadAllText($"/proc/{daemon}/stat").Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                Assert.Equal(daemon.ToString(), stat[3]);   // the leader of a session of its own: no terminal
                Listing.WaitFor(id, c => c.Live, "the daemon's cluster");
                // The stats file is written every second by the daemon, now nobody.
                Wait.Until(() => File.Exists(stats) && File.ReadAllText(stats).Contains("Packets:") && !File.ReadAllText(stats).Contains("Packets:      0\n"), "the stats file", seconds: 10);
                using (AttachedQueue consumer = AttachedQueue.Attach(id, 0))
                    Wait.Until(() => File.ReadAllText(log).Contains("debug: queue 0: process"), "-J's line on the consumer", seconds: 10);
            }
            finally
            {
                ZcFlow.Native.Libc.Kill(daemon, 15);
                Wait.Until(() => !Directory.Exists($"/proc/{daemon}"), "the daemon's end", seconds: 20);
            }
            string text = File.ReadAllText(log);
            output.WriteLine(text);
            Assert.Contains("user changed to nobody", text);
            Assert.Contains("Absolute Stats:", text);   // the final stats, in the log
            Assert.False(File.Exists(pid));
            Assert.False(File.Exists(stats));
            Assert.Empty(Directory.GetFiles("/dev/shm", $"zcflow-{id}.*"));   // the socket and the lock file
        }
        finally
        {
            File.Delete(log);
            File.Delete(pid);
        }
    }

    /// <summary>
    /// A pid file under /run, as daemons keep them: in a directory of its own the Balancer makes for the user it becomes, so
    /// that it can still remove the file at exit; one straight in /run (root's) is said to stay, at once.
    /// </summary>
    [Fact]
    public void DaemonMode_APidFileUnderRun_IsRemovedAtExit_AndOneThatCannotBeIsSaidAtOnce()
    {
        if (ZcFlow.Native.Libc.GetEuid() != 0) Assert.Skip("-D needs root");
        uint id = TestClusters.NextId();
        string dir = $"/run/zcflow-{id}", pid = Path.Combine(dir, "balancer.pid"), log = Path.Combine(Path.GetTempPath(), $"zcflow-{id}.log");
        try
        {
            using (ChildProcess start = ChildProcess.Run("Balancer", ["-c", id, "-i", "gen:64?rate=1000", "-d", "-D", "nobody", "-l", log, "-P", pid]))
                Assert.Equal(0, start.WaitForExit());
            int daemon = int.Parse(File.ReadAllText(pid).Trim());
            Assert.Equal(ZcFlow.Native.Libc.LookUpUser("nobody")!.Value.Uid.ToString(), Tools.Run("stat", "-c", "%u", dir).Output.Trim());
            ZcFlow.Native.Libc.Kill(daemon, 15);
            Wait.Until(() => !Directory.Exists($"/proc/{daemon}"), "the daemon's end", seconds: 20);
            Assert.False(File.Exists(pid), File.ReadAllText(log));
            Assert.DoesNotContain("stays", File.ReadAllText(log));

            using ChildProcess root = ChildProcess.Run("Balancer", ["-c", id, "-i", "gen:64?rate=1000", "-D", "nobody", "-P", $"/run/zcflow-{id}.pid"]);
            Assert.Contains($"warning: -P /run/zcflow-{id}.pid: /run is not nobody's, so the pid file stays", root.WaitFor("serving") + root.Errors);
            root.Terminate();
            root.WaitForExit();
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
            File.Delete($"/run/zcflow-{id}.pid");
            File.Delete(log);
        }
    }

    [Fact]
    public void DaemonMode_ASetUpError_ReachesTheTerminal_WithTheExitCode()
    {
        using ChildProcess start = ChildProcess.Run("Balancer", ["-c", TestClusters.NextId(), "-i", "nosuch0", "-d"]);
        Assert.Equal(1, start.WaitForExit());
        Assert.Contains("unknown device 'nosuch0'", start.Errors);
        Assert.DoesNotContain("(Parameter '", start.Errors);   // a user's message, not a programmer's
    }

    [Theory]
    [InlineData("-v", true)]
    [InlineData("-p", true)]
    [InlineData("-v -z", false)]
    public void ConsoleStats_ComeWithDashV_AndNeverWithDashZ(string options, bool printed)
    {
        uint id = TestClusters.NextId();
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-i", "gen:64?rate=1000", .. options.Split(' ')]);
        Listing.WaitForRunning(id, balancer);
        Thread.Sleep(2500);
        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());
        Assert.Equal(printed, balancer.Output.Contains("Absolute Stats:"));
    }

    [Fact]
    public async Task Metrics_ForPrometheus_PassPromtool_AndAreTheQueuesOwnCounters()
    {
        uint id = TestClusters.NextId();
        int port = FreeTcpPort();
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-i", "gen:64?count=5000", "-n", 2, "-m", 1, "-L", "--metrics-port", port]);
        Listing.WaitFor(id, c => c.Queues.Sum(q => (long)q.Stats.Sent) == 5000, "every packet in the queues");
        balancer.WaitFor("metrics at");
        using AttachedQueue consumer = AttachedQueue.Attach(id, 1);
        ClusterInfo info = Listing.WaitFor(id, c => c.Queues[1].ConsumerPid != 0, "the consumer in the listing");
        using var http = new HttpClient();
        string text = await http.GetStringAsync($"http://localhost:{port}/metrics", TestContext.Current.CancellationToken);
        output.WriteLine(text);

        // promtool, Prometheus's own checker, finds nothing wrong.
        var check = new ProcessStartInfo("promtool", "check metrics") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        using (Process promtool = Process.Start(check)!)
        {
            await promtool.StandardInput.WriteAsync(text);
            promtool.StandardInput.Close();
            string problems = await promtool.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken) + await promtool.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
            await promtool.WaitForExitAsync(TestContext.Current.CancellationToken);
            Assert.True(promtool.ExitCode == 0, problems);
        }
        long Value(string name, string label)
        {
            string line = Assert.Single(text.Split('\n'), l => l.StartsWith(name + "{", StringComparison.Ordinal) && l.Contains(label) && l.Contains($"cluster=\"{id}\""));
            return long.Parse(line[(line.LastIndexOf(' ') + 1)..]);
        }
        for (int q = 0; q < 2; q++)
            Assert.Equal((long)info.Queues[q].Stats.Sent, Value("zcflow_queue_sent_total", $"queue=\"{q}\""));
        Assert.Equal(5000, Value("zcflow_balancer_received_total", "balancer=\"0\""));
        Assert.Equal(5000, Value("zcflow_device_received_total", "device=\"gen:64?count=5000\""));
        Assert.Equal(0, Value("zcflow_queue_consumer_attached", "queue=\"0\""));
        Assert.Equal(1, Value("zcflow_queue_consumer_attached", "queue=\"1\""));
        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());
    }

    [Fact]
    public void Send_AskedForARateItCannotReach_SaysSoOnce_WithTheRateItReached()
    {
        uint id = TestClusters.NextId();
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-i", "Q", "-n", 1]);
        Listing.WaitForRunning(id, balancer);
        using ChildProcess send = ChildProcess.Run("Send", ["-i", $"zc:{id}@0", "-p", 1_000_000_000]);
        send.WaitFor("     3s");
        send.Terminate();
        Assert.Equal(0, send.WaitForExit());
        string warning = Assert.Single(send.Errors.Split('\n'), l => l.StartsWith("warning: sending at ", StringComparison.Ordinal));
        Assert.Matches(@"^warning: sending at [0-9,]+ pps, below the 1,000,000,000 pps asked: the device, or this core, cannot send faster", warning);
        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());
    }

    [Fact]
    public async Task EveryReport_ConsoleStatsFileMetricsAndZStat_ShowsTheSameCounters()
    {
        // Two queues, one with a consumer that takes part of what it was sent: sent, received and queued all differ.
        const int Count = 6000, Taken = 1234;
        uint id = TestClusters.NextId();
        int port = FreeTcpPort();
        string input = $"gen:64?count={Count}";
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-i", input, "-n", 2, "-m", 1, "-p", "-L", "--metrics-port", port]);
        Listing.WaitFor(id, c => c.Queues.Sum(q => (long)q.Stats.Sent) == Count, "every packet in the queues");
        balancer.WaitFor("metrics at");
        using AttachedQueue consumer = AttachedQueue.Attach(id, 1);
        for (int i = 0; i < Taken; i++)
        {
            Assert.True(consumer.Queue.Receive(out PacketHandle packet, ZcFlow.Queues.QueueWait.Passive, TestContext.Current.CancellationToken));
            consumer.Queue.Release(packet);
        }
        Listing.WaitFor(id, c => c.Queues[1].Stats.Received == Taken && c.Devices.Single().Stats.Received == Count, "the consumer's count in the listing");
        Thread.Sleep(1500);   // the stats file is written each second

        ZcFlow.Queues.QueueStats[] queues = [.. ZcFlow.Ipc.ClusterDirectory.List().Single(c => c.Id == id).Queues.Select(q => q.Stats)];
        Assert.Equal(Count, queues.Sum(q => (long)q.Sent));
        Assert.Equal(Taken, (long)queues[1].Received);
        Assert.Equal(0UL, queues[0].Received);

        string metrics = await new HttpClient().GetStringAsync($"http://localhost:{port}/metrics", TestContext.Current.CancellationToken);
        long Metric(string name, string label)
        {
            string line = Assert.Single(metrics.Split('\n'), l => l.StartsWith(name + "{", StringComparison.Ordinal) && l.Contains(label) && l.Contains($"cluster=\"{id}\""));
            return long.Parse(line[(line.LastIndexOf(' ') + 1)..]);
        }
        Dictionary<string, long> file = File.ReadAllLines($"/run/zcflow/stats/{id}").Select(l => l.Split(':', 2))
            .Where(kv => long.TryParse(kv[1], out _)).ToDictionary(kv => kv[0], kv => long.Parse(kv[1]));
        string zstat;
        using (ChildProcess z = ChildProcess.Run("ZStat", []))
        {
            Assert.Equal(0, z.WaitForExit());
            zstat = z.Output;
        }
        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());
        string console = balancer.Output[balancer.Output.LastIndexOf("=========================", StringComparison.Ordinal)..];
        output.WriteLine(console);

        // the device
        Assert.Contains($"{input}: {Count:N0} pkts received", console);
        Assert.Equal(Count, file["IFPackets"]);
        Assert.Equal(Count, Metric("zcflow_device_received_total", $"device=\"{input}\""));
        Assert.Contains($"  {input}  received {Count:N0} ", zstat);
        // the balancer
        Assert.Contains($"Recv {Count:N0} pkts", console);
        Assert.Equal(Count, file["Packets"]);
        Assert.Equal(Count, Metric("zcflow_balancer_received_total", "balancer=\"0\""));
        // each queue: forwarded (sent), taken by its consumer (received), dropped
        for (int q = 0; q < 2; q++)
        {
            (ulong sent, ulong received, ulong dropped) = (queues[q].Sent, queues[q].Received, queues[q].Dropped);
            Assert.Matches($@"Q +{q}: +{sent:N0} pkts forwarded +{received:N0} taken by its consumer +{dropped:N0} dropped", console);
            Assert.Equal((long)received, file[$"Q{q}Packets"]);
            Assert.Equal((long)dropped, file[$"Q{q}Dropped"]);
            Assert.Equal((long)sent, Metric("zcflow_queue_sent_total", $"queue=\"{q}\""));
            Assert.Equal((long)received, Metric("zcflow_queue_received_total", $"queue=\"{q}\""));
            Assert.Equal((long)dropped, Metric("zcflow_queue_dropped_total", $"queue=\"{q}\""));
            Assert.Contains($"  zc:{id}@{q}  egress ", zstat);
            Assert.Matches($@"zc:{id}@{q} .* sent {sent:N0}  received {received:N0}  queued {sent - received:N0}  dropped {dropped:N0} ", zstat);
        }
        Assert.Equal(Count, file["Forwarded"]);
        Assert.Equal(Taken, file["Processed"]);
        Assert.Contains($"Forwarded {Count:N0} pkts", console);
    }

    // A client written with pyzmq from the message format alone (PF_RING's userland/examples_zc/zmq): rules as side:action:ip:lifetime[:remove].
    private const string ClientScript = """
        import socket, struct, sys, zmq
        KEY = b"kasjfha 98748213^%@^&%#!^&532165^%#@^&tehshj^@&*#@^"
        endpoint, args = sys.argv[1], sys.argv[2:]
        if args and args[0].startswith("--key="):
            KEY, args = args[0][6:].encode(), args[1:]
        body = b""
        for rule in args:
            side, action, ip, lifetime, *rest = rule.split(":")
            flags = 1 | (2 if side == "src" else 0) | (4 if side == "both" else 0) | (8 if action == "accept" else 0) | (16 if rest == ["remove"] else 0)
            body += struct.pack("<BxH", flags, int(lifetime)) + socket.inet_aton(ip) + bytes(12)
        message = struct.pack("<HHI", 1, len(args), 0x01032017) + body
        message = bytes(b ^ KEY[i % len(KEY)] for i, b in enumerate(message))
        s = zmq.Context().socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        s.send(message)
        if s.poll(10000) == 0:
            sys.exit("no reply")
        print(s.recv().decode())
        """;

    private static string Client(string endpoint, params string[] rules) => ClientIn(null, endpoint, rules);

    /// <summary>The rules sent to <paramref name="endpoint"/> by PF_RING's client format, from network namespace <paramref name="netns"/> when given.</summary>
    internal static string ClientIn(string? netns, string endpoint, params string[] rules)
    {
        string script = Path.Combine(Path.GetTempPath(), $"zcflow-zmq-client-{Environment.ProcessId}.py");
        File.WriteAllText(script, ClientScript.Replace("\n        ", "\n"));
        var start = new ProcessStartInfo(netns is null ? "/usr/bin/python3" : "ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in (string[])[.. netns is null ? [] : new[] { "netns", "exec", netns, "/usr/bin/python3" }, script, endpoint, .. rules]) start.ArgumentList.Add(a);
        try
        {
            using Process client = Process.Start(start)!;
            string reply = client.StandardOutput.ReadToEnd().Trim();
            string errors = client.StandardError.ReadToEnd();
            Assert.True(client.WaitForExit(30_000), "the ZeroMQ client did not finish");
            Assert.True(client.ExitCode == 0, $"the ZeroMQ client failed: {errors}");
            return reply;
        }
        finally
        {
            File.Delete(script);
        }
    }
}
