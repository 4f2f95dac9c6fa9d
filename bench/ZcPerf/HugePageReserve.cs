using System.Globalization;
using ZcFlow.Memory;

namespace ZcFlow.Perf;

/// <summary>
/// The 2 MiB hugepages clusters are meant to run on, as PF_RING ZC's and DPDK's set-up reserves them: when the host has
/// fewer free than a run needs and we are root (and not under CI), reserved for the run and given back after it. Without
/// them every buffer of a cluster is a page of its own to the TLB, and a figure is of the page walks as much as of ZcFlow.
/// The machine row says how many the run had.
/// </summary>
internal sealed class HugePageReserve : IDisposable
{
    private const long Pages = 1024;   // 2 GiB: the largest scenario's clusters, with room
    private const string Knob = "/proc/sys/vm/nr_hugepages";
    private readonly long _before = -1;

    public HugePageReserve()
    {
        long missing = Pages - HugePages.FreePages;
        if (missing <= 0 || Native.Libc.GetEuid() != 0 || Environment.GetEnvironmentVariable("CI") == "true") return;
        try
        {
            long before = HugePages.TotalPages;
            File.WriteAllText(Knob, (before + missing).ToString(CultureInfo.InvariantCulture));
            _before = before;
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"zcperf: could not reserve {missing} hugepages ({e.Message}); clusters use normal pages");
        }
        if (HugePages.FreePages < Pages) Console.Error.WriteLine($"zcperf: only {HugePages.FreePages} free hugepages (memory too fragmented?)");
    }

    public void Dispose()
    {
        if (_before >= 0) File.WriteAllText(Knob, _before.ToString(CultureInfo.InvariantCulture));
    }
}
