using ZcFlow.Memory;

namespace ZcFlow.Tests;

/// <summary>
/// Reserves 2 MiB hugepages in the kernel's pool for a test, and puts the host back as it found
/// it on Dispose. <see cref="TryCreate"/> gives the reason when the host cannot.
/// </summary>
internal sealed class HostHugePages : IDisposable
{
    private const string NrHugePages = "/proc/sys/vm/nr_hugepages";
    private readonly long _before;

    private HostHugePages(long before) => _before = before;

    public static HostHugePages? TryCreate(int pages, out string reason)
    {
        reason = "";
        if (Environment.UserName != "root") { reason = "reserving hugepages needs root"; return null; }
        if (!File.Exists(NrHugePages)) { reason = "this kernel has no hugepages"; return null; }
        long before = long.Parse(File.ReadAllText(NrHugePages).Trim());
        File.WriteAllText(NrHugePages, (before + pages).ToString());
        if (HugePages.FreePages < pages)
        {
            File.WriteAllText(NrHugePages, before.ToString());
            reason = $"the kernel could not reserve {pages} hugepages (memory too fragmented)";
            return null;
        }
        return new HostHugePages(before);
    }

    public void Dispose() => File.WriteAllText(NrHugePages, _before.ToString());
}
