using System.Diagnostics;

namespace ZcFlow.Tests;

/// <summary>The outside programs the tests check us with (tcpdump, tshark, tcpreplay, ip): found, and run to completion.</summary>
internal static class Tools
{
    public static bool Installed(string tool) => File.Exists($"/usr/bin/{tool}") || File.Exists($"/usr/sbin/{tool}") || File.Exists($"/sbin/{tool}");

    /// <summary>The checkout the tests were built in: the directory of ZcFlow.sln.</summary>
    public static string? Repository
    {
        get
        {
            for (string? dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
                if (File.Exists(Path.Combine(dir, "ZcFlow.sln"))) return dir;
            return null;
        }
    }

    /// <summary>Runs <paramref name="program"/> and returns its exit code, standard output and standard error.</summary>
    public static (int Code, string Output, string Error) Run(string program, params string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args) info.ArgumentList.Add(a);
        using Process p = Process.Start(info)!;
        Task<string> error = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, error.Result);
    }
}
