using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using ZcFlow.Graphs;
using ZcFlow.Tests;
using ZcFlow.Workers;

namespace ZcFlow.Perf;

/// <summary>
/// The C library's consumer and a libpcap program against ZCount, on the same queue in the same run: a balancer in this
/// process (<c>gen:</c> 64-byte frames, one queue, pinned to the first core, dropping what the queue has no room for) and, in
/// turn, ZCount (.NET), <c>samples/c/zcount</c> (C over libzcflow.so, built here with NativeAOT and gcc) and <c>c/pcap_count.c</c>
/// (libpcap's API only, pcap_dispatch, with libzcflow-pcap.so preloaded) attached to the queue from the other core for a few
/// seconds each, interleaved run by run: both busy-polling (-a: the receive path alone), then both sleeping
/// on an empty queue (their default). They count packets and bytes and read nothing else; the rate of a consumer is the
/// median of the per-second rates it prints, the first second left out. Then tcpdump writing to /dev/null, through the drop-in
/// and, as before it, behind a pipe (<c>Aggregator -i zc:c@0 -o - | tcpdump -r - -w /dev/null</c>), both on the consumer core,
/// interleaved: the CPU each takes per packet it reads (both processes of the pipe), from /proc.
/// </summary>
internal static partial class ConsumersScenario
{
    private const int Seconds = 5;

    public static void Run(PerfOptions options)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"zcflow-perf-clib-{Environment.ProcessId}");
        try
        {
            string zcount = Tools.BuildCLibrary(dir);
            string pcapCount = Path.Combine(dir, "pcap_count");
            var gcc = Tools.Run("gcc", "-O2", "-o", pcapCount, Path.Combine(Tools.Repository!, "bench", "ZcPerf", "c", "pcap_count.c"), "-lpcap");
            if (gcc.Code != 0) throw new InvalidOperationException($"gcc pcap_count.c failed:\n{gcc.Error}");
            var preload = new Dictionary<string, string> { ["LD_PRELOAD"] = Path.Combine(dir, "libzcflow-pcap.so") };
            int[] cores = CpuAffinity.AllowedCores();
            int consumerCore = cores[^1];
            uint cluster = 0x5FA00000 + (uint)Environment.ProcessId % 0x100000;
            using Graph graph = GraphBuilder.Cluster(cluster).Options(new ClusterOptions { Warn = _ => { } })
                .Input("gen:64?flows=1024").Applications(1).Balance(Distribution.HashMode.RoundRobin, cores[0]);
            string zcountDll = Path.Combine(AppContext.BaseDirectory, "ZCount.dll");
            var report = new Report(options);
            TcpdumpRows(options, report, graph, cluster, consumerCore, Path.Combine(dir, "libzcflow-pcap.so"));
            string core = consumerCore.ToString(CultureInfo.InvariantCulture);
            foreach (string mode in new[] { "active", "passive" })
            {
                string[] wait = mode == "active" ? ["-a"] : [];
                var consumers = new (string Name, Func<List<double>> Measure)[]
                {
                    ($"zcount_dotnet_{mode}", () => PerSecond("dotnet", [zcountDll, "-c", cluster.ToString(CultureInfo.InvariantCulture), "-i", "0", "-g", core, .. wait])),
                    ($"zcount_c_{mode}", () => PerSecond("taskset", ["-c", core, zcount, $"zc:{cluster}@0", "-v", .. wait])),
                    ($"pcap_dispatch_{mode}", () => PerSecond("taskset", ["-c", core, pcapCount, $"zc:{cluster}@0", .. wait], preload)),
                };
                // Each run measures every consumer, in turn, in an order that alternates; a ratio is taken within a run, where
                // the host's speed has had the least time to change, and reported as the median of the runs' ratios.
                var runs = consumers.ToDictionary(c => c.Name, _ => new List<double>());
                var seconds = consumers.ToDictionary(c => c.Name, _ => new List<double>());
                for (int run = 0; run < options.Runs; run++)
                    foreach ((string name, Func<List<double>> measure) in run % 2 == 0 ? consumers : consumers.Reverse())
                    {
                        List<double> r = measure();
                        seconds[name].AddRange(r);
                        runs[name].Add(Report.Median(r));
                    }
                foreach ((string name, _) in consumers)
                {
                    double[] vsDotnet = [.. runs[name].Zip(runs[$"zcount_dotnet_{mode}"], (x, y) => x / y)];
                    double[] vsC = [.. runs[name].Zip(runs[$"zcount_c_{mode}"], (x, y) => x / y)];
                    report.Row(new Dictionary<string, object>
                    {
                        ["scenario"] = "consumers",
                        ["name"] = name,
                        ["mpps_median"] = Math.Round(Report.Median(seconds[name]), 2),
                        ["mpps_min"] = Math.Round(seconds[name].Min(), 2),
                        ["mpps_max"] = Math.Round(seconds[name].Max(), 2),
                        ["seconds"] = seconds[name].Count,
                        ["ratio_vs_zcount_dotnet"] = Math.Round(Report.Median(vsDotnet), 3),
                        ["ratio_vs_zcount_c"] = Math.Round(Report.Median(vsC), 3),
                        ["ratio_vs_zcount_c_min"] = Math.Round(vsC.Min(), 3),
                        ["ratio_vs_zcount_c_max"] = Math.Round(vsC.Max(), 3),
                    });
                }
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    // tcpdump -w /dev/null through the drop-in against the pipe it replaces, in CPU per packet read.
    private static void TcpdumpRows(PerfOptions options, Report report, Graph graph, uint cluster, int core, string dropIn)
    {
        string aggregator = Path.Combine(AppContext.BaseDirectory, "Aggregator.dll"), c = core.ToString(CultureInfo.InvariantCulture);
        var commands = new Dictionary<string, string>
        {
            ["tcpdump_dropin"] = $"LD_PRELOAD={dropIn} exec taskset -c {c} tcpdump -i zc:{cluster}@0 -w /dev/null",
            ["aggregator_pipe_tcpdump"] = $"taskset -c {c} dotnet {aggregator} -i zc:{cluster}@0 -o - | taskset -c {c} tcpdump -r - -w /dev/null",
        };
        var perPacket = commands.Keys.ToDictionary(k => k, _ => new List<double>());
        for (int run = 0; run < options.Runs; run++)
            foreach ((string name, string command) in commands)
                perPacket[name].Add(CpuPerPacket(command, graph));
        double pipe = Report.Median(perPacket["aggregator_pipe_tcpdump"]);
        foreach ((string name, List<double> ns) in perPacket)
            report.Row(new Dictionary<string, object>
            {
                ["scenario"] = "consumers",
                ["name"] = name,
                ["cpu_ns_per_packet_median"] = Math.Round(Report.Median(ns), 1),
                ["cpu_ns_per_packet_min"] = Math.Round(ns.Min(), 1),
                ["cpu_ns_per_packet_max"] = Math.Round(ns.Max(), 1),
                ["ratio_vs_pipe"] = Math.Round(Report.Median(ns) / pipe, 3),
            });
    }

    // Runs a shell command's processes for Seconds after a second's start, and returns the CPU they took per packet read from the queue.
    private static double CpuPerPacket(string command, Graph graph)
    {
        using Process shell = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", command]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        shell.BeginOutputReadLine();
        shell.BeginErrorReadLine();
        Thread.Sleep(1500);
        int[] pids = [shell.Id, .. Children(shell.Id)];
        double cpu0 = pids.Sum(CpuSeconds);
        ulong received0 = graph.Queues[0].Stats.Received;
        Thread.Sleep(TimeSpan.FromSeconds(Seconds));
        double cpu = pids.Sum(CpuSeconds) - cpu0;
        ulong received = graph.Queues[0].Stats.Received - received0;
        foreach (int pid in pids) Native.Libc.Kill(pid, 15);
        shell.WaitForExit();
        Thread.Sleep(500);   // the queue's consumer detached, for the next
        if (received == 0) throw new InvalidOperationException($"'{command}' read nothing");
        return cpu / received * 1e9;
    }

    private static int[] Children(int pid)
    {
        string path = $"/proc/{pid}/task/{pid}/children";
        return File.Exists(path) ? [.. File.ReadAllText(path).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse)] : [];
    }

    // utime + stime of a process, from /proc/<pid>/stat (the fields after the command's closing parenthesis), in seconds.
    private static double CpuSeconds(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            string[] f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture)) / 100.0;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    // Runs a consumer for Seconds + 1 seconds and returns the rates it printed each second after its first.
    private static List<double> PerSecond(string program, string[] args, Dictionary<string, string>? environment = null)
    {
        var lines = new List<string>();
        var info = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach ((string key, string value) in environment ?? []) info.Environment[key] = value;
        using Process p = Process.Start(info)!;
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (lines) lines.Add(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        Thread.Sleep(TimeSpan.FromSeconds(Seconds + 1.5));
        Native.Libc.Kill(p.Id, 15);
        p.WaitForExit();
        lock (lines)
        {
            var rates = lines.Where(l => !l.StartsWith("total", StringComparison.Ordinal)).Select(l => Rate().Match(l)).Where(m => m.Success)
                .Select(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
            if (rates.Count < 2) throw new InvalidOperationException($"{program} {string.Join(' ', args)} printed no rates: {string.Join(" | ", lines)}");
            return rates.Skip(1).ToList();
        }
    }

    [GeneratedRegex(@"([0-9]+\.[0-9]+) Mpps")]
    private static partial Regex Rate();
}
