using ZcFlow.Native;

namespace ZcFlow.Memory;

/// <summary>
/// One file-backed shared mapping: the memory of a cluster. On a hugetlbfs mount it is
/// backed by 2 MiB pages (no TLB misses, never swapped); in <c>/dev/shm</c> by normal pages.
/// Being a file from the start, another process can map the same bytes by path.
/// The creator owns the file: disposing it unmaps and removes the file; disposing an
/// arena that was opened only unmaps.
/// </summary>
public sealed unsafe class Arena : IDisposable
{
    public const string ShmDirectory = "/dev/shm";

    private readonly SafeMapping _mapping;
    private readonly bool _owner;
    private int _disposed;

    /// <summary>The file behind the mapping.</summary>
    public string Path { get; }

    /// <summary>Bytes mapped.</summary>
    public ulong Size { get; }

    /// <summary>True when the arena lives on hugetlbfs.</summary>
    public bool OnHugePages { get; }

    /// <summary>The first byte of the mapping in this process. Never store it in the arena.</summary>
    public byte* Base => _mapping.Pointer;

    private Arena(SafeMapping mapping, string path, ulong size, bool onHugePages, bool owner)
    {
        _mapping = mapping;
        Path = path;
        Size = size;
        OnHugePages = onHugePages;
        _owner = owner;
    }

    /// <summary>
    /// Creates the file <paramref name="path"/> (which must not exist: remove a stale one first)
    /// with <paramref name="size"/> bytes, rounded up to the page size, and maps it shared and
    /// pre-faulted. <paramref name="mode"/> is the file's permission bits; with a
    /// <paramref name="groupId"/> the file is given to that group.
    /// </summary>
    public static Arena CreateNew(string path, ulong size, bool hugePages, uint mode = 0x180 /* 0600 */, int groupId = -1)
    {
        ulong pageSize = hugePages ? ArenaLayout.HugePageSize : ArenaLayout.PageSize;
        size = ArenaLayout.AlignUp(size, pageSize);
        int fd = Libc.Open(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_EXCL | Libc.O_CLOEXEC, mode);
        if (fd < 0) throw ErrnoException.FromLastError($"creating arena file {path}",
            Libc.EEXIST == System.Runtime.InteropServices.Marshal.GetLastPInvokeError() ? "another arena with that name exists" : null);
        using var file = new SafeFileDescriptor(fd);
        try
        {
            // open() applies the umask; fchmod() sets exactly what was asked.
            if (Libc.Fchmod(fd, mode) != 0) throw ErrnoException.FromLastError($"chmod of {path}");
            if (groupId >= 0 && Libc.Fchown(fd, -1, groupId) != 0)
                throw ErrnoException.FromLastError($"giving {path} to group {groupId}", "the process must belong to that group or be root");
            if (Libc.Ftruncate(fd, (long)size) != 0)
                throw ErrnoException.FromLastError($"sizing arena file {path} to {size} bytes",
                    hugePages ? HugePages.EnableHint : "free space in /dev/shm");
            SafeMapping mapping = Map(fd, path, size, hugePages);
            return new Arena(mapping, path, size, hugePages, owner: true);
        }
        catch
        {
            Libc.Unlink(path);
            throw;
        }
    }

    /// <summary>Maps an existing arena file read-write. The caller checks what it finds there.</summary>
    public static Arena Open(string path)
    {
        int fd = Libc.Open(path, Libc.O_RDWR | Libc.O_CLOEXEC, 0);
        if (fd < 0)
        {
            int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            throw new ErrnoException($"opening arena file {path}", errno, errno switch
            {
                Libc.ENOENT => "no cluster with that id is running",
                Libc.EACCES => "the cluster was created owner-only: run as its owner, or have it created with a group you belong to",
                _ => null,
            });
        }
        using var file = new SafeFileDescriptor(fd);
        if (Libc.Fstat(fd, out Stat st) != 0) throw ErrnoException.FromLastError($"stat of {path}");
        if (st.Size < ArenaLayout.HeaderSize) throw new InvalidDataException($"{path} is {st.Size} bytes, too small to be an arena");
        bool huge = !path.StartsWith(ShmDirectory + "/", StringComparison.Ordinal) && HugePages.Mounts().Any(m => path.StartsWith(m + "/", StringComparison.Ordinal));
        SafeMapping mapping = Map(fd, path, (ulong)st.Size, huge);
        return new Arena(mapping, path, (ulong)st.Size, huge, owner: false);
    }

    private static SafeMapping Map(int fd, string path, ulong size, bool hugePages)
    {
        nint p = Libc.Mmap(0, (nuint)size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_POPULATE, fd, 0);
        if (p == Libc.MAP_FAILED)
            throw ErrnoException.FromLastError(
                $"mmap of {size / (1024 * 1024)} MiB {(hugePages ? "of 2 MiB hugepages" : "shared memory")} ({path})",
                hugePages ? HugePages.EnableHint : null);
        // Packet memory has no place in a core dump.
        Libc.Madvise(p, (nuint)size, Libc.MADV_DONTDUMP);
        return new SafeMapping(p, (nuint)size);
    }

    /// <summary>Locks the pages in RAM (<c>mlock</c>); hugetlbfs pages are never swapped and need not be.</summary>
    public void Lock()
    {
        if (Libc.Mlock((nint)Base, (nuint)Size) != 0)
            throw ErrnoException.FromLastError($"mlock of {Size} bytes", "raise 'ulimit -l' or run with CAP_IPC_LOCK");
    }

    /// <summary>A typed reference into the arena at a byte offset already checked by the caller.</summary>
    public ref T At<T>(ulong offset) where T : unmanaged => ref *(T*)(Base + offset);

    /// <summary>Unmaps; the owner also removes the file. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _mapping.Dispose();
        if (_owner) Libc.Unlink(Path);
    }
}
