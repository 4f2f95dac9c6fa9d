using System.Diagnostics;

namespace ZcFlow.Tests;

/// <summary>The outside programs the tests check us with (tcpdump, tshark, tcpreplay, ip): found, and run to completion.</summary>
public static class Tools
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

    /// <summary>
    /// Publishes libzcflow.so (NativeAOT) into <paramref name="dir"/>, in a build tree of its own (--artifacts-path, so nothing
    /// a running process loaded is written over), and compiles samples/c/zcount.c against it; returns that program's path.
    /// </summary>
    public static string BuildCLibrary(string dir)
    {
        string repository = Repository ?? throw new InvalidOperationException("libzcflow is built from a checkout");
        var publish = Run("dotnet", "publish", Path.Combine(repository, "src", "Zc.CLib"), "-c", "Release", "-r", "linux-x64",
            "--artifacts-path", Path.Combine(dir, "build"), "-o", dir, "-nologo");
        if (publish.Code != 0) throw new InvalidOperationException($"dotnet publish src/Zc.CLib failed:\n{publish.Output}\n{publish.Error}");
        string zcount = Path.Combine(dir, "zcount");
        var gcc = Run("gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", zcount, Path.Combine(repository, "samples", "c", "zcount.c"),
            $"-I{dir}", $"-L{dir}", "-lzcflow", $"-Wl,-rpath,{dir}");
        if (gcc.Code != 0) throw new InvalidOperationException($"gcc zcount.c failed:\n{gcc.Output}\n{gcc.Error}");
        return zcount;
    }

    /// <summary>Runs <paramref name="program"/> and returns its exit code, standard output and standard error.</summary>
    public static (int Code, string Output, string Error) Run(string program, params string[] args) => RunWith(null, program, args);

    /// <summary>As <see cref="Run"/>, with more in the environment.</summary>
    public static (int Code, string Output, string Error) RunWith(IReadOnlyDictionary<string, string>? environment, string program, params string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args) info.ArgumentList.Add(a);
        foreach ((string key, string value) in environment ?? new Dictionary<string, string>()) info.Environment[key] = value;
        using Process p = Process.Start(info)!;
        Task<string> error = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, error.Result);
    }
}
