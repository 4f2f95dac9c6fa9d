using System.Collections.Concurrent;
using System.Diagnostics;

namespace ZcFlow.Tests;

/// <summary>
/// A real second process running Zc.TestHost: its stdout read line by line, so a test can wait
/// for "attached" or "ready" (the barrier) and read the verdict. Disposing kills it if it still runs.
/// </summary>
public sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly BlockingCollection<string> _lines = [];
    private readonly List<string> _all = [];
    private readonly System.Text.StringBuilder _errors = new();
    private readonly string? _copy;   // binaries copied where another user can read them

    private ChildProcess(Process process, string? copy = null)
    {
        _process = process;
        _copy = copy;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) { _lines.CompleteAdding(); return; }
            lock (_all) _all.Add(e.Data);
            _lines.Add(e.Data);
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_errors) _errors.AppendLine(e.Data);
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>What it wrote to standard error so far.</summary>
    public string Errors
    {
        get { lock (_errors) return _errors.ToString(); }
    }

    /// <summary>Waits until standard error holds <paramref name="text"/>; fails after <paramref name="seconds"/>.</summary>
    public void WaitForError(string text, int seconds = 30)
    {
        var clock = Stopwatch.StartNew();
        while (!Errors.Contains(text, StringComparison.Ordinal))
        {
            if (clock.Elapsed.TotalSeconds > seconds) Assert.Fail($"child {Pid} wrote no '{text}' to standard error in {seconds} s: {Errors}");
            Thread.Sleep(20);
        }
    }

    public int Pid => _process.Id;

    /// <summary>Whether it has ended, without waiting.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>Sends SIGTERM, the polite way to ask a sample to stop.</summary>
    public void Terminate() => ZcFlow.Native.Libc.Kill(_process.Id, 15);

    /// <summary>Starts <c>Zc.TestHost verb args…</c>; with <paramref name="asUser"/>, as that uid and gid through setpriv.</summary>
    public static ChildProcess Start(string verb, object[] args, int? asUser = null) => Run("Zc.TestHost", [verb, .. args], asUser);

    /// <summary>
    /// Starts the program <paramref name="program"/> (an assembly built beside the tests) with <paramref name="args"/>;
    /// with <paramref name="netns"/>, inside that network namespace; with <paramref name="newPidNamespace"/>, in a PID
    /// namespace of its own (<c>unshare --pid --fork</c>), where it cannot see this process's pids; with
    /// <paramref name="hostMounts"/>, in the network namespace alone (<c>nsenter --net</c>), seeing the host's mounts, where
    /// <c>ip netns exec</c> mounts a /sys of the namespace's own (which hides a bpffs mounted at /sys/fs/bpf).
    /// </summary>
    public static ChildProcess Run(string program, object[] args, int? asUser = null, string? netns = null, bool newPidNamespace = false, bool hostMounts = false)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, program + ".dll");
        string? copy = null;
        var info = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardInput = true, RedirectStandardError = true, UseShellExecute = false };
        if (netns is not null && hostMounts)
        {
            info.FileName = "nsenter";
            foreach (string a in new[] { $"--net=/var/run/netns/{netns}", "dotnet" }) info.ArgumentList.Add(a);
        }
        else if (netns is not null)
        {
            info.FileName = "ip";
            foreach (string a in new[] { "netns", "exec", netns, "dotnet" }) info.ArgumentList.Add(a);
        }
        else if (newPidNamespace)
        {
            info.FileName = "unshare";
            foreach (string a in new[] { "--pid", "--fork", "--kill-child", "dotnet" }) info.ArgumentList.Add(a);
        }
        else if (asUser is int uid)
        {
            // The build may sit in a directory only root can enter (a clone in /root): the other user runs a copy.
            copy = Path.Combine(Path.GetTempPath(), $"zcflow-as-{uid}-{Guid.NewGuid():N}");
            CopyReadable(AppContext.BaseDirectory, copy);
            dll = Path.Combine(copy, program + ".dll");
            info.FileName = "setpriv";
            foreach (string a in new[] { $"--reuid={uid}", $"--regid={uid}", "--clear-groups", "dotnet" }) info.ArgumentList.Add(a);
            info.Environment["DOTNET_CLI_HOME"] = Path.GetTempPath();
        }
        else
        {
            info.FileName = "dotnet";
        }
        info.ArgumentList.Add(dll);
        foreach (object a in args) info.ArgumentList.Add(Convert.ToString(a, System.Globalization.CultureInfo.InvariantCulture)!);
        return new ChildProcess(Process.Start(info)!, copy);
    }

    /// <summary>Starts the executable <paramref name="file"/> (a program that is not .NET) with <paramref name="args"/> and, optionally, more environment.</summary>
    public static ChildProcess Exec(string file, object[] args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardInput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (object a in args) info.ArgumentList.Add(Convert.ToString(a, System.Globalization.CultureInfo.InvariantCulture)!);
        foreach ((string key, string value) in environment ?? new Dictionary<string, string>()) info.Environment[key] = value;
        return new ChildProcess(Process.Start(info)!);
    }

    private static void CopyReadable(string from, string to)
    {
        const UnixFileMode Dir = (UnixFileMode)0x1ED;  // 0755
        const UnixFileMode File = (UnixFileMode)0x1A4; // 0644
        Directory.CreateDirectory(to);
        System.IO.File.SetUnixFileMode(to, Dir);
        foreach (string d in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, d));
            Directory.CreateDirectory(target);
            System.IO.File.SetUnixFileMode(target, Dir);
        }
        foreach (string f in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, f));
            System.IO.File.Copy(f, target, overwrite: true);
            System.IO.File.SetUnixFileMode(target, File);
        }
    }

    /// <summary>The next line that starts with <paramref name="prefix"/>; a line starting "error" or the end of output fails the test.</summary>
    public string WaitFor(string prefix, int seconds = 60) => WaitFor([prefix], seconds);

    /// <summary>The next line that starts with any of <paramref name="prefixes"/>.</summary>
    public string WaitFor(string prefix, string orPrefix, int seconds = 60) => WaitFor([prefix, orPrefix], seconds);

    private string WaitFor(string[] prefixes, int seconds)
    {
        string prefix = string.Join("' or '", prefixes);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        try
        {
            foreach (string line in _lines.GetConsumingEnumerable(cancel.Token))
            {
                if (prefixes.Any(p => line.StartsWith(p, StringComparison.Ordinal))) return line;
                if (line.StartsWith("error", StringComparison.Ordinal)) Assert.Fail($"child {Pid}: {line}");
            }
        }
        catch (OperationCanceledException)
        {
        }
        Assert.Fail($"child {Pid} printed no line starting '{prefix}' within {seconds} s; it printed: {Output}; and on standard error: {Errors}");
        return "";
    }

    public string Output
    {
        get { lock (_all) return string.Join(" | ", _all); }
    }

    /// <summary>SIGKILL, and wait until it is gone.</summary>
    public void Kill()
    {
        _process.Kill();
        _process.WaitForExit();
    }

    /// <summary>Closes its stdin (the "own" verb's signal to shut down) and waits for it to exit.</summary>
    public int CloseAndWait(int seconds = 60)
    {
        _process.StandardInput.Close();
        return WaitForExit(seconds);
    }

    public int WaitForExit(int seconds = 60)
    {
        Assert.True(_process.WaitForExit(TimeSpan.FromSeconds(seconds)), $"child {Pid} did not exit within {seconds} s: {Output}");
        _process.WaitForExit();
        return _process.ExitCode;
    }

    public void Dispose()
    {
        if (!_process.HasExited) Kill();
        _process.Dispose();
        if (_copy is not null) Directory.Delete(_copy, recursive: true);
    }
}
