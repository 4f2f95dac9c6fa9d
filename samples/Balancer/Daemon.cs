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
    /// <summary>
    /// Before -D: what daemons do with a pid file. A directory of its own that is not there yet is made for the user (as
    /// systemd's RuntimeDirectory= does), so the daemon, no longer root, still removes its pid file at exit; a directory the
    /// user cannot write in (/run itself) would keep it, and that is said at once, with what to give instead.
    /// </summary>
    public static void PreparePidDirectory(string pidFile, string user, (uint Uid, uint Gid) ids)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(pidFile))!;
        if (!Directory.Exists(dir))
        {
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead
                | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            if (Libc.Chown(dir, (int)ids.Uid, (int)ids.Gid) != 0) throw ErrnoException.FromLastError($"chown {dir}");
            return;
        }
        bool othersWrite = (File.GetUnixFileMode(dir) & UnixFileMode.OtherWrite) != 0;   // /tmp: sticky, and anyone may write
        if (!othersWrite && OwnerOf(dir) != ids.Uid)
            Console.Error.WriteLine($"warning: -P {pidFile}: {dir} is not {user}'s, so the pid file stays once the Balancer runs as {user}: " +
                                    $"give a directory of its own (-P /run/zcflow-<cluster>/balancer.pid is made for {user}), or RuntimeDirectory= in a systemd unit");
    }

    // st_uid of struct stat: after dev, ino, nlink and mode on x86-64, after dev, ino and mode (nlink after it) on arm64.
    private static uint? OwnerOf(string path)
    {
        if (Libc.StatPath(path, out Stat st) != 0) return null;
        int at = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64 ? 28 : 24;
        return System.Runtime.InteropServices.MemoryMarshal.Read<uint>(System.Runtime.InteropServices.MemoryMarshal.AsBytes(System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref st, 1))[at..]);
    }

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
