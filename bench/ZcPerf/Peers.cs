using System.Text.Json;
using ZcFlow.Tests;
using ZcFlow.Workers;

namespace ZcFlow.Perf;

/// <summary>
/// The C peers of <c>bench/peers/ring_peers.c</c> (DPDK's rte_ring, a ring with no checks, a cache line bounced between
/// cores), compiled once per run with gcc -O3 -march=native and run on the same two cores as our rows. DPDK's headers come
/// from Debian's dpdk-dev, installed here when missing and allowed (root, and not under CI); without them the rte_ring rows
/// say why they are missing.
/// </summary>
internal sealed class Peers : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"zcflow-peers-{Environment.ProcessId}");
    private readonly string _program;
    private readonly int[] _cores = CpuAffinity.AllowedCores();

    public Peers()
    {
        Directory.CreateDirectory(_dir);
        _program = Path.Combine(_dir, "ring_peers");
        string source = Path.Combine(Tools.Repository ?? throw new InvalidOperationException("ZcPerf runs its peers from a checkout"), "bench", "peers", "ring_peers.c");
        RteRingMissing = EnsureDpdk();
        static string[] Words(string text) => text.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        // DPDK's flags first, so that ours win (its -march=corei7 among them); its libraries after the source.
        var args = new List<string>();
        if (RteRingMissing is null) args.AddRange(["-DWITH_RTE_RING", .. Words(Tools.Run("pkg-config", "--cflags", "libdpdk").Output)]);
        args.AddRange(["-O3", "-march=native", "-o", _program, source, "-lpthread"]);
        if (RteRingMissing is null) args.AddRange(Words(Tools.Run("pkg-config", "--libs", "libdpdk").Output));
        var gcc = Tools.Run("gcc", [.. args]);
        if (gcc.Code != 0) throw new InvalidOperationException($"gcc ring_peers.c failed: {gcc.Error}");
    }

    /// <summary>Why there is no rte_ring peer; null when there is one.</summary>
    public string? RteRingMissing { get; }

    private static string? EnsureDpdk()
    {
        if (Tools.Run("pkg-config", "--exists", "libdpdk").Code == 0) return null;
        if (Environment.GetEnvironmentVariable("CI") == "true") return "dpdk-dev is not installed (the benchmark installs it, never CI)";
        if (Native.Libc.GetEuid() != 0) return "dpdk-dev is not installed, and installing it needs root: apt-get install dpdk-dev";
        Console.Error.WriteLine("zcperf: installing dpdk-dev for the rte_ring peer");
        var install = Tools.Run("apt-get", "install", "-y", "-q", "dpdk-dev");
        return install.Code == 0 && Tools.Run("pkg-config", "--exists", "libdpdk").Code == 0 ? null : $"apt-get install dpdk-dev failed: {install.Error.Trim()}";
    }

    /// <summary>Mops of <paramref name="peer"/> (rte_ring, plain) moving <paramref name="items"/> in bursts of <paramref name="burst"/>.</summary>
    public double Mops(string peer, long items, int burst) => Run(peer, items, burst).GetProperty("mops").GetDouble();

    /// <summary>The wall time of the same run, in seconds.</summary>
    public double Seconds(string peer, long items, int burst) => Run(peer, items, burst).GetProperty("seconds").GetDouble();

    /// <summary>Nanoseconds for one cache line to go to the other core and back.</summary>
    public double RoundTripNs(long roundTrips) => Run("pingpong", roundTrips, 0).GetProperty("ns_per_round_trip").GetDouble();

    /// <summary>One-way latency percentiles (p50_ns, p99_ns, p999_ns, max_ns) of <paramref name="peer"/> (rte_ring, plain), a value every <paramref name="gapNs"/>.</summary>
    public JsonElement Latency(string peer, long items, int gapNs) => Run($"latency:{peer}", items, gapNs);

    private JsonElement Run(string peer, long items, int burst)
    {
        var r = Tools.Run(_program, peer, items.ToString(), burst.ToString(), _cores[0].ToString(), _cores[^1].ToString());
        if (r.Code != 0) throw new InvalidOperationException($"ring_peers {peer} failed: {r.Error}");
        return JsonDocument.Parse(r.Output).RootElement.Clone();
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
