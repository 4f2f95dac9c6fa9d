using ZcFlow.Memory;

namespace ZcFlow.Queues;

/// <summary>
/// The owner's record of the consumer process at the other end of a queue it owns, and the one place its state changes:
/// <list type="bullet">
/// <item>the cluster's socket thread claims the queue for a process that attaches (<see cref="TryClaim"/>) and marks it
/// leaving when that process's connection closes (<see cref="Leave"/>);</item>
/// <item>the thread of the pool the queue returns to takes back what the process held, then frees the queue for the next
/// one (<see cref="Freed"/>);</item>
/// <item>a relay of the owner's process makes the queue internal before anything is served (<see cref="MakeInternal"/>):
/// no process may attach to it from then on.</item>
/// </list>
/// Each change is one atomic exchange, so the two threads never undo each other's. It also holds what the owner keeps
/// for that consumer alone: the queue's rings' memory and its entry in the cluster's queue directory.
/// </summary>
internal sealed unsafe class ConsumerLink(Arena memory, QueueEntry* entry)
{
    /// <summary>What a queue's consumer is, as its owner sees it.</summary>
    public enum State
    {
        /// <summary>No process is attached: the next one may.</summary>
        Free,

        /// <summary>A process is attached through the socket.</summary>
        Attached,

        /// <summary>The attached process has gone, and what it held is not yet taken back.</summary>
        Leaving,

        /// <summary>Consumed by a relay of the owner's process; never attached.</summary>
        Internal,
    }

    private int _state;
    private int _pid;
    private volatile bool _hadProcess;

    /// <summary>The queue's rings, handed to the process that attaches, renewed when it goes.</summary>
    public Arena Memory { get; } = memory;

    /// <summary>The queue's entry in the directory, which only the owner writes.</summary>
    public QueueEntry* Entry { get; } = entry;

    public State Current => (State)Volatile.Read(ref _state);

    /// <summary>The attached process's pid as the socket saw it; 0 when none is attached.</summary>
    public int Pid => Current == State.Attached ? Volatile.Read(ref _pid) : 0;

    /// <summary>A process has attached to the queue since it was made: from then on it has a consumer only while one is attached.</summary>
    public bool HadProcess => _hadProcess;

    public bool IsLeaving => Current == State.Leaving;

    public bool IsInternal => Current == State.Internal;

    /// <summary>The socket thread: makes <paramref name="pid"/> the queue's consumer; the state that refused it otherwise.</summary>
    public State? TryClaim(int pid)
    {
        var was = (State)Interlocked.CompareExchange(ref _state, (int)State.Attached, (int)State.Free);
        if (was != State.Free) return was;
        Volatile.Write(ref _pid, pid);
        _hadProcess = true;
        return null;
    }

    /// <summary>The socket thread: the attached process's connection closed.</summary>
    public void Leave() => Interlocked.CompareExchange(ref _state, (int)State.Leaving, (int)State.Attached);

    /// <summary>The pool's thread, once it took back what the gone process held: the queue is free for the next one.</summary>
    public void Freed()
    {
        Volatile.Write(ref _pid, 0);
        Interlocked.CompareExchange(ref _state, (int)State.Free, (int)State.Leaving);
    }

    /// <summary>Makes the queue internal; false when a process is attached to it, or was.</summary>
    public bool MakeInternal()
    {
        // A process that attached before the check set _hadProcess; one that attaches after it finds the queue internal.
        if (_hadProcess) return false;
        var was = (State)Interlocked.CompareExchange(ref _state, (int)State.Internal, (int)State.Free);
        return was is State.Free or State.Internal;
    }

    /// <summary>Copies a queue's counters into its directory entry, for the listing (the socket thread).</summary>
    public void Publish(QueueStats s, int held, int quota, bool stuck)
    {
        int pid = Pid;
        Volatile.Write(ref Entry->Sent, s.Sent);
        Volatile.Write(ref Entry->Received, s.Received);
        Volatile.Write(ref Entry->Dropped, s.Dropped);
        Volatile.Write(ref Entry->Errors, s.Errors);
        Volatile.Write(ref Entry->Held, (uint)Math.Max(0, held));
        Volatile.Write(ref Entry->Quota, (uint)quota);
        Volatile.Write(ref Entry->ConsumerPid, pid);
        Volatile.Write(ref Entry->Flags, (pid != 0 ? QueueEntry.FlagAttached : 0) | (stuck ? QueueEntry.FlagStuck : 0) | (IsInternal ? QueueEntry.FlagInternal : 0));
    }
}
