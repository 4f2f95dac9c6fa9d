using System.Diagnostics;
using System.Text;

namespace ZcFlow.Tests;

/// <summary>
/// The README's commands that need no hardware run as written: every <c>dotnet run … --project samples/…</c> line of its
/// shell blocks that names no interface and needs no setting of the host (another user, hugepages), with the files it names
/// (a capture of one's own, <c>trace.pcap</c>) made first. A command either ends by itself, successfully, or runs without an
/// error until it is stopped (SIGTERM, as Ctrl-C), and then ends successfully. Those that read a cluster's queue run while
/// the README's main job owns cluster 99.
/// </summary>
public class ReadmeCommandsTests
{
    // What a command may not need here: an interface, an ingress queue of a daemon on one, another user, hugepages.
    private static readonly string[] NeedsHardware = ["eth", "xdp:", "-D ", "-u ", "samples/Send "];

    internal static IEnumerable<(string Line, string Program, string[] Args)> Commands()
    {
        // The README, and the reference pages it links (docs/), whose commands a user copies as much.
        string[] files = [Path.Combine(Tools.Repository!, "README.md"), .. Directory.GetFiles(Path.Combine(Tools.Repository!, "docs"), "*.md").Order()];
        foreach (string file in files)
            foreach (var command in Commands(file))
                yield return command;
    }

    private static IEnumerable<(string Line, string Program, string[] Args)> Commands(string file)
    {
        string[] lines = File.ReadAllLines(file);
        bool shell = false;
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].Trim();
            if (line.StartsWith("```", StringComparison.Ordinal)) { shell = line == "```sh"; continue; }
            const string Prefix = "dotnet run -c Release --project samples/";
            if (!shell || !line.StartsWith(Prefix, StringComparison.Ordinal)) continue;
            string[] words = Words(line);
            string program = words[5]["samples/".Length..];
            string[] args = words.SkipWhile(w => w != "--").Skip(1).ToArray();
            if (NeedsHardware.Any(h => line.Contains(h, StringComparison.Ordinal))) continue;
            yield return ($"{Path.GetFileName(file)} line {i + 1}", program, args);
        }
    }

    // A shell line's words: quotes kept together, a comment dropped.
    private static string[] Words(string line)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        char quote = '\0';
        bool any = false;
        foreach (char c in line)
        {
            if (quote != '\0') { if (c == quote) quote = '\0'; else word.Append(c); continue; }
            if (c is '\'' or '"') { quote = c; any = true; continue; }
            if (c == '#' && word.Length == 0 && !any) break;
            if (c == ' ') { if (word.Length > 0 || any) words.Add(word.ToString()); word.Clear(); any = false; continue; }
            word.Append(c);
        }
        if (word.Length > 0 || any) words.Add(word.ToString());
        return [.. words];
    }

    [Fact]
    public void EveryCommandThatNeedsNoHardware_RunsAsWritten()
    {
        var commands = Commands().ToList();
        Assert.True(commands.Count >= 8, $"{commands.Count} commands found in the README and docs/");
        Assert.Contains(commands, c => c.Program == "Balancer" && string.Join(' ', c.Args) == "-c 99 -n 2 -m 8 -p");   // the main job
        string dir = Path.Combine(Path.GetTempPath(), $"zcflow-readme-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            // The files the commands name, as a user has them.
            foreach (string capture in new[] { "trace.pcap", "trace1.pcap" })
                using (var writer = new Devices.CaptureWriter(Path.Combine(dir, capture)))
                    for (int i = 0; i < 1000; i++)
                        writer.Write(Frames.Ethernet(0x0800).Ipv4(0x0A000001 + (uint)(i % 50), 0x0A000100, 17, 8 + 18).Udp((ushort)(1000 + i % 50), 53, 18).Add(new byte[18]).ToArray(),
                            1_700_000_000_000_000_000 + i * 1_000_000L);
            // The files the commands name, where a user has them: captures in the directory a user runs from, the
            // repository's own (samples/…) in the checkout, which is where `dotnet run --project` runs from.
            string Where(string p) => p is "trace.pcap" or "trace1.pcap" or "out.pcapng" ? Path.Combine(dir, p)
                : p.StartsWith("samples/", StringComparison.Ordinal) && File.Exists(Path.Combine(Tools.Repository!, p)) ? Path.Combine(Tools.Repository!, p) : p;
            string[] Local(string[] args) => [.. args.Select(a => string.Join(',', a.Split(',').Select(Where)))];

            var failures = new List<string>();
            // Owners of cluster 99 one at a time; then, while the main job runs, what reads its queues, one at a time.
            var owners = commands.Where(c => c.Program is "Balancer" or "ZSend").ToList();
            var readers = commands.Except(owners).ToList();
            foreach ((string line, string program, string[] args) in owners) Check(line, program, Local(args), failures);
            (_, string main, string[] mainArgs) = owners.First(c => c.Program == "Balancer" && string.Join(' ', c.Args) == "-c 99 -n 2 -m 8 -p");
            using (ChildProcess owner = ChildProcess.Run(main, mainArgs))
            {
                Listing.WaitForRunning(99, owner);
                foreach ((string line, string program, string[] args) in readers) Check(line, program, Local(args), failures);
                owner.Terminate();
                Assert.Equal(0, owner.WaitForExit());
            }
            Assert.True(failures.Count == 0, string.Join("\n", failures));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // Runs one command: it ends by itself with 0, or runs four seconds without an error and ends with 0 on SIGTERM.
    private static void Check(string line, string program, string[] args, List<string> failures)
    {
        string what = $"{line}: {program} {string.Join(' ', args)}";
        using ChildProcess p = ChildProcess.Run(program, args);
        var clock = Stopwatch.StartNew();
        while (!p.HasExited && clock.Elapsed < TimeSpan.FromSeconds(4)) Thread.Sleep(50);
        if (!p.HasExited) p.Terminate();
        int code = p.WaitForExit(30);
        string errors = string.Join(" | ", p.Errors.Split('\n').Where(l => l.StartsWith("error", StringComparison.Ordinal)));
        if (code != 0 || errors.Length > 0) failures.Add($"{what}: exit {code}; {errors}; it printed: {p.Output}");
    }
}
