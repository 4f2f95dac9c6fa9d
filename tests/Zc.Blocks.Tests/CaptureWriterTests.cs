using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Parsing;

namespace ZcFlow.Tests;

public sealed class CaptureWriterTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("zcflow-capture-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, int packets)
    {
        using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: 256);
        BufferPool pool = cluster.CreatePool(64);
        using IPacketSource gen = Device.OpenSource($"gen:98?flows=5&count={packets}", pool, 0);
        string path = Path.Combine(_dir, name);
        using var writer = new CaptureWriter(path);
        var burst = new PacketHandle[32];
        while (!gen.IsExhausted)
        {
            int n = gen.ReceiveBurst(burst);
            writer.WriteBurst(burst.AsSpan(0, n));
            pool.ReleaseBurst(burst.AsSpan(0, n));
        }
        return path;
    }

    [Theory]
    [InlineData("out.pcap")]
    [InlineData("out.pcapng")]
    public void WrittenCapture_ReadsBackByteForByte_WithItsTimestamps(string name)
    {
        string path = Write(name, 1000);
        using CaptureFile file = CaptureFile.Open(path);
        long count = 0, lastTimestamp = 0;
        while (file.TryNext(out ReadOnlySpan<byte> data, out long ts, out LinkType link))
        {
            Assert.Equal(LinkType.Ethernet, link);
            Assert.Equal(98, data.Length);
            Assert.Equal(count, System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(data[GeneratorDevice.SequenceOffset..]));
            Assert.True(ts >= lastTimestamp && ts > 1_600_000_000_000_000_000);
            lastTimestamp = ts;
            count++;
        }
        Assert.Null(file.Problem);
        Assert.Equal(1000, count);
    }

    [Theory]
    [InlineData("tcpdump", "out.pcap")]
    [InlineData("tcpdump", "out.pcapng")]
    [InlineData("tshark", "out.pcap")]
    [InlineData("tshark", "out.pcapng")]
    public void WrittenCapture_IsReadByTheRealTools(string tool, string name)
    {
        TestSetup.RequireTool(tool);
        string path = Write(name, 500);
        string[] args = tool == "tcpdump" ? ["-nn", "-r", path, "udp and dst port 80"] : ["-r", path, "-T", "fields", "-e", "frame.len", "-Y", "udp.dstport == 80"];
        (int code, string stdout, string stderr) = Tools.Run(tool, args);
        Assert.True(code == 0, $"{tool} failed: {stderr}");
        string[] lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // Every other generated packet goes to port 80 (the flows' two directions alternate).
        Assert.Equal(250, lines.Length);
        if (tool == "tshark") Assert.All(lines, l => Assert.Equal("98", l.Trim()));
        else Assert.All(lines, l => Assert.Contains(".80: UDP, length 56", l));
    }

    [Fact]
    public void DamagedCopiesOfCorpusFiles_EndCleanly()
    {
        Corpus.SkipIfMissing();
        var random = new Random(3);
        string copy = Path.Combine(_dir, "damaged");
        int files = 0;
        foreach (string source in Corpus.Files().Where((_, i) => i % 4 == 0))
        {
            byte[] original = File.ReadAllBytes(source);
            for (int round = 0; round < 8; round++)
            {
                byte[] bytes = original.AsSpan(0, random.Next(original.Length + 1)).ToArray();
                for (int flips = random.Next(8); flips > 0 && bytes.Length > 0; flips--) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                File.WriteAllBytes(copy + (source.EndsWith("ng") ? ".pcapng" : ".pcap"), bytes);
                CaptureFile file;
                try { file = CaptureFile.Open(copy + (source.EndsWith("ng") ? ".pcapng" : ".pcap")); }
                catch (InvalidDataException) { continue; }
                using (file)
                    while (file.TryNext(out ReadOnlySpan<byte> data, out _, out LinkType link))
                        PacketParser.Parse(data, out _, link);
                files++;
            }
        }
        Assert.True(files > 100);
    }
}
