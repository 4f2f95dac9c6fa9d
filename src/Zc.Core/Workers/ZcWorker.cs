using System.Runtime.ExceptionServices;

namespace ZcFlow.Workers;

/// <summary>
/// A dedicated OS thread that we own, optionally pinned to a core, running
/// <c>while (running) idle.Idle(doWork());</c>. <c>doWork</c> returns how much it did (packets
/// moved, say): the idle strategy decides what a turn with nothing to do costs.
/// An exception thrown by <c>doWork</c> stops the worker and is rethrown by <see cref="Stop"/>
/// on the owner's thread, never lost.
/// </summary>
public sealed class ZcWorker : IDisposable
{
    private readonly Func<int> _doWork;
    private readonly WorkerOptions _options;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _started = new();
    private volatile bool _running = true;
    private ExceptionDispatchInfo? _startFault;
    private ExceptionDispatchInfo? _fault;
    private int _stopped;

    private ZcWorker(string name, Func<int> doWork, WorkerOptions options)
    {
        Name = name;
        _doWork = doWork;
        _options = options;
        _thread = new Thread(Run) { Name = name, IsBackground = true };
    }

    /// <summary>Starts a worker; returns once its thread runs (and is pinned, if asked). A failed pin is thrown here.</summary>
    public static ZcWorker Start(string name, Func<int> doWork, WorkerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(doWork);
        var worker = new ZcWorker(name, doWork, options ?? new WorkerOptions());
        worker._thread.Start();
        worker._started.Wait();
        if (worker._startFault is { } startFault)
        {
            worker._thread.Join();
            startFault.Throw();
        }
        return worker;
    }

    public string Name { get; }

    /// <summary>True until the loop ends, by <see cref="Stop"/> or by an exception.</summary>
    public bool IsRunning => _thread.IsAlive;

    /// <summary>The exception that ended the loop, if one did.</summary>
    public Exception? Fault => _fault?.SourceException;

    private void Run()
    {
        try
        {
            if (_options.Core is int core) CpuAffinity.PinCurrentThread(core);
        }
        catch (Exception e)
        {
            _startFault = ExceptionDispatchInfo.Capture(e);
            _started.Set();
            return;
        }
        _started.Set();
        try
        {
            IdleStrategy idle = _options.Idle?.Invoke() ?? (_options.ActiveWait ? IdleStrategy.BusySpin() : IdleStrategy.Backoff());
            Func<int> doWork = _doWork;
            while (_running) idle.Idle(doWork());
        }
        catch (Exception e)
        {
            _fault = ExceptionDispatchInfo.Capture(e);
        }
    }

    /// <summary>Waits up to <paramref name="timeout"/> for the loop to end by itself (an exception); true if it did.</summary>
    public bool Join(TimeSpan timeout) => _thread.Join(timeout);

    /// <summary>
    /// Ends the loop after its current turn and joins the thread; then rethrows, once, the
    /// exception that ended it early, if any. Idempotent.
    /// </summary>
    public void Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0) return;
        _running = false;
        _thread.Join();
        _started.Dispose();
        _fault?.Throw();
    }

    /// <summary>Same as <see cref="Stop"/>.</summary>
    public void Dispose() => Stop();
}
