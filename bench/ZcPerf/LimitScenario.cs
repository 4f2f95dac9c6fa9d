namespace ZcFlow.Perf;

/// <summary>
/// How far the hardware lets a queue go on these two cores: one cache line bounced between them (the round trip every
/// hand-over between cores costs at least once) and a C ring with no checks at all, bursts of 32 (the most any ring of this
/// design can move). Medians of the runs, with the spread.
/// </summary>
internal static class LimitScenario
{
    private const long RoundTrips = 5_000_000, Items = 300_000_000;

    public static void Run(PerfOptions options)
    {
        using var peers = new Peers();
        var trips = new List<double>();
        var plain = new List<double>();
        for (int run = 0; run < options.Runs; run++)
        {
            trips.Add(peers.RoundTripNs(RoundTrips));
            plain.Add(peers.Mops("plain", Items, 32));
        }
        var report = new Report(options);
        report.Row(new Dictionary<string, object>
        {
            ["scenario"] = "limit",
            ["name"] = "cache_line_round_trip",
            ["ns"] = Math.Round(Report.Median(trips), 1),
            ["ns_min"] = Math.Round(trips.Min(), 1),
            ["ns_max"] = Math.Round(trips.Max(), 1),
            ["one_way_ns"] = Math.Round(Report.Median(trips) / 2, 1),
            ["round_trips"] = RoundTrips,
        });
        report.Row(new Dictionary<string, object>
        {
            ["scenario"] = "limit",
            ["name"] = "plain_ring_burst32",
            ["mops"] = Math.Round(Report.Median(plain), 2),
            ["mops_min"] = Math.Round(plain.Min(), 2),
            ["mops_max"] = Math.Round(plain.Max(), 2),
            ["items"] = Items,
        });
    }
}
