using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.IO.Compression;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace ZcFlow.Flows;

/// <summary>
/// Ended flows into a ClickHouse table, in batches over the HTTP interface (RowBinary, gzip), never waiting on the
/// thread that calls <see cref="Export"/>.
///
/// Each record is written at once as a row into a ring of <see cref="ClickHouseOptions.BufferRows"/> rows allocated once;
/// rows form a batch until it has <see cref="ClickHouseOptions.BatchRows"/> rows or its first is
/// <see cref="ClickHouseOptions.BatchAge"/> old, and a thread of the export's own sends the batches in order, one insert
/// each. A record that finds the ring full (the server slow or gone) is dropped and counted in <see cref="Dropped"/>;
/// nothing else is ever lost, and the caller never waits. A failed insert is tried again, the wait doubling from 100 ms up to
/// <see cref="ClickHouseOptions.MaxBackoff"/>, and the export catches up when the server is back.
///
/// Nothing is stored twice: every row carries its batch's id (a random number of this export's in the high 32 bits, the
/// batch's sequence in the low), a batch never spans two partitions (days) and is at most one block, so ClickHouse
/// stores it as one part, all or nothing; the insert's query id is the batch's. When an insert fails in a way that leaves
/// its outcome unknown (the connection broke after the rows were sent, or no answer came in time), the export waits until
/// the server no longer runs that query, counts the batch's rows in the table, and sends them again only if none is
/// there. So while the server keeps its data, every record is stored exactly once or counted in <see cref="Dropped"/>.
/// </summary>
public sealed class ClickHouseExport : IFlowExport, IDisposable
{
    /// <summary>The table's columns, in the order each row is written; the last two are computed by the server.</summary>
    internal static readonly (string Name, string Type)[] Columns =
    [
        ("sensor", "String"), ("observation_domain", "UInt32"), ("batch", "UInt64"),
        ("first_ns", "UInt64"), ("last_ns", "UInt64"), ("ip_version", "UInt8"),
        ("src_addr", "FixedString(16)"), ("dst_addr", "FixedString(16)"), ("src_port", "UInt16"), ("dst_port", "UInt16"),
        ("protocol", "UInt8"), ("vlan", "UInt16"), ("tcp_flags", "UInt8"), ("reverse_tcp_flags", "UInt8"),
        ("packets", "UInt64"), ("bytes", "UInt64"), ("reverse_packets", "UInt64"), ("reverse_bytes", "UInt64"),
        ("end_reason", "Enum8('idle' = 1, 'active' = 2, 'end of flow' = 3, 'forced' = 4, 'lack of resources' = 5)"),
        ("first", "DateTime('UTC')"), ("last", "DateTime('UTC')"),
    ];

    private const int Written = 19;   // the columns a row holds; first and last are MATERIALIZED from first_ns and last_ns
    private const int FixedRowBytes = 4 + 8 + 8 + 8 + 1 + 16 + 16 + 2 + 2 + 1 + 2 + 1 + 1 + 8 + 8 + 8 + 8 + 1;
    private const long NsPerDay = 86_400_000_000_000;
    private static readonly Regex Identifier = new("^[A-Za-z_][A-Za-z0-9_]*$", RegexOptions.CultureInvariant);

    private readonly ClickHouseOptions _options;
    private readonly string _database, _table, _quotedTable;
    private readonly byte[] _prefix;   // sensor and observation domain: the same in every row
    private readonly int _rowBytes;
    private readonly long _capacity;
    private readonly byte[] _ring;
    private readonly long _ageTicks;
    private readonly uint _exporter = BinaryPrimitives.ReadUInt32LittleEndian(RandomNumberGenerator.GetBytes(4));
    private readonly HttpClient _http;
    private readonly Uri _endpoint;
    private readonly ConcurrentQueue<Batch> _sealed = new();
    private readonly AutoResetEvent _wake = new(false);
    private readonly ManualResetEventSlim _stopping = new(false), _prepared = new(false);
    private readonly CancellationTokenSource _cancel = new();
    private readonly Thread _sender;
    private readonly Meter _meter;
    private readonly MemoryStream _body = new();

    // The thread that exports: the batch being filled.
    private long _written, _fillStart, _fillSince, _fillDay, _fillMin, _fillMax;
    private int _fillRows;
    private uint _sequence;
    private ulong _droppedFull;
    private bool _completed;

    // The sender's: published for the caller and for stats.
    private long _released;
    private ulong _inserted, _batches, _retries, _recovered, _droppedUnsent;
    private volatile bool _ready, _stop;
    private volatile string? _problem, _refused;

    private readonly record struct Batch(long Start, int Rows, ulong Id, long MinSecond, long MaxSecond);

    // Stored: the server said yes. Refused: it said no. Unreachable: nothing reached it. Unknown: no answer came after the request went.
    private enum Outcome { Stored, Refused, Unreachable, Unknown }

    /// <summary>An export that sets up its table and sends in the background (see <see cref="Open"/> to wait for the server first).</summary>
    public ClickHouseExport(ClickHouseOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Server.Scheme is not ("http" or "https"))
            throw new ArgumentException($"the ClickHouse server is an http:// or https:// URL of its HTTP interface (http://127.0.0.1:8123/), not '{options.Server}'", nameof(options));
        string[] parts = options.Table.Split('.');
        if (parts.Length != 2 || !Identifier.IsMatch(parts[0]) || !Identifier.IsMatch(parts[1]))
            throw new ArgumentException($"the table is database.table, each a name of letters, digits and '_' (zcflow.flows), not '{options.Table}'", nameof(options));
        if (options.Cluster is string cluster && !Identifier.IsMatch(cluster))
            throw new ArgumentException($"the cluster is a name of letters, digits and '_', as in the server's remote_servers, not '{cluster}'", nameof(options));
        if (options.BatchRows is < 1 or > 1 << 20) throw new ArgumentOutOfRangeException(nameof(options), options.BatchRows, "a batch holds 1 to 1,048,576 rows");
        if (options.BufferRows < options.BatchRows) throw new ArgumentOutOfRangeException(nameof(options), options.BufferRows, $"the buffer holds at least one batch ({options.BatchRows:N0} rows)");
        if (options.BatchAge <= TimeSpan.Zero || options.RequestTimeout <= TimeSpan.Zero || options.MaxBackoff <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), "the batch age, request timeout and backoff are positive");
        _options = options;
        (_database, _table) = (parts[0], parts[1]);
        _quotedTable = $"`{_database}`.`{_table}`";

        byte[] sensor = Encoding.UTF8.GetBytes(options.Sensor);
        var prefix = new List<byte>();
        for (uint n = (uint)sensor.Length; ; n >>= 7)   // String: its length as LEB128, then its bytes
        {
            prefix.Add((byte)(n < 0x80 ? n : (n & 0x7F) | 0x80));
            if (n < 0x80) break;
        }
        prefix.AddRange(sensor);
        prefix.AddRange(BitConverter.GetBytes(options.ObservationDomain));
        _prefix = [.. prefix];
        _rowBytes = _prefix.Length - 4 + FixedRowBytes;
        _capacity = options.BufferRows;
        if (_capacity * _rowBytes > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(options), options.BufferRows, $"{options.BufferRows:N0} rows of {_rowBytes} bytes do not fit in one buffer");
        _ring = GC.AllocateUninitializedArray<byte>((int)(_capacity * _rowBytes));
        _ageTicks = (long)(options.BatchAge.TotalSeconds * Stopwatch.Frequency);

        var server = new UriBuilder(options.Server) { UserName = "", Password = "" };
        _endpoint = server.Uri;
        // Every request on a connection of its own (one a batch: nothing beside a batch's rows): the HTTP stack sends a request
        // again by itself when a reused connection breaks before the answer, and an insert must go again only after the check.
        _http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero, ConnectTimeout = options.RequestTimeout }) { Timeout = options.RequestTimeout };
        if (options.Server.UserInfo.Length > 0)
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(Uri.UnescapeDataString(options.Server.UserInfo))));

        var tags = new TagList { { "table", options.Table }, { "sensor", options.Sensor } };
        _meter = new Meter(Graphs.GraphMetrics.MeterName);
        _meter.CreateObservableCounter("zcflow.clickhouse.inserted", () => new Measurement<long>((long)Inserted, tags), "{record}", "Flow records stored in ClickHouse");
        _meter.CreateObservableCounter("zcflow.clickhouse.batches", () => new Measurement<long>((long)Batches, tags), "{batch}", "Inserts that stored a batch");
        _meter.CreateObservableCounter("zcflow.clickhouse.retries", () => new Measurement<long>((long)Retries, tags), "{attempt}", "Inserts and checks that failed and were tried again");
        _meter.CreateObservableCounter("zcflow.clickhouse.dropped", () => new Measurement<long>((long)Dropped, tags), "{record}", "Flow records dropped: the buffer was full, or the export ended before the server took them");
        _meter.CreateObservableUpDownCounter("zcflow.clickhouse.waiting", () => new Measurement<long>(Waiting, tags), "{record}", "Flow records held for the server");

        _sender = new Thread(Send) { IsBackground = true, Name = "zcflow-clickhouse" };
        _sender.Start();
    }

    /// <summary>
    /// An export whose table is there: waits up to <paramref name="wait"/> for the server to answer and the table to be
    /// created or found right. A server that does not answer in time is tried again in the background (<see cref="Problem"/>
    /// says why), and records wait meanwhile; a table that is there with other columns, or a server that refuses, is an
    /// <see cref="InvalidOperationException"/> naming the reason.
    /// </summary>
    public static ClickHouseExport Open(ClickHouseOptions options, TimeSpan wait)
    {
        var export = new ClickHouseExport(options);
        export._prepared.Wait(wait);
        if (export._refused is string why)
        {
            export.Dispose();
            throw new InvalidOperationException(why);
        }
        return export;
    }

    /// <summary>Records stored in the table.</summary>
    public ulong Inserted => Volatile.Read(ref _inserted);

    /// <summary>Batches stored.</summary>
    public ulong Batches => Volatile.Read(ref _batches);

    /// <summary>Inserts (and checks of an insert's outcome) that failed and were tried again.</summary>
    public ulong Retries => Volatile.Read(ref _retries);

    /// <summary>Batches whose insert failed with its outcome unknown, and that were found stored: not sent again.</summary>
    public ulong Recovered => Volatile.Read(ref _recovered);

    /// <summary>Records dropped: the buffer was full, or the export ended before the server took them.</summary>
    public ulong Dropped => Volatile.Read(ref _droppedFull) + Volatile.Read(ref _droppedUnsent);

    /// <summary>Records held for the server: in batches not yet stored, or in the batch being filled.</summary>
    public long Waiting => Math.Max(0, Volatile.Read(ref _written) - Volatile.Read(ref _released));

    /// <summary>True once the table has been found or created (and the <c>Distributed</c> table, with a cluster).</summary>
    public bool Ready => _ready;

    /// <summary>The last failure, as the server or the network said it; null while all goes well.</summary>
    public string? Problem => _problem;

    /// <summary>Writes one ended flow as a row of the batch being filled; drops it, counted, when the buffer is full. Never waits.</summary>
    public void Export(in FlowRecord flow)
    {
        long firstNs = flow.FirstNs != 0 && (flow.ReverseFirstNs == 0 || flow.FirstNs <= flow.ReverseFirstNs) ? flow.FirstNs : flow.ReverseFirstNs;
        long lastNs = Math.Max(flow.LastNs, flow.ReverseLastNs);
        long day = firstNs / NsPerDay, second = firstNs / 1_000_000_000;
        long now = Stopwatch.GetTimestamp();
        // One batch, one partition (a day of first): so that the server stores it as one part.
        if (_fillRows > 0 && (day != _fillDay || now - _fillSince >= _ageTicks)) Seal();
        if (_written - Volatile.Read(ref _released) >= _capacity)
        {
            Volatile.Write(ref _droppedFull, _droppedFull + 1);
            return;
        }
        if (_fillRows == 0) (_fillSince, _fillDay, _fillMin, _fillMax) = (now, day, second, second);
        else (_fillMin, _fillMax) = (Math.Min(_fillMin, second), Math.Max(_fillMax, second));

        Span<byte> row = _ring.AsSpan((int)(_written % _capacity * _rowBytes), _rowBytes);
        _prefix.CopyTo(row);
        Span<byte> r = row[_prefix.Length..];
        BinaryPrimitives.WriteUInt64LittleEndian(r, ((ulong)_exporter << 32) | _sequence);
        BinaryPrimitives.WriteUInt64LittleEndian(r[8..], (ulong)firstNs);
        BinaryPrimitives.WriteUInt64LittleEndian(r[16..], (ulong)lastNs);
        r[24] = flow.IpVersion;
        WriteAddress(r.Slice(25, 16), flow.SourceAddress, flow.IpVersion);
        WriteAddress(r.Slice(41, 16), flow.DestinationAddress, flow.IpVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(r[57..], flow.SourcePort);
        BinaryPrimitives.WriteUInt16LittleEndian(r[59..], flow.DestinationPort);
        r[61] = flow.Protocol;
        BinaryPrimitives.WriteUInt16LittleEndian(r[62..], flow.Vlan);
        r[64] = flow.TcpFlags;
        r[65] = flow.ReverseTcpFlags;
        BinaryPrimitives.WriteUInt64LittleEndian(r[66..], flow.Packets);
        BinaryPrimitives.WriteUInt64LittleEndian(r[74..], flow.Bytes);
        BinaryPrimitives.WriteUInt64LittleEndian(r[82..], flow.ReversePackets);
        BinaryPrimitives.WriteUInt64LittleEndian(r[90..], flow.ReverseBytes);
        r[98] = (byte)flow.End;
        Volatile.Write(ref _written, _written + 1);
        if (++_fillRows == _options.BatchRows) Seal();
    }

    /// <summary>Sends the batch being filled if its first row is <see cref="ClickHouseOptions.BatchAge"/> old; call it now and then from the thread that exports (FlowExport does every 100 ms).</summary>
    public void Tick()
    {
        if (_fillRows > 0 && Stopwatch.GetTimestamp() - _fillSince >= _ageTicks) Seal();
    }

    /// <summary>
    /// Sends what is left and waits for the server to store it all, as long as it stores something at least every
    /// <paramref name="patience"/>; then stops sending, and counts what was not stored in <see cref="Dropped"/>. True when
    /// everything was stored. From the thread that exports.
    /// </summary>
    public bool Complete(TimeSpan patience)
    {
        if (_completed) return Waiting == 0;
        _completed = true;
        if (_fillRows > 0) Seal();
        var clock = Stopwatch.StartNew();
        for (long released = Volatile.Read(ref _released); Waiting > 0 && clock.Elapsed < patience; Thread.Sleep(10))
        {
            if (Volatile.Read(ref _released) == released) continue;
            released = Volatile.Read(ref _released);
            clock.Restart();
        }
        _stop = true;
        _stopping.Set();
        _cancel.Cancel();   // an insert under way ends now: its rows are counted as dropped (it may yet be stored)
        _wake.Set();
        _sender.Join();
        long left = Waiting;
        Interlocked.Add(ref _droppedUnsent, (ulong)left);
        Volatile.Write(ref _released, _written);
        return left == 0;
    }

    /// <summary>Stops sending (without waiting: <see cref="Complete"/> first to wait), counting what was not stored as dropped.</summary>
    public void Dispose()
    {
        if (!_completed) Complete(TimeSpan.Zero);
        _meter.Dispose();
        _http.Dispose();
        _cancel.Dispose();
    }

    private void Seal()
    {
        // The queue's enqueue publishes the rows written before it to the sender, which dequeues before it reads them.
        _sealed.Enqueue(new Batch(_fillStart, _fillRows, ((ulong)_exporter << 32) | _sequence, _fillMin, _fillMax));
        _sequence++;
        _fillStart = _written;
        _fillRows = 0;
        _wake.Set();
    }

    private static void WriteAddress(Span<byte> to, UInt128 address, byte version)
    {
        // IPv6 as its 16 bytes; IPv4 mapped into IPv6 (::ffff:a.b.c.d), as IPv4ToIPv6 and IPv6NumToString read it.
        BinaryPrimitives.WriteUInt128BigEndian(to, version == 4 ? ((UInt128)0xFFFF << 32) | (uint)address : address);
    }

    private void Send()
    {
        TimeSpan backoff = TimeSpan.FromMilliseconds(100);
        bool maybeStored = false;
        while (!_stop)
        {
            Outcome outcome;
            if (!_ready)
            {
                outcome = Prepare();
                _prepared.Set();
                if (outcome == Outcome.Stored)
                {
                    _ready = true;
                    continue;
                }
            }
            else if (!_sealed.TryPeek(out Batch batch))
            {
                _wake.WaitOne(100);
                continue;
            }
            else
            {
                outcome = Outcome.Unknown;
                if (maybeStored && (outcome = Resolve(batch)) == Outcome.Refused) maybeStored = false;   // not there: send it
                if (!maybeStored) outcome = Insert(batch);
                if (outcome == Outcome.Stored)
                {
                    _sealed.TryDequeue(out _);
                    maybeStored = false;
                    backoff = TimeSpan.FromMilliseconds(100);
                    // Released after the rows were read: the exporting thread may write over them from now on.
                    Volatile.Write(ref _released, batch.Start + batch.Rows);
                    continue;
                }
                maybeStored = outcome == Outcome.Unknown || maybeStored;
            }
            Interlocked.Increment(ref _retries);
            _stopping.Wait(backoff);
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _options.MaxBackoff.Ticks));
        }
    }

    /// <summary>Creates the database and the table if missing, and checks that the table there is one rows can go into.</summary>
    private Outcome Prepare()
    {
        string columns = string.Join(", ", Columns.Select((c, i) => i < Written ? $"`{c.Name}` {c.Type}"
            : $"`{c.Name}` {c.Type} MATERIALIZED toDateTime(intDiv({(c.Name == "first" ? "first_ns" : "last_ns")}, 1000000000), 'UTC')"));
        // Partitioned by day; sorted by hour, then addresses: a time range reads whole hours, and one host's conversations
        // within them are found through the index.
        if (Query($"CREATE DATABASE IF NOT EXISTS `{_database}`", out string answer) is not Outcome.Stored and var o1) return Refuse(o1, answer);
        if (Query($"CREATE TABLE IF NOT EXISTS {_quotedTable} ({columns}) ENGINE = MergeTree PARTITION BY toDate(first) " +
            "ORDER BY (toStartOfHour(first), src_addr, dst_addr, first)", out answer) is not Outcome.Stored and var o2) return Refuse(o2, answer);
        if (Query($"SELECT engine FROM system.tables WHERE database = '{_database}' AND name = '{_table}'", out answer) is not Outcome.Stored and var o3) return Refuse(o3, answer);
        if (!answer.Trim().EndsWith("MergeTree", StringComparison.Ordinal))
            return Refuse(Outcome.Refused, $"{_options.Table} is a {answer.Trim()} table: flows go into a MergeTree table (into each shard's local one, not through a Distributed table)");
        if (Query($"SELECT name, type FROM system.columns WHERE database = '{_database}' AND table = '{_table}' FORMAT TabSeparatedRaw", out answer) is not Outcome.Stored and var o4) return Refuse(o4, answer);
        var there = answer.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')).Where(f => f.Length == 2).ToDictionary(f => f[0], f => f[1]);
        foreach ((string name, string type) in Columns)
        {
            if (!there.TryGetValue(name, out string? found))
                return Refuse(Outcome.Refused, $"{_options.Table} is there without column {name} ({type}): it was made for something else; give another table");
            if (Normal(found) != Normal(type))
                return Refuse(Outcome.Refused, $"{_options.Table} is there with column {name} of type {found}, not {type}: it was made for something else; give another table");
        }
        if (_options.Cluster is string cluster)
        {
            if (Query($"CREATE TABLE IF NOT EXISTS `{_database}`.`{_table}_all` AS {_quotedTable} ENGINE = Distributed(`{cluster}`, `{_database}`, `{_table}`)", out answer) is not Outcome.Stored and var o5)
                return Refuse(o5, answer);
            if (Query($"SELECT engine FROM system.tables WHERE database = '{_database}' AND name = '{_table}_all'", out answer) is not Outcome.Stored and var o6) return Refuse(o6, answer);
            if (answer.Trim() != "Distributed") return Refuse(Outcome.Refused, $"{_options.Table}_all is a {answer.Trim()} table, not the Distributed table over the shards");
        }
        _problem = _refused = null;
        return Outcome.Stored;

        static string Normal(string type) => type.Replace(" ", "", StringComparison.Ordinal);
    }

    private Outcome Refuse(Outcome outcome, string why)
    {
        // Refused: the server answered no, which the user must hear of; otherwise it is asked again.
        if (outcome == Outcome.Refused) _refused = $"ClickHouse at {_endpoint}: {why}";
        _problem = $"ClickHouse at {_endpoint}: {why}";
        return outcome;
    }

    /// <summary>After an insert whose outcome is unknown: whether its batch is in the table, once the server no longer runs it.</summary>
    private Outcome Resolve(Batch batch)
    {
        string id = QueryId(batch);
        if (Query($"SELECT count() FROM system.processes WHERE query_id = '{id}'", out string answer) != Outcome.Stored) return Failed(answer);
        if (answer.Trim() != "0") return Failed($"insert {id} still running after its connection was lost");
        if (Query($"SELECT count() FROM {_quotedTable} WHERE first >= toDateTime({batch.MinSecond}, 'UTC') AND first <= toDateTime({batch.MaxSecond}, 'UTC') " +
            $"AND batch = {batch.Id} AND observation_domain = {_options.ObservationDomain}", out answer) != Outcome.Stored) return Failed(answer);
        if (!long.TryParse(answer.Trim(), CultureInfo.InvariantCulture, out long found)) return Failed($"a count that is not a number: {answer}");
        if (found == 0) return Outcome.Refused;   // not there: to be sent
        Interlocked.Increment(ref _recovered);
        Interlocked.Add(ref _inserted, (ulong)Math.Min(found, batch.Rows));
        Interlocked.Increment(ref _batches);
        if (found != batch.Rows)
        {
            // Not what one part holds: something else wrote into the table. What is missing is counted, never sent twice.
            _problem = $"ClickHouse at {_endpoint}: batch {id} of {batch.Rows} rows found with {found}";
            Interlocked.Add(ref _droppedUnsent, (ulong)Math.Max(0, batch.Rows - found));
        }
        return Outcome.Stored;

        Outcome Failed(string why)
        {
            _problem = $"ClickHouse at {_endpoint}: checking batch {id}: {why}";
            return Outcome.Unknown;
        }
    }

    private Outcome Insert(Batch batch)
    {
        _body.SetLength(0);
        using (var gzip = new GZipStream(_body, CompressionLevel.Fastest, leaveOpen: true))
        {
            long start = batch.Start % _capacity;
            int first = (int)Math.Min(batch.Rows, _capacity - start);
            gzip.Write(_ring, (int)(start * _rowBytes), first * _rowBytes);
            if (first < batch.Rows) gzip.Write(_ring, 0, (batch.Rows - first) * _rowBytes);
        }
        string insert = $"INSERT INTO {_quotedTable} ({string.Join(", ", Columns.Take(Written).Select(c => c.Name))}) FORMAT RowBinary";
        var content = new ByteArrayContent(_body.GetBuffer(), 0, (int)_body.Length);
        content.Headers.ContentEncoding.Add("gzip");

        // Above the batch: the server makes one block of it, and one block of one partition is one part.
        Outcome outcome = Post($"query={Uri.EscapeDataString(insert)}&query_id={QueryId(batch)}&max_insert_block_size={Math.Max(1 << 20, batch.Rows)}", content, out string answer);
        if (outcome == Outcome.Stored)
        {
            Interlocked.Add(ref _inserted, (ulong)batch.Rows);
            Interlocked.Increment(ref _batches);
            _problem = null;
        }
        else
        {
            // Code 216: a query of this id is running (an earlier attempt): its outcome decides.
            if (answer.Contains("Code: 216,", StringComparison.Ordinal)) outcome = Outcome.Unknown;
            _problem = $"ClickHouse at {_endpoint}: inserting {batch.Rows:N0} rows into {_options.Table}: {answer}";
        }
        return outcome;
    }

    private string QueryId(Batch batch) => $"zcflow-{batch.Id:x16}";

    private Outcome Query(string sql, out string answer) => Post("", new StringContent(sql, Encoding.UTF8), out answer);

    /// <summary>One request, and what came of it.</summary>
    private Outcome Post(string parameters, HttpContent content, out string answer)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, parameters.Length > 0 ? new Uri(_endpoint, "?" + parameters) : _endpoint) { Content = content };
        request.Headers.ConnectionClose = true;
        try
        {
            using HttpResponseMessage response = _http.Send(request, _cancel.Token);
            using var reader = new StreamReader(response.Content.ReadAsStream());
            answer = reader.ReadToEnd();
            if (response.IsSuccessStatusCode) return Outcome.Stored;
            answer = answer.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() is string line && line.Length > 0
                ? line : $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}";
            return Outcome.Refused;
        }
        catch (HttpRequestException e) when (e.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError)
        {
            answer = $"not reachable ({e.InnerException?.Message ?? e.Message})";
            return Outcome.Unreachable;
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException)
        {
            answer = $"no answer ({(e is OperationCanceledException ? $"none in {_options.RequestTimeout.TotalSeconds:0.#} s" : e.InnerException?.Message ?? e.Message)})";
            return Outcome.Unknown;
        }
    }
}
