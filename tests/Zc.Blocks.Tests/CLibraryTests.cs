using ZcFlow.Devices;
using ZcFlow.Ipc;
using ZcFlow.Queues;

namespace ZcFlow.Tests;

/// <summary>
/// libzcflow.so, built with NativeAOT as a user builds it (<c>dotnet publish src/Zc.CLib</c>), and the C and Python
/// consumers of <c>samples/c</c> over it, attached to a Balancer process's queue.
/// </summary>
[Collection(NativeLibraries.Name)]
public class CLibraryTests(NativeLibraries library)
{
    [Fact]
    public void TheCConsumer_CountsExactlyWhatTheBalancerSentToItsQueue()
    {
        const int Count = 1_000_000;
        uint cluster = TestClusters.NextId();
        string input = $"gen:64?flows=1024&count={Count}";
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", cluster, "-n", 1, "-m", 0, "-i", input, "-L", "-W", 2]);
        using ChildProcess consumer = ChildProcess.Exec(library.ZCount, [$"zc:{cluster}@0", "-n", Count]);
        consumer.WaitFor("attached");
        string[] total = consumer.WaitFor("total").Split(' ');
        Assert.Equal(0, consumer.WaitForExit());
        ClusterInfo info = Listing.WaitFor(cluster, i => i.Queues[0].Stats.Received == Count && i.Devices.Single(d => d.Name == input).Stats.Received == Count,
            "every packet received, and the device's counts published");
        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());

        DeviceStats device = info.Devices.Single(d => d.Name == input).Stats;
        Assert.Equal(Count.ToString(), total[1]);
        Assert.Equal(device.Bytes.ToString(), total[3]);
        Assert.Equal((ulong)Count, device.Received);
        Assert.Equal(new QueueStats(Count, Count, 0, 0), info.Queues[0].Stats);
    }

    [Fact]
    public void ThePythonConsumer_ReadsEveryPacketsBytes_ThroughCtypes()
    {
        const int Count = 20_000;
        string pcap = Path.Combine(Path.GetTempPath(), $"zcflow-clib-{Guid.NewGuid():N}.pcap");
        var frames = Enumerable.Range(0, Count)
            .Select(i => Frames.Ethernet(0x0800).Ipv4((uint)i, 0x0A000001, 17, 8 + i % 100).Udp((ushort)i, 53, i % 100).Add(new byte[i % 100]).ToArray()).ToArray();
        using (var writer = new Devices.CaptureWriter(pcap))
            for (int i = 0; i < Count; i++) writer.Write(frames[i], 1_700_000_000_000_000_000 + i * 1000L);
        try
        {
            uint cluster = TestClusters.NextId();
            using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", cluster, "-n", 1, "-m", 0, "-i", pcap, "-L", "-W", 2]);
            using ChildProcess consumer = library.Python(Path.Combine(library.Samples, "zcount.py"), $"zc:{cluster}@0", "-n", Count);
            consumer.WaitFor("attached");
            string total = consumer.WaitFor("total", seconds: 120);
            Assert.Equal(0, consumer.WaitForExit());
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
            Assert.Equal($"total {Count} pkts {frames.Sum(f => f.Length)} bytes, first {Convert.ToHexStringLower(frames[0])}, queue sent {Count} dropped 0 errors 0", total);
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Fact]
    public void BadNames_MissingClustersAndQueues_ABusyQueue_AndAnOwnerThatGoes_AreCodesWithReasons()
    {
        uint cluster = TestClusters.NextId(), missing = TestClusters.NextId();
        string check = Path.Combine(library.Directory, "errors.py");
        File.WriteAllText(check, $$"""
            import ctypes, sys
            sys.path.insert(0, "{{library.Samples}}")
            import zcount
            lib = zcount.load("{{Path.Combine(library.Directory, "libzcflow.so")}}")
            def attach(name):
                q = ctypes.c_void_p()
                rc = lib.zcflow_attach(name.encode(), 0, ctypes.byref(q))
                print(f"{name} {rc} {lib.zcflow_error().decode() if rc else ''}", flush=True)
                return q
            attach("eth0")
            attach("zc:{{missing}}@0")
            attach("zc:{{cluster}}@7")
            first = attach("zc:{{cluster}}@0")
            attach("zc:{{cluster}}@0")
            print("stop the owner", flush=True)
            burst = (zcount.Packet * 32)()
            while (n := lib.zcflow_recv_burst(first, burst, 32, -1)) >= 0:
                lib.zcflow_release_burst(first, burst, n)
            print(f"recv {n} {lib.zcflow_error().decode()}", flush=True)
            lib.zcflow_detach(first)
            print(f"detach {lib.zcflow_recv_burst(None, burst, 32, 0)} {lib.zcflow_error().decode()}", flush=True)
            """);
        using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", cluster, "-n", 1, "-m", 0, "-i", "gen:64?rate=1000"]);
        Listing.WaitForRunning(cluster, balancer);
        using ChildProcess python = library.Python(check);
        Assert.Equal("eth0 -1 'eth0' is not a queue name: write zc:<cluster>@<queue>, for example zc:99@0 (Parameter 'name')", python.WaitFor("eth0"));
        Assert.StartsWith($"zc:{missing}@0 -2 there is no cluster {missing} on this host", python.WaitFor($"zc:{missing}"));
        Assert.Contains($"zc:{cluster}@7 -2 ", python.WaitFor($"zc:{cluster}@7"));
        Assert.Equal($"zc:{cluster}@0 0 ", python.WaitFor($"zc:{cluster}@0"));
        Assert.Contains($"zc:{cluster}@0 -3 queue 0 of cluster {cluster} already has a consumer", python.WaitFor($"zc:{cluster}@0"));
        python.WaitFor("stop the owner");
        balancer.Terminate();
        Assert.Equal(0, balancer.WaitForExit());
        Assert.StartsWith("recv -5 ", python.WaitFor("recv"));
        Assert.Equal("detach -1 zcflow_recv_burst: queue is NULL", python.WaitFor("detach"));
        Assert.Equal(0, python.WaitForExit());
    }
}
