using System.Runtime.InteropServices;

namespace ZcFlow.Memory;

/// <summary>
/// The layout of a cluster arena, the one place its constants live. Everything in the arena
/// is named by offsets from its start, never by pointers, because every process maps it at
/// a different address.
/// <code>
/// [0, 4 KiB)          ArenaHeader
/// [4 KiB, 8 KiB)      pool directory:  MaxPools  x PoolEntry  (64 B)
/// [8 KiB, 12 KiB)     queue directory: MaxQueues x QueueEntry (64 B)
/// [12 KiB, 20 KiB)    device directory: MaxDevices x DeviceEntry (128 B), names and counters for the listing
/// [64 KiB, ...)       buffers: BufferCount x BufferStride, each a 64-byte BufferHeader then data
/// [..., TotalSize)    queue area: two rings per queue (forward, recycle), each RingControl then slots
/// </code>
/// </summary>
public static class ArenaLayout
{
    public const ulong Magic = 0x3130_574F_4C46_435A; // "ZCFLOW01" read as little-endian bytes
    public const uint Version = 2;

    public const int HeaderSize = 4096;
    public const int MaxPools = 64;
    /// <summary>A buffer's holders are a 64-bit mask of queues, so a cluster has at most 64 queues.</summary>
    public const int MaxQueues = 64;
    public const int EntrySize = 64;
    public const ulong PoolDirectoryOffset = HeaderSize;
    public const ulong QueueDirectoryOffset = PoolDirectoryOffset + MaxPools * EntrySize;
    public const int MaxDevices = 64;
    public const int DeviceEntrySize = 128;
    public const ulong DeviceDirectoryOffset = QueueDirectoryOffset + MaxQueues * EntrySize;
    public const ulong BuffersOffset = 64 * 1024;

    /// <summary>Padding unit: two cache lines, which covers the adjacent-line prefetcher.</summary>
    public const int CacheLinePair = 128;

    public const int BufferHeaderSize = 64;
    public const int BufferAlignment = 64;
    public const int RingControlSize = 3 * CacheLinePair;

    public const ulong HugePageSize = 2 * 1024 * 1024;
    public const ulong PageSize = 4096;

    public static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) / alignment * alignment;

    /// <summary>Bytes between the starts of two consecutive buffers holding <paramref name="dataCapacity"/> bytes of data.</summary>
    public static int BufferStride(int dataCapacity) => (int)AlignUp((ulong)(BufferHeaderSize + dataCapacity), BufferAlignment);

    /// <summary>Bytes of one ring (control block and slots) of <paramref name="capacity"/> 32-bit slots.</summary>
    public static ulong RingSize(uint capacity) => AlignUp(RingControlSize + 4UL * capacity, CacheLinePair);
}

/// <summary>The first 4 KiB of an arena. Written by the owner; read and checked by anyone who attaches.</summary>
[StructLayout(LayoutKind.Explicit, Size = ArenaLayout.HeaderSize)]
public struct ArenaHeader
{
    [FieldOffset(0)] public ulong Magic;
    [FieldOffset(8)] public uint Version;
    [FieldOffset(12)] public uint HeaderSize;
    [FieldOffset(16)] public uint ClusterId;
    [FieldOffset(20)] public int OwnerPid;
    /// <summary>Random per creation: a consumer that sees it change knows the owner restarted.</summary>
    [FieldOffset(24)] public ulong Generation;
    [FieldOffset(32)] public long StartTimeUnixNs;
    [FieldOffset(40)] public ulong TotalSize;
    [FieldOffset(48)] public ulong BuffersOffset;
    [FieldOffset(56)] public uint BufferStride;
    [FieldOffset(60)] public uint BufferCapacity;
    [FieldOffset(64)] public uint BufferCount;
    /// <summary>Buffers already given to pools; pools are carved from the front.</summary>
    [FieldOffset(68)] public uint BuffersAssigned;
    [FieldOffset(72)] public uint PoolCount;
    [FieldOffset(76)] public uint QueueCount;
    [FieldOffset(80)] public ulong QueueAreaOffset;
    [FieldOffset(88)] public ulong QueueAreaSize;
    [FieldOffset(96)] public ulong QueueAreaUsed;
    /// <summary>Slots of every recycle ring: a power of two no smaller than BufferCount, so a recycle ring is never full.</summary>
    [FieldOffset(104)] public uint RecycleCapacity;
    [FieldOffset(108)] public uint Flags;
    /// <summary><see cref="Running"/> while the owner serves the cluster, <see cref="Closed"/> once it has shut it down.</summary>
    [FieldOffset(112)] public uint State;
    /// <summary>Entries in the device directory.</summary>
    [FieldOffset(116)] public uint DeviceCount;

    public const uint FlagHugePages = 1;
    public const uint Running = 1;
    public const uint Closed = 2;
}

/// <summary>A pool's entry in the directory: the buffers [FirstBuffer, FirstBuffer + Count).</summary>
[StructLayout(LayoutKind.Explicit, Size = ArenaLayout.EntrySize)]
public struct PoolEntry
{
    [FieldOffset(0)] public uint State;
    [FieldOffset(4)] public uint FirstBuffer;
    [FieldOffset(8)] public uint Count;

    public const uint Ready = 1;
}

/// <summary>A queue's entry in the directory: where its two rings are and what it is for.</summary>
[StructLayout(LayoutKind.Explicit, Size = ArenaLayout.EntrySize)]
public struct QueueEntry
{
    [FieldOffset(0)] public uint State;
    [FieldOffset(4)] public uint Role;
    [FieldOffset(8)] public uint Capacity;
    [FieldOffset(12)] public uint RecycleCapacity;
    [FieldOffset(16)] public ulong ForwardOffset;
    [FieldOffset(24)] public ulong RecycleOffset;
    /// <summary>
    /// The consumer attached from another process: 0 when none. A consumer claims it with a
    /// compare-and-swap from 0 to its pid and, leaving, swaps its pid for its negation; only the
    /// owner sets it back to 0, after it has taken back what that consumer held.
    /// </summary>
    [FieldOffset(32)] public int ConsumerPid;

    public const uint Ready = 1;
}

/// <summary>
/// A device's entry in the directory: its name (UTF-8, cut to fit) and its counters, which the
/// owner writes from time to time so that the listing can show them. Names say what the counters are.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = ArenaLayout.DeviceEntrySize)]
public unsafe struct DeviceEntry
{
    public const int MaxName = 56;

    [FieldOffset(0)] public uint State;
    [FieldOffset(4)] public uint NameLength;
    [FieldOffset(8)] public fixed byte Name[MaxName];
    [FieldOffset(64)] public ulong Received;
    [FieldOffset(72)] public ulong Bytes;
    [FieldOffset(80)] public ulong DroppedNoBuffer;
    [FieldOffset(88)] public ulong DroppedKernel;
    [FieldOffset(96)] public ulong Sent;
    [FieldOffset(104)] public ulong SendFailed;

    public const uint Ready = 1;
}

/// <summary>
/// The shared part of one SPSC ring. Each 128-byte block has a single writer:
/// the consumer owns the first, the producer the second; the third holds the
/// futex word a passive consumer sleeps on.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = ArenaLayout.RingControlSize)]
public struct RingControl
{
    // consumer-written
    [FieldOffset(0)] public ulong Head;
    [FieldOffset(8)] public ulong ConsumerErrors;

    // producer-written
    [FieldOffset(128)] public ulong Tail;
    [FieldOffset(136)] public ulong Dropped;
    [FieldOffset(144)] public ulong ProducerErrors;

    // wake-up: the consumer sets Waiters before it sleeps on WakeSeq; the producer bumps WakeSeq to wake it
    [FieldOffset(256)] public uint Waiters;
    [FieldOffset(260)] public uint WakeSeq;
}

/// <summary>The metadata in front of every packet buffer, PF_RING's <c>pfring_zc_pkt_buff</c> header.</summary>
[StructLayout(LayoutKind.Explicit, Size = ArenaLayout.BufferHeaderSize)]
public struct BufferHeader
{
    [FieldOffset(0)] public uint Length;
    [FieldOffset(4)] public uint Hash;
    [FieldOffset(8)] public long TimestampNs;
    [FieldOffset(16)] public uint WireLength;
    [FieldOffset(20)] public uint DeviceIndex;
    [FieldOffset(24)] public uint Flags;
}
