using ZcFlow.Native;

namespace ZcFlow.Memory;

/// <summary>
/// One piece of shared memory: an anonymous file (<c>memfd</c>) and this process's mapping of it.
/// The memory has no name in any directory: other processes get it only as a file descriptor
/// handed over the cluster's socket, and it is gone when the last process that maps it or holds
/// its descriptor is gone, however that process ended.
///
/// The creator seals its size (<c>F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL</c>), so no process
/// holding it can truncate it under another's mapping (which would kill that process with SIGBUS
/// on its next access), grow it, or add seals of its own. A descriptor can be handed out
/// read-only (<see cref="OpenReadOnly"/>): mapped with it, the memory cannot be written at all.
/// </summary>
public sealed unsafe class Arena : IDisposable
{
    private const int Seals = Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW | Libc.F_SEAL_SEAL;

    private readonly SafeMapping _mapping;
    private readonly string _name;
    private SafeFileDescriptor _fd;
    private int _disposed;

    /// <summary>Bytes mapped.</summary>
    public ulong Size { get; }

    /// <summary>True when the memory is 2 MiB hugepages.</summary>
    public bool OnHugePages { get; }

    /// <summary>True when this process may write it.</summary>
    public bool Writable { get; }

    /// <summary>The first byte of the mapping in this process. Never store it in shared memory.</summary>
    public byte* Base => _mapping.Pointer;

    /// <summary>The descriptor of the memory, to hand to another process (read-write).</summary>
    public SafeFileDescriptor Descriptor => _fd;

    private Arena(SafeFileDescriptor fd, SafeMapping mapping, string name, ulong size, bool onHugePages, bool writable)
    {
        _fd = fd;
        _mapping = mapping;
        _name = name;
        Size = size;
        OnHugePages = onHugePages;
        Writable = writable;
    }

    /// <summary>
    /// Creates <paramref name="size"/> bytes (rounded up to the page size) of zeroed shared memory
    /// named <paramref name="name"/> (a label for /proc, not a path), sealed and mapped read-write.
    /// With <paramref name="hugePages"/> it is 2 MiB pages from the kernel's pool, and creation fails
    /// with the way to reserve them when the pool has too few.
    /// </summary>
    public static Arena Create(string name, ulong size, bool hugePages)
    {
        ulong pageSize = hugePages ? ArenaLayout.HugePageSize : ArenaLayout.PageSize;
        size = ArenaLayout.AlignUp(size, pageSize);
        SafeFileDescriptor fd = NewSealedMemory(name, size, hugePages);
        try
        {
            SafeMapping mapping = Map(fd.Fd, name, size, writable: true, hugePages);
            return new Arena(fd, mapping, name, size, hugePages, writable: true);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    // A memfd of `size` bytes, sealed against resizing and further seals.
    private static SafeFileDescriptor NewSealedMemory(string name, ulong size, bool hugePages)
    {
        uint flags = Libc.MFD_CLOEXEC | Libc.MFD_ALLOW_SEALING | (hugePages ? Libc.MFD_HUGETLB | Libc.MFD_HUGE_2MB : 0);
        int raw = Libc.MemfdCreate(name, flags);
        if (raw < 0) throw ErrnoException.FromLastError($"memfd_create of {name}{(hugePages ? " on 2 MiB hugepages" : "")}", hugePages ? HugePages.EnableHint : null);
        var fd = new SafeFileDescriptor(raw);
        if (Libc.Ftruncate(raw, (long)size) != 0)
        {
            var e = ErrnoException.FromLastError($"sizing {name} to {size} bytes", hugePages ? HugePages.EnableHint : "free memory for /dev/shm");
            fd.Dispose();
            throw e;
        }
        if (Libc.Fcntl(raw, Libc.F_ADD_SEALS, Seals) != 0)
        {
            var e = ErrnoException.FromLastError($"sealing {name}");
            fd.Dispose();
            throw e;
        }
        return fd;
    }

    /// <summary>
    /// Maps memory another process created and handed over as <paramref name="fd"/> (taking it):
    /// it must be sealed against resizing and be <paramref name="size"/> bytes, so that this
    /// mapping can never fault. Read-only unless <paramref name="writable"/>.
    /// </summary>
    public static Arena Map(SafeFileDescriptor fd, ulong size, bool writable, bool hugePages, string name)
    {
        try
        {
            if (Libc.Fstat(fd.Fd, out Stat st) != 0) throw ErrnoException.FromLastError($"stat of {name}");
            if ((ulong)st.Size != size) throw new InvalidDataException($"{name} is {st.Size} bytes; its owner said {size}");
            int seals = Libc.Fcntl(fd.Fd, Libc.F_GET_SEALS, 0);
            if (seals < 0 || (seals & (Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW)) != (Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW))
                throw new InvalidDataException($"{name} is not sealed against resizing: it could be cut short under this process");
            SafeMapping mapping = Map(fd.Fd, name, size, writable, hugePages);
            return new Arena(fd, mapping, name, size, hugePages, writable);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    private static SafeMapping Map(int fd, string name, ulong size, bool writable, bool hugePages, nint at = 0)
    {
        int prot = Libc.PROT_READ | (writable ? Libc.PROT_WRITE : 0);
        int flags = Libc.MAP_SHARED | Libc.MAP_POPULATE | (at != 0 ? Libc.MAP_FIXED : 0);
        nint p = Libc.Mmap(at, (nuint)size, prot, flags, fd, 0);
        if (p == Libc.MAP_FAILED)
            throw ErrnoException.FromLastError(
                $"mmap of {size / (1024 * 1024)} MiB {(hugePages ? "of 2 MiB hugepages" : "shared memory")} ({name})",
                hugePages ? HugePages.EnableHint : null);
        // Packet memory has no place in a core dump.
        Libc.Madvise(p, (nuint)size, Libc.MADV_DONTDUMP);
        return new SafeMapping(p, (nuint)size);
    }

    /// <summary>A new descriptor of the same memory that can only be mapped read-only (the caller disposes it).</summary>
    public SafeFileDescriptor OpenReadOnly()
    {
        // Opening the descriptor's /proc entry makes a new open file of the same memory, with the access asked for.
        int fd = Libc.Open($"/proc/self/fd/{_fd.Fd}", Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        if (fd < 0) throw ErrnoException.FromLastError($"reopening {_name} read-only", "/proc must be mounted");
        return new SafeFileDescriptor(fd);
    }

    /// <summary>
    /// The creator only: puts new zeroed memory in place of this one at the same address, so that
    /// whoever was handed the old memory keeps only a copy nobody reads. Not thread-safe: the caller
    /// makes sure nothing else in this process touches the memory meanwhile.
    /// </summary>
    public void Renew()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        SafeFileDescriptor fd = NewSealedMemory(_name, Size, OnHugePages);
        try
        {
            // MAP_FIXED replaces the old mapping in one step: every pointer into it stays valid.
            SafeMapping replaced = Map(fd.Fd, _name, Size, Writable, OnHugePages, (nint)Base);
            replaced.SetHandleAsInvalid(); // the same range as _mapping, which unmaps it
        }
        catch
        {
            fd.Dispose();
            throw;
        }
        SafeFileDescriptor old = _fd;
        _fd = fd;
        old.Dispose();
    }

    /// <summary>Locks the pages in RAM (<c>mlock</c>); hugepages are never swapped and need not be.</summary>
    public void Lock()
    {
        if (Libc.Mlock((nint)Base, (nuint)Size) != 0)
            throw ErrnoException.FromLastError($"mlock of {Size} bytes", "raise 'ulimit -l' or run with CAP_IPC_LOCK");
    }

    /// <summary>A typed reference into the memory at a byte offset already checked by the caller.</summary>
    public ref T At<T>(ulong offset) where T : unmanaged => ref *(T*)(Base + offset);

    /// <summary>Unmaps and closes this process's descriptor. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _mapping.Dispose();
        _fd.Dispose();
    }
}
