using System.Diagnostics;
using System.Runtime.InteropServices;
using ZcFlow.Memory;
using ZcFlow.Native;

namespace ZcFlow.Ipc;

/// <summary>
/// A consumer's watch on the owner of the cluster it attached to. Checked by an attached
/// queue when it finds nothing to receive, at most every 100 ms: a closed cluster, a dead
/// owner or a new arena file at the same path (a restart) becomes a <see cref="ClusterGoneException"/>
/// instead of a consumer that waits forever on a mapping nobody writes.
/// </summary>
internal sealed unsafe class OwnerWatch
{
    private static readonly long Period = Stopwatch.Frequency / 10;

    private readonly ArenaHeader* _header;
    private readonly string _path;
    private readonly ulong _inode;
    private readonly int _ownerPid;
    private readonly uint _clusterId;
    private long _next;

    public OwnerWatch(ArenaHeader* header, string path, uint clusterId)
    {
        _header = header;
        _path = path;
        _clusterId = clusterId;
        _ownerPid = header->OwnerPid;
        _inode = Libc.StatPath(path, out Stat st) == 0 ? st.Ino : 0;
    }

    /// <summary>Throws <see cref="ClusterGoneException"/> when the owner is gone; cheap when it is not time to look.</summary>
    public void Check()
    {
        long now = Stopwatch.GetTimestamp();
        if (now < _next) return;
        _next = now + Period;
        CheckNow();
    }

    public void CheckNow()
    {
        bool replaced = Libc.StatPath(_path, out Stat st) == 0 && st.Ino != _inode;
        if (replaced)
            throw Gone(true, $"cluster {_clusterId} was restarted: a new owner created it again; attach again");
        if (Volatile.Read(ref _header->State) == ArenaHeader.Closed)
            throw Gone(false, $"cluster {_clusterId} was shut down by its owner (pid {_ownerPid})");
        if (!Processes.IsAlive(_ownerPid))
            throw Gone(false, $"cluster {_clusterId} is gone: its owner (pid {_ownerPid}) exited without closing it");
        if (Libc.StatPath(_path, out _) != 0 && Marshal.GetLastPInvokeError() == Libc.ENOENT)
            throw Gone(false, $"cluster {_clusterId} is gone: its arena file {_path} was removed");
    }

    private ClusterGoneException Gone(bool restarted, string message) => new(_clusterId, restarted, message);
}
