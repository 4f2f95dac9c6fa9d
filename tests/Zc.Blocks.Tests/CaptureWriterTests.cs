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

    // WriteBurst takes short frames (64 bytes at most, pcap) without a call: every such length, in bursts that end the writer's
    // buffer at every offset, read back as written; longer frames between them take the general path.
    [Theory]
    [InlineData("short.pcap")]
    [InlineData("short.pcapng")]
    public void BurstsOfShortFrames_ReadBackAsWritten(string name)
    {
        string path = Path.Combine(_dir, name);
        using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: 256);
        BufferPool pool = cluster.CreatePool(64);
        var burst = new PacketHandle[37];
        var random = new Random(7);
        var frames = new List<byte[]>();
        using (var writer = new CaptureWriter(path))
        {
            while (frames.Count < 20_000)
            {
                int n = pool.GetBurst(burst);
                for (int i = 0; i < n; i++)
                {
                    int length = frames.Count % 9 == 8 ? 65 + random.Next(190) : 1 + frames.Count % 64;
                    random.NextBytes(burst[i].Buffer);
                    burst[i].SetReceived(length, length + frames.Count % 3, 1_700_000_000_123_456_789 + frames.Count, 0);
                    frames.Add(burst[i].Data.ToArray());
                }
                writer.WriteBurst(burst.AsSpan(0, n));
                pool.ReleaseBurst(burst.AsSpan(0, n));
            }
        }
        using CaptureFile file = CaptureFile.Open(path);
        int at = 0;
        while (file.TryNext(out ReadOnlySpan<byte> data, out long ts, out _))
        {
            Assert.True(data.SequenceEqual(frames[at]), $"frame {at} differs");
            Assert.Equal(frames[at].Length + at % 3, file.WireLength);
            Assert.Equal(1_700_000_000_123_456_789 + at, ts);
            at++;
        }
        Assert.Null(file.Problem);
        Assert.Equal(frames.Count, at);
    }

    [Theory]
    [InlineData("sizes.pcap")]
    [InlineData("sizes.pcapng")]
    public void FramesOfEverySizeAndWireLength_ReadBackAsWritten_ThroughTheBuffer_AndPastIt(string name)
    {
        // Every length from 1 to 70 (pcapng's padding), frames that fill the writer's 64 KiB buffer unevenly, and
        // frames larger than it; each with a wire length of its own (a snapshot cut), and enough to drain many times.
        string path = Path.Combine(_dir, name);
        var frames = new List<(byte[] Frame, int Wire)>();
        var random = new Random(5);
        for (int i = 0; i < 3000; i++)
        {
            int length = i < 70 ? i + 1 : i % 500 == 0 ? 70_000 + i : random.Next(60, 9000);
            var frame = new byte[length];
            random.NextBytes(frame);
            frames.Add((frame, length + i % 3));
        }
        using (var writer = new CaptureWriter(path))
            for (int i = 0; i < frames.Count; i++) writer.Write(frames[i].Frame, 1_700_000_000_000_000_000 + i, frames[i].Wire);
        using CaptureFile file = CaptureFile.Open(path);
        int at = 0;
        while (file.TryNext(out ReadOnlySpan<byte> data, out long ts, out _))
        {
            Assert.True(data.SequenceEqual(frames[at].Frame), $"frame {at} differs");
            Assert.Equal(frames[at].Wire, file.WireLength);
            Assert.Equal(1_700_000_000_000_000_000 + at, ts);
            at++;
        }
        Assert.Null(file.Problem);
        Assert.Equal(frames.Count, at);
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
