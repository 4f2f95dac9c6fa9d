namespace ZcFlow.Perf;

/// <summary>The first row of every scenario: what it ran on, so a figure is never quoted without its machine.</summary>
internal static class Machine
{
    public static Dictionary<string, object> Describe(string scenario) => new()
    {
        ["scenario"] = scenario,
        ["name"] = "machine",
        ["cpu"] = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown",
        ["cores"] = Environment.ProcessorCount,
        ["cores_allowed"] = string.Join(",", Workers.CpuAffinity.AllowedCores()),
        ["kernel"] = File.ReadAllText("/proc/sys/kernel/osrelease").Trim(),
        ["hugepages_free"] = Memory.HugePages.FreePages,
        ["runtime"] = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription,
        ["date"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", System.Globalization.CultureInfo.InvariantCulture),
    };
}
