namespace ZcFlow.Tests;

/// <summary>Every sample answers -h and --help with its usage, and exits 0, as a user expects.</summary>
public class HelpTests
{
    [Theory]
    [InlineData("Balancer"), InlineData("Send"), InlineData("FlowExport"), InlineData("Aggregator"), InlineData("ZStat"), InlineData("ZCount"),
     InlineData("ZSanityCheck"), InlineData("ZBounce"), InlineData("ZPipeline"), InlineData("ZFilter"), InlineData("Topology")]
    public void EverySample_PrintsItsUsage_ForHelp(string sample)
    {
        foreach (string flag in new[] { "-h", "--help" })
        {
            using ChildProcess p = ChildProcess.Run(sample, [flag]);
            Assert.Equal(0, p.WaitForExit());
            Assert.Contains("usage: ", p.Output + p.Errors);
        }
    }
}
