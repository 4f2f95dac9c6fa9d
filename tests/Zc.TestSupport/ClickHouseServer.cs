using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ZcFlow.Tests;

/// <summary>
/// A clickhouse-server of a test's own: a temporary data directory, HTTP and native ports on 127.0.0.1 that were free,
/// optionally a cluster named <c>zc</c> over other servers' native ports (one shard each); killed and removed on Dispose.
/// </summary>
public sealed class ClickHouseServer : IDisposable
{
    private static readonly HttpClient Client = new() { Timeout = TimeSpan.FromSeconds(30) };
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"zcflow-clickhouse-{Guid.NewGuid():N}");
    private Process? _process;

    public static bool Installed => Tools.Installed("clickhouse-server");

    public ClickHouseServer()
    {
        Directory.CreateDirectory(_directory);
        HttpPort = FreePort();
        TcpPort = FreePort();
        Write(shards: [TcpPort]);
        Start();
    }

    public int HttpPort { get; }

    /// <summary>Its native protocol's port, as a cluster's shard names it.</summary>
    public int TcpPort { get; }

    public string Url => $"http://127.0.0.1:{HttpPort}/";

    /// <summary>The CPU seconds its process has used so far, every thread's (/proc's utime and stime, in clock ticks of 10 ms).</summary>
    public double CpuSeconds
    {
        get
        {
            string[] f = File.ReadAllText($"/proc/{_process!.Id}/stat").Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return (long.Parse(f[11]) + long.Parse(f[12])) / 100.0;
        }
    }

    /// <summary>Gives it the cluster <c>zc</c> of these servers, one shard each (it reads its configuration again within seconds).</summary>
    public void Cluster(params ClickHouseServer[] shards)
    {
        Write([.. shards.Select(s => s.TcpPort)]);
        Wait.Until(() => Query("SELECT count() FROM system.clusters WHERE cluster = 'zc'").Trim() == shards.Length.ToString(), "the server to read its cluster", seconds: 30);
    }

    /// <summary>SIGKILL: no chance to write anything more.</summary>
    public void Kill()
    {
        if (_process is null) return;
        _process.Kill();
        _process.WaitForExit();
        _process.Dispose();
        _process = null;
    }

    /// <summary>Starts it (again) on the same data and ports, and waits until it answers.</summary>
    public void Start()
    {
        var info = new ProcessStartInfo("/usr/sbin/clickhouse-server", ["--config-file", Path.Combine(_directory, "config.xml")])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _directory,
        };
        _process = Process.Start(info)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        Wait.Until(() => TryQuery("SELECT 1", out _) || _process.HasExited, "clickhouse-server to answer", seconds: 60);
        Assert.False(_process.HasExited, $"clickhouse-server ended at start: {Log()}");
    }

    /// <summary>Runs <paramref name="sql"/>; its answer as text (TabSeparated), or the test fails with the server's message.</summary>
    public string Query(string sql)
    {
        Assert.True(TryQuery(sql, out string answer), $"{sql}: {answer}");
        return answer;
    }

    /// <summary>One number that <paramref name="sql"/> answers.</summary>
    public long Number(string sql) => long.Parse(Query(sql).Trim());

    public bool TryQuery(string sql, out string answer)
    {
        try
        {
            using HttpResponseMessage response = Client.PostAsync(Url, new StringContent(sql)).GetAwaiter().GetResult();
            answer = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
            return response.IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            answer = e.Message;
            return false;
        }
    }

    public string Log() => File.Exists(Path.Combine(_directory, "err.log")) ? File.ReadAllText(Path.Combine(_directory, "err.log")) : "";

    public void Dispose()
    {
        Kill();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>A TCP port on 127.0.0.1 that nothing listens on now.</summary>
    public static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private void Write(int[] shards)
    {
        string d = _directory;
        string cluster = string.Concat(shards.Select(p => $"<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>"));
        File.WriteAllText(Path.Combine(d, "config.xml"), $"""
            <?xml version="1.0"?>
            <yandex>
              <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/err.log</errorlog></logger>
              <http_port>{HttpPort}</http_port>
              <tcp_port>{TcpPort}</tcp_port>
              <listen_host>127.0.0.1</listen_host>
              <path>{d}/data/</path>
              <tmp_path>{d}/data/tmp/</tmp_path>
              <user_files_path>{d}/data/user_files/</user_files_path>
              <format_schema_path>{d}/data/format_schemas/</format_schema_path>
              <mark_cache_size>67108864</mark_cache_size>
              <uncompressed_cache_size>67108864</uncompressed_cache_size>
              <users_config>{d}/users.xml</users_config>
              <default_profile>default</default_profile>
              <default_database>default</default_database>
              <timezone>UTC</timezone>
              <remote_servers><zc>{cluster}</zc></remote_servers>
            </yandex>
            """);
        File.WriteAllText(Path.Combine(d, "users.xml"), """
            <?xml version="1.0"?>
            <yandex>
              <profiles><default></default></profiles>
              <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
              <quotas><default></default></quotas>
            </yandex>
            """);
    }
}
