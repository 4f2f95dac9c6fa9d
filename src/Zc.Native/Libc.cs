using System.Runtime.InteropServices;

namespace ZcFlow.Native;

/// <summary>
/// The libc calls ZcFlow makes, and nothing else: shared memory, mappings, CPU affinity
/// and futexes. Every call sets the last P/Invoke error; <see cref="ErrnoException"/>
/// turns a failure into an exception carrying errno and its text.
/// </summary>
public static unsafe partial class Libc
{
    private const string Lib = "libc";

    // fcntl.h
    public const int O_RDONLY = 0x0;
    public const int O_RDWR = 0x2;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_CLOEXEC = 0x80000;

    // sys/mman.h
    public const int PROT_READ = 0x1;
    public const int PROT_WRITE = 0x2;
    public const int MAP_SHARED = 0x01;
    public const int MAP_POPULATE = 0x08000;
    public const int MADV_HUGEPAGE = 14;
    public const int MADV_DONTDUMP = 16;
    public static readonly nint MAP_FAILED = -1;

    // linux/futex.h (shared, not FUTEX_PRIVATE: waiters and wakers may be in different processes)
    public const int FUTEX_WAIT = 0;
    public const int FUTEX_WAKE = 1;

    // asm/unistd_64.h
    private const long SYS_futex = 202;

    // errno.h
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int ESRCH = 3;
    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int ENOMEM = 12;
    public const int EACCES = 13;
    public const int EEXIST = 17;
    public const int EINVAL = 22;
    public const int ETIMEDOUT = 110;

    [LibraryImport(Lib, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags, uint mode);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int Ftruncate(int fd, long length);

    [LibraryImport(Lib, EntryPoint = "fchmod", SetLastError = true)]
    public static partial int Fchmod(int fd, uint mode);

    [LibraryImport(Lib, EntryPoint = "fchown", SetLastError = true)]
    public static partial int Fchown(int fd, int owner, int group);

    [LibraryImport(Lib, EntryPoint = "fstat", SetLastError = true)]
    public static partial int Fstat(int fd, out Stat stat);

    [LibraryImport(Lib, EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int StatPath(string path, out Stat stat);

    [LibraryImport(Lib, EntryPoint = "unlink", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Unlink(string path);

    public const int CLOCK_THREAD_CPUTIME_ID = 3;

    [LibraryImport(Lib, EntryPoint = "clock_gettime", SetLastError = true)]
    public static partial int ClockGetTime(int clock, out Timespec time);

    [LibraryImport(Lib, EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport(Lib, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint addr, nuint length);

    [LibraryImport(Lib, EntryPoint = "madvise", SetLastError = true)]
    public static partial int Madvise(nint addr, nuint length, int advice);

    [LibraryImport(Lib, EntryPoint = "mlock", SetLastError = true)]
    public static partial int Mlock(nint addr, nuint length);

    /// <summary><c>pid</c> 0 is the calling thread; <paramref name="mask"/> is a <c>cpu_set_t</c>.</summary>
    [LibraryImport(Lib, EntryPoint = "sched_setaffinity", SetLastError = true)]
    public static partial int SchedSetAffinity(int pid, nuint cpusetsize, CpuSet* mask);

    [LibraryImport(Lib, EntryPoint = "sched_getaffinity", SetLastError = true)]
    public static partial int SchedGetAffinity(int pid, nuint cpusetsize, CpuSet* mask);

    [LibraryImport(Lib, EntryPoint = "sched_getcpu", SetLastError = true)]
    public static partial int SchedGetCpu();

    [LibraryImport(Lib, EntryPoint = "gettid")]
    public static partial int GetTid();

    [LibraryImport(Lib, EntryPoint = "getpid")]
    public static partial int GetPid();

    [LibraryImport(Lib, EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    // glibc's syscall() is variadic; on x86-64 it only moves registers, so a fixed
    // six-long signature is the documented way to reach it from P/Invoke.
    [LibraryImport(Lib, EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, nint a1, long a2, long a3, nint a4, long a5, long a6);

    /// <summary>Sleeps while <c>*word == expected</c>, at most <paramref name="timeout"/> if given.
    /// Returns 0 when woken, -1 with errno EAGAIN (value changed), ETIMEDOUT or EINTR.</summary>
    public static int FutexWait(uint* word, uint expected, Timespec* timeout)
        => (int)Syscall(SYS_futex, (nint)word, FUTEX_WAIT, expected, (nint)timeout, 0, 0);

    /// <summary>Wakes up to <paramref name="count"/> threads (of any process) sleeping on <paramref name="word"/>.</summary>
    public static int FutexWake(uint* word, int count)
        => (int)Syscall(SYS_futex, (nint)word, FUTEX_WAKE, count, 0, 0, 0);
}
