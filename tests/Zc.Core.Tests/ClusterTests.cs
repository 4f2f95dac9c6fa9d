using ZcFlow.Native;

namespace ZcFlow.Tests;

public class ClusterTests
{
    [Fact]
    public void Create_ServesTheClusterOnAnOwnerOnlySocket_AndItsMemoryHasNoNameInAnyDirectory()
    {
        using ZcCluster cluster = TestClusters.Create();
        Assert.Equal(Path.Combine("/dev/shm", ZcCluster.FileName(cluster.Id) + ".sock"), cluster.SocketPath);
        Assert.False(cluster.OnHugePages);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(cluster.SocketPath));
        Assert.False(File.Exists(Path.Combine("/dev/shm", ZcCluster.FileName(cluster.Id))));
        Assert.Contains($"/memfd:{ZcCluster.FileName(cluster.Id)} ", File.ReadAllText("/proc/self/maps"));
    }

    [Fact]
    public void Create_WithAGroup_LetsThatGroupConnect()
    {
        using ZcCluster cluster = ZcCluster.Create(TestClusters.NextId(), new ClusterOptions
        {
            BufferCount = 64, BufferSize = 128, UseHugePages = false, GroupId = 0, Warn = _ => { },
        });
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite,
            File.GetUnixFileMode(cluster.SocketPath));
    }

    [Fact]
    public void Create_WithoutEnoughFreeHugePages_WarnsOnceWithTheWayToReserveThem()
    {
        var warnings = new List<string>();
        using ZcCluster cluster = ZcCluster.Create(TestClusters.NextId(), new ClusterOptions { BufferCount = 64, Warn = warnings.Add });
        // Which path is taken depends on the host's free hugepages at this instant; each must be right.
        if (cluster.OnHugePages) Assert.Empty(warnings);
        else Assert.Contains("nr_hugepages", Assert.Single(warnings));
    }

    [Fact]
    public void Memory_IsSealed_NoProcessHoldingItCanShrinkOrGrowIt()
    {
        using ZcCluster cluster = TestClusters.Create();
        int fd = cluster.Memory.Descriptor.Fd;
        Assert.NotEqual(0, Libc.Ftruncate(fd, 4096));
        Assert.Equal(Libc.EPERM, System.Runtime.InteropServices.Marshal.GetLastPInvokeError());
        Assert.NotEqual(0, Libc.Ftruncate(fd, (long)cluster.ArenaSize * 2));
        Assert.NotEqual(0, Libc.Fcntl(fd, Libc.F_ADD_SEALS, 8 /* F_SEAL_WRITE */));   // and no one may add seals of their own
    }

    [Fact]
    public void Dispose_RemovesTheSocketAndTheLock_AndIsIdempotent()
    {
        ZcCluster cluster = TestClusters.Create();
        string path = cluster.SocketPath;
        Assert.True(File.Exists(path));
        cluster.Dispose();
        cluster.Dispose();
        Assert.False(File.Exists(path));
        Assert.False(File.Exists(Path.ChangeExtension(path, ".lock")));
        Assert.Throws<ObjectDisposedException>(() => cluster.CreateQueue(8));
    }

    [Fact]
    public void Create_WhenTheIdIsOwnedByALiveProcess_FailsNamingItsPid()
    {
        using ZcCluster cluster = TestClusters.Create();
        var e = Assert.Throws<InvalidOperationException>(() => ZcCluster.Create(cluster.Id, new ClusterOptions { UseHugePages = false }));
        Assert.Contains(Environment.ProcessId.ToString(), e.Message);
        Assert.True(File.Exists(cluster.SocketPath));
    }

    [Fact]
    public void Create_WhenTheIdWasLeftByADeadOwner_ReplacesIt()
    {
        // What a SIGKILLed owner leaves: its lock file (unlocked, since the kernel dropped the lock) and a socket nobody listens on.
        uint id = TestClusters.NextId();
        string socket = Path.Combine("/dev/shm", ZcCluster.FileName(id) + ".sock");
        File.WriteAllText(Path.ChangeExtension(socket, ".lock"), "");
        ZcFlow.Ipc.ClusterSocket.Listen(socket, group: null).Dispose();
        Assert.True(File.Exists(socket));

        using ZcCluster cluster = ZcCluster.Create(id, new ClusterOptions { BufferCount = 64, UseHugePages = false, Warn = _ => { } });
        Assert.Equal(socket, cluster.SocketPath);
        Assert.Equal(64, cluster.BufferCount);
    }

    [Fact]
    public void OwnerKilled_LeavesOnlyEmptyFiles_WhichTheNextClusterCreatedOnTheHostClears()
    {
        uint id = TestClusters.NextId();
        using (ChildProcess owner = ChildProcess.Start("own", [id, 1]))
        {
            owner.WaitFor("ready");
            owner.Kill();
        }
        string[] left = Directory.GetFiles("/dev/shm", ZcCluster.FileName(id) + ".*");
        Assert.All(left, f => Assert.Equal(0, new FileInfo(f).Length));   // the memory itself went with the process
        using ZcCluster other = TestClusters.Create();
        Assert.Empty(Directory.GetFiles("/dev/shm", ZcCluster.FileName(id) + ".*"));
    }

    [Fact]
    public void TwoProcessesCreatingOneIdAtOnce_OneOwnsIt_TheOtherIsTold()
    {
        for (int round = 0; round < 20; round++)
        {
            uint id = TestClusters.NextId();
            using ChildProcess other = ChildProcess.Start("own", [id, 1, "race"]);
            ZcCluster? mine = null;
            Exception? refused = null;
            try { mine = ZcCluster.Create(id, new ClusterOptions { BufferCount = 64, UseHugePages = false, Warn = _ => { } }); }
            catch (InvalidOperationException e) { refused = e; }
            string verdict = other.WaitFor("ready", "refused");
            using (mine)
            {
                // Exactly one of the two owns the id.
                Assert.True((mine is null) != verdict.StartsWith("refused", StringComparison.Ordinal), $"round {round}: mine {mine is not null}, other said '{verdict}', {refused?.Message}");
            }
            other.CloseAndWait();
        }
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

    [Theory]
    [InlineData(1500, 1536)]
    [InlineData(9000, 9024)]
    public void BufferSizeForMtu_LeavesRoomForEthernetAndTwoVlanTags(int mtu, int size)
        => Assert.Equal(size, ClusterOptions.BufferSizeForMtu(mtu));
}
