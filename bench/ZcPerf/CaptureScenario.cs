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
/// capture the same number of offered packets. Reported: packets received, dropped, the offered
/// rate, and CPU time (user + system) per received packet of the capturing side: the capturing
/// thread for ours, the tcpdump process for tcpdump, both read from the scheduler's own count.
/// Our capture loop drains the device, then waits in <c>WaitReadable</c> as tcpdump waits in
/// poll; each device runs twice, letting packets wait for the reader up to 1 ms and up to 10 ms
/// (<c>latency=</c>; tcpdump lets them wait up to 1000 ms, its default timeout). Ours run after a
/// warm-up of a tenth as many packets, so the figure is of compiled code. AF_XDP runs its program
/// in the generic path: on a veth, the driver path loses packets in the veth itself when the sender
/// outruns it, before any socket sees them.
/// </summary>
internal static partial class CaptureScenario
{
    private const long Offered = 2_000_000;

    private sealed record Result(string Device, long Received, double CpuSeconds, double OfferedSeconds);

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
            "tcpdump",
            $"af_packet:{Veth.B}?latency=1", $"af_packet:{Veth.B}?latency=10",
            $"xdp:{Veth.B}@0?mode=skb&ring=8192&latency=1", $"xdp:{Veth.B}@0?mode=skb&ring=8192&latency=10",
        ];
        try
        {
            var results = devices.Select(device => Enumerable.Range(0, options.Runs).Select(_ => Measure(device, config, sender, capturer))
                .OrderByDescending(r => r.Received).ThenBy(r => r.CpuSeconds / Math.Max(1, r.Received)).First()).ToList();
            double tcpdumpCost = results[0].CpuSeconds / Math.Max(1, results[0].Received);
            foreach (Result r in results)
            {
                double cost = r.CpuSeconds / Math.Max(1, r.Received);
                report.Row(new Dictionary<string, object>
                {
                    ["scenario"] = "capture",
                    ["device"] = r.Device,
                    ["offered"] = Offered,
                    ["offered_mpps"] = Math.Round(Offered / r.OfferedSeconds / 1e6, 3),
                    ["received"] = r.Received,
                    ["dropped"] = Offered - r.Received,
                    ["cpu_ns_per_packet"] = Math.Round(cost * 1e9, 1),
                    ["cpu_ratio_vs_tcpdump"] = Math.Round(cost / tcpdumpCost, 3),
                    ["received_ratio_vs_tcpdump"] = Math.Round((double)r.Received / Math.Max(1, results[0].Received), 3),
                });
            }
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

    private static Result Measure(string device, string config, int sender, int capturer)
    {
        using Veth veth = Veth.Create(mtu: 1500);
        if (device == "tcpdump") return Tcpdump(veth, config, sender, capturer);
        using ZcCluster cluster = ZcCluster.Create((uint)(600_000 + Environment.ProcessId % 100_000), new ClusterOptions
        {
            BufferCount = 16384, BufferSize = XdpDevice.MinBufferSize, Warn = _ => { },
        });
        BufferPool pool = cluster.CreatePool(16384);
        return veth.Run(() =>
        {
            CpuAffinity.PinCurrentThread(capturer);
            using IPacketSource source = Device.OpenSource(device, pool, 0);
            var burst = new PacketHandle[64];
            (long, double) Capture(long offered)
            {
                long received = 0;
                var clock = Stopwatch.StartNew();
                using Process trafgen = Trafgen(veth, config, sender, offered);
                var quiet = Stopwatch.StartNew();
                while (!trafgen.HasExited || quiet.ElapsedMilliseconds < 300)
                {
                    int n = source.ReceiveBurst(burst);
                    if (n == 0)
                    {
                        source.WaitReadable(20);
                        continue;
                    }
                    quiet.Restart();
                    received += n;
                    pool.ReleaseBurst(burst.AsSpan(0, n));
                }
                return (received, clock.Elapsed.TotalSeconds - quiet.Elapsed.TotalSeconds);
            }
            Capture(Offered / 10);   // warm-up: the capture loop compiled at its final tier before measuring
            double start = ThreadCpuSeconds();
            (long received, double seconds) = Capture(Offered);
            return new Result(device, received, ThreadCpuSeconds() - start, seconds);
        });
    }

    private static Result Tcpdump(Veth veth, string config, int sender, int capturer)
    {
        using Process tcpdump = veth.Start("taskset", "-c", $"{capturer}", "tcpdump", "-i", Veth.B, "-w", "/dev/null", "-s", "0", "-n", "-B", "16384");
        Task<string> stderr = tcpdump.StandardError.ReadToEndAsync();
        Thread.Sleep(1000);   // tcpdump has bound its socket by then
        double start = ProcessCpuSeconds(tcpdump.Id);
        var clock = Stopwatch.StartNew();
        using (Process trafgen = Trafgen(veth, config, sender, Offered)) trafgen.WaitForExit();
        double seconds = clock.Elapsed.TotalSeconds;
        Thread.Sleep(1300);   // tcpdump hands over a partly filled block after its 1 s timeout
        double cpu = ProcessCpuSeconds(tcpdump.Id) - start;
        Libc.Kill(tcpdump.Id, 2);
        tcpdump.WaitForExit();
        Match captured = Captured().Match(stderr.Result);
        return new Result("tcpdump", captured.Success ? long.Parse(captured.Groups[1].Value) : 0, cpu, seconds);
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
