using System.Globalization;
using System.Runtime.InteropServices;
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
    private int _disposed;
    private readonly PosixSignalRegistration[] _signals = [];

    public HugePageReserve()
    {
        long missing = Pages - HugePages.FreePages;
        if (missing <= 0 || Native.Libc.GetEuid() != 0 || Environment.GetEnvironmentVariable("CI") == "true") return;
        try
        {
            long before = HugePages.TotalPages;
            File.WriteAllText(Knob, (before + missing).ToString(CultureInfo.InvariantCulture));
            _before = before;
            // Given back also when the run is stopped (the signal's own handling goes on after).
            _signals = [.. new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGQUIT }.Select(s => PosixSignalRegistration.Create(s, _ => Dispose()))];
            if (HugePages.FreePages < Pages) Console.Error.WriteLine($"zcperf: only {HugePages.FreePages} hugepages free after reserving (memory too fragmented?)");
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"zcperf: could not reserve {missing} hugepages ({e.Message}); clusters use normal pages");
        }
    }

    public void Dispose()
    {
        if (_before >= 0 && Interlocked.Exchange(ref _disposed, 1) == 0) File.WriteAllText(Knob, _before.ToString(CultureInfo.InvariantCulture));
    }
}
