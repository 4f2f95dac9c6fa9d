using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Distribution;
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
/// Built <c>lossless</c>, it instead leaves its inputs unread while any queue lacks room for a
/// whole burst from each of them, so files and generators lose nothing (a live device then
/// drops in its own ring, where the kernel counts it); a consumer that stops stops it too.
/// </summary>
public sealed class Balancer<TDistribution> : IBalancer where TDistribution : struct, IDistribution
{
    private const int Burst = 32;

    private readonly BufferPool _pool;
    private readonly IPacketSource[] _inputs;
    private readonly ZcQueue[] _outputs;
    private readonly MultiQueue _multi;
    private readonly PacketHandle[] _burst = new PacketHandle[Burst];
    private readonly long _checkPeriod = Stopwatch.Frequency / 10;
    private readonly bool _lossless;
    private readonly ulong _valid;
    private TDistribution _distribution;
    private long _nextCheck;
    private ulong _received, _filtered;

    public Balancer(BufferPool pool, IReadOnlyList<IPacketSource> inputs, IReadOnlyList<ZcQueue> outputs, TDistribution distribution, bool lossless = false)
    {
        _lossless = lossless;
        ArgumentNullException.ThrowIfNull(pool);
        if (inputs.Count == 0) throw new ArgumentException("a balancer needs at least one input", nameof(inputs));
        if (outputs.Count is 0 or > 64) throw new ArgumentOutOfRangeException(nameof(outputs), outputs.Count, "a balancer feeds 1 to 64 queues");
        _pool = pool;
        _inputs = [.. inputs];
        _outputs = [.. outputs];
        _multi = new MultiQueue(_outputs);
        _valid = _outputs.Length == 64 ? ulong.MaxValue : (1UL << _outputs.Length) - 1;
        _distribution = distribution;
        foreach (ZcQueue q in _outputs) pool.ReclaimFrom(q);
    }

    /// <summary>Packets taken from the inputs.</summary>
    public ulong Received => Volatile.Read(ref _received);

    /// <summary>Packets the distribution sent nowhere.</summary>
    public ulong Filtered => Volatile.Read(ref _filtered);

    /// <summary>True when every input is a finite source that has given everything.</summary>
    public bool InputsExhausted => _inputs.All(i => i.IsExhausted);

    public IReadOnlyList<IPacketSource> Inputs => _inputs;

    public IReadOnlyList<ZcQueue> Outputs => _outputs;

    /// <summary>One turn: returns how many packets it moved.</summary>
    public int DoWork()
    {
        int moved = 0;
        ulong filtered = 0;
        if (_lossless && !AllHaveRoom()) return MaintainAndFlush(0);
        foreach (IPacketSource input in _inputs)
        {
            int n = input.ReceiveBurst(_burst);
            for (int i = 0; i < n; i++)
                if (!Route(_burst[i])) filtered++;
            moved += n;
        }
        if (moved != 0)
        {
            Volatile.Write(ref _received, _received + (ulong)moved);
            if (filtered != 0) Volatile.Write(ref _filtered, _filtered + filtered);
        }
        return MaintainAndFlush(moved);
    }

    private bool AllHaveRoom()
    {
        int burst = Burst * _inputs.Length;
        foreach (ZcQueue q in _outputs)
            if (!q.HasRoom(burst)) return false;
        return true;
    }

    private int MaintainAndFlush(int moved)
    {
        foreach (ZcQueue q in _outputs) q.Flush();
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
        bool taken = mask != 0 && ((mask & (mask - 1)) == 0
            ? _outputs[BitOperations.TrailingZeroCount(mask)].TrySend(packet, flush: false)
            : _multi.Send(packet, mask, flush: false) != 0);
        if (!taken) _pool.Release(packet);
        return mask != 0;
    }
}
