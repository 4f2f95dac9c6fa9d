using ZcFlow.Distribution;
using ZcFlow.Filters;
using ZcFlow.Graphs;
using ZcFlow.Ipc;

namespace ZcFlow.Tests;

/// <summary>The Balancer sample takes what zbalance_ipc takes: getopt syntax, configuration files, and clear words for what it lacks.</summary>
public class BalancerOptionTests
{
    [Fact]
    public void AConfigurationFile_AsTheOnlyArgument_IsReadAsZbalanceIpcReadsIt()
    {
        uint id = TestClusters.NextId();
        string conf = Path.Combine(Path.GetTempPath(), $"zcflow-{id}.conf");
        File.WriteAllLines(conf,
        [
            "# zbalance_ipc options, one a line",
            $"-c={id}",
            "-n 2,1",
            "-m=1",
            "",
            "-i=\"gen:64?flows=64&rate=1000\"",
            "-q 512",
            "-p",
        ]);
        try
        {
            using ChildProcess balancer = ChildProcess.Run("Balancer", [conf]);
            ClusterInfo info = Listing.WaitForRunning(id, balancer);
            Assert.Equal(3, info.Queues.Count);
            Assert.All(info.Queues, q => Assert.Equal(512, q.Capacity));
            Assert.Equal("gen:64?flows=64&rate=1000", Assert.Single(info.Devices).Name);
            balancer.WaitFor("Absolute Stats");   // -p
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
        }
        finally
        {
            File.Delete(conf);
        }
    }

    [Fact]
    public void GetoptSyntax_AttachedValuesAndBundledFlags_Work_AndThePidFileLivesAsLongAsTheCluster()
    {
        uint id = TestClusters.NextId();
        string pid = Path.Combine(Path.GetTempPath(), $"zcflow-{id}.pid");
        using ChildProcess balancer = ChildProcess.Run("Balancer", [$"-c{id}", "-n2", "-m8", "-q256", "-apL", "-igen:64?flows=16&rate=1000", "-P", pid]);
        balancer.WaitFor("serving on");
        ClusterInfo info = Listing.WaitForRunning(id, balancer);
        Assert.Equal(2, info.Queues.Count);
        Assert.All(info.Queues, q => Assert.Equal(256, q.Capacity));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!File.Exists(pid))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "no pid file");
            Thread.Sleep(20);
        }
        Assert.Equal(balancer.Pid.ToString(), File.ReadAllText(pid).Trim());
        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());
        Assert.False(File.Exists(pid));   // removed at a clean exit
    }

    [Fact]
    public void StatsFile_HasZbalanceIpcsKeys_EverySecond_AndTheFinalStatsComeOnSigterm()
    {
        if (Environment.UserName != "root") Assert.Skip("the stats file goes under /run, which needs root");
        uint id = TestClusters.NextId();
        string file = $"/run/zcflow/stats/{id}";
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-n", "2,1", "-m", 1, "-q", 256, "-i", "gen:64?flows=64&count=5000", "-p"]);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Dictionary<string, string> keys = [];
        while (!(keys.TryGetValue("Packets", out string? packets) && packets == "5000"))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"the stats file says {string.Join(", ", keys)}; the Balancer printed {balancer.Output}");
            Thread.Sleep(100);
            if (File.Exists(file))
                keys = File.ReadAllLines(file).Select(l => l.Split(':', 2)).Where(kv => kv.Length == 2).ToDictionary(kv => kv[0], kv => kv[1].Trim());
        }
        Assert.Equal(id.ToString(), keys["ClusterId"]);
        Assert.Equal("3", keys["TotQueues"]);
        Assert.Equal("2", keys["Applications"]);
        Assert.Equal("2", keys["App0Queues"]);
        Assert.Equal("1", keys["App1Queues"]);
        Assert.Matches(@"^\d+:\d\d:\d\d:\d\d:\d\d\d$", keys["Duration"]);
        Assert.Equal("5000", keys["IFPackets"]);
        Assert.Equal("0", keys["IFDropped"]);
        // -m 1 with two applications: every packet to one queue of each; with no consumer, what did not fit is dropped
        Assert.Equal(2 * 5000, Enumerable.Range(0, 3).Sum(q => long.Parse(keys[$"Q{q}Dropped"])) + long.Parse(keys["Forwarded"]));
        Assert.True(keys.ContainsKey("Q2Packets"));

        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());
        Assert.Contains("Absolute Stats: Recv 5,000 pkts", balancer.Output);
        Assert.False(File.Exists(file));   // removed at exit
    }

    [Fact]
    public void DashB_IsWhatEachConsumerMayHoldBeyondItsQueue_AndAHoarderGetsNoMore()
    {
        uint id = TestClusters.NextId();
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-n", 2, "-m", 0, "-q", 64, "-b", 8, "-i", "gen:64?flows=16&rate=20000"]);
        Listing.WaitForRunning(id, balancer);
        using ChildProcess hoarder = ChildProcess.Start("hold", [id, 0, 1_000_000]);
        hoarder.WaitFor("attached");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        QueueInfo q;
        do
        {
            q = ClusterDirectory.List().Single(c => c.Id == id).Queues[0];
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"the hoarder's queue: {q}, holds {q.Held} of {q.Quota}");
            Thread.Sleep(50);
        }
        while (!(q.Held == 72 && q.Stats.Dropped > 0));
        Assert.Equal(64 + 8, q.Quota);
        PoolInfo pool = Assert.Single(ClusterDirectory.List().Single(c => c.Id == id).Pools);
        Assert.Equal(2 * (64 + 8) + ZcFlow.Graphs.GraphBuilder.BuffersPerDevice, pool.Count);   // sized as zbalance_ipc sizes it
        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());
    }

    [Fact]
    public void FilterFileAtQueues_FiltersOnlyThoseQueues_AndSigusr1ReloadsIt()
    {
        uint id = TestClusters.NextId();
        string filter = Path.Combine(Path.GetTempPath(), $"zcflow-{id}.bpf");
        File.WriteAllText(filter, "# the generator's requests only\nudp dst port 80\n");
        try
        {
            // Fan-out (-m 2): every packet to both queues, but queue 1 only what its filter keeps: half, one direction of each flow.
            using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-n", 2, "-m", 2, "-i", "gen:64?flows=16&rate=4000", "-f", $"{filter}@1"]);
            Listing.WaitForRunning(id, balancer);
            (ulong All, ulong Kept) Sent()
            {
                var queues = ClusterDirectory.List().Single(c => c.Id == id).Queues;
                return (queues[0].Stats.Sent + queues[0].Stats.Dropped, queues[1].Stats.Sent + queues[1].Stats.Dropped);
            }
            Thread.Sleep(1500);
            (ulong all, ulong kept) = Sent();
            Assert.True(all > 1000, $"only {all} packets");
            Assert.InRange((double)kept, all / 2.0 - 50, all / 2.0 + 50);

            File.WriteAllText(filter, "udp\n");   // now everything
            ZcFlow.Native.Libc.Kill(balancer.Pid, 10 /* SIGUSR1 */);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (!balancer.Errors.Contains("filters reloaded"))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"no reload: {balancer.Errors}");
                Thread.Sleep(20);
            }
            Thread.Sleep(300);
            (ulong all1, ulong kept1) = Sent();
            Thread.Sleep(1500);
            (ulong all2, ulong kept2) = Sent();
            Assert.InRange((long)(kept2 - kept1), (long)(all2 - all1) - 50, (long)(all2 - all1) + 50);
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
        }
        finally
        {
            File.Delete(filter);
        }
    }

    [Theory]
    [InlineData("-w", "hardware aggregation")]
    [InlineData("-Q /tmp/qemu.sock", "KVM")]
    [InlineData("-T", "flow table")]
    [InlineData("-g 1;2", "colon separated")]
    [InlineData("-k", "unknown option -k")]
    [InlineData("-N 2", "n2disk")]
    [InlineData("-M 10", "-M: VLAN ids map to queues in mode 7 only")]
    [InlineData("-m 7", "-M: mode 7 needs the VLAN id of each of its queues")]
    [InlineData("-m 7 -M 10 -M 10", "-M: a VLAN id is named twice")]
    [InlineData("-m 4 -n 2 -G 2:1", "-G: GTP-C goes to queue 2; a queue from 0 to 1")]
    [InlineData("-m 4 -n 2 -G 0:3", "-G: GTP-C version 3; version 1 or 2")]
    [InlineData("-m 1 -n 2 -G 0:1", "-G: a queue of its own for GTP-C is for mode 4 only")]
    [InlineData("-m 2 -n 1,1", "-n: mode 2 feeds one application")]
    [InlineData("-n 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1", "up to 32")]
    [InlineData("-m 2 -n 100", "-n: 100 queues; a balancer feeds up to 64")]
    [InlineData("-m 6 -i gen:64 -i gen:64", "-i: mode 6 (input device i to queue i) takes one input")]
    [InlineData("-R 1000", "-R: a resolution for a time pulse that has no core")]
    [InlineData("-E tcp://127.0.0.1:1", "give -Z too")]
    [InlineData("-D nosuchuser", "no such user")]
    public void WhatItDoesNotDo_IsRefusedSayingWhy(string options, string why)
    {
        using ChildProcess balancer = ChildProcess.Run("Balancer", [.. options.Split(' '), "-c", TestClusters.NextId()]);
        Assert.Equal(2, balancer.WaitForExit());
        Assert.Contains(why, balancer.Errors);
    }

    [Fact]
    public void OneModelChecksTheOptions_AndEachProblemNamesItsOption()
    {
        Assert.Empty(new BalancerOptions().Problems());
        Assert.Empty(new BalancerOptions { Mode = HashMode.Vlan, VlanQueues = [10, 20], GtpControl = null, Egress = [(2, "veth0")] }.Problems());
        (string Option, string Message)[] Problems(BalancerOptions o) => [.. o.Problems()];
        Assert.Equal([(nameof(BalancerOptions.Applications), "mode 2 feeds one application; several (1,1 queues) need mode 0, 1, 4, 5, 6 or 8")],
            Problems(new BalancerOptions { Mode = HashMode.FanOutAll, Applications = [1, 1] }));
        Assert.Equal([nameof(BalancerOptions.Egress), nameof(BalancerOptions.Egress)],
            Problems(new BalancerOptions { Inputs = [["gen:64"], ["gen:64"]], Egress = [(1, "veth0")] }).Select(p => p.Option));
        Assert.Equal([nameof(BalancerOptions.GtpControl)], Problems(new BalancerOptions { Mode = HashMode.Gtp, Applications = [3], GtpControl = (3, 1) }).Select(p => p.Option));
        Assert.Equal([nameof(BalancerOptions.OutputFilters)], Problems(new BalancerOptions { OutputFilters = new Dictionary<int, BpfFilter> { [1] = BpfFilter.Compile("udp") } }).Select(p => p.Option));
        Assert.Equal([nameof(BalancerOptions.DelayStart)], Problems(new BalancerOptions { DelayStart = TimeSpan.FromHours(2) }).Select(p => p.Option));
        // Start refuses what Problems lists, naming the option, before it creates anything.
        var e = Assert.Throws<ArgumentException>(() => new BalancerOptions { ClusterId = TestClusters.NextId(), Mode = HashMode.InterfaceIndex, Inputs = [["gen:64"], ["gen:64"]] }.Start());
        Assert.Equal("Inputs: mode 6 (input device i to queue i) takes one input: aggregate the devices into it", e.Message);
    }

    [Fact]
    public void DashM7_HasQueueZeroAndOneQueuePerVlan_AndDashG_TakesOneOfThem()
    {
        uint id = TestClusters.NextId();
        using (ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-m", 7, "-M", 10, "-M", 20, "-Y", 34181, "-i", "gen:64?rate=1000"]))
        {
            Assert.Equal(3, Listing.WaitForRunning(id, balancer).Queues.Count);
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
        }
        using (ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-m", 4, "-n", "2,1", "-G", "2:1", "-i", "gen:64?rate=1000"]))
        {
            Assert.Equal(3, Listing.WaitForRunning(id, balancer).Queues.Count);
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
        }
    }

    [Fact]
    public void ConfigurationLines_BecomeTheArgumentsGetoptSees()
        => Assert.Equal(["-c", "10", "-i", "eth1,eth2", "-a", "-f", "/etc/filter with blanks.bpf", "-n", "2"],
            ZcFlow.Samples.CommandLine.ParseConfig(["-c=10", "  -i eth1,eth2 ", "# -m 4", "-a", "-f=\"/etc/filter with blanks.bpf\"", "", "-n\t2"]));
}
