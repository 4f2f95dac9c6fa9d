using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ZcFlow.Memory;

namespace ZcFlow.Tests;

/// <summary>The shared-memory layout is a contract between processes: every offset and size is checked here.</summary>
public class LayoutTests
{
    public static TheoryData<Type, string, int> Offsets => new()
    {
        { typeof(ArenaHeader), nameof(ArenaHeader.Magic), 0 },
        { typeof(ArenaHeader), nameof(ArenaHeader.Version), 8 },
        { typeof(ArenaHeader), nameof(ArenaHeader.ClusterId), 16 },
        { typeof(ArenaHeader), nameof(ArenaHeader.Generation), 24 },
        { typeof(ArenaHeader), nameof(ArenaHeader.BuffersOffset), 48 },
        { typeof(ArenaHeader), nameof(ArenaHeader.BufferCount), 64 },
        { typeof(ArenaHeader), nameof(ArenaHeader.QueueCount), 76 },
        { typeof(ArenaHeader), nameof(ArenaHeader.RecycleCapacity), 104 },
        { typeof(ArenaHeader), nameof(ArenaHeader.DeviceCount), 116 },
        { typeof(PoolEntry), nameof(PoolEntry.FirstBuffer), 4 },
        { typeof(PoolEntry), nameof(PoolEntry.Free), 12 },
        { typeof(QueueEntry), nameof(QueueEntry.ConsumerPid), 12 },
        { typeof(QueueEntry), nameof(QueueEntry.Sent), 16 },
        { typeof(QueueEntry), nameof(QueueEntry.Errors), 40 },
        { typeof(QueueEntry), nameof(QueueEntry.Held), 48 },
        { typeof(QueueEntry), nameof(QueueEntry.Flags), 56 },
        { typeof(RingControl), nameof(RingControl.Head), 0 },
        { typeof(RingControl), nameof(RingControl.ConsumerErrors), 8 },
        { typeof(RingControl), nameof(RingControl.Tail), 128 },
        { typeof(RingControl), nameof(RingControl.Dropped), 136 },
        { typeof(RingControl), nameof(RingControl.ProducerErrors), 144 },
        { typeof(RingControl), nameof(RingControl.Waiters), 256 },
        { typeof(BufferHeader), nameof(BufferHeader.Length), 0 },
        { typeof(BufferHeader), nameof(BufferHeader.Hash), 4 },
        { typeof(BufferHeader), nameof(BufferHeader.TimestampNs), 8 },
        { typeof(BufferHeader), nameof(BufferHeader.DeviceIndex), 20 },
        { typeof(BufferHeader), nameof(BufferHeader.Flags), 24 },
    };

    [Theory]
    [MemberData(nameof(Offsets))]
    public void Field_IsAtItsDocumentedOffset(Type type, string field, int offset)
        => Assert.Equal(offset, (int)Marshal.OffsetOf(type, field));

    [Fact]
    public void Structs_HaveTheirDocumentedSizes()
    {
        Assert.Equal(4096, Unsafe.SizeOf<ArenaHeader>());
        Assert.Equal(64, Unsafe.SizeOf<PoolEntry>());
        Assert.Equal(128, Unsafe.SizeOf<QueueEntry>());
        Assert.Equal(384, Unsafe.SizeOf<RingControl>());
        Assert.Equal(64, Unsafe.SizeOf<BufferHeader>());
    }

    [Fact]
    public void RingControl_KeepsEachWritersFieldsOnItsOwnPairOfCacheLines()
    {
        int head = (int)Marshal.OffsetOf<RingControl>(nameof(RingControl.Head));
        int tail = (int)Marshal.OffsetOf<RingControl>(nameof(RingControl.Tail));
        int waiters = (int)Marshal.OffsetOf<RingControl>(nameof(RingControl.Waiters));
        Assert.NotEqual(head / ArenaLayout.CacheLinePair, tail / ArenaLayout.CacheLinePair);
        Assert.NotEqual(tail / ArenaLayout.CacheLinePair, waiters / ArenaLayout.CacheLinePair);
        Assert.NotEqual(head / ArenaLayout.CacheLinePair, waiters / ArenaLayout.CacheLinePair);
    }

    [Fact]
    public void Directories_FitBeforeTheBuffers()
    {
        Assert.True(ArenaLayout.QueueDirectoryOffset + ArenaLayout.MaxQueues * ArenaLayout.QueueEntrySize <= ArenaLayout.DeviceDirectoryOffset);
        Assert.True(ArenaLayout.DeviceDirectoryOffset + ArenaLayout.MaxDevices * ArenaLayout.DeviceEntrySize <= ArenaLayout.BuffersOffset);
        Assert.Equal(0UL, ArenaLayout.BuffersOffset % ArenaLayout.PageSize);
    }

    /// <summary>The structs the kernel fills: their layout must be the one of the architecture this runs on.</summary>
    [Fact]
    public void NativeStructs_HaveTheLayoutOfThisArchitecture()
    {
        Assert.True(RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64, $"unsupported architecture {RuntimeInformation.ProcessArchitecture}");
        Assert.Equal(56, Unsafe.SizeOf<ZcFlow.Native.MsgHdr>());
        Assert.Equal(16, Unsafe.SizeOf<ZcFlow.Native.CmsgHdr>());
        Assert.Equal(16, Unsafe.SizeOf<ZcFlow.Native.IoVec>());
        Assert.Equal(12, Unsafe.SizeOf<ZcFlow.Native.UCred>());
        Assert.Equal(110, Unsafe.SizeOf<ZcFlow.Native.SockaddrUn>());
        Assert.Equal(8, Unsafe.SizeOf<ZcFlow.Native.PollFd>());
        Assert.Equal(48, (int)Marshal.OffsetOf<ZcFlow.Native.Stat>(nameof(ZcFlow.Native.Stat.Size)));
        Assert.Equal(40, (int)Marshal.OffsetOf<ZcFlow.Native.MsgHdr>(nameof(ZcFlow.Native.MsgHdr.ControlLength)));
    }

    [Theory]
    [InlineData(64, 128)]
    [InlineData(1536, 1600)]
    [InlineData(9000, 9088)]
    public void BufferStride_IsHeaderPlusDataRoundedToACacheLine(int capacity, int stride)
        => Assert.Equal(stride, ArenaLayout.BufferStride(capacity));
}
