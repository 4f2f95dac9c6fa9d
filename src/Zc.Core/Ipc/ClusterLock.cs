using System.Runtime.InteropServices;
using ZcFlow.Native;

namespace ZcFlow.Ipc;

/// <summary>
/// The claim of one process on a cluster id: an exclusive <c>flock</c> on <c>/dev/shm/zcflow-&lt;id&gt;.lock</c>,
/// which the kernel drops when its holder dies, so a dead owner never blocks a new one and two
/// live ones cannot both hold it. Whoever holds it may remove the id's socket and lock files;
/// a process that locked a file since removed finds out (the inode changed) and tries again.
/// </summary>
internal sealed class ClusterLock : IDisposable
{
    public const string Directory = "/dev/shm";

    private readonly SafeFileDescriptor _fd;
    private int _disposed;

    private ClusterLock(uint id, SafeFileDescriptor fd)
    {
        Id = id;
        _fd = fd;
    }

    public uint Id { get; }

    public string SocketPath => SocketPathOf(Id);

    public static string SocketPathOf(uint id) => Path.Combine(Directory, ZcCluster.FileName(id) + ".sock");

    public static string LockPathOf(uint id) => Path.Combine(Directory, ZcCluster.FileName(id) + ".lock");

    /// <summary>Takes cluster id <paramref name="id"/>; a live holder is an error naming its pid.</summary>
    public static ClusterLock Acquire(uint id)
        => TryAcquire(id) ?? throw new InvalidOperationException(
            ClusterSocket.PeerPid(id) is int pid and > 0
                ? $"cluster {id} already exists and is owned by running process {pid} ({SocketPathOf(id)}); stop it or pick another cluster id"
                : $"cluster {id} is being created by another process right now; pick another cluster id");

    /// <summary>Takes the id, or returns null when a live process holds it.</summary>
    public static ClusterLock? TryAcquire(uint id)
    {
        string path = LockPathOf(id);
        while (true)
        {
            int raw = Libc.Open(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC, 0x180 /* 0600 */);
            if (raw < 0)
                throw ErrnoException.FromLastError($"opening {path}",
                    Marshal.GetLastPInvokeError() == Libc.EACCES ? "another user holds that cluster id: pick another" : null);
            var fd = new SafeFileDescriptor(raw);
            if (Libc.Flock(raw, Libc.LOCK_EX | Libc.LOCK_NB) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                fd.Dispose();
                if (errno == Libc.EWOULDBLOCK) return null;
                throw new ErrnoException($"locking {path}", errno);
            }
            // The file we locked must still be the one at the path: a holder that was finishing removed it.
            if (Libc.Fstat(raw, out Stat mine) == 0 && Libc.StatPath(path, out Stat there) == 0 && mine.Ino == there.Ino && mine.Dev == there.Dev)
                return new ClusterLock(id, fd);
            fd.Dispose();
        }
    }

    /// <summary>Removes the files of every cluster id whose owner died without removing them (each taken with its lock first).</summary>
    public static void RemoveStale()
    {
        if (!System.IO.Directory.Exists(Directory)) return;
        foreach (string path in System.IO.Directory.EnumerateFiles(Directory, "zcflow-*.lock"))
        {
            string name = Path.GetFileNameWithoutExtension(path);
            if (!uint.TryParse(name.AsSpan("zcflow-".Length), out uint id)) continue;
            try
            {
                TryAcquire(id)?.Dispose();
            }
            catch (ErrnoException)
            {
                // another user's: not ours to clean
            }
        }
    }

    /// <summary>Removes the id's socket and lock files and lets go of the id. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Libc.Unlink(SocketPath);
        Libc.Unlink(LockPathOf(Id));
        _fd.Dispose();
    }
}
