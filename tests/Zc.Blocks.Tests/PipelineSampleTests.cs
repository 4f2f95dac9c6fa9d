using System.Buffers.Binary;
using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Ipc;

namespace ZcFlow.Tests;

/// <summary>The samples built on <see cref="Graphs.Topology"/>: zpipeline's threads, and zfilter_mt_ipc / zbalance_DC_ipc.</summary>
public class PipelineSampleTests
{
    [Fact]
    public void ZPipeline_ThreeStagesOnTheirOwnThreads_PassEveryPacketOfAFile_EachMarkedByTheStageBefore()
    {
        string pcap = Path.Combine(Path.GetTempPath(), $"zcflow-zpipeline-{Environment.ProcessId}.pcap");
        using (var writer = new CaptureWriter(pcap))
            for (int i = 0; i < 20_000; i++) writer.Write(Frames.Ethernet(0x0800).Ipv4(1, 2, 17, 12).Udp(1, 2, 4).U32((uint)i).ToArray(), i);
        try
        {
            int core = Workers.CpuAffinity.AllowedCores()[^1];
            using ChildProcess pipeline = ChildProcess.Run("ZPipeline", ["-i", "pcap:" + pcap, "-g", $"{core}:{core}:{core}"]);
            Assert.Equal(0, pipeline.WaitForExit());
            Assert.Contains("total 20,000 pkts through 3 stages, 0 wrong marks", pipeline.Output);
            using ChildProcess bad = ChildProcess.Run("ZPipeline", ["-i", "pcap:" + pcap, "-g", "0:x"]);
            Assert.Equal(2, bad.WaitForExit());
            Assert.Contains("-g takes cores separated by ':', not 'x'", bad.Errors);
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    // Two captures, `{prefix}0.pcap` and `{prefix}1.pcap`: UDP packets numbered file << 16 | i over 16 flows each, and a
    // TCP packet before every `tcpEvery`th.
    private static void WriteInputs(string prefix, int udp, int tcpEvery)
    {
        foreach (int file in new[] { 0, 1 })
        {
            using var writer = new CaptureWriter($"{prefix}{file}.pcap");
            for (int i = 0; i < udp; i++)
            {
                writer.Write(Frames.Ethernet(0x0800).Ipv4(0x0A000000u + (uint)file, 0x0B000001, 17, 12).Udp((ushort)(1000 + i % 16), 53, 4).U32((uint)(file << 16 | i)).ToArray(), i);
                if (i % tcpEvery == 0) writer.Write(Frames.Ethernet(0x0800).Ipv4(0x0A000000u + (uint)file, 0x0B000001, 6, 20).Tcp(80, 80).ToArray(), i);
            }
        }
    }

    // A packet's flow, from what it carries: its input file (the high half) and its source port (1000 + i % 16).
    private static (uint File, uint Port) Flow(uint carried) => (carried >> 16, carried % 16);

    private static void AssertEachFlowOnOneQueue(List<uint>[] seen) => Assert.Empty(seen[0].Select(Flow).Intersect(seen[1].Select(Flow)));

    // Queues 0 and 1 of the cluster read until every UDP packet of both inputs came: UDP only, each once.
    private static List<uint>[] ReadBoth(uint id, int udp)
    {
        using AttachedQueue q0 = AttachedQueue.Attach(id, 0), q1 = AttachedQueue.Attach(id, 1);
        var seen = new[] { new List<uint>(), new List<uint>() };
        var burst = new PacketHandle[32];
        var clock = Stopwatch.StartNew();
        while (seen[0].Count + seen[1].Count < 2 * udp)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"got {seen[0].Count} + {seen[1].Count}");
            foreach ((AttachedQueue q, List<uint> got) in new[] { (q0, seen[0]), (q1, seen[1]) })
            {
                int n = q.Queue.ReceiveBurst(burst);
                foreach (PacketHandle p in burst.AsSpan(0, n))
                {
                    Assert.Equal(17, p.Data[23]);
                    got.Add(BinaryPrimitives.ReadUInt32BigEndian(p.Data[42..]));
                }
                q.Queue.ReleaseBurst(burst.AsSpan(0, n));
            }
        }
        Assert.Equal(Enumerable.Range(0, udp).SelectMany(i => new[] { (uint)i, (uint)(1 << 16 | i) }).Order(), seen[0].Concat(seen[1]).Order());
        return seen;
    }

    // Two inputs, each with TCP among its UDP, each filtered by a thread of its own; the collector spreads what passed over
    // two queues by flow. Read here: every UDP packet once, TCP none, each flow on one queue and in order.
    [Fact]
    public void ZFilter_FiltersEachInputOnItsOwnThread_AndTheCollectorSpreadsWhatPassed_EveryPacketOnce_PerFlowInOrder()
    {
        string prefix = Path.Combine(Path.GetTempPath(), $"zcflow-zfilter-{Environment.ProcessId}-");
        const int Udp = 2000;
        WriteInputs(prefix, Udp, tcpEvery: 4);
        try
        {
            uint id = TestClusters.NextId();
            using ChildProcess zfilter = ChildProcess.Run("ZFilter", ["-c", id, "-i", $"pcap:{prefix}0.pcap,pcap:{prefix}1.pcap", "-n", 2, "-f", "udp", "-m", 2]);
            zfilter.WaitFor("2 filtering threads");
            List<uint>[] seen = ReadBoth(id, Udp);
            foreach (List<uint> q in seen)
                foreach (var flow in q.GroupBy(Flow))
                    Assert.True(flow.SequenceEqual(flow.Order()), $"flow {flow.Key} out of order");
            Assert.All(seen, q => Assert.NotEmpty(q));
            AssertEachFlowOnOneQueue(seen);
            string total = zfilter.WaitFor("total");
            Assert.Contains($"pcap:{prefix}0.pcap 2,500 in 2,000 kept, pcap:{prefix}1.pcap 2,500 in 2,000 kept", total);
            Assert.Equal(0, zfilter.WaitForExit());
        }
        finally
        {
            foreach (string f in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(prefix) + "*")) File.Delete(f);
        }
    }

    // The same shape from a JSON file, through the Topology sample: a topology changed without a rebuild.
    [Fact]
    public void TopologyFromJson_FiltersEachInputAndBalancesWhatPassed_EveryPacketOnce_AndABadFileIsRefusedNamingTheKey()
    {
        string prefix = Path.Combine(Path.GetTempPath(), $"zcflow-topology-json-{Environment.ProcessId}-");
        const int Udp = 1500;
        WriteInputs(prefix, Udp, tcpEvery: 3);
        try
        {
            uint id = TestClusters.NextId();
            int core = Workers.CpuAffinity.AllowedCores()[0];
            File.WriteAllText(prefix + "graph.json", $$"""
                { "ClusterId": {{id}}, "Buffers": 4096,
                  "Stages": [
                    { "Name": "udp 0", "From": "pcap:{{prefix}}0.pcap", "Filter": "udp", "Core": {{core}} },
                    { "Name": "udp 1", "From": "pcap:{{prefix}}1.pcap", "Filter": "udp" },
                    { "Name": "collector", "After": "udp 0,udp 1", "Balance": 8, "Queues": [ 2 ] } ] }
                """);
            // --plan: what would run where, and nothing created.
            using (ChildProcess plan = ChildProcess.Run("Topology", [prefix + "graph.json", "--plan"]))
            {
                Assert.Equal(0, plan.WaitForExit());
                Assert.Contains($"cluster {id}: 4096 buffers of 1536 bytes, 4 queues of 4096 slots; consumers attach to zc:{id}@0, zc:{id}@1", plan.Output);
                Assert.Contains($"thread 0 (core {core}):", plan.Output);
                Assert.Contains($"  'udp 0' reads pcap:{prefix}0.pcap into a pool of 2048 buffers -> zc:{id}@2", plan.Output);
                Assert.Contains($"'collector' takes zc:{id}@2, zc:{id}@3 (a relay) -> zc:{id}@0, zc:{id}@1", plan.Output);
                Assert.DoesNotContain(ClusterDirectory.List(), c => c.Id == id);
            }
            using ChildProcess topology = ChildProcess.Run("Topology", [prefix + "graph.json"]);
            Assert.Equal($"running 3 stages in cluster {id}; consumers attach to zc:{id}@0, zc:{id}@1", topology.WaitFor("running"));
            List<uint>[] seen = ReadBoth(id, Udp);
            AssertEachFlowOnOneQueue(seen);
            Assert.Equal(0, topology.WaitForExit());
            Assert.Contains("udp 0: 2,000 in, 1,500 on, 500 filtered, 0 dropped", topology.Output);   // a filter's rejects are not drops

            using ChildProcess wrong = ChildProcess.Run("Topology", [prefix + "graph.json", "--Stages:2:After=udp 0,udp 9", "--Stages:0:Filter=tcp port x"]);
            Assert.Equal(2, wrong.WaitForExit());
            Assert.Contains("graph.json:Stages:2:After: 'udp 9' is not an earlier stage", wrong.Errors);
            Assert.Contains("graph.json:Stages:0:Filter:", wrong.Errors);
        }
        finally
        {
            foreach (string f in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(prefix) + "*")) File.Delete(f);
        }
    }

    // The examples beside the sample are whole topologies: each passes the checks.
    [Theory]
    [InlineData("filter-and-merge.json")]
    [InlineData("two-applications.json")]
    [InlineData("pipeline-delay.json")]
    public void TheTopologyExamples_PassTheirChecks(string file)
    {
        var config = new ConfigurationBuilder().AddJsonFile(Path.Combine(AppContext.BaseDirectory, file)).Build();
        Assert.Empty(Hosting.ZcFlowTopologyOptions.From(config).Problems(file));
    }

    // A misspelt key and a value that is not of its type, from the command line as a user gives them, name the key.
    [Fact]
    public void TopologySettingsErrors_NameTheKey()
    {
        IConfiguration Config(string arg) => new ConfigurationBuilder().AddJsonFile(Path.Combine(AppContext.BaseDirectory, "filter-and-merge.json")).AddCommandLine([arg]).Build();
        string Error(string arg) => Assert.Throws<InvalidOperationException>(() => Hosting.ZcFlowTopologyOptions.From(Config(arg))).Message;
        Assert.StartsWith("Stages:0:Filtr: not a key here; the keys are Name, From, After,", Error("--Stages:0:Filtr=tcp"));
        Assert.Equal("Stages:0:Core: 'x' is not a whole number", Error("--Stages:0:Core=x"));
        Assert.StartsWith("Lossles: not a key here; the keys are ClusterId,", Error("--Lossles=true"));
        Assert.Equal("ActiveWait: 'maybe' is not true or false", Error("--ActiveWait=maybe"));
    }
}
