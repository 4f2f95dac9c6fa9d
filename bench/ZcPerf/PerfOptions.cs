namespace ZcFlow.Perf;

/// <summary>The runner's flags: <c>--json</c> prints one JSON object a row; <c>--runs N</c> keeps the best of N runs.</summary>
internal sealed record PerfOptions(bool Json, int Runs)
{
    public static PerfOptions Parse(string[] args)
    {
        int runs = 3;
        int at = Array.IndexOf(args, "--runs");
        if (at >= 0 && (at + 1 >= args.Length || !int.TryParse(args[at + 1], out runs) || runs < 1))
            throw new ArgumentException("--runs takes a whole number of at least 1");
        return new PerfOptions(args.Contains("--json"), runs);
    }
}
