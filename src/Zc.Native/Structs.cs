using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ZcFlow.Native;

/* time.h: struct timespec */
[StructLayout(LayoutKind.Sequential)]
internal struct Timespec
{
    public long Seconds;
    public long Nanoseconds;

    public static Timespec FromNanoseconds(long ns) => new() { Seconds = ns / 1_000_000_000, Nanoseconds = ns % 1_000_000_000 };
}

/* sched.h: cpu_set_t (1024 CPUs) */
[StructLayout(LayoutKind.Sequential)]
internal struct CpuSet
{
    public Bits Mask;

    [InlineArray(16)]
    public struct Bits { private ulong _word; }

    public void Add(int cpu) => Mask[cpu / 64] |= 1UL << (cpu % 64);

    public readonly bool Contains(int cpu) => (Mask[cpu / 64] & (1UL << (cpu % 64))) != 0;

    public const int Capacity = 1024;
}

/*
 * struct stat as glibc fills it: 144 bytes on x86-64 (asm/stat.h), 128 on arm64 (asm-generic/stat.h).
 * The two agree on the fields declared here (dev, inode, size); they differ on mode, nlink and the
 * ids, which ZcFlow does not read. Sized for the larger.
 */
[StructLayout(LayoutKind.Explicit, Size = 144)]
internal struct Stat
{
    [FieldOffset(0)] public ulong Dev;
    [FieldOffset(8)] public ulong Ino;
    [FieldOffset(48)] public long Size;
}

/* linux/un.h: struct sockaddr_un */
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SockaddrUn
{
    public const int PathCapacity = 108;
    public ushort Family;
    public fixed byte Path[PathCapacity];
}

/* bits/socket.h: struct msghdr (LP64) */
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MsgHdr
{
    public void* Name;
    public int NameLength;
    public IoVec* Iov;
    public nuint IovLength;
    public void* Control;
    public nuint ControlLength;
    public int Flags;
}

/* bits/types/struct_iovec.h: struct iovec */
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IoVec
{
    public void* Base;
    public nuint Length;
}

/* bits/socket.h: struct cmsghdr (LP64), followed by its data at offset 16 */
[StructLayout(LayoutKind.Sequential)]
internal struct CmsgHdr
{
    public nuint Length;
    public int Level;
    public int Type;
}

/* bits/socket.h: struct ucred, what SO_PEERCRED returns (pid as seen from the caller's PID namespace) */
[StructLayout(LayoutKind.Sequential)]
internal struct UCred
{
    public int Pid;
    public uint Uid;
    public uint Gid;
}

/* sys/epoll.h: struct epoll_event as x86-64 packs it (12 bytes); ZcFlow never reads Data back, so on arm64 only its value differs */
[StructLayout(LayoutKind.Sequential, Pack = 4)]
internal struct EpollEvent
{
    public uint Events;
    public ulong Data;
}
