namespace ZcFlow.Tests;

/// <summary>The capture files of tcpdump's test suite, in shared/corpus beside the checkout.</summary>
internal static class Corpus
{
    public static string? Directory
    {
        get
        {
            if (Tools.Repository is not string repository) return null;
            string corpus = Path.GetFullPath(Path.Combine(repository, "..", "shared", "corpus", "tcpdump-tests"));
            return System.IO.Directory.Exists(corpus) ? corpus : null;
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
