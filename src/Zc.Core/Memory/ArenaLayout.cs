using System.Runtime.InteropServices;

namespace ZcFlow.Memory;

/// <summary>
/// The layout of a cluster's shared memory, the one place its constants live. Everything in it is
/// named by offsets, never by pointers, because every process maps it at a different address.
///
/// A cluster is several pieces of memory, so that each process can be given just what it needs:
/// <code>
/// cluster memory (consumers and ingress applications map it read-only; the owner alone writes it)
///   [0, 4 KiB)          ArenaHeader
///   [4 KiB, 8 KiB)      pool directory:   MaxPools   x PoolEntry   (64 B)
///   [8 KiB, 16 KiB)     queue directory:  MaxQueues  x QueueEntry  (128 B), each queue's counters as the owner keeps them
///   [16 KiB, 24 KiB)    device directory: MaxDevices x DeviceEntry (128 B), names and counters for the listing
///   [64 KiB, ...)       buffers: BufferCount x BufferStride, each a 64-byte BufferHeader then data; whole pages of them,
///                       an ingress queue's spares, are memory of their own mapped in their place (the cluster memory
///                       has a hole there), read-write for that queue's application alone
/// queue memory, one piece per queue (its consumer maps it read-write; nobody else gets it)
///   [0, ...)            forward ring: RingControl then Capacity slots
///   [..., QueueSize)    recycle ring: RingControl then RecycleCapacity slots
/// </code>
/// </summary>
internal static class ArenaLayout
{
    public const ulong Magic = 0x3130_574F_4C46_435A; // "ZCFLOW01" read as little-endian bytes
    public const uint Version = 5;

    public const int HeaderSize = 4096;
    public const int MaxPools = 64;
    /// <summary>A buffer's holders are a 64-bit mask of queues, so a cluster has at most 64 queues.</summary>
    public const int MaxQueues = 64;
    public const int EntrySize = 64;
    public const int QueueEntrySize = 128;
    public const ulong PoolDirectoryOffset = HeaderSize;
    public const ulong QueueDirectoryOffset = PoolDirectoryOffset + MaxPools * EntrySize;
    public const int MaxDevices = 64;
    public const int DeviceEntrySize = 128;
    public const ulong DeviceDirectoryOffset = QueueDirectoryOffset + MaxQueues * QueueEntrySize;
    public const ulong BuffersOffset = 64 * 1024;

    /// <summary>
    /// Bytes of the header and the three directories: what the owner keeps a record of in its own memory and copies into
    /// the cluster memory for others to read, putting it back whenever it finds it changed.
    /// </summary>
    public const int DirectoriesSize = (int)DeviceDirectoryOffset + MaxDevices * DeviceEntrySize;

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

    /// <summary>Bytes of a queue's memory: its forward ring, then its recycle ring, in whole pages.</summary>
    public static ulong QueueSize(uint capacity, uint recycleCapacity) => AlignUp(RingSize(capacity) + RingSize(recycleCapacity), PageSize);

    /// <summary>Bytes of the cluster memory for <paramref name="count"/> buffers of <paramref name="stride"/> bytes.</summary>
    public static ulong ClusterSize(uint stride, uint count) => BuffersOffset + AlignUp((ulong)stride * count, PageSize);
}

/// <summary>
/// The first 4 KiB of the cluster memory: a copy of the owner's record, for the listing to read. Nobody builds anything on
/// it: a process that attaches has the layout from the owner's reply over the socket.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = ArenaLayout.HeaderSize)]
internal struct ArenaHeader
{
    [FieldOffset(0)] public ulong Magic;
    [FieldOffset(8)] public uint Version;
    [FieldOffset(12)] public uint HeaderSize;
    [FieldOffset(16)] public uint ClusterId;
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
    /// <summary>Slots of every recycle ring: a power of two no smaller than BufferCount, so a recycle ring is never full.</summary>
    [FieldOffset(104)] public uint RecycleCapacity;
    [FieldOffset(108)] public uint Flags;
    /// <summary>Entries in the device directory.</summary>
    [FieldOffset(116)] public uint DeviceCount;
    /// <summary>Times the owner found the header or a directory changed by someone else and put its own record back.</summary>
    [FieldOffset(120)] public ulong Repairs;

    public const uint FlagHugePages = 1;
}

/// <summary>A pool's entry in the directory: the buffers [FirstBuffer, FirstBuffer + Count), and how many are free.</summary>
[StructLayout(LayoutKind.Explicit, Size = ArenaLayout.EntrySize)]
internal struct PoolEntry
{
    [FieldOffset(0)] public uint State;
    [FieldOffset(4)] public uint FirstBuffer;
    [FieldOffset(8)] public uint Count;
    /// <summary>Buffers in the pool's free list when its thread last looked after its consumers.</summary>
    [FieldOffset(12)] public uint Free;

    public const uint Ready = 1;
}

/// <summary>
/// A queue's entry in the directory: what it is and its counters, as the owner keeps them in its
/// own memory and copies them here every tenth of a second for the listing. Nobody but the owner
/// can write it, so what it says of a queue is what the owner saw, whatever that queue's consumer did.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = ArenaLayout.QueueEntrySize)]
internal struct QueueEntry
{
    [FieldOffset(0)] public uint State;
    [FieldOffset(4)] public uint Role;
    [FieldOffset(8)] public uint Capacity;
    /// <summary>The attached consumer's process id as the owner sees it (from its socket), 0 when none.</summary>
    [FieldOffset(12)] public int ConsumerPid;
    [FieldOffset(16)] public ulong Sent;
    [FieldOffset(24)] public ulong Received;
    [FieldOffset(32)] public ulong Dropped;
    [FieldOffset(40)] public ulong Errors;
    /// <summary>Buffers the queue holds: queued, or received and not yet released.</summary>
    [FieldOffset(48)] public uint Held;
    /// <summary>The most it may hold at once.</summary>
    [FieldOffset(52)] public uint Quota;
    [FieldOffset(56)] public uint Flags;

    public const uint Ready = 1;
    public const uint FlagAttached = 1;
    /// <summary>Its consumer has left the queue without room for a burst and taken or released nothing for a second.</summary>
    public const uint FlagStuck = 2;

    /// <summary>The queue carries packets between two stages of the owner's graph: no consumer may attach to it.</summary>
    public const uint FlagInternal = 4;
}

/// <summary>
/// A device's entry in the directory: its name (UTF-8, cut to fit) and its counters, which the
/// owner writes from time to time so that the listing can show them. Names say what the counters are.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = ArenaLayout.DeviceEntrySize)]
internal unsafe struct DeviceEntry
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
    [FieldOffset(112)] public ulong RingBytes;       // the kernel ring it reads, 0 for none
    [FieldOffset(120)] public int FanoutGroup;       // the AF_PACKET fanout group it is in, -1 for none
    [FieldOffset(124)] public int FanoutMode;        // the group's PACKET_FANOUT_* type

    public const uint Ready = 1;
}

/// <summary>
/// The shared part of one SPSC ring. Each 128-byte block has a single writer:
/// the consumer owns the first, the producer the second; the third holds the
/// word a passive consumer sets before it sleeps.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = ArenaLayout.RingControlSize)]
internal struct RingControl
{
    // consumer-written
    [FieldOffset(0)] public ulong Head;
    [FieldOffset(8)] public ulong ConsumerErrors;

    // producer-written
    [FieldOffset(128)] public ulong Tail;
    [FieldOffset(136)] public ulong Dropped;
    [FieldOffset(144)] public ulong ProducerErrors;

    // wake-up: the consumer sets Waiters before it sleeps on the queue's pipe; the producer clears it and writes the pipe
    [FieldOffset(256)] public uint Waiters;
}

/// <summary>The metadata in front of every packet buffer, PF_RING's <c>pfring_zc_pkt_buff</c> header.</summary>
[StructLayout(LayoutKind.Explicit, Size = ArenaLayout.BufferHeaderSize)]
internal struct BufferHeader
{
    [FieldOffset(0)] public uint Length;
    [FieldOffset(4)] public uint Hash;
    [FieldOffset(8)] public long TimestampNs;
    [FieldOffset(16)] public uint WireLength;
    [FieldOffset(20)] public uint DeviceIndex;
    [FieldOffset(24)] public uint Flags;
    [FieldOffset(28)] public uint LinkType;
}
