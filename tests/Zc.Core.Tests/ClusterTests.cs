using System.Buffers.Binary;
using System.Diagnostics;
using ZcFlow.Memory;
using ZcFlow.Native;

namespace ZcFlow.Tests;

public class ClusterTests
{
    [Fact]
    public void Create_WithoutHugePages_PutsAnOwnerOnlyArenaInDevShm()
    {
        using ZcCluster cluster = TestClusters.Create();
        Assert.Equal(Path.Combine("/dev/shm", ZcCluster.FileName(cluster.Id)), cluster.ArenaPath);
        Assert.False(cluster.OnHugePages);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(cluster.ArenaPath));
    }

    [Fact]
    public void Create_WithAGroup_MakesTheArenaReadableByThatGroup()
    {
        using ZcCluster cluster = ZcCluster.Create(TestClusters.NextId(), new ClusterOptions
        {
            BufferCount = 64, BufferSize = 128, UseHugePages = false, GroupId = 0, Warn = _ => { },
        });
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite,
            File.GetUnixFileMode(cluster.ArenaPath));
    }

    [Fact]
    public void Create_WithoutHugePageMount_WarnsOnceWithTheWayToEnableThem()
    {
        if (HugePages.FindMountWithFreePages(64) is not null) Assert.Skip("this host has a hugetlbfs mount with free pages");
        var warnings = new List<string>();
        using ZcCluster cluster = ZcCluster.Create(TestClusters.NextId(), new ClusterOptions { BufferCount = 64, Warn = warnings.Add });
        string warning = Assert.Single(warnings);
        Assert.Contains("nr_hugepages", warning);
        Assert.False(cluster.OnHugePages);
    }

    [Fact]
    public void Dispose_RemovesTheArenaFile_AndIsIdempotent()
    {
        ZcCluster cluster = TestClusters.Create();
        string path = cluster.ArenaPath;
        Assert.True(File.Exists(path));
        cluster.Dispose();
        cluster.Dispose();
        Assert.False(File.Exists(path));
        Assert.Throws<ObjectDisposedException>(() => cluster.CreateQueue(8));
    }

    [Fact]
    public void Create_WhenTheIdIsOwnedByALiveProcess_FailsNamingItsPid()
    {
        using ZcCluster cluster = TestClusters.Create();
        var e = Assert.Throws<InvalidOperationException>(() => ZcCluster.Create(cluster.Id, new ClusterOptions { UseHugePages = false }));
        Assert.Contains(Environment.ProcessId.ToString(), e.Message);
        Assert.True(File.Exists(cluster.ArenaPath));
    }

    [Fact]
    public void Create_WhenTheIdWasLeftByADeadOwner_ReplacesIt()
    {
        uint id = TestClusters.NextId();
        string path = Path.Combine("/dev/shm", ZcCluster.FileName(id));
        using (Process p = Process.Start("true")) { p.WaitForExit(); WriteStaleHeader(path, p.Id); }

        using ZcCluster cluster = ZcCluster.Create(id, new ClusterOptions { BufferCount = 64, UseHugePages = false, Warn = _ => { } });
        Assert.Equal(path, cluster.ArenaPath);
        Assert.Equal(64, cluster.BufferCount);
    }

    private static void WriteStaleHeader(string path, int deadPid)
    {
        var header = new byte[ArenaLayout.HeaderSize];
        BinaryPrimitives.WriteUInt64LittleEndian(header, ArenaLayout.Magic);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(20), deadPid);
        File.WriteAllBytes(path, header);
    }

    [Fact]
    public void CreatePool_BeyondTheClustersBuffers_SaysHowManyAreLeft()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 100);
        cluster.CreatePool(60);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => cluster.CreatePool(41));
        Assert.Contains("40 of 100", e.Message);
        Assert.Equal(40, cluster.CreatePool(40).Capacity);
        Assert.Equal(0, cluster.UnassignedBuffers);
    }

    [Fact]
    public void CreateQueue_RoundsUpToAPowerOfTwo_AndStopsAtMaxQueues()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 1000, maxQueues: 3);
        Assert.Equal(1024, cluster.CreateQueue(1000).Capacity);
        Assert.Equal(8, cluster.CreateQueue(5).Capacity);
        Assert.Equal(2, cluster.CreateQueue(1).Id);
        Assert.Throws<InvalidOperationException>(() => cluster.CreateQueue(8));
        using ZcCluster small = TestClusters.Create(buffers: 16);
        Assert.Throws<ArgumentOutOfRangeException>(() => small.CreateQueue(17));
    }

    [Fact]
    public void Arena_OpenOfAMissingCluster_SaysErrnoAndWhatItMeans()
    {
        var e = Assert.Throws<ErrnoException>(() => Arena.Open("/dev/shm/" + ZcCluster.FileName(TestClusters.NextId())));
        Assert.Equal(Libc.ENOENT, e.Errno);
        Assert.Contains("ENOENT", e.Message);
        Assert.Contains("no cluster with that id", e.Message);
    }

    [Theory]
    [InlineData(1500, 1536)]
    [InlineData(9000, 9024)]
    public void BufferSizeForMtu_LeavesRoomForEthernetAndTwoVlanTags(int mtu, int size)
        => Assert.Equal(size, ClusterOptions.BufferSizeForMtu(mtu));
}
