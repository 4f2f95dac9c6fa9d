using System.Globalization;
using System.Text.Json;

namespace ZcFlow.Perf;

/// <summary>Prints result rows: a JSON object a line with <c>--json</c>, an aligned table otherwise.</summary>
internal sealed class Report(PerfOptions options)
{
    public void Row(IReadOnlyDictionary<string, object> row)
    {
        if (options.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(row));
            return;
        }
        Console.WriteLine(string.Join("  ", row.Select(kv => $"{kv.Key}={Format(kv.Value)}")));
    }

    private static string Format(object v) => v switch
    {
        double d => d.ToString("0.###", CultureInfo.InvariantCulture),
        _ => Convert.ToString(v, CultureInfo.InvariantCulture) ?? "",
    };
}
