namespace ZcFlow.Memory;

/// <summary>What the host offers in 2 MiB hugepages: the hugetlbfs mounts and the free page count.</summary>
internal static class HugePages
{
    public const string EnableHint =
        "reserve pages with 'echo 512 > /proc/sys/vm/nr_hugepages' (ClusterOptions.RequireHugePages then insists on them)";

    private const string PoolDir = "/sys/kernel/mm/hugepages/hugepages-2048kB";

    /// <summary>Free 2 MiB pages on the host (0 when the kernel has none or does not say).</summary>
    public static long FreePages => ReadCount("free_hugepages");

    /// <summary>Pages reserved in the kernel's 2 MiB pool (<c>/proc/sys/vm/nr_hugepages</c>).</summary>
    public static long TotalPages => ReadCount("nr_hugepages");

    /// <summary>Mount points of hugetlbfs with 2 MiB pages, in <c>/proc/mounts</c> order.</summary>
    public static IReadOnlyList<string> Mounts()
    {
        var mounts = new List<string>();
        if (!File.Exists("/proc/mounts")) return mounts;
        foreach (string line in File.ReadLines("/proc/mounts"))
        {
            string[] f = line.Split(' ');
            if (f.Length < 4 || f[2] != "hugetlbfs") continue;
            // A mount without pagesize= uses the default size, which is 2 MiB on x86-64.
            string? size = f[3].Split(',').FirstOrDefault(o => o.StartsWith("pagesize=", StringComparison.Ordinal));
            if (size is null || size is "pagesize=2M" or "pagesize=2048k") mounts.Add(Unescape(f[1]));
        }
        return mounts;
    }

    /// <summary>The first 2 MiB hugetlbfs mount, if the host has one with at least <paramref name="pages"/> free pages.</summary>
    public static string? FindMountWithFreePages(long pages)
        => FreePages >= pages ? Mounts().FirstOrDefault() : null;

    private static long ReadCount(string name)
    {
        try { return long.Parse(File.ReadAllText(Path.Combine(PoolDir, name)).Trim()); }
        catch (IOException) { return 0; }
        catch (UnauthorizedAccessException) { return 0; }
    }

    // /proc/mounts escapes blanks and backslashes as octal: "\040" is a space.
    private static string Unescape(string s) => s.Replace("\\040", " ").Replace("\\011", "\t").Replace("\\134", "\\");
}
