using System.IO.Compression;

namespace ZcFlow.Tests;

/// <summary>
/// The NuGet packages as a user gets them: packed from the checkout (<c>dotnet pack</c>), restored from a local folder into a
/// console project of its own outside the repository, which runs the README's graph with a consumer in the same process.
/// </summary>
public sealed class PackageTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"zcflow-package-{Guid.NewGuid():N}");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>
    /// Two packs of one commit with different changes in the checkout get different versions, the same for every package,
    /// so a NuGet cache that keeps the first cannot hand it out for the second.
    /// </summary>
    [Fact]
    public void UncommittedChanges_GiveThePackagesAVersionOfTheirOwn_OneForAllOfThem()
    {
        string clone = Path.Combine(_dir, "clone");
        var git = Tools.Run("git", "clone", "-q", Tools.Repository!, clone);
        Assert.True(git.Code == 0, git.Error);
        var notCi = new Dictionary<string, string> { ["CI"] = "" };
        string VersionOf(string project)
        {
            var r = Tools.RunWith(notCi, "dotnet", "msbuild", Path.Combine(clone, "src", project), "-restore", "-t:MinVer", "-getProperty:PackageVersion", "-nologo");
            Assert.True(r.Code == 0, $"{r.Output}\n{r.Error}");
            return r.Output.Trim();   // one property asked for: its value alone
        }
        string committed = VersionOf("Zc.Core");
        Assert.Matches(@"^0\.0\.0-alpha\.0\.[0-9]+$", committed);
        File.AppendAllText(Path.Combine(clone, "README.md"), "\na change\n");
        string changed = VersionOf("Zc.Core");
        Assert.Matches($@"^{System.Text.RegularExpressions.Regex.Escape(committed)}\.local-[0-9a-f]{{10}}$", changed);
        Assert.Equal(changed, VersionOf("Zc.Blocks"));
        File.WriteAllText(Path.Combine(clone, "new-file.txt"), "another change");
        string again = VersionOf("Zc.Hosting");
        Assert.NotEqual(changed, again);
        Assert.StartsWith(committed + ".local-", again);
    }

    [Fact]
    public void ThePackages_RestoreIntoAFreshProject_WhoseFiveLineGraphDeliversEveryPacket()
    {
        string feed = Path.Combine(_dir, "feed"), app = Path.Combine(_dir, "app");
        // A build tree of its own (--artifacts-path), so nothing the running tests loaded is written over.
        var pack = Tools.Run("dotnet", "pack", Path.Combine(Tools.Repository!, "ZcFlow.sln"), "-c", "Release", "-o", feed,
            "--artifacts-path", Path.Combine(_dir, "build"), "-nologo");
        Assert.True(pack.Code == 0, $"dotnet pack failed:\n{pack.Output}\n{pack.Error}");
        string[] packages = [.. Directory.GetFiles(feed, "*.nupkg").Select(Path.GetFileName).Order()!];
        string version = Path.GetFileNameWithoutExtension(packages[0])["ZcFlow.".Length..];
        Assert.Equal(new[] { "ZcFlow", "ZcFlow.Blocks", "ZcFlow.Hosting" }.Select(p => $"{p}.{version}.nupkg"), packages);

        using (ZipArchive core = ZipFile.OpenRead(Path.Combine(feed, $"ZcFlow.{version}.nupkg")))
        {
            string[] files = [.. core.Entries.Select(e => e.FullName)];
            Assert.Contains("README.md", files);
            Assert.Contains("lib/net10.0/Zc.Core.dll", files);
            Assert.Contains("lib/net10.0/Zc.Core.xml", files);
            Assert.Contains("lib/net10.0/Zc.Native.dll", files);   // inside ZcFlow, not a package of its own
            using var nuspec = new StreamReader(core.GetEntry("ZcFlow.nuspec")!.Open());
            string text = nuspec.ReadToEnd();
            Assert.Contains("<license type=\"expression\">MIT</license>", text);
            Assert.DoesNotContain("<dependency", text);
        }

        Directory.CreateDirectory(app);
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{feed}" />
              </packageSources>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(app, "app.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="ZcFlow.Blocks" Version="{version}" />
              </ItemGroup>
            </Project>
            """);
        uint cluster = TestClusters.NextId();
        File.WriteAllText(Path.Combine(app, "Program.cs"), $$"""
            using ZcFlow.Buffers;
            using ZcFlow.Distribution;
            using ZcFlow.Graphs;

            const int Count = 100_000;
            using Graph graph = GraphBuilder.Cluster({{cluster}})
                .Input($"gen:64?flows=4096&count={Count}")
                .Applications(2)
                .Lossless()
                .Balance(new FiveTupleHash());
            // The consumer, in this process: every queue emptied until every packet has come.
            var burst = new PacketHandle[32];
            long packets = 0, bytes = 0;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (packets < Count && clock.Elapsed < TimeSpan.FromSeconds(60))
                foreach (var queue in graph.ConsumerQueues.Select(q => q.Consumer))
                {
                    int n = queue.ReceiveBurst(burst);
                    for (int i = 0; i < n; i++) bytes += burst[i].Length;
                    queue.ReleaseBurst(burst.AsSpan(0, n));
                    packets += n;
                }
            Console.WriteLine($"received {packets} packets {bytes} bytes over {graph.ConsumerQueues.Count(q => q.Stats.Sent > 0)} queues");
            """);
        var run = Tools.Run("dotnet", "run", "--project", app, "-c", "Release", "--packages", Path.Combine(_dir, "packages"));
        Assert.True(run.Code == 0, $"the project that uses the packages failed:\n{run.Output}\n{run.Error}");
        Assert.Equal("received 100000 packets 6400000 bytes over 2 queues", run.Output.Trim().Split('\n')[^1]);

        // The README's program for a project of one's own, as written there, builds, with no CA1416 warning.
        string readme = File.ReadAllText(Path.Combine(Tools.Repository!, "README.md"));
        int from = readme.IndexOf("```csharp", readme.IndexOf("In a project of your own", StringComparison.Ordinal), StringComparison.Ordinal) + "```csharp".Length;
        string own = Path.Combine(_dir, "own");
        Directory.CreateDirectory(own);
        foreach (string f in new[] { "nuget.config", "app.csproj" }) File.Copy(Path.Combine(app, f), Path.Combine(own, f));
        File.WriteAllText(Path.Combine(own, "Program.cs"), readme[from..readme.IndexOf("```", from, StringComparison.Ordinal)]);
        var build = Tools.Run("dotnet", "build", own, "-c", "Release", "--packages", Path.Combine(_dir, "packages"), "-nologo");
        Assert.True(build.Code == 0, $"the README's program does not build:\n{build.Output}\n{build.Error}");
        Assert.DoesNotContain("CA1416", build.Output);
    }
}
