using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ZcFlow.Native;

/* time.h: struct timespec */
[StructLayout(LayoutKind.Sequential)]
public struct Timespec
{
    public long Seconds;
    public long Nanoseconds;

    public static Timespec FromMilliseconds(int ms) => new() { Seconds = ms / 1000, Nanoseconds = ms % 1000 * 1_000_000L };
}

/* sched.h: cpu_set_t (1024 CPUs) */
[StructLayout(LayoutKind.Sequential)]
public struct CpuSet
{
    public Bits Mask;

    [InlineArray(16)]
    public struct Bits { private ulong _word; }

    public void Add(int cpu) => Mask[cpu / 64] |= 1UL << (cpu % 64);

    public readonly bool Contains(int cpu) => (Mask[cpu / 64] & (1UL << (cpu % 64))) != 0;

    public const int Capacity = 1024;
}

/* asm-generic/stat.h as seen through glibc on x86-64: struct stat (144 bytes) */
[StructLayout(LayoutKind.Explicit, Size = 144)]
public struct Stat
{
    [FieldOffset(0)] public ulong Dev;
    [FieldOffset(8)] public ulong Ino;
    [FieldOffset(16)] public ulong Nlink;
    [FieldOffset(24)] public uint Mode;
    [FieldOffset(28)] public uint Uid;
    [FieldOffset(32)] public uint Gid;
    [FieldOffset(48)] public long Size;
}
