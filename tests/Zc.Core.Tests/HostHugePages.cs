using System.Diagnostics;
using ZcFlow.Memory;

namespace ZcFlow.Tests;

/// <summary>
/// Reserves 2 MiB hugepages and mounts a private hugetlbfs for a test, and puts the host back
/// as it found it on Dispose. <see cref="TryCreate"/> gives the reason when the host cannot.
/// </summary>
internal sealed class HostHugePages : IDisposable
{
    private const string NrHugePages = "/proc/sys/vm/nr_hugepages";
    private readonly long _before;

    public string Mount { get; }

    private HostHugePages(long before, string mount)
    {
        _before = before;
        Mount = mount;
    }

    public static HostHugePages? TryCreate(int pages, out string reason)
    {
        reason = "";
        if (Environment.UserName != "root") { reason = "reserving hugepages and mounting hugetlbfs needs root"; return null; }
        if (!File.Exists(NrHugePages) || !File.ReadAllText("/proc/filesystems").Contains("hugetlbfs"))
        {
            reason = "this kernel has no hugetlbfs";
            return null;
        }
        long before = long.Parse(File.ReadAllText(NrHugePages).Trim());
        File.WriteAllText(NrHugePages, (before + pages).ToString());
        string mount = Path.Combine(Path.GetTempPath(), $"zcflow-huge-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            if (HugePages.FreePages < pages)
                throw new SkipReason($"the kernel could not reserve {pages} hugepages (memory too fragmented)");
            Directory.CreateDirectory(mount);
            Run("mount", $"-t hugetlbfs -o pagesize=2M,mode=0700 nodev {mount}");
            return new HostHugePages(before, mount);
        }
        catch (SkipReason e)
        {
            Restore(before, mount, mounted: false);
            reason = e.Message;
            return null;
        }
        catch
        {
            Restore(before, mount, mounted: false);
            throw;
        }
    }

    public void Dispose() => Restore(_before, Mount, mounted: true);

    private static void Restore(long before, string mount, bool mounted)
    {
        if (mounted) Run("umount", mount);
        if (Directory.Exists(mount)) Directory.Delete(mount);
        File.WriteAllText(NrHugePages, before.ToString());
    }

    private static void Run(string file, string args)
    {
        using Process p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true })!;
        string error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {args} failed: {error}");
    }

    private sealed class SkipReason(string message) : Exception(message);
}
