using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Flows;
using ZcFlow.Tests;
using ZcFlow.Workers;

namespace ZcFlow.Perf;

/// <summary>
/// Flow export from a capture file, like for like: our FlowTable and IPFIX encoder (reading the file's records
/// in place, as FlowExport does, one thread pinned), softflowd <c>-r</c> and pmacctd <c>-I</c> reading the
/// same file, each exporting or printing what it finds. Reported: packets per second of CPU time (user +
/// system, every process and thread of each; ours is the one thread that does it all, opening the file
/// included; a pool's cluster is made before), and the ratio to softflowd's; ours reading the file alone (the share of reading it); and ours
/// with each record copied into a pool buffer by the pcap device first, as packets of a live device come. Two files: many flows (500,000 flows of 4 packets) and few (1,000 flows of 2,000).
/// Then the memory a table of a million flows takes, filled with a million concurrent flows; and the export alone, into
/// ClickHouse and as IPFIX over UDP.
/// </summary>
internal static class FlowsScenario
{
    public static void Run(PerfOptions options)
    {
        var report = new Report(options);
        int core = CpuAffinity.AllowedCores()[^1];
        foreach ((string workload, int flows, int packetsPerFlow) in ((string, int, int)[])[("many_flows", 500_000, 4), ("few_flows", 1_000, 2_000)])
        {
            string pcap = Path.Combine(Path.GetTempPath(), $"zcflow-perf-{workload}-{Environment.ProcessId}.pcap");
            try
            {
                long packets = Write(pcap, flows, packetsPerFlow);
                // Interleaved, best of N each: this host's speed swings from minute to minute.
                var ours = new List<double>();
                var reading = new List<double>();
                var viaPool = new List<double>();
                var softflowd = new List<double>();
                var pmacctd = new List<double>();
                for (int run = 0; run < options.Runs; run++)
                {
                    ours.Add(Ours(pcap, core, Reading.InPlace));
                    reading.Add(Ours(pcap, core, Reading.ReadOnly));
                    viaPool.Add(Ours(pcap, core, Reading.ViaPool));
                    softflowd.Add(Child("softflowd", "-r", pcap, "-n", "127.0.0.1:9", "-v", "10", "-d"));
                    pmacctd.Add(Child("pmacctd", "-I", pcap, "-P", "print", "-O", "csv", "-o", "/dev/null", "-r", "3600", "-c", "src_host,dst_host,src_port,dst_port,proto"));
                }
                double baseline = packets / softflowd.Min();
                foreach ((string name, List<double> seconds) in ((string, List<double>)[])[("zcflow", ours), ("zcflow_read_only", reading), ("zcflow_via_pool", viaPool), ("softflowd", softflowd), ("pmacctd", pmacctd)])
                    report.Row(new Dictionary<string, object>
                    {
                        ["scenario"] = "flows",
                        ["workload"] = workload,
                        ["exporter"] = name,
                        ["packets"] = packets,
                        ["flows"] = flows,
                        ["cpu_s"] = Math.Round(seconds.Min(), 3),
                        ["mpps_per_cpu"] = Math.Round(packets / seconds.Min() / 1e6, 3),
                        ["ratio_vs_softflowd"] = Math.Round(packets / seconds.Min() / baseline, 2),
                    });
            }
            finally
            {
                File.Delete(pcap);
            }
        }
        Memory(report);
        Export(report, options, core);
    }

    /// <summary>
    /// The export alone: a table holding 500,000 ended flows, from its expiry to the rows committed in a local ClickHouse
    /// (ClickHouseExport, batches of 65,536), beside the IPFIX export of the same flows over UDP to a socket that is not
    /// read. The expiring thread is pinned; CPU is this process's, every thread's (the export's sender included), per flow;
    /// for ClickHouse also the server's. Interleaved runs; the median with the slowest and fastest.
    /// </summary>
    private static void Export(Report report, PerfOptions options, int core)
    {
        const int Flows = 500_000;
        if (!ClickHouseServer.Installed)
        {
            Console.Error.WriteLine("flows export: clickhouse-server is not installed (apt-get install clickhouse-server); its rows are left out");
            return;
        }
        using var server = new ClickHouseServer();
        using var sink = new System.Net.Sockets.UdpClient(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        var collector = (System.Net.IPEndPoint)sink.Client.LocalEndPoint!;
        var runs = new Dictionary<string, List<(double Rate, double CpuNs, double ServerNs)>> { ["clickhouse"] = [], ["ipfix_udp"] = [] };
        for (int run = 0; run < options.Runs; run++)
            foreach (string exporter in runs.Keys)
            {
                (double wall, double cpu, double serverCpu) = (0, 0, 0);
                var thread = new Thread(() =>
                {
                    CpuAffinity.PinCurrentThread(core);
                    if (exporter == "clickhouse")
                    {
                        using var export = ClickHouseExport.Open(new ClickHouseOptions { Server = new Uri(server.Url), Table = $"bench.flows{run}" }, TimeSpan.FromSeconds(30));
                        var table = Filled(export, Flows);
                        (double cpu0, double server0) = (ProcessCpuSeconds(), server.CpuSeconds);
                        var clock = Stopwatch.StartNew();
                        table.ExpireAll();
                        Assert(export.Complete(TimeSpan.FromSeconds(60)) && export.Inserted == Flows);
                        (wall, cpu, serverCpu) = (clock.Elapsed.TotalSeconds, ProcessCpuSeconds() - cpu0, server.CpuSeconds - server0);
                    }
                    else
                    {
                        var encoder = FlowEncoder.Udp(new FlowEncoderOptions(), collector);
                        var table = Filled(encoder, Flows);
                        double cpu0 = ProcessCpuSeconds();
                        var clock = Stopwatch.StartNew();
                        table.ExpireAll();
                        encoder.Flush();
                        (wall, cpu) = (clock.Elapsed.TotalSeconds, ProcessCpuSeconds() - cpu0);
                        Assert(encoder.RecordsSent + encoder.RecordsDropped == Flows);
                    }
                });
                thread.Start();
                thread.Join();
                runs[exporter].Add((Flows / wall, cpu * 1e9 / Flows, serverCpu * 1e9 / Flows));
            }
        foreach ((string exporter, var results) in runs)
            report.Row(new Dictionary<string, object>
            {
                ["scenario"] = "flows",
                ["workload"] = "export",
                ["exporter"] = exporter,
                ["flows"] = Flows,
                ["flows_per_s"] = Math.Round(Report.Median(results.Select(r => r.Rate))),
                ["flows_per_s_min"] = Math.Round(results.Min(r => r.Rate)),
                ["flows_per_s_max"] = Math.Round(results.Max(r => r.Rate)),
                ["cpu_ns_per_flow"] = Math.Round(Report.Median(results.Select(r => r.CpuNs)), 1),
                ["server_cpu_ns_per_flow"] = Math.Round(Report.Median(results.Select(r => r.ServerNs)), 1),
            });
    }

    // A table holding `flows` flows of one packet each (both directions' counters), nothing ended yet.
    private static FlowTable<T> Filled<T>(T export, int flows) where T : IFlowExport
    {
        var table = new FlowTable<T>(1 << 20, export);
        for (int f = 0; f < flows; f++)
        {
            byte[] frame = Udp(f, 64 + f % 136, reply: false);
            table.Add(frame, frame.Length, 1_700_000_000_000_000_000 + f * 1000L);
        }
        Assert(table.Count == flows);
        return table;
    }

    private static double ProcessCpuSeconds() => Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;

    // flows × packetsPerFlow UDP packets, 64 to 200 bytes, the flows' packets interleaved as on a busy link.
    private static long Write(string pcap, int flows, int packetsPerFlow)
    {
        using var writer = new CaptureWriter(pcap);
        long t = 1_700_000_000_000_000_000, written = 0;
        for (int round = 0; round < packetsPerFlow; round++)
            for (int f = 0; f < flows; f++, t += 1000)
            {
                writer.Write(Udp(f, 64 + (f * 7 + round) % 136, reply: round % 2 == 1), t);
                written++;
            }
        return written;
    }

    // Flow f's packet of that length (14 + 20 + 8 bytes of headers): 10.0.x.x port 1024+ to 192.168.0.1 port 53, or back.
    private static byte[] Udp(int flow, int length, bool reply)
    {
        uint a = 0x0A000000 | (uint)flow, b = 0xC0A80001;
        ushort port = (ushort)(1024 + flow % 60_000);
        int payload = length - 42;
        return Frames.Ethernet(0x0800).Ipv4(reply ? b : a, reply ? a : b, 17, 8 + payload)
            .Udp(reply ? (ushort)53 : port, reply ? port : (ushort)53, payload).Add(new byte[payload]).ToArray();
    }

    private enum Reading
    {
        InPlace,    // the file's records read in place (CaptureFile.ReadBurst), as FlowExport reads a capture file
        ReadOnly,   // the same, not counted into flows: the share of reading the file
        ViaPool,    // through the pcap device, each record copied into a pool buffer, as a live device's packets come
    }

    // Our CPU seconds: reading the file, the table and the IPFIX encoder on one pinned thread (export packets go nowhere).
    private static double Ours(string pcap, int core, Reading path)
    {
        double seconds = 0;
        var thread = new Thread(() =>
        {
            CpuAffinity.PinCurrentThread(core);
            var table = new FlowTable<FlowEncoder>(1 << 20, new FlowEncoder(new FlowEncoderOptions(), _ => true));
            if (path == Reading.ViaPool)
            {
                using ZcCluster cluster = ZcCluster.Create(0x5F800000 + (uint)Environment.ProcessId % 0x100000, new ClusterOptions { BufferCount = 1024, Warn = _ => { } });
                BufferPool pool = cluster.CreatePool(1024);
                var burst = new PacketHandle[32];
                double start = CaptureScenario.ThreadCpuSeconds();
                using IPacketSource source = Device.OpenSource("pcap:" + pcap, pool, 0);
                long n = 0;
                for (int got; (got = source.ReceiveBurst(burst)) > 0;)
                {
                    table.AddBurst(burst.AsSpan(0, got));
                    pool.ReleaseBurst(burst.AsSpan(0, got));
                    if ((++n & 1023) == 0) table.Expire();
                }
                table.ExpireAll();
                table.Export.Flush();
                seconds = CaptureScenario.ThreadCpuSeconds() - start;
            }
            else
            {
                double start = CaptureScenario.ThreadCpuSeconds();
                using CaptureFile file = CaptureFile.Open(pcap);
                var frames = new CapturedFrame[32];
                long n = 0, bytes = 0;
                for (int got; (got = file.ReadBurst(frames)) > 0;)
                {
                    if (path == Reading.ReadOnly) bytes += frames[got - 1].Length;
                    else table.AddBurst(frames.AsSpan(0, got));
                    if ((++n & 1023) == 0) table.Expire();
                }
                table.ExpireAll();
                table.Export.Flush();
                seconds = CaptureScenario.ThreadCpuSeconds() - start;
                Assert(path != Reading.ReadOnly || bytes > 0);
            }
        });
        thread.Start();
        thread.Join();
        return seconds;
    }

    // A program's CPU seconds, its own children's included: what this process's waited-for children have used, before and after.
    private static double Child(string program, params string[] args)
    {
        double before = ChildrenCpu();
        using Process p = Process.Start(new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return ChildrenCpu() - before;
    }

    private static double ChildrenCpu()
    {
        // /proc/self/stat, after the command's closing parenthesis: cutime and cstime are the 14th and 15th fields.
        string[] f = File.ReadAllText("/proc/self/stat").Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return (long.Parse(f[13]) + long.Parse(f[14])) / 100.0;
    }

    private struct Nothing : IFlowExport
    {
        public readonly void Export(in FlowRecord flow)
        {
        }
    }

    // A table of a million flows, and a million concurrent flows in it: the managed memory it takes.
    private static void Memory(Report report)
    {
        const int Flows = 1 << 20;
        using ZcCluster cluster = ZcCluster.Create(0x5F900000 + (uint)Environment.ProcessId % 0x100000, new ClusterOptions { BufferCount = 64, Warn = _ => { } });
        BufferPool pool = cluster.CreatePool(64);
        Assert(pool.TryGet(out PacketHandle p));
        GC.Collect();
        long before = GC.GetTotalMemory(forceFullCollection: true);
        var table = new FlowTable<Nothing>(Flows, default) { IdleTimeoutNs = long.MaxValue / 4 };
        for (int f = 0; f < Flows; f++)
        {
            Udp(f, 64, reply: false).CopyTo(p.Buffer);
            p.SetReceived(64, 64, 1_700_000_000_000_000_000 + f, 0);
            table.Add(p);
        }
        long after = GC.GetTotalMemory(forceFullCollection: true);
        Assert(table.Count == Flows && table.Evicted == 0);
        report.Row(new Dictionary<string, object>
        {
            ["scenario"] = "flows",
            ["workload"] = "memory",
            ["concurrent_flows"] = table.Count,
            ["table_mb"] = Math.Round((after - before) / 1e6, 1),
            ["bytes_per_flow"] = Math.Round((double)(after - before) / Flows, 1),
        });
        GC.KeepAlive(table);
        pool.Release(p);
    }

    private static void Assert(bool condition)
    {
        if (!condition) throw new InvalidOperationException("the flows scenario's own check failed");
    }
}
