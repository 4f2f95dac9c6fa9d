using ZcFlow.Buffers;
using ZcFlow.Filters;

namespace ZcFlow.Devices;

/// <summary>
/// <see cref="Rules"/> in user space, for a device whose kernel side cannot run them (AF_PACKET, files, generators,
/// queues): each packet decided as it comes; what is to the application goes on, what is dropped or for the kernel only
/// (which an AF_PACKET device's kernel has had anyway) is released, and what is reflected is sent out of its interface
/// first, once per burst (<see cref="Device.OpenSink"/>). Decisions are the XDP program's (one model, two back ends).
/// </summary>
internal sealed class RuledSource(IPacketSource inner, Rules rules, BufferPool pool) : IPacketSource
{
    private readonly Dictionary<string, IPacketSink> _reflect = [];

    public string Name => inner.Name;

    public bool IsExhausted => inner.IsExhausted;

    public DeviceStats Stats => inner.Stats;

    public Parsing.LinkType Link => inner.Link;

    /// <summary>The device the rules are run over.</summary>
    public IPacketSource Inner => inner;

    public int ReceiveBurst(Span<PacketHandle> packets)
    {
        int n = inner.ReceiveBurst(packets), kept = 0;
        bool reflected = false;
        for (int i = 0; i < n; i++)
        {
            PacketHandle p = packets[i];
            RuleAction action = rules.Decide(p.Data, p.WireLength, (Parsing.LinkType)p.LinkType, out int id);
            if (action == RuleAction.ToApplication && (rules.Filter is null || rules.Filter.Matches(p)))
            {
                if (i != kept) (packets[kept], packets[i]) = (packets[i], packets[kept]);
                kept++;
                continue;
            }
            if (action == RuleAction.Reflect && rules[id]?.ReflectTo is string to)
            {
                if (!_reflect.TryGetValue(to, out IPacketSink? sink)) _reflect[to] = sink = Device.OpenSink(to, pool);
                sink.TrySend(p);
                reflected = true;
            }
        }
        if (reflected)
            foreach (IPacketSink sink in _reflect.Values) sink.Flush();
        pool.ReleaseBurst(packets[kept..n]);
        return kept;
    }

    public bool WaitReadable(int timeoutMs) => inner.WaitReadable(timeoutMs);

    public void Dispose()
    {
        foreach (IPacketSink sink in _reflect.Values) sink.Dispose();
        inner.Dispose();
    }

    public override string ToString() => inner.ToString()!;
}
