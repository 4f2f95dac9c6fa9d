using System.Diagnostics;
using ZcFlow.Native;

namespace ZcFlow.Ipc;

/// <summary>
/// A consumer's watch on the owner of the cluster it attached to, through the connection it
/// attached on: the owner sends one message when it shuts the cluster down, and the kernel
/// hangs the connection up when the owner dies, however it dies and in whatever PID namespace.
/// Checked by an attached queue when it finds nothing to receive, at most every 100 ms (one
/// <c>poll</c> of the socket), so a consumer learns of the end within a tenth of a second of
/// going idle, instead of waiting forever on memory nobody writes.
/// </summary>
internal sealed class OwnerWatch : IDisposable
{
    private static readonly long Period = Stopwatch.Frequency / 10;

    private readonly SafeFileDescriptor _socket;
    private readonly uint _clusterId;
    private readonly int _ownerPid;
    private long _next;
    private string? _gone;

    public OwnerWatch(SafeFileDescriptor socket, uint clusterId, int ownerPid)
    {
        _socket = socket;
        _clusterId = clusterId;
        _ownerPid = ownerPid;
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
        if (_gone is null && ClusterSocket.WaitReadable(_socket, 0))
        {
            var fds = new List<SafeFileDescriptor>();
            int n = ClusterSocket.Receive(_socket, out AttachReply message, fds, 0);
            foreach (SafeFileDescriptor f in fds) f.Dispose();
            if (n > 0 && message.Magic == AttachReply.ClosingMagic)
                _gone = $"cluster {_clusterId} was shut down by its owner (pid {_ownerPid})";
            else if (n <= 0)
                _gone = $"cluster {_clusterId} is gone: its owner (pid {_ownerPid}) exited without closing it";
        }
        if (_gone is null) return;
        // A new owner serving the same id means a restart: attaching again works now.
        bool restarted = ClusterSocket.PeerPid(_clusterId) is not null;
        throw new ClusterGoneException(_clusterId, restarted,
            restarted ? $"{_gone}; a new owner has created it again: attach again" : _gone);
    }

    public void Dispose() => _socket.Dispose();
}
