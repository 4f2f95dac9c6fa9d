using ZcFlow.Filters;

namespace ZcFlow.Samples;

/// <summary>
/// The samples' <c>-R &lt;file&gt;</c>: rules read from a file (one a line, <see cref="Rule.Parse"/>), and read again on
/// SIGUSR1 (<see cref="Rules.ReadFrom"/>). With <see cref="Publish"/>, each rule's counters every second in
/// <c>/run/zcflow/rules/&lt;cluster&gt;</c>, where ZStat reads them.
/// </summary>
internal sealed class RulesFile : IDisposable
{
    /// <summary>Where the counters of the rules a process runs are, one file per cluster.</summary>
    public const string CountersDirectory = "/run/zcflow/rules";

    private Timer? _publish;
    private string? _published;

    private RulesFile(string path, Rules rules) => (Path, Rules) = (path, rules);

    public string Path { get; }

    public Rules Rules { get; }

    /// <summary>The rules of <paramref name="path"/>, with <paramref name="filter"/> in front of the application (for an AF_XDP device).</summary>
    public static RulesFile Open(string path, BpfFilter? filter = null) => new(path, new Rules(filter: filter).ReadFrom(path));

    /// <summary>Each rule's counters, and the packets no rule matched, one a line.</summary>
    public static IEnumerable<string> Report(Rules rules)
    {
        foreach ((int id, Rule rule) in rules.List())
            yield return $"rule {id} '{rule}': {rules.Counters(id).Packets:N0} pkts {rules.Counters(id).Bytes:N0} bytes";
        yield return $"no rule ({rules.DefaultAction}): {rules.Counters(-1).Packets:N0} pkts";
    }

    /// <summary>Writes the counters to <c>/run/zcflow/rules/&lt;cluster&gt;</c> every second, until disposed (which removes the file); its path, or null without the directory.</summary>
    public string? Publish(uint cluster)
    {
        if (!Directory.Exists(CountersDirectory) && !RunFile.Prepare(CountersDirectory)) return null;
        string path = System.IO.Path.Combine(CountersDirectory, cluster.ToString(System.Globalization.CultureInfo.InvariantCulture));
        string text() => $"pid {Environment.ProcessId} rules {Path}\n" + string.Concat(Report(Rules).Select(l => l + "\n"));
        if (!RunFile.Write(path, text())) return null;
        _published = path;
        _publish = new Timer(_ => RunFile.Write(path, text()), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        return path;
    }

    public void Dispose()
    {
        _publish?.Dispose();
        if (_published is not null) RunFile.Remove(_published);
    }
}
