using System.Globalization;
using System.Text.Json;

namespace ZcFlow.Perf;

/// <summary>Prints result rows: a JSON object a line with <c>--json</c>, an aligned table otherwise.</summary>
internal sealed class Report(PerfOptions options, TextWriter? output = null)
{
    public void Row(IReadOnlyDictionary<string, object> row)
    {
        if (options.Json)
        {
            // A figure that could not be measured (a ratio to a baseline of zero) is null: JSON has no infinity, and one
            // such value must not cost the rows measured for a minute before it.
            (output ?? Console.Out).WriteLine(JsonSerializer.Serialize(row.ToDictionary(kv => kv.Key, kv => kv.Value is double d && !double.IsFinite(d) ? null : kv.Value)));
            return;
        }
        (output ?? Console.Out).WriteLine(string.Join("  ", row.Select(kv => $"{kv.Key}={Format(kv.Value)}")));
    }

    /// <summary>The median of the runs' values: what a row reports, beside its slowest and fastest run.</summary>
    public static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string Format(object v) => v switch
    {
        double d => d.ToString("0.###", CultureInfo.InvariantCulture),
        _ => Convert.ToString(v, CultureInfo.InvariantCulture) ?? "",
    };
}
