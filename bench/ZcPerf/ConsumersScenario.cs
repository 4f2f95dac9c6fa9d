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
/// median of the per-second rates it prints, the first second left out.
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
                .Input("gen:64?flows=1024").Applications(1).Balance(0, cores[0]);
            string zcountDll = Path.Combine(AppContext.BaseDirectory, "ZCount.dll");
            var report = new Report(options);
            foreach (string mode in new[] { "active", "passive" })
            {
                string[] wait = mode == "active" ? ["-a"] : [];
                var rates = new Dictionary<string, List<double>> { [$"zcount_dotnet_{mode}"] = [], [$"zcount_c_{mode}"] = [], [$"pcap_dispatch_{mode}"] = [] };
                for (int run = 0; run < options.Runs; run++)
                {
                    rates[$"zcount_dotnet_{mode}"].AddRange(PerSecond("dotnet", [zcountDll, "-c", cluster.ToString(CultureInfo.InvariantCulture), "-i", "0", "-g", consumerCore.ToString(CultureInfo.InvariantCulture), .. wait]));
                    rates[$"zcount_c_{mode}"].AddRange(PerSecond("taskset", ["-c", consumerCore.ToString(CultureInfo.InvariantCulture), zcount, $"zc:{cluster}@0", "-v", .. wait]));
                    rates[$"pcap_dispatch_{mode}"].AddRange(PerSecond("taskset", ["-c", consumerCore.ToString(CultureInfo.InvariantCulture), pcapCount, $"zc:{cluster}@0", .. wait], preload));
                }
                double baseline = Report.Median(rates[$"zcount_dotnet_{mode}"]), c = Report.Median(rates[$"zcount_c_{mode}"]);
                foreach ((string name, List<double> r) in rates)
                    report.Row(new Dictionary<string, object>
                    {
                        ["scenario"] = "consumers",
                        ["name"] = name,
                        ["mpps_median"] = Math.Round(Report.Median(r), 2),
                        ["mpps_min"] = Math.Round(r.Min(), 2),
                        ["mpps_max"] = Math.Round(r.Max(), 2),
                        ["seconds"] = r.Count,
                        ["ratio_vs_zcount_dotnet"] = Math.Round(Report.Median(r) / baseline, 3),
                        ["ratio_vs_zcount_c"] = Math.Round(Report.Median(r) / c, 3),
                    });
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
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
