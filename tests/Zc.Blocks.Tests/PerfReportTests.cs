using ZcFlow.Perf;

namespace ZcFlow.Tests;

public class PerfReportTests
{
    [Fact]
    public void JsonRows_WithAFigureThatCouldNotBeMeasured_AreWritten_WithNullForIt()
    {
        var written = new StringWriter();
        var report = new Report(new PerfOptions(Json: true, Runs: 1), written);
        report.Row(new Dictionary<string, object> { ["scenario"] = "capture", ["ratio"] = double.PositiveInfinity, ["nan"] = double.NaN, ["mpps"] = 1.5 });
        report.Row(new Dictionary<string, object> { ["scenario"] = "next", ["ratio"] = 0.5 });
        string[] lines = written.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["{\"scenario\":\"capture\",\"ratio\":null,\"nan\":null,\"mpps\":1.5}", "{\"scenario\":\"next\",\"ratio\":0.5}"], lines);
    }
}
