namespace ZcFlow.Tests;

/// <summary>
/// libzcflow.so and libzcflow-pcap.so, built with NativeAOT as a user builds them (<c>dotnet publish src/Zc.CLib</c>), once for
/// every test class that uses them, into a directory of their own; and the C sample compiled against libzcflow.
/// </summary>
public sealed class NativeLibraries : IDisposable
{
    public const string Name = "native libraries";

    public string Directory { get; } = Path.Combine(Path.GetTempPath(), $"zcflow-clib-{Guid.NewGuid():N}");
    public string Samples { get; } = Path.Combine(Tools.Repository!, "samples", "c");
    public string ZCount { get; }

    /// <summary>The libpcap drop-in, for LD_PRELOAD.</summary>
    public string PcapDropIn => Path.Combine(Directory, "libzcflow-pcap.so");

    public NativeLibraries()
    {
        ZCount = Tools.BuildCLibrary(Directory);
        // tcpdump reads the library as root, but a program started as another user (the permission tests) must too.
        File.SetUnixFileMode(Directory, (UnixFileMode)0x1ED);
    }

    internal ChildProcess Python(string script, params object[] args)
        => ChildProcess.Exec("/usr/bin/python3", [script, .. args], new Dictionary<string, string> { ["ZCFLOW_LIB"] = Path.Combine(Directory, "libzcflow.so") });

    /// <summary>Starts <paramref name="program"/> (tcpdump, tshark, softflowd ...) with the drop-in preloaded.</summary>
    internal ChildProcess Preloaded(string program, params object[] args)
        => ChildProcess.Exec(program, args, new Dictionary<string, string> { ["LD_PRELOAD"] = PcapDropIn });

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}

[CollectionDefinition(NativeLibraries.Name)]
public sealed class NativeLibrariesCollection : ICollectionFixture<NativeLibraries>;
