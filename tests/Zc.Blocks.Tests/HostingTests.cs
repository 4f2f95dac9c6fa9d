using System.Net.Sockets;
using System.Text;
using ZcFlow.Ipc;

namespace ZcFlow.Tests;

/// <summary>
/// ZcFlow.Hosting through the HostedBalancer sample, a worker service: the Balancer graph from appsettings.json (and
/// command-line overrides), a consumer per queue, bad configuration refused naming its key, systemd's notifications.
/// </summary>
public class HostingTests
{
    [Fact]
    public void TheHostedSample_RunsTheGraphFromItsConfiguration_ItsConsumersGetEveryPacket_AndItStopsWithFinalStats()
    {
        const int Count = 200_000;
        uint cluster = TestClusters.NextId();
        string input = $"gen:64?flows=256&count={Count}";
        // appsettings.json gives two queues, mode 8; the rest comes from the command line, as configuration does.
        using ChildProcess host = ChildProcess.Run("HostedBalancer", [$"--Balancer:ClusterId={cluster}", $"--Balancer:Inputs:0={input}", "--Balancer:Lossless=true",
            $"--Consumers:0=zc:{cluster}@0", $"--Consumers:1=zc:{cluster}@1"]);
        ClusterInfo done = Listing.WaitFor(cluster,
            i => i.Devices.SingleOrDefault(d => d.Name == input)?.Stats.Received == Count && i.Queues.Count == 2 && i.Queues.All(q => q.Stats.Received == q.Stats.Sent),
            "every packet generated and consumed");
        Assert.All(done.Queues, q => Assert.True(q.Stats.Sent > 0));   // the 5-tuple hash spread the flows over both
        host.Terminate();
        Assert.Equal(0, host.WaitForExit());
        string output = host.Output;
        long consumed = done.Queues.Sum(q => long.Parse(output.Split($"final stats: zc:{cluster}@{q.Id} consumed ")[1].Split(' ')[0]));
        Assert.Equal(Count, consumed);
        Assert.Contains($"final stats: received {Count} filtered 0 forwarded {Count} dropped 0", output);
    }

    [Fact]
    public void ATopologySection_RunsThatGraphInstead_AFilterStageThenABalancer_EveryPacketConsumed()
    {
        const int Count = 100_000;
        uint cluster = TestClusters.NextId();
        string input = $"gen:64?flows=256&count={Count}";
        using ChildProcess host = ChildProcess.Run("HostedBalancer", [$"--Topology:ClusterId={cluster}", "--Topology:Buffers=8192",
            "--Topology:Stages:0:Name=udp", $"--Topology:Stages:0:From={input}", "--Topology:Stages:0:Filter=udp",
            "--Topology:Stages:1:Name=spread", "--Topology:Stages:1:After=udp", "--Topology:Stages:1:Balance=8", "--Topology:Stages:1:Queues:0=2",
            $"--Consumers:0=zc:{cluster}@0", $"--Consumers:1=zc:{cluster}@1"]);
        ClusterInfo done = Listing.WaitFor(cluster,
            i => i.Devices.SingleOrDefault(d => d.Name == input)?.Stats.Received == Count && i.Queues.Take(2).Sum(q => (long)q.Stats.Received) == Count,
            "every packet generated, filtered and consumed");
        host.Terminate();
        Assert.Equal(0, host.WaitForExit());
        string output = host.Output;
        Assert.Contains($"cluster {cluster}: 1 balancer(s), 1 other stage(s) from {input} to queues zc:{cluster}@0,zc:{cluster}@1", output);
        Assert.Contains($"final stats: stage 'udp' received {Count} forwarded {Count} filtered 0 dropped 0", output);
        long consumed = done.Queues.Take(2).Sum(q => long.Parse(output.Split($"final stats: zc:{cluster}@{q.Id} consumed ")[1].Split(' ')[0]));
        Assert.Equal(Count, consumed);

        using ChildProcess wrong = ChildProcess.Run("HostedBalancer", [$"--Topology:ClusterId={TestClusters.NextId()}", "--Topology:Stages:0:Name=a", "--Topology:Stages:0:After=b"]);
        Assert.Equal(1, wrong.WaitForExit());
        Assert.Contains("Topology:Stages:0:After: 'b' is not an earlier stage", wrong.Errors);
    }

    [Theory]
    [InlineData("--Balancer:Moed=1", "error: Balancer:Moed: not an option of a graph; they are ClusterId, Inputs, ")]
    [InlineData("--Balancer:Mode=9", "error: Balancer:Mode: 9 is not a mode: 0 to 8")]
    [InlineData("--Balancer:QueueSlots=many", "error: Failed to convert configuration value 'many' at 'Balancer:QueueSlots'")]
    [InlineData("--Balancer:Applications:0=0", "error: Balancer:Applications: each application has at least one queue")]
    [InlineData("--Balancer:Filter=udp prt", "error: Balancer:Filter: filter 'udp prt': can't parse filter expression")]
    [InlineData("--Balancer:Inputs:0=nosuchdevice9", "error: Balancer: unknown device 'nosuchdevice9'")]
    public void BadConfiguration_StopsTheStart_WithAMessageNamingTheKey(string setting, string message)
    {
        using ChildProcess host = ChildProcess.Run("HostedBalancer", [$"--Balancer:ClusterId={TestClusters.NextId()}", setting, "--Consumers:0=zc:1@0"]);
        Assert.Equal(1, host.WaitForExit());
        Assert.StartsWith(message, host.Errors.Split('\n').Single(l => l.StartsWith("error", StringComparison.Ordinal)));
    }

    [Fact]
    public void UnderSystemd_ItSaysWhenItIsReadyAndWhenItStops_AndLogsForJournald()
    {
        // Microsoft.Extensions.Hosting.Systemd knows systemd as the parent process named "systemd" and speaks to NOTIFY_SOCKET:
        // a shell of that name starts the sample, and the test's datagram socket hears what systemd would.
        string dir = Path.Combine(Path.GetTempPath(), $"zcflow-systemd-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        string notify = Path.Combine(dir, "notify");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(notify));
        socket.ReceiveTimeout = 30_000;
        File.CreateSymbolicLink(Path.Combine(dir, "systemd"), "/bin/bash");
        uint cluster = TestClusters.NextId();
        string sample = Path.Combine(AppContext.BaseDirectory, "HostedBalancer.dll");
        try
        {
            using ChildProcess systemd = ChildProcess.Exec(Path.Combine(dir, "systemd"), ["-c", $"dotnet '{sample}' --Balancer:ClusterId={cluster} --Consumers:0=zc:{cluster}@0 & echo \"pid $!\"; wait"],
                new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify });
            int pid = int.Parse(systemd.WaitFor("pid").Split(' ')[1]);
            var message = new byte[256];
            Assert.Equal("READY=1", Encoding.ASCII.GetString(message, 0, socket.Receive(message)).Trim());
            Listing.WaitFor(cluster, i => i.Queues.Count == 2, "the graph running");
            Native.Libc.Kill(pid, 15);
            Assert.Equal("STOPPING=1", Encoding.ASCII.GetString(message, 0, socket.Receive(message)).Trim());
            Assert.Equal(0, systemd.WaitForExit());
            // journald's format: each line a message with its syslog priority in front, <6> for information.
            Assert.Contains($"<6>ZcFlow.Graph[0] cluster {cluster}: 1 balancer(s)", systemd.Output);
            Assert.Contains($"<6>ZcFlow.Consumer[0] final stats: zc:{cluster}@0 consumed", systemd.Output);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
