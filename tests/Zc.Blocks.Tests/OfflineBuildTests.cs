namespace ZcFlow.Tests;

/// <summary>Capture hosts are often offline: once its packages are restored, ZcFlow builds without the network.</summary>
public class OfflineBuildTests
{
    /// <summary>
    /// A sample built in a network namespace of its own, where no package source answers, with an empty HTTP cache, so
    /// that NuGet's audit cannot find vulnerability data from an earlier run: it warns (NU1900), and the build goes on.
    /// </summary>
    [Fact]
    public void ASample_BuildsInANetworkNamespaceWithNoRouteOut()
    {
        using Veth veth = Veth.Create();
        string dir = Path.Combine(Path.GetTempPath(), $"zcflow-offline-{Guid.NewGuid():N}");
        try
        {
            var build = Tools.Run("ip", "netns", "exec", veth.Namespace, "env", $"NUGET_HTTP_CACHE_PATH={Path.Combine(dir, "http-cache")}",
                "DOTNET_CLI_TELEMETRY_OPTOUT=1", "dotnet", "build", Path.Combine(Tools.Repository!, "samples", "ZStat"), "-c", "Release",
                "--artifacts-path", Path.Combine(dir, "build"), "-nologo");
            Assert.True(build.Code == 0, $"the build failed offline:\n{build.Output}\n{build.Error}");
            Assert.DoesNotContain("error NU1900", build.Output);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
