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
        { typeof(ArenaHeader), nameof(ArenaHeader.OwnerPid), 20 },
        { typeof(ArenaHeader), nameof(ArenaHeader.Generation), 24 },
        { typeof(ArenaHeader), nameof(ArenaHeader.BuffersOffset), 48 },
        { typeof(ArenaHeader), nameof(ArenaHeader.BufferCount), 64 },
        { typeof(ArenaHeader), nameof(ArenaHeader.QueueAreaOffset), 80 },
        { typeof(ArenaHeader), nameof(ArenaHeader.RecycleCapacity), 104 },
        { typeof(ArenaHeader), nameof(ArenaHeader.State), 112 },
        { typeof(PoolEntry), nameof(PoolEntry.FirstBuffer), 4 },
        { typeof(QueueEntry), nameof(QueueEntry.ForwardOffset), 16 },
        { typeof(QueueEntry), nameof(QueueEntry.RecycleOffset), 24 },
        { typeof(QueueEntry), nameof(QueueEntry.ConsumerPid), 32 },
        { typeof(RingControl), nameof(RingControl.Head), 0 },
        { typeof(RingControl), nameof(RingControl.ConsumerErrors), 8 },
        { typeof(RingControl), nameof(RingControl.Tail), 128 },
        { typeof(RingControl), nameof(RingControl.Dropped), 136 },
        { typeof(RingControl), nameof(RingControl.ProducerErrors), 144 },
        { typeof(RingControl), nameof(RingControl.Waiters), 256 },
        { typeof(RingControl), nameof(RingControl.WakeSeq), 260 },
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
        Assert.Equal(64, Unsafe.SizeOf<QueueEntry>());
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
        Assert.True(ArenaLayout.QueueDirectoryOffset + ArenaLayout.MaxQueues * ArenaLayout.EntrySize <= ArenaLayout.BuffersOffset);
        Assert.Equal(0UL, ArenaLayout.BuffersOffset % ArenaLayout.PageSize);
    }

    [Theory]
    [InlineData(64, 128)]
    [InlineData(1536, 1600)]
    [InlineData(9000, 9088)]
    public void BufferStride_IsHeaderPlusDataRoundedToACacheLine(int capacity, int stride)
        => Assert.Equal(stride, ArenaLayout.BufferStride(capacity));
}
