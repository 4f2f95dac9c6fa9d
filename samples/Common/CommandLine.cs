using System.Globalization;
using System.Runtime.InteropServices;

namespace ZcFlow.Samples;

/// <summary>
/// PF_RING-style single-letter options (<c>-c 99 -i 0 -a</c>) and the shutdown signal, shared by
/// the samples. Unknown options and bad values end the program with the usage text.
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
            if (a.Length != 2 || a[0] != '-') Fail($"unexpected argument '{a}'");
            char c = a[1];
            if (flags.Contains(c)) _given.TryAdd(c, []);
            else if (withValue.Contains(c))
            {
                if (i + 1 >= args.Length) Fail($"-{c} needs a value");
                if (!_given.TryGetValue(c, out List<string>? values)) _given[c] = values = [];
                values.Add(args[++i]);
            }
            else Fail($"unknown option -{c}");
        }
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

    public long Required(char c, long min = 0, long max = long.MaxValue)
    {
        if (!Has(c)) Fail($"-{c} is required");
        return Number(c, 0, min, max);
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    public void Fail(string? why)
    {
        if (why is not null) Console.Error.WriteLine($"error: {why}");
        Console.Error.WriteLine(_usage);
        Environment.Exit(why is null ? 0 : 2);
    }

    /// <summary>A token cancelled by Ctrl-C or SIGTERM, so that the program can stop and print its totals.</summary>
    public static CancellationToken StopSignal()
    {
        var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        return stop.Token;
    }
}
