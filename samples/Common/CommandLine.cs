using System.Globalization;
using System.Runtime.InteropServices;

namespace ZcFlow.Samples;

/// <summary>
/// PF_RING-style single-letter options, parsed as getopt(3) does: <c>-c 99</c> or <c>-c99</c>,
/// flags bundled (<c>-ap</c>, <c>-apc99</c>), <c>--</c> ending the options; and the shutdown signal,
/// shared by the samples. Unknown options and bad values end the program with the usage text.
/// </summary>
internal sealed class CommandLine
{
    private readonly Dictionary<char, List<string>> _given = [];
    private readonly string _usage;

    public CommandLine(string[] args, string flags, string withValue, string usage)
    {
        _usage = usage;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (a is "-h" or "--help") Fail(null);
            if (a == "--")
            {
                if (i + 1 < args.Length) Fail($"unexpected argument '{args[i + 1]}'");
                break;
            }
            if (a.Length < 2 || a[0] != '-') Fail($"unexpected argument '{a}'");
            for (int j = 1; j < a.Length; j++)
            {
                char c = a[j];
                if (flags.Contains(c))
                {
                    _given.TryAdd(c, []);
                    continue;
                }
                if (!withValue.Contains(c)) Fail($"unknown option -{c}");
                // The rest of the word is the value (-c99); or else the next word (-c 99).
                string value = j + 1 < a.Length ? a[(j + 1)..] : i + 1 < args.Length ? args[++i] : Fail<string>($"-{c} needs a value");
                if (!_given.TryGetValue(c, out List<string>? values)) _given[c] = values = [];
                values.Add(value);
                break;
            }
        }
    }

    /// <summary>
    /// The arguments of a program that, like zbalance_ipc, also reads them from a file: with one
    /// argument that is not an option, the options are that file's; with none, <paramref name="defaultFile"/>'s.
    /// One option a line, <c>-x=value</c> or <c>-x value</c> (the first <c>=</c> or blank ends the option;
    /// double quotes around the value are dropped); blank lines and lines starting with <c>#</c> are skipped.
    /// </summary>
    public static string[] ArgumentsOrConfigFile(string[] args, string defaultFile)
    {
        string? file = args.Length switch
        {
            0 => defaultFile,
            1 when !args[0].StartsWith('-') => args[0],
            _ => null,
        };
        if (file is null) return args;
        if (!File.Exists(file))
        {
            Console.Error.WriteLine(args.Length == 0
                ? $"error: no options given, and no configuration file {file} to read them from (see -h)"
                : $"error: cannot read the configuration file {file}");
            Environment.Exit(2);
        }
        return ParseConfig(File.ReadAllLines(file));
    }

    /// <summary>The arguments a configuration file's lines stand for.</summary>
    public static string[] ParseConfig(IEnumerable<string> lines)
    {
        var args = new List<string>();
        foreach (string raw in lines)
        {
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            int split = line.IndexOfAny(['=', ' ', '\t']);
            string option = split < 0 ? line : line[..split];
            string value = split < 0 ? "" : line[(split + 1)..].Trim();
            if (value.Length >= 2 && value[0] == '"' && value[^1] == '"') value = value[1..^1];
            if (option.Length > 0) args.Add(option);
            if (value.Length > 0) args.Add(value);
        }
        return [.. args];
    }

    public bool Has(char c) => _given.ContainsKey(c);

    /// <summary>The value of an option given with one (the last, if it was repeated), or null.</summary>
    public string? String(char c) => _given.TryGetValue(c, out List<string>? v) && v.Count > 0 ? v[^1] : null;

    /// <summary>Every value of an option that may be repeated (<c>-i eth0 -i eth1</c>), in order.</summary>
    public IReadOnlyList<string> Strings(char c) => _given.TryGetValue(c, out List<string>? v) ? v : [];

    public long Number(char c, long fallback, long min = 0, long max = long.MaxValue)
    {
        if (String(c) is not { } v) return fallback;
        if (!long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out long n) || n < min || n > max)
            Fail($"-{c} takes a whole number from {min} to {max}, not '{v}'");
        return n;
    }

    /// <summary>The value given with <paramref name="c"/>; without it, the program ends with the usage.</summary>
    public string RequiredString(char c)
    {
        if (String(c) is not { Length: > 0 } v) return Fail<string>($"-{c} is required");
        return v;
    }

    public long Required(char c, long min = 0, long max = long.MaxValue)
    {
        if (!Has(c)) Fail($"-{c} is required");
        return Number(c, 0, min, max);
    }

    /// <summary>Core numbers given with <paramref name="c"/> separated by ':' (<c>-g 0:1:0</c>); none when it is not given.</summary>
    public int[] Cores(char c)
        => [.. (String(c) ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Select(v => int.TryParse(v, out int core) && core >= 0 ? core : Fail<int>($"-{c} takes cores separated by ':', not '{v}'"))];

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    public void Fail(string? why)
    {
        if (why is not null) Console.Error.WriteLine($"error: {why}");
        Console.Error.WriteLine(_usage);
        Environment.Exit(why is null ? 0 : 2);
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    public T Fail<T>(string why)
    {
        Fail(why);
        return default!;
    }

    private static PosixSignalRegistration? _terminate;

    /// <summary>A token cancelled by Ctrl-C or SIGTERM, so that the program can stop and print its totals.</summary>
    public static CancellationToken StopSignal()
    {
        var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        // Kept: a registration the collector finalises is a handler gone, and SIGTERM would kill the program outright.
        _terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        return stop.Token;
    }
}
