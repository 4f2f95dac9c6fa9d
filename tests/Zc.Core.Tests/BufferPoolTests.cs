using ZcFlow.Buffers;
using ZcFlow.Memory;
using ZcFlow.Queues;

namespace ZcFlow.Tests;

public class BufferPoolTests
{
    [Fact]
    public void TryGet_HandsOutEveryBufferOnce_ThenReportsEmpty()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 64);
        cluster.CreatePool(16);
        BufferPool pool = cluster.CreatePool(48);
        var seen = new HashSet<uint>();
        while (pool.TryGet(out PacketHandle p))
        {
            Assert.True(seen.Add(p.Index));
            Assert.InRange(p.Index, 16u, 63u);
            Assert.Equal(0, p.Length);
        }
        Assert.Equal(48, seen.Count);
        Assert.Equal(0, pool.Available);
        Assert.False(pool.TryGet(out PacketHandle none));
        Assert.False(none.IsValid);
    }

    [Theory]
    [InlineData(128)]
    [InlineData(1536)]
    [InlineData(1792)]
    [InlineData(2048)]
    [InlineData(9000)]
    public void DataOffsets_LeadBackToTheirOwnBuffer_AndNoOtherOffsetDoes(int bufferSize)
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 600, bufferSize: bufferSize);
        BufferPool first = cluster.CreatePool(100);
        BufferPool pool = cluster.CreatePool(500);
        ulong stride = (ulong)ArenaLayout.BufferStride(bufferSize);
        var handles = new PacketHandle[500];
        Assert.Equal(500, pool.GetBurst(handles));
        foreach (PacketHandle p in handles)
        {
            ulong offset = pool.DataOffset(p);
            Assert.True(pool.TryAtDataOffset(offset, out PacketHandle back));
            Assert.Equal(p.Index, back.Index);
            Assert.False(first.TryAtDataOffset(offset, out _));   // another pool's buffer
            foreach (long step in new long[] { -1, 1, -64, 64, (long)stride / 2 })
                Assert.False(pool.TryAtDataOffset((ulong)((long)offset + step), out _));
        }
        (_, ulong length) = pool.DeviceRegion;
        const ulong firstData = ArenaLayout.PageSize + ArenaLayout.BufferHeaderSize;
        foreach (ulong offset in new ulong[] { 0, firstData - 1, length, firstData + 600 * stride, 1UL << 32, (1UL << 32) + firstData, ulong.MaxValue })
            Assert.False(pool.TryAtDataOffset(offset, out _));
    }

    [Fact]
    public void GetBurst_ReturnsWhatThereIs_AndReleaseBurstPutsItBack()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 40);
        BufferPool pool = cluster.CreatePool(40);
        var burst = new PacketHandle[32];
        Assert.Equal(32, pool.GetBurst(burst));
        var rest = new PacketHandle[32];
        Assert.Equal(8, pool.GetBurst(rest));
        pool.ReleaseBurst(rest.AsSpan(0, 8));
        Assert.Equal(8, pool.Available);
    }

    [Fact]
    public void Release_OfABufferNotHandedOut_ThrowsAndChangesNothing()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 8);
        BufferPool pool = cluster.CreatePool(4);
        BufferPool other = cluster.CreatePool(4);
        Assert.True(pool.TryGet(out PacketHandle p));
        pool.Release(p);
        Assert.Throws<InvalidOperationException>(() => pool.Release(p));
        Assert.True(other.TryGet(out PacketHandle foreign));
        Assert.Throws<ArgumentException>(() => pool.Release(foreign));
        Assert.Equal(4, pool.Available);
    }

    [Fact]
    public void WhatAQueueHolds_IsKnownAtEveryCheck_ThoughASendOnlyNotesIt()
    {
        // A send writes the owner's record of the queue, not the holders: every check the owner makes must still see them,
        // after the record has gone round the ring many times, and across the ring's end in the middle of a burst.
        using ZcCluster cluster = TestClusters.Create(buffers: 64);
        BufferPool pool = cluster.CreatePool(64);
        EgressQueue queue = cluster.CreateQueue(16);
        pool.ReclaimFrom(queue);
        var burst = new PacketHandle[7];
        var got = new PacketHandle[7];
        for (int round = 0; round < 50; round++)
        {
            Assert.Equal(7, pool.GetBurst(burst));
            Assert.Equal(7, queue.SendBurst(burst));
            // sent and not yet released: the owner may not give it back itself
            Assert.Throws<InvalidOperationException>(() => pool.Release(burst[round % 7]));
            Assert.Equal(7, queue.Consumer.ReceiveBurst(got));
            for (int i = 0; i < 7; i++)
            {
                Assert.Equal(burst[i].Index, got[i].Index);
                Assert.Equal(burst[i].Capacity, got[i].Capacity);
                Assert.True(System.Runtime.CompilerServices.Unsafe.AreSame(ref burst[i].Buffer[0], ref got[i].Buffer[0]), $"round {round}, packet {i}: another buffer's bytes");
            }
            queue.Consumer.ReleaseBurst(got);
            queue.Consumer.Release(got[0]);   // twice: refused by the owner
            pool.Reclaim();
            Assert.Equal(64, pool.Available);
        }
        Assert.Equal(50UL, pool.Errors);
    }

    [Fact]
    public void SetReceived_SetsEveryFieldADeviceKnows_AndClearsWhatALastUseLeft()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 4, bufferSize: 128);
        BufferPool pool = cluster.CreatePool(4);
        Assert.True(pool.TryGet(out PacketHandle p));
        p.Length = 9;
        p.Hash = 0xdeadbeef;
        p.Flags = 7;
        p.WireLength = 5000;
        p.SetReceived(100, 1514, 1_764_000_000_123_456_789, 3);
        Assert.Equal((100, 1514, 1_764_000_000_123_456_789L, 3u, 0u, 0u), (p.Length, p.WireLength, p.TimestampNs, p.DeviceIndex, p.Hash, p.Flags));
        p.SetReceived(60, 60, -1, uint.MaxValue);
        Assert.Equal((60, 60, -1L, uint.MaxValue, 0u, 0u), (p.Length, p.WireLength, p.TimestampNs, p.DeviceIndex, p.Hash, p.Flags));
        Assert.Throws<ArgumentOutOfRangeException>(() => p.SetReceived(129, 129, 0, 0));
        Assert.Equal(60, p.Length);
    }

    [Fact]
    public void PacketHandle_WritesBytesAndMetadataInPlace()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 4, bufferSize: 128);
        BufferPool pool = cluster.CreatePool(4);
        Assert.True(pool.TryGet(out PacketHandle p));
        Assert.Equal(128, p.Capacity);
        Assert.Equal(128, p.Buffer.Length);
        "hello"u8.CopyTo(p.Buffer);
        p.Length = 5;
        p.TimestampNs = 1_700_000_000_123_456_789;
        p.Hash = 0xDEADBEEF;
        p.DeviceIndex = 3;
        p.Flags = 7;
        PacketHandle copy = p;
        Assert.Equal("hello"u8.ToArray(), copy.Data.ToArray());
        Assert.Equal(1_700_000_000_123_456_789, copy.TimestampNs);
        Assert.Equal(0xDEADBEEF, copy.Hash);
        Assert.Equal(3u, copy.DeviceIndex);
        Assert.Equal(7u, copy.Flags);
        Assert.Throws<ArgumentOutOfRangeException>(() => p.Length = 129);
        Assert.Throws<ArgumentOutOfRangeException>(() => p.Length = -1);
    }

    [Fact]
    public unsafe void PacketHandle_WithAGarbageLengthInSharedMemory_NeverSpansPastItsBuffer()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 4, bufferSize: 128);
        BufferPool pool = cluster.CreatePool(4);
        Assert.True(pool.TryGet(out PacketHandle p));
        fixed (byte* first = p.Buffer) ((Memory.BufferHeader*)first - 1)->Length = uint.MaxValue;
        Assert.Equal(128, p.Length);
        Assert.Equal(128, p.Data.Length);
    }
}
