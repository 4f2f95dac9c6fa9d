using ZcFlow.Buffers;

namespace ZcFlow.Devices;

/// <summary>
/// Several devices read as one, <c>multi:eth1;eth2</c> (PF_RING's name) or <c>eth1,eth2</c>: each burst starts at the
/// next device in turn and fills up from the others, so a busy one cannot keep the rest waiting. Every packet keeps the
/// device index the whole was opened with; its counters are the sums of its devices'.
/// </summary>
internal sealed class MultiSource : IPacketSource
{
    private readonly IPacketSource[] _sources;
    private int _next;

    private MultiSource(string name, IPacketSource[] sources) => (Name, _sources) = (name, sources);

    public string Name { get; }

    /// <summary>The device names in <paramref name="name"/> when it names several (<c>multi:a;b</c> or <c>a,b</c>), or null.</summary>
    public static string[]? Parts(string name)
    {
        if (name.StartsWith("multi:", StringComparison.Ordinal)) return name["multi:".Length..].Split(';');
        return name.Contains(',') ? name.Split(',') : null;
    }

    /// <summary>
    /// Opens every device of <paramref name="name"/>, each with <paramref name="rules"/> when given (in its kernel where it
    /// can: <see cref="Device.OpenSource(string, BufferPool, uint, Filters.Rules)"/>); a bad one closes those already open
    /// and says which it was.
    /// </summary>
    public static MultiSource Open(string name, string[] parts, BufferPool pool, uint index, Filters.Rules? rules = null)
    {
        if (parts.Length == 0 || parts.Any(string.IsNullOrWhiteSpace))
            throw new ArgumentException($"'{name}': multi: names its devices separated by ';' (multi:eth1;eth2), or by ',' (eth1,eth2), none empty", nameof(name));
        var sources = new List<IPacketSource>();
        try
        {
            foreach (string part in parts) sources.Add(rules is null ? Device.OpenSource(part, pool, index) : Device.OpenSource(part, pool, index, rules));
            if (sources.Select(s => s.Link).Distinct().Count() > 1)
                throw new ArgumentException($"'{name}': its devices' frames start with different headers ({string.Join(", ", sources.Select(s => $"{s.Name}: {s.Link}"))}), which one capture cannot hold: read them as separate devices", nameof(name));
            return new MultiSource(name, [.. sources]);
        }
        catch
        {
            foreach (IPacketSource s in sources) s.Dispose();
            throw;
        }
    }

    /// <summary>The devices, in the order named.</summary>
    public IReadOnlyList<IPacketSource> Sources => _sources;

    public int ReceiveBurst(Span<PacketHandle> packets)
    {
        int n = 0, first = _next;
        _next = first + 1 == _sources.Length ? 0 : first + 1;
        for (int k = 0, s = first; k < _sources.Length && n < packets.Length; k++, s = s + 1 == _sources.Length ? 0 : s + 1)
            n += _sources[s].ReceiveBurst(packets[n..]);
        return n;
    }

    public bool IsExhausted
    {
        get
        {
            foreach (IPacketSource s in _sources)
                if (!s.IsExhausted) return false;
            return true;
        }
    }

    public Parsing.LinkType Link => _sources[0].Link;

    public DeviceStats Stats
    {
        get
        {
            ulong received = 0, bytes = 0, noBuffer = 0, kernel = 0, sent = 0, failed = 0;
            foreach (IPacketSource s in _sources)
            {
                DeviceStats d = s.Stats;
                (received, bytes, noBuffer, kernel, sent, failed) = (received + d.Received, bytes + d.Bytes, noBuffer + d.DroppedNoBuffer, kernel + d.DroppedKernel, sent + d.Sent, failed + d.SendFailed);
            }
            return new DeviceStats(received, bytes, noBuffer, kernel, sent, failed);
        }
    }

    // Each device asked without waiting; then the first waited on for a share of the time, so none is slept on long.
    public bool WaitReadable(int timeoutMs)
    {
        foreach (IPacketSource s in _sources)
            if (s.WaitReadable(0)) return true;
        return !IsExhausted && _sources[0].WaitReadable(Math.Min(timeoutMs, 1));
    }

    public void Dispose()
    {
        foreach (IPacketSource s in _sources) s.Dispose();
    }

    public override string ToString() => Name;
}
