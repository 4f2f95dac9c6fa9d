using ZcFlow.Native;

namespace ZcFlow.Workers;

/// <summary>
/// zbalance_ipc's time-pulse thread (<c>-S core -R ns</c>): one thread, pinned, reads the wall clock
/// and publishes it in one word, so a balancer stamps every packet with a time that costs it a
/// load instead of a clock read. The published time moves in steps of at least 100 ns, and of the
/// resolution when that is larger; at a resolution of 100 µs or more the thread sleeps between
/// steps instead of spinning.
/// </summary>
public sealed class TimePulse : IDisposable
{
    private const long MinStepNs = 100;
    private readonly Thread _thread;
    private readonly long _resolutionNs;
    private readonly int? _core;
    private long _now;
    private volatile bool _stop;

    /// <param name="core">The core to pin the thread to, or null for none.</param>
    /// <param name="resolutionNs">How far apart the published times may be (0: as fine as 100 ns).</param>
    public TimePulse(int? core, long resolutionNs = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(resolutionNs);
        _core = core;
        _resolutionNs = Math.Max(resolutionNs, MinStepNs);
        _now = WallClockNs();
        _thread = new Thread(Run) { IsBackground = true, Name = "time pulse" };
        _thread.Start();
    }

    /// <summary>The last published time, in nanoseconds since the Unix epoch.</summary>
    public long NowNs => Volatile.Read(ref _now);

    /// <summary>The wall clock (CLOCK_REALTIME) read now, in nanoseconds since the Unix epoch: the time a pulse publishes.</summary>
    public static long WallClockNs()
    {
        Libc.ClockGetTime(Libc.CLOCK_REALTIME, out Timespec t);
        return t.Seconds * 1_000_000_000 + t.Nanoseconds;
    }

    private void Run()
    {
        if (_core is int core) CpuAffinity.PinCurrentThread(core);
        long published = _now;
        while (!_stop)
        {
            long ns = WallClockNs();
            if (ns - published >= _resolutionNs)
            {
                Volatile.Write(ref _now, ns);
                published = ns;
            }
            else if (_resolutionNs >= 100_000) Thread.Sleep(TimeSpan.FromTicks(Math.Max((_resolutionNs - (ns - published)) / 100, 1)));
        }
    }

    public void Dispose()
    {
        _stop = true;
        _thread.Join();
    }
}
