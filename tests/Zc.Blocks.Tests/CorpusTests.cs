using ZcFlow.Buffers;
using ZcFlow.Devices;
using ZcFlow.Distribution;
using ZcFlow.Parsing;

namespace ZcFlow.Tests;

/// <summary>Every capture of tcpdump's test suite, many crafted to break parsers, goes through the reader, the parser and every hash.</summary>
public class CorpusTests(ITestOutputHelper output)
{
    [Fact]
    public void EveryCorpusFile_IsReadOrRejectedCleanly_AndEveryPacketParsesAndHashes()
    {
        Corpus.SkipIfMissing();
        using ZcCluster cluster = TestClusters.Create(buffers: 64, bufferSize: 65536);
        BufferPool pool = cluster.CreatePool(64);
        Assert.True(pool.TryGet(out PacketHandle buffer));
        int files = 0, rejected = 0, damaged = 0;
        long packets = 0;
        var stops = new Dictionary<ParseStop, long>();
        foreach (string path in Corpus.Files())
        {
            files++;
            CaptureFile file;
            try { file = CaptureFile.Open(path); }
            catch (InvalidDataException) { rejected++; continue; }
            using (file)
            {
                LinkType opened = file.LinkType;
                bool first = true;
                while (file.TryNext(out ReadOnlySpan<byte> data, out _, out LinkType link))
                {
                    if (first) Assert.True(link == opened, $"{Path.GetFileName(path)}: opened as {opened}, its first packet is {link}");   // a pcapng's too
                    first = false;
                    packets++;
                    PacketParser.Parse(data, out PacketInfo info, link);
                    PacketParser.ParseLayers(data, out PacketInfo general, link);
                    Assert.Equal(general, info);   // the fast path for plain TCP/UDP over IPv4 finds what the general one does
                    stops[info.Stop] = stops.GetValueOrDefault(info.Stop) + 1;
                    int length = Math.Min(data.Length, buffer.Capacity);
                    data[..length].CopyTo(buffer.Buffer);
                    buffer.Length = length;
                    AssertRoutes(buffer);
                }
                if (file.Problem is not null) damaged++;
            }
        }
        output.WriteLine($"{files} files: {rejected} rejected, {damaged} ended early on damage; {packets} packets; stops: {string.Join(", ", stops.Select(kv => $"{kv.Key} {kv.Value}"))}");
        Assert.True(files >= 800, $"only {files} corpus files");
        Assert.True(packets > 10_000);
    }

    private static void AssertRoutes(in PacketHandle p)
    {
        const int Queues = 7;
        const ulong All = (1UL << Queues) - 1;
        Assert.NotEqual(0UL, new IpHash().Route(p, Queues) & All);
        Assert.NotEqual(0UL, new FiveTupleHash().Route(p, Queues) & All);
        Assert.NotEqual(0UL, new GtpHash().Route(p, Queues) & All);
        Assert.NotEqual(0UL, new GreHash().Route(p, Queues) & All);
        Assert.Equal(0UL, new VlanMap([1, 2]).Route(p, 3) & ~7UL);   // may drop (an unmapped VLAN), never routes outside
    }

    [Fact]
    public void EveryCorpusFile_ThroughThePcapDevice_DeliversWhatTheReaderReads()
    {
        Corpus.SkipIfMissing();
        using ZcCluster cluster = TestClusters.Create(buffers: 256, bufferSize: 2048);
        BufferPool pool = cluster.CreatePool(256);
        var burst = new PacketHandle[32];
        foreach (string path in Corpus.Files())
        {
            long expected = 0;
            try
            {
                using CaptureFile file = CaptureFile.Open(path);
                while (file.TryNext(out _, out _, out _)) expected++;
            }
            catch (InvalidDataException)
            {
                Assert.Throws<InvalidDataException>(() => Device.OpenSource("pcap:" + path, pool, 0));
                continue;
            }
            using IPacketSource device = Device.OpenSource("pcap:" + path, pool, 3);
            long got = 0;
            while (!device.IsExhausted)
            {
                int n = device.ReceiveBurst(burst);
                for (int i = 0; i < n; i++) Assert.Equal(3u, burst[i].DeviceIndex);
                pool.ReleaseBurst(burst.AsSpan(0, n));
                got += n;
            }
            Assert.Equal(expected, got);
        }
        Assert.Equal(pool.Capacity, pool.Available);
    }

    [Fact]
    public void BothDirectionsOfEveryCorpusConversation_HashAlike()
    {
        Corpus.SkipIfMissing();
        var byConversation = new Dictionary<(UInt128, ushort, UInt128, ushort, byte), (uint FiveTuple, uint Addresses)>();
        long conversationsSeenBothWays = 0, checkedPackets = 0;
        var directions = new Dictionary<(UInt128, ushort, UInt128, ushort, byte), int>();
        foreach (string path in Corpus.Files())
        {
            CaptureFile file;
            try { file = CaptureFile.Open(path); } catch (InvalidDataException) { continue; }
            using (file)
            {
                while (file.TryNext(out ReadOnlySpan<byte> data, out _, out LinkType link))
                {
                    PacketParser.Parse(data, out PacketInfo info, link);
                    PacketParser.ParseLayers(data, out PacketInfo general, link);
                    Assert.Equal(general, info);   // the fast path for plain TCP/UDP over IPv4 finds what the general one does
                    FlowKey k = info.Outer;
                    if (!k.HasPorts || k.Protocol is not (6 or 17)) continue;
                    bool forward = (k.Source, k.SourcePort).CompareTo((k.Destination, k.DestinationPort)) <= 0;
                    var conversation = forward
                        ? (k.Source, k.SourcePort, k.Destination, k.DestinationPort, k.Protocol)
                        : (k.Destination, k.DestinationPort, k.Source, k.SourcePort, k.Protocol);
                    var hashes = (FlowHash.FiveTuple(k), FlowHash.Addresses(k));
                    if (byConversation.TryGetValue(conversation, out var seen))
                        Assert.True(seen == hashes, $"{Path.GetFileName(path)}: the two directions of {conversation} hash differently");
                    else byConversation[conversation] = hashes;
                    int bit = forward ? 1 : 2;
                    int before = directions.GetValueOrDefault(conversation);
                    if (before != 3 && (before | bit) == 3) conversationsSeenBothWays++;
                    directions[conversation] = before | bit;
                    checkedPackets++;
                }
            }
        }
        output.WriteLine($"{checkedPackets} TCP/UDP packets, {byConversation.Count} conversations, {conversationsSeenBothWays} seen in both directions");
        Assert.True(conversationsSeenBothWays > 100);
    }
}
