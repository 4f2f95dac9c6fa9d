using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Filters;

namespace ZcFlow.Stages;

/// <summary>
/// A pipeline step that works on a burst of packets in place: rewrites, stamps, checks, drops. A struct, so that a
/// <see cref="Workers.Pipe{TStage}"/> built with it is specialised by the JIT: no call per packet is virtual.
/// </summary>
public interface IStage
{
    /// <summary>
    /// Works on <paramref name="burst"/> and returns how many of its packets go on: they must be the burst's first,
    /// in the order they are to go. Those after them are dropped (the worker releases them).
    /// </summary>
    int Process(Span<PacketHandle> burst);
}

/// <summary>A test of one packet, for <see cref="Where{TPredicate}"/>.</summary>
public interface IPacketPredicate
{
    bool Matches(in PacketHandle packet);
}

/// <summary>The stage that passes every packet on as it is: a pipe with it only moves packets (an aggregator, a collector).</summary>
public readonly struct PassAll : IStage
{
    public int Process(Span<PacketHandle> burst) => burst.Length;
}

/// <summary>Keeps the packets that match the predicate, in order, and drops the rest.</summary>
public readonly struct Where<TPredicate>(TPredicate predicate) : IStage where TPredicate : struct, IPacketPredicate
{
    private readonly TPredicate _predicate = predicate;

    public int Process(Span<PacketHandle> burst) => Stage.Keep(burst, _predicate);
}

/// <summary>Keeps the packets that pass a filter in tcpdump's syntax (<see cref="BpfFilter"/>).</summary>
public readonly struct Bpf(BpfFilter filter) : IStage, IPacketPredicate
{
    private readonly BpfFilter _filter = filter ?? throw new ArgumentNullException(nameof(filter));

    public bool Matches(in PacketHandle packet) => _filter.Matches(packet);

    public int Process(Span<PacketHandle> burst) => Stage.Keep(burst, this);
}

/// <summary>Helpers for writing stages.</summary>
public static class Stage
{
    /// <summary>
    /// Moves the packets that match <paramref name="predicate"/> to the front of <paramref name="burst"/>, in their order,
    /// and the others behind them; returns how many matched. What a filtering <see cref="IStage.Process"/> returns.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Keep<TPredicate>(Span<PacketHandle> burst, TPredicate predicate) where TPredicate : struct, IPacketPredicate
    {
        int kept = 0;
        for (int i = 0; i < burst.Length; i++)
        {
            if (!predicate.Matches(burst[i])) continue;
            if (i != kept) (burst[kept], burst[i]) = (burst[i], burst[kept]);
            kept++;
        }
        return kept;
    }
}
