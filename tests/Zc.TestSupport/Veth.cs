using System.Diagnostics;
using System.Runtime.ExceptionServices;
using ZcFlow.Native;

namespace ZcFlow.Tests;

/// <summary>
/// A network namespace of the test's own with a veth pair in it, <see cref="A"/> and <see cref="B"/>
/// (and with <c>pairs: 2</c> a second, <see cref="C"/> and <see cref="D"/>),
/// up, without addresses and with IPv6 off, so that nothing but what a test sends crosses it.
/// Disposing deletes the namespace, and the pair with it; namespaces left by a test process that
/// died are deleted by the next one. When the host cannot make one it calls <see cref="Unavailable"/>
/// (in the tests: skip, saying why). Shared with bench/ZcPerf's capture scenario.
/// </summary>
public sealed class Veth : IDisposable
{
    public const string A = "zca", B = "zcb", C = "zcc", D = "zcd";
    private const string Prefix = "zcflow-test-";
    private static int _counter;

    private Veth(string ns) => Namespace = ns;

    /// <summary>What to do when the host cannot make a namespace: by default, throw with the reason.</summary>
    public static Action<string> Unavailable { get; set; } = reason => throw new PlatformNotSupportedException(reason);

    public string Namespace { get; }

    /// <summary>Makes the namespace; with <paramref name="queues"/>, each end of each pair has that many transmit and receive queues.</summary>
    public static Veth Create(int mtu = 9000, int pairs = 1, int queues = 1)
    {
        if (Environment.UserName != "root") Unavailable("network namespaces and veth pairs need root");
        if (!Tools.Installed("ip")) Unavailable("iproute2's ip is not installed (.ci/run installs it)");
        RemoveLeftovers();
        string ns = $"{Prefix}{Environment.ProcessId}-{Interlocked.Increment(ref _counter)}";
        (int code, string output) = Tool("ip", "netns", "add", ns);
        if (code != 0) Unavailable($"cannot create a network namespace: {output.Trim()}");
        var veth = new Veth(ns);
        try
        {
            veth.Exec("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1");
            foreach ((string a, string b) in pairs == 1 ? [(A, B)] : new[] { (A, B), (C, D) })
            {
                string q = $"{queues}";
                veth.Exec("ip", "link", "add", a, "mtu", $"{mtu}", "numtxqueues", q, "numrxqueues", q, "type", "veth", "peer", "name", b, "mtu", $"{mtu}", "numtxqueues", q, "numrxqueues", q);
                veth.Exec("ip", "link", "set", a, "up");
                veth.Exec("ip", "link", "set", b, "up");
            }
            return veth;
        }
        catch
        {
            veth.Dispose();
            throw;
        }
    }

    /// <summary>Runs <paramref name="action"/> on a thread that has entered the namespace: sockets it opens belong there.</summary>
    public T Run<T>(Func<T> action)
    {
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle($"/var/run/netns/{Namespace}");
                if (Libc.SetNs((int)handle.DangerousGetHandle(), Libc.CLONE_NEWNET) != 0) throw ErrnoException.FromLastError("setns");
                result = action();
            }
            catch (Exception e)
            {
                error = e;
            }
        });
        thread.Start();
        thread.Join();
        if (error is not null) ExceptionDispatchInfo.Throw(error);
        return result;
    }

    public void Run(Action action) => Run(() => { action(); return 0; });

    /// <summary>Runs a program in the namespace and returns its output; a failure throws with what it printed.</summary>
    public string Exec(string program, params string[] args)
    {
        (int code, string output) = Tool("ip", ["netns", "exec", Namespace, program, .. args]);
        if (code != 0) throw new InvalidOperationException($"{program} {string.Join(' ', args)} exited with {code}: {output}");
        return output;
    }

    /// <summary>Starts a program in the namespace; the caller waits for it.</summary>
    public Process Start(string program, params string[] args)
    {
        var info = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in (string[])["netns", "exec", Namespace, program, .. args]) info.ArgumentList.Add(a);
        return Process.Start(info)!;
    }

    /// <summary>
    /// A second namespace of the test's own, with <paramref name="iface"/> moved into it and up: the far end of a pair,
    /// so that traffic between two addresses crosses the pair rather than this namespace's own loopback. Goes with this one.
    /// </summary>
    public string Peer(string iface)
    {
        string peer = Namespace + "-peer";
        Tool("ip", "netns", "add", peer);
        Tool("ip", "netns", "exec", peer, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1");
        Exec("ip", "link", "set", iface, "netns", peer);
        (int code, string output) = Tool("ip", "netns", "exec", peer, "ip", "link", "set", iface, "up");
        if (code != 0) throw new InvalidOperationException($"bringing {iface} up in {peer}: {output}");
        _peer = peer;
        return peer;
    }

    private string? _peer;

    public void Dispose()
    {
        if (_peer is not null) Tool("ip", "netns", "delete", _peer);
        Tool("ip", "netns", "delete", Namespace);
    }

    private static void RemoveLeftovers()
    {
        if (!Directory.Exists("/var/run/netns")) return;
        foreach (string path in Directory.GetFiles("/var/run/netns", Prefix + "*"))
        {
            string name = Path.GetFileName(path);
            if (int.TryParse(name[Prefix.Length..].Split('-')[0], out int pid) && !Directory.Exists($"/proc/{pid}")) Tool("ip", "netns", "delete", name);
        }
    }

    private static (int Code, string Output) Tool(string program, params string[] args)
    {
        (int code, string output, string error) = Tools.Run(program, args);
        return (code, output + error);
    }
}
