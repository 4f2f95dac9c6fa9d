namespace ZcFlow.Tests;

/// <summary>zsanitycheck: every buffer of a cluster written, sent across cores and checked, whole.</summary>
public class SanityCheckTests
{
    [Fact]
    public void EveryBufferOfACluster_WrittenSentAndReadBack_Matches_AndASpoiledOneIsReported()
    {
        using ChildProcess good = ChildProcess.Run("ZSanityCheck", ["-c", TestClusters.NextId(), "-b", 20_000]);
        Assert.Equal(0, good.WaitForExit());
        Assert.Contains("Test completed, 20,000 buffers inspected", good.Output);

        using ChildProcess spoiled = ChildProcess.Run("ZSanityCheck", ["-c", TestClusters.NextId(), "-b", 5000, "-x", 4321]);
        Assert.Equal(1, spoiled.WaitForExit());
        Assert.Contains("buffer #4321 (index ", spoiled.Output);
        Assert.Contains("Test failed: 1 of 5,000 buffers inspected do not match", spoiled.Output);
    }
}
