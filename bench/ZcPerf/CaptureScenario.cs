using System.Diagnostics;
using System.Text.RegularExpressions;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Native;
using ZcFlow.Tests;
using ZcFlow.Workers;

namespace ZcFlow.Perf;

/// <summary>
/// Capture on a real link: trafgen offers 64-byte frames as fast as it can into one end of a
/// veth pair (in a network namespace of its own), pinned to one core; on the other end, on the
/// other core, our AF_PACKET device, our AF_XDP device, and tcpdump writing to /dev/null each
/// capture the same number of offered packets. Reported: packets received, dropped, and CPU time
/// (user + system) per received packet of the capturing side: the capturing thread for ours
/// (which sleeps in poll when the ring is empty, as tcpdump does, and for a millisecond after a
/// partial burst so that packets are taken in batches), the tcpdump process for tcpdump. Ours
/// run after a warm-up of a tenth as many packets, so the figure is of compiled code. AF_XDP runs
/// its program in the generic path: on a veth, the driver path loses packets in the veth itself
/// when the sender outruns it, before any socket sees them.
/// </summary>
internal static partial class CaptureScenario
{
    private const long Offered = 2_000_000;

    public static void Run(PerfOptions options)
    {
        int[] cores = CpuAffinity.AllowedCores();
        int sender = cores[0], capturer = cores[^1];
        var report = new Report(options);
        string config = Path.Combine(Path.GetTempPath(), $"zcflow-trafgen-{Environment.ProcessId}.cfg");
        // broadcast Ethernet frame, 64 bytes with the CRC the veth does not carry: 60 on the wire here
        File.WriteAllText(config, "{ fill(0xff, 6), 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, c16(0x0800), fill(0x00, 46) }\n");
        try
        {
            var results = new List<(string Name, long Received, long Dropped, double CpuSeconds)>();
            foreach (string device in new[] { "tcpdump", $"af_packet:{Veth.B}", $"xdp:{Veth.B}@0?mode=skb&ring=8192" })
            {
                var best = Enumerable.Range(0, options.Runs).Select(_ => Measure(device, config, sender, capturer))
                    .OrderByDescending(r => r.Received).ThenBy(r => r.CpuSeconds / Math.Max(1, r.Received)).First();
                results.Add((device, best.Received, best.Dropped, best.CpuSeconds));
            }
            double tcpdumpCost = results[0].CpuSeconds / Math.Max(1, results[0].Received);
            foreach ((string name, long received, long dropped, double cpu) in results)
            {
                double cost = cpu / Math.Max(1, received);
                report.Row(new Dictionary<string, object>
                {
                    ["scenario"] = "capture",
                    ["name"] = name.Split(':')[0],
                    ["offered"] = Offered,
                    ["received"] = received,
                    ["dropped"] = dropped,
                    ["cpu_ns_per_packet"] = Math.Round(cost * 1e9, 1),
                    ["cpu_ratio_vs_tcpdump"] = Math.Round(cost / tcpdumpCost, 3),
                    ["received_ratio_vs_tcpdump"] = Math.Round((double)received / Math.Max(1, results[0].Received), 3),
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

    private static (long Received, long Dropped, double CpuSeconds) Measure(string device, string config, int sender, int capturer)
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
            Func<int, bool> wait = source switch
            {
                AfPacketDevice a => a.WaitReadable,
                XdpDevice x => x.WaitReadable,
                _ => throw new InvalidOperationException(device),
            };
            var burst = new PacketHandle[64];
            long Capture(long offered)
            {
                long received = 0;
                using Process trafgen = Trafgen(veth, config, sender, offered);
                var quiet = Stopwatch.StartNew();
                while (!trafgen.HasExited || quiet.ElapsedMilliseconds < 300)
                {
                    int n = source.ReceiveBurst(burst);
                    if (n == 0)
                    {
                        wait(10);
                        continue;
                    }
                    quiet.Restart();
                    received += n;
                    pool.ReleaseBurst(burst.AsSpan(0, n));
                    if (n < burst.Length) Thread.Sleep(1);   // the ring is drained: let packets gather rather than take them one by one
                }
                return received;
            }
            Capture(Offered / 10);   // warm-up: the capture loop compiled at its final tier before measuring
            double start = ThreadCpuSeconds();
            long received = Capture(Offered);
            double cpu = ThreadCpuSeconds() - start;
            return (received, Offered - received, cpu);
        });
    }

    private static (long, long, double) Tcpdump(Veth veth, string config, int sender, int capturer)
    {
        using Process tcpdump = veth.Start("taskset", "-c", $"{capturer}", "tcpdump", "-i", Veth.B, "-w", "/dev/null", "-s", "0", "-n", "-B", "16384");
        Task<string> stderr = tcpdump.StandardError.ReadToEndAsync();
        Thread.Sleep(1000);   // tcpdump has bound its socket by then
        double start = ProcessCpuSeconds(tcpdump.Id);
        using (Process trafgen = Trafgen(veth, config, sender, Offered)) trafgen.WaitForExit();
        Thread.Sleep(300);
        double cpu = ProcessCpuSeconds(tcpdump.Id) - start;
        Libc.Kill(tcpdump.Id, 2);
        tcpdump.WaitForExit();
        string said = stderr.Result;
        long captured = Number(Captured().Match(said)), dropped = Number(DroppedByKernel().Match(said));
        return (captured, Offered - captured, cpu);
    }

    private static Process Trafgen(Veth veth, string config, int core, long count)
        => veth.Start("taskset", "-c", $"{core}", "trafgen", "-o", Veth.A, "-i", config, "-n", $"{count}", "-q");

    private static long Number(Match m) => m.Success ? long.Parse(m.Groups[1].Value) : 0;

    private static double ThreadCpuSeconds()
    {
        Libc.ClockGetTime(Libc.CLOCK_THREAD_CPUTIME_ID, out Timespec t);
        return t.Seconds + t.Nanoseconds / 1e9;
    }

    // utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s).
    private static double ProcessCpuSeconds(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0;
    }

    [GeneratedRegex(@"(\d+) packets captured")]
    private static partial Regex Captured();

    [GeneratedRegex(@"(\d+) packets dropped by kernel")]
    private static partial Regex DroppedByKernel();
}
