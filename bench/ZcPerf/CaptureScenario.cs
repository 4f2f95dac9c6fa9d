using System.Diagnostics;
using System.Text.RegularExpressions;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Native;
using ZcFlow.Tests;
using ZcFlow.Workers;

namespace ZcFlow.Perf;

/// <summary>
/// Capture on a real link: trafgen (one process, pinned to one core) offers 64-byte frames as
/// fast as it can into one end of a veth pair in a network namespace of its own; on the other end,
/// on the other core, tcpdump writing to /dev/null, our AF_PACKET device and our AF_XDP device each
/// capture the same number of offered packets, ours once counting only and once also writing every
/// packet as pcap to /dev/null through <see cref="CaptureWriter"/>, as tcpdump does (the like-for-like
/// rows; an AF_PACKET device hands those packets to the writer where they lie in its ring, as a capture of this process
/// does, and copies into pool buffers in the counting rows). Reported: packets received, dropped, the offered rate, and two CPU costs per received packet:
/// the capturing side's own (the capturing thread for ours, the tcpdump process, from the scheduler's
/// count), and everything the capture costs the machine: the busy time of every core (user, system,
/// interrupts and softirq, from /proc/stat) beyond that of the same offer with nobody capturing,
/// measured in the same run. Each row is the median of the runs, with the spread.
/// Our capture loop drains the device, then waits in <c>WaitReadable</c> as tcpdump waits in
/// poll; each device runs twice, letting packets wait for the reader up to 1 ms and up to 10 ms
/// (<c>latency=</c>; tcpdump lets them wait up to 1000 ms, its default timeout). Ours run after a
/// warm-up of a tenth as many packets, so the figure is of compiled code. AF_XDP runs its program
/// in the generic path: on a veth, the driver path loses packets in the veth itself when the sender
/// outruns it, before any socket sees them. The last row is two members of one fanout group (round-robin), each read on
/// its own core, its CPU the two readers' together, against the one device of the row <c>latency=10</c>.
/// </summary>
internal static partial class CaptureScenario
{
    private const long Offered = 2_000_000;

    // MachineSeconds: every core's busy time over a window of WindowSeconds. For the baseline (nobody capturing), the
    // window is the offer alone, and IdleRate the machine's busy time per second once the offer is over.
    private sealed record Result(string Device, long Received, double CpuSeconds, double OfferedSeconds, double MachineSeconds, double WindowSeconds, double IdleRate = 0);

    public static void Run(PerfOptions options)
    {
        // trafgen -P 1 pins its one sending process to CPU 0 itself, whatever taskset said: capture elsewhere
        int[] cores = CpuAffinity.AllowedCores();
        int sender = 0, capturer = cores.LastOrDefault(c => c != 0, -1);
        if (capturer < 0)
        {
            Console.Error.WriteLine("capture: needs a core other than CPU 0 to capture on, where trafgen does not send from");
            return;
        }
        var report = new Report(options);
        string config = Path.Combine(Path.GetTempPath(), $"zcflow-trafgen-{Environment.ProcessId}.cfg");
        // broadcast Ethernet frame, 64 bytes with the CRC the veth does not carry: 60 on the wire here
        File.WriteAllText(config, "{ fill(0xff, 6), 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, c16(0x0800), fill(0x00, 46) }\n");
        string[] devices =
        [
            "nobody", "tcpdump",
            $"af_packet:{Veth.B}?latency=1", $"af_packet:{Veth.B}?latency=10",
            $"xdp:{Veth.B}@0?mode=skb&ring=8192&latency=1", $"xdp:{Veth.B}@0?mode=skb&ring=8192&latency=10",
            $"af_packet:{Veth.B}?latency=10 +pcap", $"xdp:{Veth.B}@0?mode=skb&ring=8192&latency=10 +pcap",
            $"af_packet:{Veth.B}?latency=10&fanout=9&fanout_mode=lb x2",
        ];
        try
        {
            // Interleaved: one of each per run, so the host's swings touch every row alike.
            var runs = devices.ToDictionary(d => d, _ => new List<Result>());
            for (int run = 0; run < options.Runs; run++)
                foreach (string device in devices) runs[device].Add(Measure(device, config, sender, capturer));
            // What the machine does anyway: the offer with nobody capturing, and the idle rate for the rest of a window.
            double offer = Report.Median(runs["nobody"].Select(r => r.MachineSeconds)), offerWindow = Report.Median(runs["nobody"].Select(r => r.WindowSeconds));
            double idleRate = Report.Median(runs["nobody"].Select(r => r.IdleRate));
            double Baseline(Result r) => offer + idleRate * Math.Max(0, r.WindowSeconds - offerWindow);
            double Own(Result r) => r.CpuSeconds / Math.Max(1, r.Received) * 1e9;
            double All(Result r) => Math.Max(0, r.MachineSeconds - Baseline(r)) / Math.Max(1, r.Received) * 1e9;
            double tcpdumpOwn = Report.Median(runs["tcpdump"].Select(Own)), tcpdumpAll = Report.Median(runs["tcpdump"].Select(All));
            foreach (string device in devices.Skip(1))
            {
                List<Result> r = runs[device];
                report.Row(new Dictionary<string, object>
                {
                    ["scenario"] = "capture",
                    ["device"] = device,
                    ["offered"] = Offered,
                    ["offered_mpps"] = Math.Round(Report.Median(r.Select(x => Offered / x.OfferedSeconds / 1e6)), 3),
                    ["received"] = (long)Report.Median(r.Select(x => (double)x.Received)),
                    ["received_min"] = r.Min(x => x.Received),
                    ["cpu_ns_per_packet"] = Math.Round(Report.Median(r.Select(Own)), 1),
                    ["cpu_ns_per_packet_min_max"] = $"{r.Min(Own):F1}-{r.Max(Own):F1}",
                    ["cpu_ratio_vs_tcpdump"] = Math.Round(Report.Median(r.Select(Own)) / tcpdumpOwn, 3),
                    ["machine_ns_per_packet"] = Math.Round(Report.Median(r.Select(All)), 1),
                    ["machine_ns_per_packet_min_max"] = $"{r.Min(All):F1}-{r.Max(All):F1}",
                    ["machine_ratio_vs_tcpdump"] = Math.Round(Report.Median(r.Select(All)) / tcpdumpAll, 3),
                    ["machine_offer_baseline_ms"] = Math.Round(offer * 1e3, 0),
                    ["machine_idle_busy_per_s"] = Math.Round(idleRate, 3),
                    ["runs"] = r.Count,
                });
            }
            RulesRows(options, report, sender, capturer);
        }
        catch (PlatformNotSupportedException e)
        {
            Console.Error.WriteLine($"capture: cannot run here: {e.Message}");
        }
        finally
        {
            File.Delete(config);
        }
    }

    // Rules on AF_XDP: the same offer as UDP with its destination port going round 0 to 9; one rule that drops ports 0-8
    // (90%) run by the device's XDP program in the kernel, and the same rule in user space (every packet copied up first);
    // 10,000 precise rules that none matches, and the program with no rule, in the kernel; and libxdp's own program; and the
    // drop rule on AF_PACKET, as the socket's filter and in user space. The costs are per packet offered: what a rule in the kernel saves is the copy, the wake-ups and the user-space work.
    private static void RulesRows(PerfOptions options, Report report, int sender, int capturer)
    {
        string config = Path.Combine(Path.GetTempPath(), $"zcflow-trafgen-rules-{Environment.ProcessId}.cfg");
        File.WriteAllText(config, "{ fill(0xff, 6), 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, c16(0x0800), " +
            "0x45, 0x00, c16(46), c16(0), c16(0), 64, 17, c16(0), 10, 0, 0, 1, 10, 0, 0, 2, c16(1000), 0x00, dinc(0, 9), c16(26), c16(0), fill(0x00, 18) }\n");
        string xdp = $"xdp:{Veth.B}@0?mode=skb&ring=8192&latency=10", afPacket = $"af_packet:{Veth.B}?latency=10";
        Filters.Rules Drop90()
        {
            var rules = new Filters.Rules();
            rules.Add(Filters.Rule.Parse("drop proto udp dport 0-8"));
            return rules;
        }
        Filters.Rules Precise()
        {
            var rules = new Filters.Rules();
            for (int k = 0; k < 10_000; k++) rules.Add(Filters.Rule.Parse($"drop proto udp src 10.0.0.1 sport 1000 dst 10.0.0.2 dport {20000 + k}"));
            return rules;
        }
        var rows = new (string Name, Func<BufferPool, IPacketSource>? Open)[]
        {
            ("nobody (rules offer)", null),
            ("rules: libxdp's program, no rule", pool => Device.OpenSource(xdp, pool, 0)),
            ("rules: drop 90% in the kernel", pool => XdpDevice.Open(xdp, pool, 0, Drop90())),
            ("rules: drop 90% in user space", pool => new RuledSource(XdpDevice.Open(xdp, pool, 0), Drop90(), pool)),
            ("rules: none, our program", pool => XdpDevice.Open(xdp, pool, 0, new Filters.Rules())),
            ("rules: 10,000 precise, none matching", pool => XdpDevice.Open(xdp, pool, 0, Precise())),
            ("rules: af_packet, drop 90% in the socket's filter", pool => Device.OpenSource(afPacket, pool, 0, Drop90())),
            ("rules: af_packet, drop 90% in user space", pool => new RuledSource(Device.OpenSource(afPacket, pool, 0), Drop90(), pool)),
        };
        try
        {
            var runs = rows.ToDictionary(r => r.Name, _ => new List<Result>());
            for (int run = 0; run < options.Runs; run++)
                foreach ((string name, Func<BufferPool, IPacketSource>? open) in rows) runs[name].Add(Measure(name, config, sender, capturer, open));
            double offer = Report.Median(runs[rows[0].Name].Select(r => r.MachineSeconds)), offerWindow = Report.Median(runs[rows[0].Name].Select(r => r.WindowSeconds));
            double idleRate = Report.Median(runs[rows[0].Name].Select(r => r.IdleRate));
            double Own(Result r) => r.CpuSeconds / Offered * 1e9;
            double All(Result r) => Math.Max(0, r.MachineSeconds - offer - idleRate * Math.Max(0, r.WindowSeconds - offerWindow)) / Offered * 1e9;
            // Each against the same rule in user space on its own kind of device.
            List<Result> User(string row) => runs[row.Contains("af_packet", StringComparison.Ordinal) ? "rules: af_packet, drop 90% in user space" : "rules: drop 90% in user space"];
            double UserOwn(string row) => Report.Median(User(row).Select(Own));
            double UserAll(string row) => Report.Median(User(row).Select(All));
            double emptyOwn = Report.Median(runs["rules: none, our program"].Select(Own)), emptyAll = Report.Median(runs["rules: none, our program"].Select(All));
            foreach ((string name, _) in rows.Skip(1))
            {
                List<Result> r = runs[name];
                report.Row(new Dictionary<string, object>
                {
                    ["scenario"] = "capture",
                    ["device"] = name,
                    ["offered"] = Offered,
                    ["received"] = (long)Report.Median(r.Select(x => (double)x.Received)),
                    ["cpu_ns_per_offered"] = Math.Round(Report.Median(r.Select(Own)), 1),
                    ["cpu_ns_per_offered_min_max"] = $"{r.Min(Own):F1}-{r.Max(Own):F1}",
                    ["machine_ns_per_offered"] = Math.Round(Report.Median(r.Select(All)), 1),
                    ["machine_ns_per_offered_min_max"] = $"{r.Min(All):F1}-{r.Max(All):F1}",
                    ["cpu_ratio_vs_user_space_rule"] = Math.Round(Report.Median(r.Select(Own)) / UserOwn(name), 3),
                    ["machine_ratio_vs_user_space_rule"] = Math.Round(Report.Median(r.Select(All)) / UserAll(name), 3),
                    ["machine_ratio_vs_no_rule"] = Math.Round(Report.Median(r.Select(All)) / emptyAll, 3),
                    ["runs"] = r.Count,
                });
            }
        }
        finally
        {
            File.Delete(config);
        }
    }

    private static Result Measure(string device, string config, int sender, int capturer, Func<BufferPool, IPacketSource>? open = null)
    {
        using Veth veth = Veth.Create(mtu: 1500);
        if (device == "tcpdump") return Tcpdump(veth, config, sender, capturer);
        if (device.StartsWith("nobody", StringComparison.Ordinal)) return Nobody(veth, config, sender);
        if (device.EndsWith(" x2", StringComparison.Ordinal)) return Members(veth, device, config, sender, [sender, capturer]);
        bool write = device.EndsWith(" +pcap", StringComparison.Ordinal);
        string name = write ? device[..^" +pcap".Length] : device;
        using ZcCluster cluster = ZcCluster.Create((uint)(600_000 + Environment.ProcessId % 100_000), new ClusterOptions
        {
            BufferCount = 16384, BufferSize = XdpDevice.MinBufferSize, Warn = _ => { },
        });
        BufferPool pool = cluster.CreatePool(16384);
        return veth.Run(() =>
        {
            CpuAffinity.PinCurrentThread(capturer);
            using IPacketSource source = open?.Invoke(pool) ?? Device.OpenSource(name, pool, 0);
            // Like tcpdump -w /dev/null: every packet written as a pcap record, through a file stream.
            using CaptureWriter? writer = write ? new CaptureWriter(new FileStream("/dev/null", FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1 << 16), pcapng: false) : null;
            var burst = new PacketHandle[64];
            // Written to a file, the packets stay in this process: read in place where the device can (AF_PACKET's ring).
            IFrameReader? inPlace = write ? Device.InPlace(source) : null;
            var frames = new CapturedFrame[64];
            (long, double) Capture(long offered)
            {
                long received = 0;
                var clock = Stopwatch.StartNew();
                using Process trafgen = Trafgen(veth, config, sender, offered);
                var quiet = Stopwatch.StartNew();
                while (!trafgen.HasExited || quiet.ElapsedMilliseconds < 300)
                {
                    int n = inPlace?.ReadBurst(frames) ?? source.ReceiveBurst(burst);
                    if (n == 0)
                    {
                        source.WaitReadable(20);
                        continue;
                    }
                    quiet.Restart();
                    received += n;
                    if (inPlace is not null)
                    {
                        writer!.WriteBurst(frames.AsSpan(0, n));
                        continue;
                    }
                    writer?.WriteBurst(burst.AsSpan(0, n));
                    pool.ReleaseBurst(burst.AsSpan(0, n));
                }
                return (received, clock.Elapsed.TotalSeconds - quiet.Elapsed.TotalSeconds);
            }
            Capture(Offered / 10);   // warm-up: the capture loop compiled at its final tier before measuring
            double start = ThreadCpuSeconds(), machine = MachineBusySeconds();
            var window = Stopwatch.StartNew();
            (long received, double seconds) = Capture(Offered);
            return new Result(device, received, ThreadCpuSeconds() - start, seconds, MachineBusySeconds() - machine, window.Elapsed.TotalSeconds);
        });
    }

    // Two members of one fanout group, each read on its own thread on its own core (one of them trafgen's): the packets
    // received by both, and the CPU of both threads.
    private static Result Members(Veth veth, string device, string config, int sender, int[] cores)
    {
        string name = device[..^" x2".Length];
        using ZcCluster cluster = ZcCluster.Create((uint)(600_000 + Environment.ProcessId % 100_000), new ClusterOptions { BufferCount = 16384, BufferSize = 2048, Warn = _ => { } });
        BufferPool[] pools = [cluster.CreatePool(8192), cluster.CreatePool(8192)];
        return veth.Run(() =>
        {
            IPacketSource[] members = [Device.OpenSource(name, pools[0], 0), Device.OpenSource(name, pools[1], 1)];
            try
            {
                (long Received, double Cpu, double Seconds) Capture(long offered)
                {
                    var done = new ManualResetEventSlim();
                    var results = new (long Received, double Cpu)[2];
                    Thread[] readers = [.. Enumerable.Range(0, 2).Select(m => new Thread(() =>
                    {
                        CpuAffinity.PinCurrentThread(cores[m]);
                        double start = ThreadCpuSeconds();
                        var burst = new PacketHandle[64];
                        long received = 0;
                        while (true)
                        {
                            int n = members[m].ReceiveBurst(burst);
                            if (n == 0)
                            {
                                if (done.IsSet) break;
                                members[m].WaitReadable(20);
                                continue;
                            }
                            received += n;
                            pools[m].ReleaseBurst(burst.AsSpan(0, n));
                        }
                        results[m] = (received, ThreadCpuSeconds() - start);
                    }))];
                    var clock = Stopwatch.StartNew();
                    foreach (Thread t in readers) t.Start();
                    using (Process trafgen = Trafgen(veth, config, sender, offered)) trafgen.WaitForExit();
                    double seconds = clock.Elapsed.TotalSeconds;
                    Thread.Sleep(300);   // what the rings still hold
                    done.Set();
                    foreach (Thread t in readers) t.Join();
                    return (results.Sum(r => r.Received), results.Sum(r => r.Cpu), seconds);
                }
                Capture(Offered / 10);
                double machine = MachineBusySeconds();
                var window = Stopwatch.StartNew();
                (long received, double cpu, double offeredSeconds) = Capture(Offered);
                return new Result(device, received, cpu, offeredSeconds, MachineBusySeconds() - machine, window.Elapsed.TotalSeconds);
            }
            finally
            {
                foreach (IPacketSource m in members) m.Dispose();
            }
        });
    }

    private static Result Tcpdump(Veth veth, string config, int sender, int capturer)
    {
        using Process tcpdump = veth.Start("taskset", "-c", $"{capturer}", "tcpdump", "-i", Veth.B, "-w", "/dev/null", "-s", "0", "-n", "-B", "16384");
        Task<string> stderr = tcpdump.StandardError.ReadToEndAsync();
        Thread.Sleep(1000);   // tcpdump has bound its socket by then
        double start = ProcessCpuSeconds(tcpdump.Id), machine = MachineBusySeconds();
        var window = Stopwatch.StartNew();
        var clock = Stopwatch.StartNew();
        using (Process trafgen = Trafgen(veth, config, sender, Offered)) trafgen.WaitForExit();
        double seconds = clock.Elapsed.TotalSeconds;
        Thread.Sleep(1300);   // tcpdump hands over a partly filled block after its 1 s timeout
        double cpu = ProcessCpuSeconds(tcpdump.Id) - start;
        double all = MachineBusySeconds() - machine, windowSeconds = window.Elapsed.TotalSeconds;
        Libc.Kill(tcpdump.Id, 2);
        tcpdump.WaitForExit();
        Match captured = Captured().Match(stderr.Result);
        return new Result("tcpdump", captured.Success ? long.Parse(captured.Groups[1].Value) : 0, cpu, seconds, all, windowSeconds);
    }

    // The baseline: the same offer with nobody capturing (the machine's busy time over it), then a second of nothing (its idle rate).
    private static Result Nobody(Veth veth, string config, int sender)
    {
        double machine = MachineBusySeconds();
        var clock = Stopwatch.StartNew();
        using (Process trafgen = Trafgen(veth, config, sender, Offered)) trafgen.WaitForExit();
        double seconds = clock.Elapsed.TotalSeconds, offer = MachineBusySeconds() - machine;
        machine = MachineBusySeconds();
        var idle = Stopwatch.StartNew();
        Thread.Sleep(1000);
        return new Result("nobody", 0, 0, seconds, offer, seconds, (MachineBusySeconds() - machine) / idle.Elapsed.TotalSeconds);
    }

    // Every core's busy time so far: user, nice, system, irq and softirq of /proc/stat's "cpu" line (in USER_HZ, 100 a second).
    private static double MachineBusySeconds()
    {
        string[] f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return new[] { 1, 2, 3, 6, 7 }.Sum(i => long.Parse(f[i])) / 100.0;
    }

    private static Process Trafgen(Veth veth, string config, int core, long count)
        => veth.Start("taskset", "-c", $"{core}", "trafgen", "-o", Veth.A, "-i", config, "-n", $"{count}", "-q", "-P", "1");

    internal static double ThreadCpuSeconds()
    {
        Libc.ClockGetTime(Libc.CLOCK_THREAD_CPUTIME_ID, out Timespec t);
        return t.Seconds + t.Nanoseconds / 1e9;
    }

    // CPU time of a single-threaded process from the scheduler, which the thread CPU clock reads too (schedstat is in ns).
    private static double ProcessCpuSeconds(int pid) => long.Parse(File.ReadAllText($"/proc/{pid}/schedstat").Split(' ')[0]) / 1e9;

    [GeneratedRegex(@"(\d+) packets captured")]
    private static partial Regex Captured();
}
