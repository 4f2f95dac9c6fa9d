using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Queues;

namespace ZcFlow.Workers;

/// <summary>
/// PF_RING's pipeline/aggregator: several devices into one queue. Each turn takes a burst from
/// every input and sends it on, flushing at the end of the turn. With <c>mergeByTime</c> it
/// holds each input's packets and always sends the oldest one it holds, so inputs that are each
/// in time order come out in time order (zfifo). An input that has nothing at the moment may yet
/// bring an older packet than those held: the merge waits for it up to <c>idleWait</c>, then goes on
/// without it until it brings one (by default it does not wait, which suits files: one that has
/// nothing left is exhausted, not idle). Lossless: it leaves its inputs unread while the queue lacks
/// room. Run it on a <see cref="ZcWorker"/>; that thread owns the pool it is given.
/// </summary>
public sealed class Aggregator
{
    private const int Burst = 32;

    private readonly BufferPool _pool;
    private readonly IPacketSource[] _inputs;
    private readonly ZcQueue _output;
    private readonly bool _merge;
    private readonly PacketHandle[][] _held;  // per input, when merging: packets received, not yet sent
    private readonly int[] _next, _count;
    private readonly PacketHandle[] _burst = new PacketHandle[Burst];
    private readonly long _checkPeriod = Stopwatch.Frequency / 10;
    private readonly long _idleWait;   // Stopwatch ticks
    private long _nextCheck, _idleSince;
    private ulong _forwarded;

    public Aggregator(BufferPool pool, IReadOnlyList<IPacketSource> inputs, ZcQueue output, bool mergeByTime = false, TimeSpan idleWait = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(idleWait, TimeSpan.Zero);
        if (idleWait > TimeSpan.Zero && !mergeByTime) throw new ArgumentException("idleWait is for a merge in time order (mergeByTime)", nameof(idleWait));
        _idleWait = (long)(idleWait.TotalSeconds * Stopwatch.Frequency);
        if (inputs.Count == 0) throw new ArgumentException("an aggregator needs at least one input", nameof(inputs));
        _pool = pool;
        _inputs = [.. inputs];
        _output = output;
        _merge = mergeByTime;
        _held = _inputs.Select(_ => new PacketHandle[Burst]).ToArray();
        _next = new int[_inputs.Length];
        _count = new int[_inputs.Length];
        pool.ReclaimFrom(output);
    }

    public IReadOnlyList<IPacketSource> Inputs => _inputs;

    /// <summary>Packets sent into the queue.</summary>
    public ulong Forwarded => Volatile.Read(ref _forwarded);

    /// <summary>True when every input is exhausted and nothing is held back.</summary>
    public bool Done => _inputs.All(i => i.IsExhausted) && _count.All(c => c == 0);

    /// <summary>One turn; returns the packets it moved.</summary>
    public int DoWork()
    {
        int moved = _merge ? Merge() : Forward();
        _output.Flush();
        if (moved != 0) Volatile.Write(ref _forwarded, _forwarded + (ulong)moved);
        long now = Stopwatch.GetTimestamp();
        if (now >= _nextCheck)
        {
            _nextCheck = now + _checkPeriod;
            _pool.CheckConsumers();
        }
        return moved;
    }

    private int Forward()
    {
        int moved = 0;
        foreach (IPacketSource input in _inputs)
        {
            if (!_output.HasRoom(Burst)) break;
            int n = input.ReceiveBurst(_burst);
            moved += _output.SendBurst(_burst.AsSpan(0, n), flush: false);
        }
        return moved;
    }

    private int Merge()
    {
        for (int i = 0; i < _inputs.Length; i++)
            if (_count[i] == 0)
            {
                _next[i] = 0;
                _count[i] = _inputs[i].ReceiveBurst(_held[i]);
            }
        int moved = 0;
        while (_output.HasRoom(1))
        {
            int oldest = -1;
            bool idle = false;
            for (int i = 0; i < _inputs.Length; i++)
            {
                if (_count[i] != 0 && (oldest < 0 || _held[i][_next[i]].TimestampNs < _held[oldest][_next[oldest]].TimestampNs))
                    oldest = i;
                else if (_count[i] == 0 && _idleWait != 0 && !_inputs[i].IsExhausted)
                    idle = true;
            }
            if (oldest < 0) break;
            if (!idle) _idleSince = 0;
            else if (!WaitedEnough()) break;   // the idle input may bring an older packet: look again next turn
            _output.TrySend(_held[oldest][_next[oldest]++], flush: false);
            moved++;
            // An input that ran dry must be looked at again before anything newer goes out.
            if (--_count[oldest] == 0) break;
        }
        return moved;
    }

    // Whether an input has been idle for idleWait: from then on the merge goes on without it, until it brings a packet.
    private bool WaitedEnough()
    {
        long now = Stopwatch.GetTimestamp();
        if (_idleSince == 0) _idleSince = now;
        return now - _idleSince >= _idleWait;
    }
}
