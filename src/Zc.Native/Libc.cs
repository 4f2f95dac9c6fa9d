using System.Runtime.InteropServices;

namespace ZcFlow.Native;

/// <summary>
/// The libc calls ZcFlow makes, and nothing else: shared memory (memfd, seals), mappings,
/// unix sockets that carry file descriptors, locks, CPU affinity and futexes. Every call sets
/// the last P/Invoke error; <see cref="ErrnoException"/> turns a failure into an exception
/// carrying errno and its text. Constants are the values of x86-64 and arm64, which agree on
/// all of them; the one that does not (the futex syscall number) is chosen per architecture,
/// and any other architecture is refused when this class is first used.
/// </summary>
internal static unsafe partial class Libc
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
    public const int PROT_NONE = 0x0;
    public const int MAP_SHARED = 0x01;
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_ANONYMOUS = 0x20;
    public const int MAP_NORESERVE = 0x4000;
    public const int MAP_FIXED = 0x10;
    public const int MAP_POPULATE = 0x08000;
    public const int MADV_WILLNEED = 3;
    public const int MADV_HUGEPAGE = 14;
    public const int MADV_POPULATE_READ = 22;   // Linux 5.14
    public const int MADV_DONTDUMP = 16;
    public static readonly nint MAP_FAILED = -1;

    // linux/memfd.h
    public const uint MFD_CLOEXEC = 0x1;
    public const uint MFD_ALLOW_SEALING = 0x2;
    public const uint MFD_HUGETLB = 0x4;
    public const uint MFD_HUGE_2MB = 21u << 26;

    // fcntl.h: file seals
    public const int F_ADD_SEALS = 1033;
    public const int F_GET_SEALS = 1034;
    public const int F_SEAL_SEAL = 0x1;
    public const int F_SEAL_SHRINK = 0x2;
    public const int F_SEAL_GROW = 0x4;

    // sys/file.h
    public const int LOCK_EX = 2;
    public const int LOCK_NB = 4;

    // sys/socket.h, linux/un.h
    public const int AF_UNIX = 1;
    public const int SOCK_SEQPACKET = 5;
    public const int SOCK_NONBLOCK = 0x800;
    public const int SCM_RIGHTS = 1;
    public const int SO_PEERCRED = 17;
    public const int MSG_NOSIGNAL = 0x4000;
    public const int MSG_CMSG_CLOEXEC = 0x40000000;

    // poll.h (POLLIN is with the packet socket calls)
    public const short POLLERR = 0x8;
    public const short POLLHUP = 0x10;

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
    public const int EBADF = 9;
    public const int EADDRINUSE = 98;
    public const int ECONNREFUSED = 111;
    public const int EWOULDBLOCK = EAGAIN;

    [LibraryImport(Lib, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags, uint mode);

    [LibraryImport(Lib, EntryPoint = "memfd_create", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int MemfdCreate(string name, uint flags);

    /// <summary><c>fcntl(fd, cmd, arg)</c> with an integer argument (seals).</summary>
    [LibraryImport(Lib, EntryPoint = "fcntl", SetLastError = true)]
    public static partial int Fcntl(int fd, int cmd, int arg);

    [LibraryImport(Lib, EntryPoint = "flock", SetLastError = true)]
    public static partial int Flock(int fd, int operation);

    public const int SHUT_RDWR = 2;

    [LibraryImport(Lib, EntryPoint = "shutdown", SetLastError = true)]
    public static partial int Shutdown(int fd, int how);

    [LibraryImport(Lib, EntryPoint = "listen", SetLastError = true)]
    public static partial int Listen(int fd, int backlog);

    [LibraryImport(Lib, EntryPoint = "accept4", SetLastError = true)]
    public static partial int Accept4(int fd, nint address, nint length, int flags);

    [LibraryImport(Lib, EntryPoint = "connect", SetLastError = true)]
    public static partial int Connect(int fd, SockaddrUn* address, int length);

    [LibraryImport(Lib, EntryPoint = "sendmsg", SetLastError = true)]
    public static partial nint SendMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport(Lib, EntryPoint = "recvmsg", SetLastError = true)]
    public static partial nint RecvMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport(Lib, EntryPoint = "chown", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Chown(string path, int owner, int group);

    [LibraryImport(Lib, EntryPoint = "chmod", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Chmod(string path, uint mode);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int Ftruncate(int fd, long length);

    public const int FALLOC_FL_KEEP_SIZE = 0x01;
    public const int FALLOC_FL_PUNCH_HOLE = 0x02;

    [LibraryImport(Lib, EntryPoint = "fallocate", SetLastError = true)]
    public static partial int Fallocate(int fd, int mode, long offset, long length);

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

    public const int CLOCK_REALTIME = 0, CLOCK_THREAD_CPUTIME_ID = 3;

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


    // ---- wake-ups: a pipe whose read end a sleeping consumer polls ----

    public const int O_NONBLOCK = 0x800;

    [LibraryImport(Lib, EntryPoint = "pipe2", SetLastError = true)]
    public static partial int Pipe2(int* fds, int flags);

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport(Lib, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buffer, nuint count);

    // sys/eventfd.h and sys/epoll.h: one descriptor a consumer's event loop waits on for two things
    public const int EFD_NONBLOCK = 0x800, EFD_CLOEXEC = 0x80000;
    public const int EPOLL_CLOEXEC = 0x80000, EPOLL_CTL_ADD = 1;
    public const uint EPOLLIN = 0x1;

    [LibraryImport(Lib, EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initial, int flags);

    [LibraryImport(Lib, EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int EpollCreate1(int flags);

    [LibraryImport(Lib, EntryPoint = "epoll_ctl", SetLastError = true)]
    public static partial int EpollCtl(int epoll, int operation, int fd, EpollEvent* ev);

    // ---- daemons: a session of their own, standard streams elsewhere, an unprivileged user ----

    [LibraryImport(Lib, EntryPoint = "setsid", SetLastError = true)]
    public static partial int SetSid();

    [LibraryImport(Lib, EntryPoint = "dup2", SetLastError = true)]
    public static partial int Dup2(int oldFd, int newFd);

    /// <summary>glibc's wrappers change the credentials of every thread of the process, as POSIX says.</summary>
    [LibraryImport(Lib, EntryPoint = "setuid", SetLastError = true)]
    public static partial int SetUid(uint uid);

    [LibraryImport(Lib, EntryPoint = "setgid", SetLastError = true)]
    public static partial int SetGid(uint gid);

    [LibraryImport(Lib, EntryPoint = "initgroups", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int InitGroups(string user, uint gid);

    [LibraryImport(Lib, EntryPoint = "geteuid")]
    public static partial uint GetEuid();

    [LibraryImport(Lib, EntryPoint = "getpwnam", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial nint GetPwNam(string name);

    /// <summary>The user id and group id of <paramref name="user"/>, or null when there is no such user.</summary>
    public static unsafe (uint Uid, uint Gid)? LookUpUser(string user)
    {
        // struct passwd: pw_name, pw_passwd (pointers), then pw_uid and pw_gid (32 bits each).
        nint pw = GetPwNam(user);
        if (pw == 0) return null;
        uint* ids = (uint*)((byte*)pw + 2 * sizeof(nint));
        return (ids[0], ids[1]);
    }
}
