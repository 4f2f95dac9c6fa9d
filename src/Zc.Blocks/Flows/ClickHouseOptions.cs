namespace ZcFlow.Flows;

/// <summary>Where and how a <see cref="ClickHouseExport"/> stores flows.</summary>
public sealed class ClickHouseOptions
{
    /// <summary>The server's HTTP interface, <c>http://host:8123/</c>; a user and password in it (<c>http://user:secret@host:8123/</c>) go as HTTP basic authentication.</summary>
    public required Uri Server { get; init; }

    /// <summary>The table, <c>database.table</c>: a MergeTree table, created with the database when missing (a <c>Distributed</c> table is refused: write into the shard's local table).</summary>
    public string Table { get; init; } = "zcflow.flows";

    /// <summary>Also create <c>&lt;table&gt;_all</c>, a <c>Distributed</c> table over this cluster of the server's <c>remote_servers</c>, for queries over every shard.</summary>
    public string? Cluster { get; init; }

    /// <summary>The sensor's name, in every row (the host's name unless given).</summary>
    public string Sensor { get; init; } = Environment.MachineName;

    /// <summary>The observation domain, in every row (as the IPFIX export carries it).</summary>
    public uint ObservationDomain { get; init; }

    /// <summary>A batch is sent when it has this many rows (at most 1,048,576, ClickHouse's block: one batch is stored as one part, all or nothing).</summary>
    public int BatchRows { get; init; } = 65_536;

    /// <summary>... or when its first row is this old (at the next <see cref="ClickHouseExport.Export"/> or <see cref="ClickHouseExport.Tick"/>).</summary>
    public TimeSpan BatchAge { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The most rows held for the server (sent or not yet); records that find it full are dropped, counted.</summary>
    public int BufferRows { get; init; } = 1 << 20;

    /// <summary>How long one request may take before its outcome is taken as unknown (and checked before the batch is sent again).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The longest wait between two attempts (the wait doubles from 100 ms up to this).</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(5);
}
