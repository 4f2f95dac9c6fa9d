using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using ZcFlow.Flows;

namespace ZcFlow.Tests;

/// <summary>
/// FlowExport into ClickHouse servers of the tests' own (clickhouse-server 18.16, Debian's): the flows nfdump sees over
/// IPFIX, two shards behind a Distributed table, a server killed and restarted, one that never comes back, answers lost
/// after the server stored a batch, errors, and tables made for something else.
/// </summary>
public class ClickHouseTests(ITestOutputHelper output)
{
    private static void SkipUnlessInstalled()
    {
        if (!ClickHouseServer.Installed) Assert.Skip("clickhouse-server is not installed (apt-get install clickhouse-server)");
    }

    private static (long Inserted, long Dropped, long Retries) Counts(string printed)
    {
        // The last report: with -p there is one a second.
        Match? m = Regex.Matches(printed, @"records ([\d,]+) inserted, ([\d,]+) dropped, [\d,]+ waiting; [\d,]+ batches, ([\d,]+) retries").LastOrDefault();
        Assert.True(m is not null, printed);
        return (long.Parse(m.Groups[1].Value.Replace(",", "")), long.Parse(m.Groups[2].Value.Replace(",", "")), long.Parse(m.Groups[3].Value.Replace(",", "")));
    }

    /// <summary>The table's flows as nfdump lists IPFIX's uniflows: each direction its own, summed per addresses, ports and protocol.</summary>
    private static Dictionary<string, (long Packets, long Bytes)> Flows(ClickHouseServer server, string table)
    {
        var flows = new Dictionary<string, (long, long)>();
        void Add(string key, long packets, long bytes)
        {
            (long p, long b) = flows.GetValueOrDefault(key);
            flows[key] = (p + packets, b + bytes);
        }
        string text = server.Query($"SELECT ip_version, IPv6NumToString(src_addr), IPv6NumToString(dst_addr), src_port, dst_port, protocol, packets, bytes, reverse_packets, reverse_bytes FROM {table}");
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] f = line.Split('\t');
            string Address(string a) => f[0] == "4" ? a.Replace("::ffff:", "") : a;
            // ICMP's type and code in the destination port, as nfdump shows them: type.code.
            if (f[5] is "1" or "58") f[4] = $"{int.Parse(f[4]) >> 8}.{int.Parse(f[4]) & 0xFF}";
            Add($"{Address(f[1])} {Address(f[2])} {f[3]} {f[4]} {f[5]}", long.Parse(f[6]), long.Parse(f[7]));
            if (long.Parse(f[8]) > 0) Add($"{Address(f[2])} {Address(f[1])} {f[4]} {f[3]} {f[5]}", long.Parse(f[8]), long.Parse(f[9]));
        }
        return flows;
    }

    private static FlowRecord Record(int i, long timeNs) => new()
    {
        SourceAddress = 0x0A000000u + (uint)i, DestinationAddress = 0xC0A80001, SourcePort = (ushort)(1024 + i % 60_000), DestinationPort = 53,
        Protocol = 17, IpVersion = 4, Packets = 1 + (ulong)(i % 7), Bytes = 100 + (ulong)(i % 13), ReversePackets = 1, ReverseBytes = 200,
        FirstNs = timeNs, LastNs = timeNs + 1_000_000, ReverseFirstNs = timeNs + 10_000, ReverseLastNs = timeNs + 2_000_000, End = FlowEnd.Idle,
    };

    private static (long Packets, long Bytes) Expected(int from, int to)
    {
        long packets = 0, bytes = 0;
        for (int i = from; i < to; i++) (packets, bytes) = (packets + 1 + i % 7 + 1, bytes + 100 + i % 13 + 200);
        return (packets, bytes);
    }

    private static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;

    [Fact]
    public void OneCapture_IntoClickHouse_HoldsTheFlowsNfdumpShowsForItsIpfix()
    {
        SkipUnlessInstalled();
        using var server = new ClickHouseServer();
        string generated = FlowExportTests.Generated(20_000);
        try
        {
            using var buffers = new FlowExportTests.LargeSocketBuffers();
            // UDP; IPv6 over Linux cooked capture; BGP over TCP; 20,000 generated flows, UDP and TCP.
            string[] captures = [FlowExportTests.CorpusFile("afs.pcap"), FlowExportTests.CorpusFile("babel.pcap"), FlowExportTests.CorpusFile("bgp-infinite-loop.pcap"), generated];
            for (int c = 0; c < captures.Length; c++)
            {
                string table = $"flows.capture{c}";
                string printed = FlowExportTests.FlowExport("-i", captures[c], "-n", server.Url, "-k", table, "-s", "edge1");
                (long inserted, long dropped, _) = Counts(printed);
                Assert.Equal(0, dropped);
                using var nfcapd = new FlowExportTests.Nfcapd();
                FlowExportTests.FlowExport("-i", captures[c], "-n", nfcapd.Address, "-v", 10, "-l", 5000);
                var ipfix = nfcapd.Flows(aggregate: false);
                var stored = Flows(server, table);
                output.WriteLine($"{Path.GetFileName(captures[c])}: {inserted} rows, {stored.Count} uniflows in ClickHouse, {ipfix.Count} from nfdump");
                Assert.Equal(inserted, server.Number($"SELECT count() FROM {table}"));
                Assert.NotEmpty(stored);
                Assert.Equal(ipfix.OrderBy(f => f.Key), stored.OrderBy(f => f.Key));
            }
            Assert.Equal("edge1\t0", server.Query("SELECT DISTINCT sensor, observation_domain FROM flows.capture0").Trim());
            // Times to the nanosecond, and the whole seconds an analyst queries by.
            Assert.Equal("1", server.Query("SELECT min(first = toDateTime(intDiv(first_ns, 1000000000), 'UTC') AND last >= first AND last_ns >= first_ns) FROM flows.capture3").Trim());
        }
        finally
        {
            File.Delete(generated);
        }
    }

    [Fact]
    public void TwoShards_BehindADistributedTable_HoldTheCaptureExactly_EachItsOwnExportersFlows()
    {
        SkipUnlessInstalled();
        using var first = new ClickHouseServer();
        using var second = new ClickHouseServer();
        first.Cluster(first, second);
        second.Cluster(first, second);
        string generated = FlowExportTests.Generated(20_000);
        uint id = TestClusters.NextId();
        try
        {
            // -m 1: by IP addresses, so each conversation goes to one exporter, and each exporter into its own shard.
            using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-i", generated, "-n", 2, "-m", 1, "-L", "-W", 3]);
            Listing.WaitFor(id, c => c.Queues.Count == 2, "the balancer's queues");
            using ChildProcess a = ChildProcess.Run("FlowExport", ["-i", $"zc:{id}@0", "-n", first.Url, "-k", "flows.records", "-C", "zc", "-s", "shard0", "-B", "1000,200"]);
            using ChildProcess b = ChildProcess.Run("FlowExport", ["-i", $"zc:{id}@1", "-n", second.Url, "-k", "flows.records", "-C", "zc", "-s", "shard1", "-B", "1000,200"]);
            a.WaitFor("zc:");
            b.WaitFor("zc:");
            Listing.WaitFor(id, c => c.Queues.All(q => q.Stats.Sent == q.Stats.Received) && c.Queues.Sum(q => (long)q.Stats.Sent) == 40_000,
                "every packet through the exporters", seconds: 60);
            a.Terminate();
            b.Terminate();
            Assert.Equal(0, a.WaitForExit());
            Assert.Equal(0, b.WaitForExit());
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());

            string totals = first.Query("SELECT count(), sum(packets + reverse_packets), sum(bytes + reverse_bytes) FROM flows.records_all").Trim();
            output.WriteLine($"through the Distributed table: {totals} (flows, packets, bytes)");
            Assert.Equal($"20000\t40000\t{20_000 * (68 + 128 + 60 + 100) / 2}", totals);
            Assert.Equal(totals, second.Query("SELECT count(), sum(packets + reverse_packets), sum(bytes + reverse_bytes) FROM flows.records_all").Trim());
            foreach ((ClickHouseServer shard, string sensor, ChildProcess exporter) in new[] { (first, "shard0", a), (second, "shard1", b) })
            {
                long rows = shard.Number("SELECT count() FROM flows.records");
                output.WriteLine($"{sensor}: {rows} flows; {Counts(exporter.Output)}");
                Assert.True(rows > 0);
                Assert.Equal($"{sensor}\t{rows}", shard.Query("SELECT sensor, count() FROM flows.records GROUP BY sensor").Trim());
                Assert.Equal(rows, Counts(exporter.Output).Inserted);
            }
        }
        finally
        {
            File.Delete(generated);
        }
    }

    [Fact]
    public void AServerKilledMidRun_AndRestarted_HoldsEveryRecordOnce_AndTheRetriesAreCounted()
    {
        SkipUnlessInstalled();
        using var server = new ClickHouseServer();
        long inserted = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) => { if (instrument.Name == "zcflow.clickhouse.inserted") l.EnableMeasurementEvents(instrument); };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => inserted = value);
        listener.Start();
        var export = ClickHouseExport.Open(new ClickHouseOptions
        {
            Server = new Uri(server.Url), Table = "flows.records", BatchRows = 1000, BatchAge = TimeSpan.FromMilliseconds(50), MaxBackoff = TimeSpan.FromMilliseconds(500),
        }, TimeSpan.FromSeconds(10));
        using (export)
        {
            Assert.True(export.Ready, export.Problem);
            const int Total = 60_000;
            Thread? restart = null;
            Exception? restartFailed = null;
            long t = Now;
            for (int i = 0; i < Total; i++)
            {
                export.Export(Record(i, t + i * 1000L));
                if (i % 200 == 0)
                {
                    export.Tick();
                    Thread.Sleep(1);
                }
                if (i == Total / 3)
                {
                    server.Kill();   // mid-run: with inserts under way
                    restart = new Thread(() =>
                    {
                        Thread.Sleep(1000);
                        try
                        {
                            server.Start();
                        }
                        catch (Exception e)
                        {
                            restartFailed = e;   // said on the test's thread, not as an unhandled exception here
                        }
                    });
                    restart.Start();
                }
            }
            restart!.Join();
            Assert.Null(restartFailed);
            Assert.True(export.Complete(TimeSpan.FromSeconds(60)), export.Problem);
            (long packets, long bytes) = Expected(0, Total);
            output.WriteLine($"{export.Inserted} inserted in {export.Batches} batches, {export.Retries} retries, {export.Recovered} found stored after a lost answer, {export.Dropped} dropped");
            Assert.Equal($"{Total}\t{Total}\t{packets}\t{bytes}", server.Query("SELECT count(), uniqExact(src_addr, src_port), sum(packets + reverse_packets), sum(bytes + reverse_bytes) FROM flows.records").Trim());
            Assert.Equal((ulong)Total, export.Inserted);
            Assert.Equal(0ul, export.Dropped);
            Assert.True(export.Retries > 0);
            Assert.Equal((long)export.Batches, server.Number("SELECT uniqExact(batch) FROM flows.records"));
            listener.RecordObservableInstruments();
            Assert.Equal(Total, inserted);
        }
    }

    [Fact]
    public void AServerThatNeverComesBack_TheShortfallIsTheDroppedCount_AndThePacketPathNeverWaits()
    {
        SkipUnlessInstalled();
        using var server = new ClickHouseServer();
        string generated = FlowExportTests.Generated(20_000);
        uint id = TestClusters.NextId();
        try
        {
            using ChildProcess balancer = ChildProcess.Run("Balancer", ["-c", id, "-i", $"pcap:{generated}?pace", "-n", 1, "-L", "-W", 3]);
            Listing.WaitFor(id, c => c.Queues.Count == 1, "the balancer's queue");
            using ChildProcess exporter = ChildProcess.Run("FlowExport", ["-i", $"zc:{id}@0", "-n", server.Url, "-k", "flows.records", "-B", "500,50", "-q", 2000, "-p"]);
            exporter.WaitFor("zc:");
            // At the capture's pace (4 s): some records stored, then the server gone for good while the rest of it comes.
            Wait.Until(() => server.TryQuery("SELECT count() FROM flows.records", out string n) && long.TryParse(n.Trim(), out long rows) && rows > 0, "the first rows in the table");
            server.Kill();
            var info = Listing.WaitFor(id, c => c.Queues[0].Stats.Sent == c.Queues[0].Stats.Received && c.Queues[0].Stats.Sent == 40_000, "every packet through the exporter", seconds: 90);
            Assert.Equal(0ul, info.Queues[0].Stats.Dropped);   // the exporter kept taking packets while ClickHouse was gone
            exporter.Terminate();
            Assert.Equal(0, exporter.WaitForExit(60));
            balancer.Terminate();
            Assert.Equal(0, balancer.WaitForExit());
            (long inserted, long dropped, long retries) = Counts(exporter.Output);
            // Live, a flow ends when it has been idle by the wall clock: a reply that comes after the check is a flow of its own.
            long ended = long.Parse(Regex.Matches(exporter.Output, @"([\d,]+) ended").Last().Groups[1].Value.Replace(",", ""));
            server.Start();   // to count what it holds
            long rows = server.Number("SELECT count() FROM flows.records");
            output.WriteLine($"{ended} flows ended: {rows} rows stored, {inserted} inserted, {dropped} dropped, {retries} retries");
            Assert.InRange(ended, 20_000, 20_100);
            Assert.Equal(ended - inserted, dropped);   // what the exporter does not know stored is counted dropped, never sent twice
            // The batch the server stored as it was killed, before its answer came back, is such a batch: the table may
            // hold one batch (-B 500) more than the exporter was told of, and never less.
            Assert.InRange(rows - inserted, 0, 500);
            Assert.Contains("clickhouse: ClickHouse at", exporter.Errors);
        }
        finally
        {
            File.Delete(generated);
        }
    }

    [Fact]
    public void AnswersLostAfterTheServerStoredABatch_AreFoundStored_NotSentAgain()
    {
        SkipUnlessInstalled();
        using var server = new ClickHouseServer();
        using var proxy = new Proxy(server.HttpPort) { CutInserts = 3 };
        using var export = ClickHouseExport.Open(new ClickHouseOptions
        {
            Server = new Uri($"http://127.0.0.1:{proxy.Port}/"), Table = "flows.records", BatchRows = 500, MaxBackoff = TimeSpan.FromMilliseconds(200),
        }, TimeSpan.FromSeconds(10));
        long t = Now;
        for (int i = 0; i < 5000; i++) export.Export(Record(i, t + i));
        Assert.True(export.Complete(TimeSpan.FromSeconds(30)), export.Problem);
        output.WriteLine($"{export.Inserted} inserted in {export.Batches} batches, {export.Retries} retries, {export.Recovered} recovered");
        Assert.Equal(0, proxy.CutInserts);
        Assert.Equal(5000, server.Number("SELECT count() FROM flows.records"));
        Assert.Equal(10, server.Number("SELECT uniqExact(batch) FROM flows.records"));
        Assert.Equal(3ul, export.Recovered);
        Assert.Equal(5000ul, export.Inserted);
    }

    [Fact]
    public void AServerThatAnswersErrors_IsToldOfClearly_AndTheExportGoesOnWhenItAcceptsAgain()
    {
        SkipUnlessInstalled();
        using var server = new ClickHouseServer();
        using var proxy = new Proxy(server.HttpPort) { RefuseInserts = 4 };
        using var export = ClickHouseExport.Open(new ClickHouseOptions
        {
            Server = new Uri($"http://127.0.0.1:{proxy.Port}/"), Table = "flows.records", BatchRows = 1000, MaxBackoff = TimeSpan.FromMilliseconds(200),
        }, TimeSpan.FromSeconds(10));
        long t = Now;
        string? seen = null;
        for (int i = 0; i < 3000; i++) export.Export(Record(i, t + i));
        export.Tick();
        Wait.Until(() => (seen ??= export.Problem) is not null, "the error to be reported");
        Assert.True(export.Complete(TimeSpan.FromSeconds(30)), export.Problem);
        output.WriteLine(seen ?? "");
        Assert.Contains("Code: 241", seen);
        Assert.Contains("inserting 1,000 rows into flows.records", seen);
        Assert.Equal(3000, server.Number("SELECT count() FROM flows.records"));
        Assert.True(export.Retries >= 4);
        Assert.Null(export.Problem);
    }

    [Fact]
    public void BadInput_GetsAClearMessage()
    {
        SkipUnlessInstalled();
        using var server = new ClickHouseServer();
        string capture = FlowExportTests.CorpusFile("afs.pcap");
        // A table made for something else: refused, naming the column.
        server.Query("CREATE DATABASE other");
        server.Query("CREATE TABLE other.flows (sensor String, packets String) ENGINE = MergeTree ORDER BY sensor");
        using (ChildProcess wrong = ChildProcess.Run("FlowExport", ["-i", capture, "-n", server.Url, "-k", "other.flows"]))
        {
            Assert.Equal(1, wrong.WaitForExit());
            Assert.Contains("other.flows is there without column observation_domain", wrong.Errors);
        }
        // A Distributed table: writes through it are not stored when the insert returns, so they cannot be exactly once.
        FlowExportTests.FlowExport("-i", capture, "-n", server.Url, "-k", "zc.flows");
        server.Query("CREATE TABLE zc.over AS zc.flows ENGINE = Distributed(zc, zc, flows)");
        using (ChildProcess distributed = ChildProcess.Run("FlowExport", ["-i", capture, "-n", server.Url, "-k", "zc.over"]))
        {
            Assert.Equal(1, distributed.WaitForExit());
            Assert.Contains("zc.over is a Distributed table: flows go into a MergeTree table", distributed.Errors);
        }
        server.Query("CREATE TABLE zc.typed AS zc.flows");
        server.Query("ALTER TABLE zc.typed MODIFY COLUMN packets UInt32");
        using (ChildProcess typed = ChildProcess.Run("FlowExport", ["-i", capture, "-n", server.Url, "-k", "zc.typed"]))
        {
            Assert.Equal(1, typed.WaitForExit());
            Assert.Contains("column packets of type UInt32, not UInt64", typed.Errors);
        }
        // An unreachable server: said at once; the capture is read to its end and every record is counted as dropped.
        using (ChildProcess unreachable = ChildProcess.Run("FlowExport", ["-i", capture, "-n", $"http://127.0.0.1:{ClickHouseServer.FreePort()}/"]))
        {
            Assert.Equal(0, unreachable.WaitForExit(60));
            Assert.Contains("not reachable", unreachable.Errors);
            Assert.Equal((0, 19), (Counts(unreachable.Output).Inserted, Counts(unreachable.Output).Dropped));
            Assert.Contains("input 601 received", unreachable.Output);
        }
        // Names and numbers that cannot be right.
        foreach ((string[] args, string message) in new[]
        {
            (new[] { "-k", "flows" }, "the table is database.table"),
            (["-k", "a.b;DROP"], "the table is database.table"),
            (["-B", "0"], "-B takes the rows of a batch"),
            (["-C", "no such"], "the cluster is a name"),
        })
        {
            using ChildProcess bad = ChildProcess.Run("FlowExport", ["-i", capture, "-n", server.Url, .. args]);
            Assert.NotEqual(0, bad.WaitForExit());
            Assert.Contains(message, bad.Errors + bad.Output);
        }
        using ChildProcess notClickHouse = ChildProcess.Run("FlowExport", ["-i", capture, "-n", "127.0.0.1:2055", "-k", "a.b"]);
        Assert.NotEqual(0, notClickHouse.WaitForExit());
        Assert.Contains("-k is for a ClickHouse server", notClickHouse.Errors + notClickHouse.Output);
    }

    /// <summary>
    /// Between the export and the server: forwards each request (one a connection), but loses the answers to the next
    /// <see cref="CutInserts"/> inserts after the server has stored them, and answers the next <see cref="RefuseInserts"/>
    /// with an error of the server's kind without forwarding them.
    /// </summary>
    private sealed class Proxy : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly int _upstream;
        private readonly Thread _thread;
        private int _cut, _refuse;

        public Proxy(int upstream)
        {
            _upstream = upstream;
            _listener.Start();
            _thread = new Thread(Serve) { IsBackground = true };
            _thread.Start();
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public int CutInserts { get => Math.Max(0, Volatile.Read(ref _cut)); init => _cut = value; }

        public int RefuseInserts { get => Math.Max(0, Volatile.Read(ref _refuse)); init => _refuse = value; }

        public void Dispose() => _listener.Stop();

        private void Serve()
        {
            try
            {
                while (true)
                {
                    TcpClient client = _listener.AcceptTcpClient();
                    new Thread(() => Handle(client)) { IsBackground = true }.Start();
                }
            }
            catch (SocketException)
            {
                // stopped
            }
            catch (ObjectDisposedException)
            {
            }
        }

        private void Handle(TcpClient client)
        {
            using (client)
            {
                NetworkStream from = client.GetStream();
                var head = new List<byte>();
                while (head.Count < 4 || head[^4] != '\r' || head[^3] != '\n' || head[^2] != '\r' || head[^1] != '\n')
                {
                    int b = from.ReadByte();
                    if (b < 0) return;
                    head.Add((byte)b);
                }
                string text = Encoding.ASCII.GetString([.. head]);
                Match length = Regex.Match(text, @"(?im)^content-length:\s*(\d+)");
                byte[] body = new byte[length.Success ? int.Parse(length.Groups[1].Value) : 0];
                from.ReadExactly(body);
                bool insert = text.Split('\n')[0].Contains("INSERT", StringComparison.Ordinal);
                if (insert && Interlocked.Decrement(ref _refuse) >= 0)
                {
                    byte[] error = Encoding.ASCII.GetBytes("Code: 241, e.displayText() = DB::Exception: Memory limit (for query) exceeded, e.what() = DB::Exception\n");
                    from.Write(Encoding.ASCII.GetBytes($"HTTP/1.1 500 Internal Server Error\r\nContent-Length: {error.Length}\r\nConnection: close\r\n\r\n"));
                    from.Write(error);
                    return;
                }
                // One request a connection: the server closes after its answer, which is then whole.
                text = Regex.Replace(text, @"(?im)^connection:[^\r\n]*\r\n", "").Replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
                using var server = new TcpClient("127.0.0.1", _upstream);
                NetworkStream to = server.GetStream();
                to.Write(Encoding.ASCII.GetBytes(text));
                to.Write(body);
                var answer = new MemoryStream();
                to.CopyTo(answer);
                if (insert && Interlocked.Decrement(ref _cut) >= 0) return;   // stored, and the answer lost
                from.Write(answer.ToArray());
            }
        }
    }
}
