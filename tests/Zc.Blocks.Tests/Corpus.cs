namespace ZcFlow.Tests;

/// <summary>The capture files of tcpdump's test suite, in shared/corpus beside the checkout.</summary>
internal static class Corpus
{
    public static string? Directory
    {
        get
        {
            for (string? dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
            {
                if (!File.Exists(Path.Combine(dir, "ZcFlow.sln"))) continue;
                string corpus = Path.GetFullPath(Path.Combine(dir, "..", "shared", "corpus", "tcpdump-tests"));
                return System.IO.Directory.Exists(corpus) ? corpus : null;
            }
            return null;
        }
    }

    public static string[] Files()
    {
        string dir = Directory ?? throw new InvalidOperationException("no corpus");
        return System.IO.Directory.GetFiles(dir).Where(f => f.EndsWith(".pcap") || f.EndsWith(".pcapng")).Order().ToArray();
    }

    public static void SkipIfMissing()
    {
        if (Directory is null) Assert.Skip("shared/corpus/tcpdump-tests is not beside this checkout");
    }
}
