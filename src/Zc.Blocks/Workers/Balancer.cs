using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Filters;
using ZcFlow.Memory;
using ZcFlow.Queues;

namespace ZcFlow.Workers;

/// <summary>
/// zbalance_ipc's worker: N input devices into M queues, each packet to the queues its
/// distribution names (one for a balancer, several for a fan-out, none to drop). One call of
/// <see cref="DoWork"/> is one turn: a burst from each input, routed, then every queue flushed,
/// so a quiet link still delivers at once. Run it on a <see cref="ZcWorker"/>, which owns the
/// pool the devices fill: that thread is the cluster owner's, and every tenth of a second it
/// also takes back what dead consumer processes held.
///
/// Like zbalance_ipc it never waits for a consumer: a full queue drops (counted in its stats).
/// Built <c>lossless</c>, it instead reads from each input no more packets than every queue has
/// room for (down to one at a time, whatever the queues' size), so files and generators lose
/// nothing (a live device then drops in its own ring, where the kernel counts it). It does not
/// wait for a queue whose consumer process has gone, or whose consumer is stuck (has left the
/// queue full and released nothing for a second, <see cref="EgressQueue.IsWaitedFor"/>): that queue
/// drops, and counts it, while the others go on.
///
/// An output can be a device instead of a queue (<see cref="SetEgress"/>): what goes there is
/// copied into its transmit ring (lossless, a full ring is waited for). Filters in tcpdump's syntax can guard the input (a packet that
/// fails is counted in <see cref="Filtered"/>) and each output; they cost nothing when not set.
/// </summary>
internal sealed class Balancer<TDistribution> : IBalancer where TDistribution : struct, IDistribution
{
    private const int Burst = 32;

    private readonly BufferOwner _pool;
    private readonly IPacketSource[] _inputs;
    private readonly EgressQueue[] _outputs;
    private readonly MultiQueue _multi;
    private readonly PacketHandle[] _burst = new PacketHandle[Burst];
    private readonly long _checkPeriod = Stopwatch.Frequency / 10;
    private readonly bool _lossless;
    private readonly ulong _valid;
    private readonly BpfFilter?[] _outputFilters;
    private readonly IPacketSink?[] _egress;
    private ulong _filteredOutputs, _egressOutputs;
    private BpfFilter? _filter;
    private VlanAllowList? _vlans;
    private IpRules? _rules;
    private TimePulse? _clock;
    private TDistribution _distribution;
    private long _nextCheck;
    private ulong _received, _filtered;
    private bool _finished;

    public Balancer(BufferOwner pool, IReadOnlyList<IPacketSource> inputs, IReadOnlyList<EgressQueue> outputs, TDistribution distribution, bool lossless = false)
    {
        _lossless = lossless;
        ArgumentNullException.ThrowIfNull(pool);
        if (inputs.Count == 0) throw new ArgumentException("a balancer needs at least one input", nameof(inputs));
        if (outputs.Count is 0 or > ArenaLayout.MaxQueues) throw new ArgumentOutOfRangeException(nameof(outputs), outputs.Count, $"a balancer feeds 1 to {ArenaLayout.MaxQueues} queues");
        _pool = pool;
        _inputs = [.. inputs];
        _outputs = [.. outputs];
        _multi = new MultiQueue(_outputs);
        _valid = _outputs.Length == 64 ? ulong.MaxValue : (1UL << _outputs.Length) - 1;
        _outputFilters = new BpfFilter?[_outputs.Length];
        _egress = new IPacketSink?[_outputs.Length];
        _distribution = distribution;
        foreach (EgressQueue q in _outputs) pool.ReclaimFrom(q);
    }

    /// <summary>Packets taken from the inputs.</summary>
    public ulong Received => Volatile.Read(ref _received);

    /// <summary>Packets the distribution sent nowhere.</summary>
    public ulong Filtered => Volatile.Read(ref _filtered);

    /// <summary>True when every input is a finite source that has given everything.</summary>
    public bool InputsExhausted
    {
        get
        {
            foreach (IPacketSource input in _inputs)
                if (!input.IsExhausted) return false;
            return true;
        }
    }

    /// <summary>True once every input is exhausted and all that was taken from them has been sent on (a balancer holds nothing between turns).</summary>
    public bool Finished => Volatile.Read(ref _finished);

    public IReadOnlyList<IPacketSource> Inputs => _inputs;

    public IReadOnlyList<EgressQueue> Outputs => _outputs;

    public BpfFilter? Filter { get => Volatile.Read(ref _filter); set => Volatile.Write(ref _filter, value); }

    public VlanAllowList? Vlans { get => Volatile.Read(ref _vlans); set => Volatile.Write(ref _vlans, value); }

    public IReadOnlyList<IPacketSink?> Egress => _egress;

    /// <summary>
    /// -Z's rules. Also into the XDP program of each AF_XDP input (or member of a <c>multi:</c> input) that runs ZcFlow's (opened with rules), so that what they
    /// drop is never copied up; the balancer still applies them to what comes (the same decision, and the only one for
    /// packets the kernel's program does not parse).
    /// </summary>
    public IpRules? Rules
    {
        get => Volatile.Read(ref _rules);
        set
        {
            foreach (IPacketSource input in _inputs)
                foreach (IPacketSource device in input is MultiSource multi ? multi.Sources : [input])
                    if (device is XdpDevice xdp) xdp.SetAddressRules(value);
            Volatile.Write(ref _rules, value);
        }
    }

    public TimePulse? Clock { get => _clock; set => _clock = value; }

    public void SetOutputFilter(int output, BpfFilter? filter)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)output, (uint)_outputs.Length, nameof(output));
        _outputFilters[output] = filter;
        _filteredOutputs = filter is null ? _filteredOutputs & ~(1UL << output) : _filteredOutputs | 1UL << output;
    }

    public void SetEgress(int output, IPacketSink sink)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)output, (uint)_outputs.Length, nameof(output));
        ArgumentNullException.ThrowIfNull(sink);
        _egress[output] = sink;
        _egressOutputs |= 1UL << output;
    }

    /// <summary>One turn: returns how many packets it moved.</summary>
    public int DoWork()
    {
        int moved = 0;
        ulong filtered = 0;
        BpfFilter? filter = Volatile.Read(ref _filter);
        VlanAllowList? vlans = Volatile.Read(ref _vlans);
        IpRules? rules = Volatile.Read(ref _rules);
        foreach (IPacketSource input in _inputs)
        {
            int want = _lossless ? Room() : Burst;
            if (want == 0) break;
            int n = input.ReceiveBurst(_burst.AsSpan(0, want));
            if (_clock is { } clock && n != 0)
            {
                long now = clock.NowNs;
                for (int i = 0; i < n; i++) _burst[i].TimestampNs = now;
            }
            for (int i = 0; i < n; i++)
            {
                if ((vlans is not null && !vlans.Matches(_burst[i])) || (rules is not null && !rules.Passes(_burst[i]))
                    || (filter is not null && !filter.Matches(_burst[i])))
                {
                    _pool.ReleaseLater(_burst[i]);
                    filtered++;
                }
                else if (!Route(_burst[i])) filtered++;
            }
            _pool.EndRelease();
            moved += n;
        }
        if (moved != 0)
        {
            Volatile.Write(ref _received, _received + (ulong)moved);
            if (filtered != 0) Volatile.Write(ref _filtered, _filtered + filtered);
        }
        return MaintainAndFlush(moved);
    }

    // Lossless: how many packets every queue worth waiting for can still take (a packet takes at most one
    // slot of each queue, whatever the distribution does with it). Less than a whole burst counts as none,
    // unless a queue can never have a whole burst free (fewer slots or a smaller quota): small bursts cost
    // a publication each, so the balancer waits for room to batch, as it does when the queues are large.
    private int Room()
    {
        int room = Burst, need = Burst;
        for (int q = 0; q < _outputs.Length && room != 0; q++)
        {
            EgressQueue queue = _outputs[q];
            if ((_egressOutputs & 1UL << q) != 0 || !queue.IsWaitedFor) continue;
            room = queue.Room(room);
            need = Math.Min(need, queue.BurstLimit(Burst));
        }
        return room >= need ? room : 0;
    }

    private int MaintainAndFlush(int moved)
    {
        foreach (EgressQueue q in _outputs) q.Flush();
        if (_egressOutputs != 0)
            foreach (IPacketSink? sink in _egress) sink?.Flush();
        if (!_finished && InputsExhausted) Volatile.Write(ref _finished, true);
        long now = Stopwatch.GetTimestamp();
        if (now >= _nextCheck)
        {
            _nextCheck = now + _checkPeriod;
            _pool.CheckConsumers();
        }
        return moved;
    }

    // Sends the packet where the distribution says (bits past the last queue count for nothing);
    // a packet no queue took goes back to the pool.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Route(in PacketHandle packet)
    {
        ulong mask = _distribution.Route(packet, _outputs.Length) & _valid;
        bool routed = mask != 0;
        if ((mask & _filteredOutputs) != 0) mask = FilterOutputs(packet, mask);
        if ((mask & _egressOutputs) != 0) mask = SendOut(packet, mask);
        bool taken = mask != 0 && ((mask & (mask - 1)) == 0
            ? _outputs[BitOperations.TrailingZeroCount(mask)].TrySend(packet, flush: false)
            : _multi.Send(packet, mask, flush: false) != 0);
        if (!taken) _pool.ReleaseLater(packet);   // handed on at the burst's end (EndRelease)
        return routed;
    }

    private ulong FilterOutputs(in PacketHandle packet, ulong mask)
    {
        for (ulong m = mask & _filteredOutputs; m != 0; m &= m - 1)
        {
            int q = BitOperations.TrailingZeroCount(m);
            if (!_outputFilters[q]!.Matches(packet)) mask &= ~(1UL << q);
        }
        return mask;
    }

    // Copies the packet out of each device the mask names; what is left of the mask are queues. Lossless, a full
    // transmit ring is waited for (once: a frame the device refuses with its ring empty does not fit it, and is dropped).
    private ulong SendOut(in PacketHandle packet, ulong mask)
    {
        for (ulong m = mask & _egressOutputs; m != 0; m &= m - 1)
        {
            IPacketSink sink = _egress[BitOperations.TrailingZeroCount(m)]!;
            if (sink.TrySend(packet) || !_lossless) continue;
            sink.Flush(wait: true);
            sink.TrySend(packet);
        }
        return mask & ~_egressOutputs;
    }
}
