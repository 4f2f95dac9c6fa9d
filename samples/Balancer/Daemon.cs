using System.Diagnostics;
using ZcFlow.Native;

namespace ZcFlow.Samples;

/// <summary>
/// zbalance_ipc's <c>-d</c> and <c>-D user</c>. A .NET process cannot fork, so <c>-d</c> starts the same
/// program again, in the background, and waits for it to be ready: until then its output is relayed, so
/// an error in setting up still reaches the terminal and the exit code; once ready, the background
/// process leaves the terminal's session and points its standard streams at /dev/null, and the
/// foreground one exits 0.
/// </summary>
internal static class Daemon
{
    private const string ChildVariable = "ZCFLOW_DAEMON_CHILD";

    /// <summary>True in the background process that <see cref="RunInBackground"/> started.</summary>
    public static bool IsBackground => Environment.GetEnvironmentVariable(ChildVariable) == "1";

    /// <summary>Starts this program again with <paramref name="args"/>, in the background; returns the exit code for the foreground one.</summary>
    public static int RunInBackground(string[] args)
    {
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("the program's path is unknown");
        var start = new ProcessStartInfo(self)
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        // Run as "dotnet Balancer.dll": the assembly is the first argument again.
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") start.ArgumentList.Add(Environment.GetCommandLineArgs()[0]);
        foreach (string a in args) start.ArgumentList.Add(a);
        start.Environment[ChildVariable] = "1";
        using Process child = Process.Start(start)!;
        child.StandardInput.Close();
        Task output = child.StandardOutput.BaseStream.CopyToAsync(Console.OpenStandardOutput());
        Task errors = child.StandardError.BaseStream.CopyToAsync(Console.OpenStandardError());
        Task.WaitAll(output, errors);   // both end when the child is ready (or gone)
        if (child.WaitForExit(200)) return child.ExitCode;
        return 0;
    }

    /// <summary>
    /// In the background process, once it is ready: a session of its own, and /dev/null in place of the
    /// standard streams; in place of the copies .NET made of them too (its console streams write to a
    /// duplicate of each), or the foreground process would wait on them for ever.
    /// </summary>
    public static void Detach()
    {
        Libc.SetSid();
        string?[] standard = [.. Enumerable.Range(0, 3).Select(Target)];
        int devNull = Libc.Open("/dev/null", 2 /* O_RDWR */, 0);
        if (devNull < 0) throw ErrnoException.FromLastError("open /dev/null");
        foreach (string entry in Directory.GetFiles("/proc/self/fd"))
            if (int.TryParse(Path.GetFileName(entry), out int fd) && fd != devNull && (fd <= 2 || (Target(fd) is { } pipe && standard.Contains(pipe))))
                Libc.Dup2(devNull, fd);
        Libc.Close(devNull);

        static string? Target(int fd) => new FileInfo($"/proc/self/fd/{fd}").LinkTarget is { } t && t.StartsWith("pipe:", StringComparison.Ordinal) ? t : null;
    }

    /// <summary>
    /// Becomes <paramref name="user"/> (its groups, then its group, then its user id), after giving it the
    /// files this process must still write or remove once it is that user.
    /// </summary>
    public static void DropPrivileges(string user, (uint Uid, uint Gid) ids, IEnumerable<string> files, ZcCluster cluster)
    {
        cluster.GiveFilesTo(ids.Uid, ids.Gid);
        foreach (string f in files)
            if (File.Exists(f) && Libc.Chown(f, (int)ids.Uid, (int)ids.Gid) != 0) throw ErrnoException.FromLastError($"chown {f}");
        if (Libc.InitGroups(user, ids.Gid) != 0) throw ErrnoException.FromLastError($"initgroups {user}");
        if (Libc.SetGid(ids.Gid) != 0) throw ErrnoException.FromLastError($"setgid {ids.Gid}");
        if (Libc.SetUid(ids.Uid) != 0) throw ErrnoException.FromLastError($"setuid {ids.Uid}");
    }
}
