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
internal sealed unsafe class Arena : IDisposable
{
    private const int Seals = Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW | Libc.F_SEAL_SEAL;

    private readonly SafeMapping _mapping;
    private readonly string _name;
    private readonly SafeFileDescriptor[] _pieces;   // a view's: the descriptors of the pieces mapped into it
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

    private Arena(SafeFileDescriptor fd, SafeMapping mapping, string name, ulong size, bool onHugePages, bool writable, SafeFileDescriptor[]? pieces = null)
    {
        _fd = fd;
        _pieces = pieces ?? [];
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
            CheckSealed(fd, size, name);
            SafeMapping mapping = Map(fd.Fd, name, size, writable, hugePages);
            return new Arena(fd, mapping, name, size, hugePages, writable);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>One piece of a cluster's memory that has memory of its own (<see cref="Carve"/>): where it is, and its descriptor.</summary>
    internal readonly record struct Piece(ulong Offset, ulong Length, SafeFileDescriptor Descriptor, bool Writable);

    /// <summary>
    /// Maps, read-only, the first <paramref name="mapped"/> bytes of memory of <paramref name="size"/> bytes that another
    /// process handed over as <paramref name="fd"/> (taking it), with <paramref name="pieces"/> (taken too) in place of
    /// the ranges they cover, each read-only unless it says otherwise: the view a process that attaches has of a cluster
    /// whose owner carved memory of its own for some of its buffers. Every piece must be sealed, of the length the owner
    /// said, page-aligned, and inside the memory after <see cref="ArenaLayout.BuffersOffset"/>, no two overlapping.
    /// </summary>
    internal static Arena MapView(SafeFileDescriptor fd, ulong size, ulong mapped, bool hugePages, string name, IReadOnlyList<Piece> pieces)
    {
        nint reserved = 0;
        ulong page = hugePages ? ArenaLayout.HugePageSize : ArenaLayout.PageSize;
        try
        {
            CheckSealed(fd, size, name);
            if (mapped == 0 || mapped > size || mapped % page != 0) throw new InvalidDataException($"{name}: {mapped} bytes cannot be mapped of {size}");
            ulong at = ArenaLayout.BuffersOffset;
            foreach (Piece piece in pieces)
            {
                CheckSealed(piece.Descriptor, piece.Length, $"{name} at {piece.Offset}");
                if (piece.Offset < at || piece.Offset % page != 0 || piece.Length == 0 || piece.Length % page != 0 || piece.Offset + piece.Length > mapped)
                    throw new InvalidDataException($"{name}: a piece of {piece.Length} bytes at {piece.Offset} does not fit the memory's pages");
                at = piece.Offset + piece.Length;
            }
            // The whole range first, reserved and inaccessible, aligned for the pages; then each part in its place.
            nint p = Libc.Mmap(0, (nuint)(mapped + page), Libc.PROT_NONE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0);
            if (p == Libc.MAP_FAILED) throw ErrnoException.FromLastError($"reserving {mapped} bytes for {name}");
            reserved = p;
            nint start = (nint)ArenaLayout.AlignUp((ulong)p, page);
            if (start != p) Libc.Munmap(p, (nuint)(start - p));
            Libc.Munmap(start + (nint)mapped, (nuint)(page - (ulong)(start - p)));
            reserved = start;
            ulong from = 0;
            foreach (Piece piece in pieces)
            {
                if (piece.Offset > from) Map(fd.Fd, name, piece.Offset - from, writable: false, hugePages, start + (nint)from, (long)from).SetHandleAsInvalid();
                Map(piece.Descriptor.Fd, name, piece.Length, piece.Writable, hugePages, start + (nint)piece.Offset).SetHandleAsInvalid();
                from = piece.Offset + piece.Length;
            }
            if (mapped > from) Map(fd.Fd, name, mapped - from, writable: false, hugePages, start + (nint)from, (long)from).SetHandleAsInvalid();
            return new Arena(fd, new SafeMapping(start, (nuint)mapped), name, mapped, hugePages, writable: false, [.. pieces.Select(x => x.Descriptor)]);
        }
        catch
        {
            if (reserved != 0) Libc.Munmap(reserved, (nuint)mapped);
            fd.Dispose();
            foreach (Piece piece in pieces) piece.Descriptor.Dispose();
            throw;
        }
    }

    private static void CheckSealed(SafeFileDescriptor fd, ulong size, string name)
    {
        if (Libc.Fstat(fd.Fd, out Stat st) != 0) throw ErrnoException.FromLastError($"stat of {name}");
        if ((ulong)st.Size != size) throw new InvalidDataException($"{name} is {st.Size} bytes; its owner said {size}");
        int seals = Libc.Fcntl(fd.Fd, Libc.F_GET_SEALS, 0);
        if (seals < 0 || (seals & (Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW)) != (Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW))
            throw new InvalidDataException($"{name} is not sealed against resizing: it could be cut short under this process");
    }

    /// <summary>
    /// The creator only: gives the page-aligned range [<paramref name="offset"/>, <paramref name="offset"/> +
    /// <paramref name="length"/>) memory of its own, sealed like this one, mapped in its place (this memory's pages there are
    /// given back: nobody maps them again), and returns it. Handed out on its own, it lets a process write these buffers and
    /// no others. Its mapping is part of this one's, and goes with it.
    /// </summary>
    internal Arena Carve(string name, ulong offset, ulong length)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ulong page = OnHugePages ? ArenaLayout.HugePageSize : ArenaLayout.PageSize;
        if (offset < ArenaLayout.BuffersOffset || offset % page != 0 || length == 0 || length % page != 0 || offset + length > Size)
            throw new ArgumentOutOfRangeException(nameof(offset), $"{length} bytes at {offset} are not whole pages of {_name}'s buffers");
        // Given back first, so that on hugepages the new memory can have them.
        if (Libc.Fallocate(_fd.Fd, Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE, (long)offset, (long)length) != 0)
            throw ErrnoException.FromLastError($"giving back {length} bytes of {_name}");
        SafeFileDescriptor fd = NewSealedMemory(name, length, OnHugePages);
        try
        {
            SafeMapping mapping = Map(fd.Fd, name, length, writable: true, OnHugePages, (nint)(Base + offset));
            mapping.SetHandleAsInvalid();   // inside this arena's mapping, which unmaps it
            return new Arena(fd, mapping, name, length, OnHugePages, writable: true);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    private static SafeMapping Map(int fd, string name, ulong size, bool writable, bool hugePages, nint at = 0, long fileOffset = 0)
    {
        int prot = Libc.PROT_READ | (writable ? Libc.PROT_WRITE : 0);
        int flags = Libc.MAP_SHARED | Libc.MAP_POPULATE | (at != 0 ? Libc.MAP_FIXED : 0);
        nint p = Libc.Mmap(at, (nuint)size, prot, flags, fd, fileOffset);
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
        foreach (SafeFileDescriptor piece in _pieces) piece.Dispose();
    }
}
