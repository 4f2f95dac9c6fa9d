using System.Diagnostics;

namespace ZcFlow.Tests;

/// <summary>The Aggregator writes to a pipe (<c>-o -</c>) that tcpdump and tshark read as it comes, and stops when its reader goes.</summary>
public class AggregatorPipeTests
{
    private static string Aggregator => $"dotnet '{Path.Combine(AppContext.BaseDirectory, "Aggregator.dll")}'";

    private static (int Code, string Output, string Error) Shell(string command)
    {
        var clock = Stopwatch.StartNew();
        var result = Tools.Run("bash", "-o", "pipefail", "-c", command);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"'{command}' took {clock.Elapsed}");
        return result;
    }

    private static string Capture(int packets)
    {
        string pcap = Path.Combine(Path.GetTempPath(), $"zcflow-pipe-{Guid.NewGuid():N}.pcap");
        using var writer = new Devices.CaptureWriter(pcap);
        for (int i = 0; i < packets; i++)
            writer.Write(Frames.Ethernet(0x0800).Ipv4((uint)i, 0x0A000001, 17, 8 + i % 50).Udp((ushort)i, 53, i % 50).Add(new byte[i % 50]).ToArray(), 1_700_000_000_123_456_789 + i * 1000L);
        return pcap;
    }

    [Fact]
    public void PcapOnStandardOutput_IsWhatTcpdumpReadsFromTheFileItself()
    {
        string pcap = Capture(1000);
        try
        {
            var direct = Shell($"tcpdump -nn --nano -r '{pcap}'");
            var piped = Shell($"{Aggregator} -i '{pcap}' -o - 2>/dev/null | tcpdump -nn --nano -r -");
            Assert.Equal(0, piped.Code);
            Assert.Equal(1000, piped.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
            Assert.Equal(direct.Output, piped.Output);   // every packet, its bytes and its nanosecond time
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Fact]
    public void PcapngOnStandardOutput_IsReadByTshark()
    {
        string pcap = Capture(1000);
        try
        {
            var piped = Shell($"{Aggregator} -i '{pcap}' -o - -F pcapng 2>/dev/null | tshark -n -r - -T fields -e frame.len");
            Assert.Equal(0, piped.Code);
            Assert.Equal(Enumerable.Range(0, 1000).Select(i => (42 + i % 50).ToString()), piped.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Fact]
    public void WhenTheReaderGoes_TheAggregatorStops_SayingSo()
    {
        // An endless generator; tcpdump takes 5 packets and leaves.
        string errors = Path.Combine(Path.GetTempPath(), $"zcflow-pipe-{Guid.NewGuid():N}.err");
        var result = Shell($"{Aggregator} -i 'gen:64?flows=4' -o - 2>'{errors}' | tcpdump -nn -r - -c 5; cat '{errors}'; rm -f '{errors}'");
        Assert.Equal(5, result.Output.Split('\n').Count(l => l.Contains("UDP")));
        Assert.Contains("the reader of the output has gone: stopping", result.Output);
    }
}
