using ZcFlow.Ipc;

namespace ZcFlow.Tests;

public class SetupErrorTests
{
    [Fact]
    public void WhatTheUserGave_IsASetupError_SaidWithoutOurParameterNames_AndABugIsNot()
    {
        var bad = new ArgumentException("unknown device 'nosuch0'", "name");
        Assert.True(SetupError.Is(bad));
        Assert.Equal("unknown device 'nosuch0'", SetupError.Describe(bad));
        Assert.Equal("queue 5 of cluster 9 has 2 queues", SetupError.Describe(new ArgumentOutOfRangeException("queueId", "queue 5 of cluster 9 has 2 queues")));
        Assert.True(SetupError.Is(new ClusterGoneException(9, false, "gone")));
        Assert.True(SetupError.Is(new FileNotFoundException("no trace.pcap")));
        Assert.True(SetupError.Is(new Native.ErrnoException("mmap", 12)));
        Assert.False(SetupError.Is(new NullReferenceException()));
        Assert.False(SetupError.Is(new IndexOutOfRangeException()));
    }

    [Fact]
    public void AttachingToAQueueThatIsNotThere_IsASetupError_WhoseMessageSaysWhatThereIs()
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 64);
        cluster.CreateQueue(8);
        var e = Assert.ThrowsAny<Exception>(() => AttachedQueue.Attach(cluster.Id, 5));
        Assert.True(SetupError.Is(e));
        Assert.Equal($"cluster {cluster.Id} has 1 queues, numbered from 0", SetupError.Describe(e));
    }
}
