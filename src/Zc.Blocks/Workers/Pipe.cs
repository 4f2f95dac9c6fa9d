using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Queues;
using ZcFlow.Stages;

namespace ZcFlow.Workers;

/// <summary>What a graph needs of a pipe whatever its stage.</summary>
public interface IPipe
{
    /// <summary>The stage's name in its graph.</summary>
    string Name { get; }

    /// <summary>One turn; returns the packets it moved (non-zero while it holds packets it waits to send). Owner thread only.</summary>
    int DoWork();

    IReadOnlyList<IPacketSource> Inputs { get; }

    /// <summary>The queue it sends into, or null when it sends out of a device (<see cref="Sink"/>) or is read by the stage it feeds.</summary>
    EgressQueue? Output { get; }

    /// <summary>The device it sends out of, or null.</summary>
    IPacketSink? Sink { get; }

    /// <summary>Packets taken from the inputs.</summary>
    ulong Received { get; }

    /// <summary>Packets sent on.</summary>
    ulong Forwarded { get; }

    /// <summary>Packets the stage did not pass on: a filter's rejects. Not a loss: what the stage is for.</summary>
    ulong Filtered { get; }

    /// <summary>Packets that could not go on: a consumer gone or stuck, a frame too large for the device. A loss.</summary>
    ulong Dropped { get; }

    /// <summary>True once every input is exhausted and everything taken from them has been sent on or dropped.</summary>
    bool Finished { get; }
}

/// <summary>
/// PF_RING's pipeline and aggregator in one worker: packets from one or several inputs (devices, or the queues of
/// other stages), through a stage (<see cref="IStage"/>, a struct: the JIT specialises the loop for it), into one
/// queue or out of one device.
///
/// Inputs are taken in arrival order, a burst at a time from each in turn, or with <c>mergeByTime</c> always the oldest
/// packet held (zfifo): inputs that are each in time order then come out in time order. An input that has nothing at the
/// moment may yet bring an older packet than those held: the merge waits for it up to <c>idleWait</c>, then goes on
/// without it until it brings one (by default it does not wait, which suits files: one that has nothing left is
/// exhausted, not idle). With a <c>delay</c>, each packet leaves no sooner than that long after it came in (zdelay): its
/// timestamp, when that is the kernel's receive time, else the time the pipe took it. The pipe takes packets as they
/// come and holds up to 4096 (its pool must have that many to spare), sending each when it is due.
///
/// It loses nothing on the way: a burst that does not fit waits in the pipe, and its inputs are left unread, until
/// there is room (a live device then drops in its own ring, where the kernel counts it). It does not wait for a queue
/// whose consumer process has gone or is stuck (<see cref="EgressQueue.IsWaitedFor"/>): those packets are dropped and
/// counted. Run it on a <see cref="ZcWorker"/>; that thread owns the pool (or relay, <see cref="ZcCluster.CreateRelay"/>) it is given.
///
/// Made with no output, a pipe is itself a packet source: the stage it feeds reads it on its own thread, with its pool,
/// and no queue lies between them (a <see cref="Graphs.Topology"/> does this for stages given the same core).
/// </summary>
internal sealed class Pipe<TStage> : IPipe, IPacketSource where TStage : struct, IStage
{
    private const int Burst = 32;

    // With a delay, the most packets a pipe holds: it takes them from its input as they come, so that a device's ring never waits on it.
    private const int HeldForDelay = 4096;

    private readonly BufferOwner _pool;
    private readonly IPacketSource[] _inputs;
    private readonly EgressQueue? _output;
    private readonly IPacketSink? _sink;
    private readonly bool _merge;
    private readonly PacketHandle[][] _held;  // per input, when merging: packets received, not yet taken
    private readonly int[] _next, _count;
    private readonly PacketHandle[] _pending = new PacketHandle[Burst];  // through the stage, not yet sent
    private readonly long _checkPeriod = Stopwatch.Frequency / 10;
    private readonly long _idleWait;   // Stopwatch ticks
    private readonly long _delayNs;
    private TStage _stage;
    private int _at, _left, _turn;
    private long _nextCheck, _idleSince;
    private readonly PacketHandle[] _delayed = [];   // with a delay: packets taken, through the stage, in order, each with its time due
    private readonly long[] _due = [];
    private int _delayedFirst, _delayedCount;
    private ulong _received, _forwarded, _dropped, _filtered;
    private bool _finished;

    /// <summary>A pipe into a queue (<paramref name="output"/>), which <paramref name="pool"/> then reclaims from.</summary>
    public Pipe(BufferOwner pool, IReadOnlyList<IPacketSource> inputs, EgressQueue output, TStage stage = default,
        bool mergeByTime = false, TimeSpan idleWait = default, TimeSpan delay = default)
        : this(pool, inputs, output ?? throw new ArgumentNullException(nameof(output)), null, stage, mergeByTime, idleWait, delay) { }

    /// <summary>A pipe out of a device (<paramref name="sink"/>), which copies each packet: its buffer goes back at once.</summary>
    public Pipe(BufferOwner pool, IReadOnlyList<IPacketSource> inputs, IPacketSink sink, TStage stage = default,
        bool mergeByTime = false, TimeSpan idleWait = default, TimeSpan delay = default)
        : this(pool, inputs, null, sink ?? throw new ArgumentNullException(nameof(sink)), stage, mergeByTime, idleWait, delay) { }

    /// <summary>
    /// A pipe with no output, read as a packet source (<see cref="ReceiveBurst"/>) by a stage on the same thread, which
    /// owns <paramref name="pool"/> and releases what it drops into it. It holds nothing back in time: no delay.
    /// </summary>
    public Pipe(BufferOwner pool, IReadOnlyList<IPacketSource> inputs, TStage stage = default, bool mergeByTime = false, TimeSpan idleWait = default)
        : this(pool, inputs, null, null, stage, mergeByTime, idleWait, TimeSpan.Zero) { }

    private Pipe(BufferOwner pool, IReadOnlyList<IPacketSource> inputs, EgressQueue? output, IPacketSink? sink, TStage stage,
        bool mergeByTime, TimeSpan idleWait, TimeSpan delay)
    {
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentOutOfRangeException.ThrowIfLessThan(idleWait, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        if (idleWait > TimeSpan.Zero && !mergeByTime) throw new ArgumentException("idleWait is for a merge in time order (mergeByTime)", nameof(idleWait));
        if (inputs.Count == 0) throw new ArgumentException("a pipe needs at least one input", nameof(inputs));
        _idleWait = (long)(idleWait.TotalSeconds * Stopwatch.Frequency);
        _delayNs = delay.Ticks * 100;
        if (_delayNs != 0)
        {
            _delayed = new PacketHandle[HeldForDelay];
            _due = new long[HeldForDelay];
        }
        _pool = pool;
        _inputs = [.. inputs];
        _output = output;
        _sink = sink;
        _stage = stage;
        _merge = mergeByTime;
        _held = _inputs.Select(_ => new PacketHandle[Burst]).ToArray();
        _next = new int[_inputs.Length];
        _count = new int[_inputs.Length];
        if (output is not null) pool.ReclaimFrom(output);
    }

    /// <summary>Its name in its graph (<see cref="Graphs.Topology"/> names it after its stage).</summary>
    public string Name { get; init; } = "pipe";

    public IReadOnlyList<IPacketSource> Inputs => _inputs;

    public EgressQueue? Output => _output;

    public IPacketSink? Sink => _sink;

    public ulong Received => Volatile.Read(ref _received);

    public ulong Forwarded => Volatile.Read(ref _forwarded);

    public ulong Dropped => Volatile.Read(ref _dropped);

    public ulong Filtered => Volatile.Read(ref _filtered);

    public bool Finished => Volatile.Read(ref _finished);

    /// <summary>One turn: a burst through the stage when the last one has gone, then what can be sent of it.</summary>
    public int DoWork()
    {
        if (_output is null && _sink is null) throw new InvalidOperationException($"'{Name}' has no output: the stage it feeds reads it (ReceiveBurst)");
        int moved = 0;
        if (_delayNs != 0) moved = TakeDelayed() + SendDue();
        else
        {
            if (_left == 0) moved = Take();
            if (_left != 0)
            {
                int sent = SendOut(_pending.AsSpan(_at, _left));
                _at += sent;
                _left -= sent;
                moved += sent;
            }
        }
        _output?.Flush();
        _sink?.Flush();
        long now = Stopwatch.GetTimestamp();
        if (now >= _nextCheck)
        {
            _nextCheck = now + _checkPeriod;
            _pool.CheckConsumers();
        }
        if (_left == 0 && _delayedCount == 0 && !_finished && AllTaken()) Volatile.Write(ref _finished, true);
        // Packets held for their time count as work, so the worker polls for it rather than sleeping past it.
        return moved != 0 || _left + _delayedCount == 0 ? moved : 1;
    }

    /// <summary>A pipe with no output, as a source: a burst through the stage, up to <c>packets.Length</c> of it.</summary>
    public int ReceiveBurst(Span<PacketHandle> packets)
    {
        if (_output is not null || _sink is not null) throw new InvalidOperationException($"'{Name}' sends into {(object?)_output?.Id ?? _sink!.Name}: it is not read");
        if (!_merge && _left == 0)
        {
            // In arrival order, straight into the reader's burst: no copy.
            int got = Arrival(packets);
            if (got == 0)
            {
                if (!_finished && AllTaken()) Volatile.Write(ref _finished, true);
                return 0;
            }
            int passed = Through(packets[..got]);
            if (passed != 0) Volatile.Write(ref _forwarded, _forwarded + (ulong)passed);
            return passed;
        }
        if (_left == 0) Take();
        int n = Math.Min(_left, packets.Length);
        _pending.AsSpan(_at, n).CopyTo(packets);
        _at += n;
        _left -= n;
        if (n != 0) Volatile.Write(ref _forwarded, _forwarded + (ulong)n);
        else if (!_finished && AllTaken()) Volatile.Write(ref _finished, true);
        return n;
    }

    /// <summary>As a source: exhausted once every input is and everything taken from them has been handed on.</summary>
    public bool IsExhausted => Finished;

    /// <summary>As a source: the packets handed on; bytes are counted by the devices it reads.</summary>
    public DeviceStats Stats => new(Forwarded, 0, 0);

    /// <summary>Nothing to close: its inputs are closed with its graph.</summary>
    public void Dispose() { }

    private bool AllTaken()
    {
        for (int i = 0; i < _inputs.Length; i++)
            if (_count[i] != 0 || !_inputs[i].IsExhausted) return false;
        return true;
    }

    // A burst from the inputs, through the stage: what it keeps waits in _pending.
    private int Take()
    {
        int n = _merge ? Merge() : Arrival(_pending);
        if (n == 0) return 0;
        (_at, _left) = (0, Through(_pending.AsSpan(0, n)));
        return n;
    }

    // The stage's work on a burst just received: returns how many go on, the first; the rest are dropped.
    private int Through(Span<PacketHandle> burst)
    {
        Volatile.Write(ref _received, _received + (ulong)burst.Length);
        int kept = _stage.Process(burst);
        if ((uint)kept > (uint)burst.Length) throw new InvalidOperationException($"the stage {typeof(TStage).Name} kept {kept} packets of a burst of {burst.Length}");
        if (kept < burst.Length)
        {
            _pool.ReleaseBurst(burst[kept..]);
            Volatile.Write(ref _filtered, _filtered + (ulong)(burst.Length - kept));
        }
        return kept;
    }

    private int Arrival(Span<PacketHandle> into)
    {
        for (int k = 0; k < _inputs.Length; k++)
        {
            int i = _turn;
            _turn = _turn + 1 == _inputs.Length ? 0 : _turn + 1;
            int n = _inputs[i].ReceiveBurst(into);
            if (n != 0) return n;
        }
        return 0;
    }

    private int Merge()
    {
        for (int i = 0; i < _inputs.Length; i++)
            if (_count[i] == 0)
            {
                _next[i] = 0;
                _count[i] = _inputs[i].ReceiveBurst(_held[i]);
            }
        int taken = 0;
        while (taken < Burst)
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
            _pending[taken++] = _held[oldest][_next[oldest]++];
            // An input that ran dry must be looked at again before anything newer goes out.
            if (--_count[oldest] == 0) break;
        }
        return taken;
    }

    // Whether an input has been idle for idleWait: from then on the merge goes on without it, until it brings a packet.
    private bool WaitedEnough()
    {
        long now = Stopwatch.GetTimestamp();
        if (_idleSince == 0) _idleSince = now;
        return now - _idleSince >= _idleWait;
    }

    // Sends what fits of `ready`, in order, and returns how many went (or were dropped: the rest wait).
    private int SendOut(Span<PacketHandle> ready)
    {
        int sent = 0, refused = 0;
        if (_output is { } queue)
        {
            sent = queue.SendBurst(ready[..queue.Room(ready.Length)], flush: false);
            if (sent < ready.Length && !queue.IsWaitedFor)
            {
                Drop(ready[sent..]);
                sent = ready.Length;
            }
        }
        else
        {
            IPacketSink sink = _sink!;
            for (; sent < ready.Length; sent++)
            {
                if (sink.TrySend(ready[sent])) continue;
                sink.Flush(wait: true);
                // Still refused with the ring empty: the frame does not fit the device. Dropped, and counted.
                if (!sink.TrySend(ready[sent])) refused++;
            }
            _pool.ReleaseBurst(ready);
            if (refused != 0) Volatile.Write(ref _dropped, _dropped + (ulong)refused);
        }
        if (sent != refused) Volatile.Write(ref _forwarded, _forwarded + (ulong)(sent - refused));
        return sent;
    }

    // With a delay: takes what the inputs have, as long as there is room to hold it, each due the delay after it came in.
    // That is its timestamp where the device stamps it as it comes (the kernel's receive time on an interface), if the
    // stamp is of the last second; else (a file's packets, a queue's, carrying their source's times) now, as it is taken.
    private int TakeDelayed()
    {
        int taken = 0;
        while (_delayedCount + Burst <= _delayed.Length)
        {
            int n = _merge ? Merge() : Arrival(_pending);
            if (n == 0) break;
            taken += n;
            int kept = Through(_pending.AsSpan(0, n));
            long now = TimePulse.WallClockNs();
            for (int i = 0; i < kept; i++)
            {
                long stamp = _pending[i].TimestampNs;
                int at = (_delayedFirst + _delayedCount++) & (_delayed.Length - 1);
                _delayed[at] = _pending[i];
                _due[at] = (stamp <= now && now - stamp < 1_000_000_000 ? stamp : now) + _delayNs;
            }
        }
        return taken;
    }

    // With a delay: sends the held packets that are due, in order, a burst at a time.
    private int SendDue()
    {
        int sent = 0;
        long now = TimePulse.WallClockNs();
        while (_delayedCount != 0)
        {
            int n = 0;
            for (int at = _delayedFirst; n < Burst && n < _delayedCount && _due[at] <= now; at = (at + 1) & (_delayed.Length - 1)) _pending[n++] = _delayed[at];
            if (n == 0) break;
            int went = SendOut(_pending.AsSpan(0, n));
            _delayedFirst = (_delayedFirst + went) & (_delayed.Length - 1);
            _delayedCount -= went;
            sent += went;
            if (went < n) break;
        }
        return sent;
    }

    private void Drop(ReadOnlySpan<PacketHandle> packets)
    {
        _pool.ReleaseBurst(packets);
        Volatile.Write(ref _dropped, _dropped + (ulong)packets.Length);
    }
}
