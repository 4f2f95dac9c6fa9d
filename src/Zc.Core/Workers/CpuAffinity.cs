using ZcFlow.Native;

namespace ZcFlow.Workers;

/// <summary>Pins the calling thread to a core and says where it runs.</summary>
public static unsafe class CpuAffinity
{
    /// <summary>Binds the calling OS thread to <paramref name="core"/>; a core the process may not use is a clear error.</summary>
    public static void PinCurrentThread(int core)
    {
        if ((uint)core >= CpuSet.Capacity) throw new ArgumentOutOfRangeException(nameof(core), core, "no such core");
        CpuSet allowed = default;
        if (Libc.SchedGetAffinity(0, (nuint)sizeof(CpuSet), &allowed) != 0) throw ErrnoException.FromLastError("sched_getaffinity");
        if (!allowed.Contains(core))
            throw new ArgumentOutOfRangeException(nameof(core), core,
                $"core {core} is not one this process may run on (it may use {string.Join(",", AllowedCores(allowed))})");
        CpuSet set = default;
        set.Add(core);
        if (Libc.SchedSetAffinity(0, (nuint)sizeof(CpuSet), &set) != 0)
            throw ErrnoException.FromLastError($"pinning thread {Libc.GetTid()} to core {core}");
    }

    /// <summary>The cores the calling thread may run on.</summary>
    public static int[] AllowedCores()
    {
        CpuSet allowed = default;
        if (Libc.SchedGetAffinity(0, (nuint)sizeof(CpuSet), &allowed) != 0) throw ErrnoException.FromLastError("sched_getaffinity");
        return AllowedCores(allowed);
    }

    private static int[] AllowedCores(in CpuSet set)
    {
        var cores = new List<int>();
        for (int c = 0; c < CpuSet.Capacity; c++) if (set.Contains(c)) cores.Add(c);
        return [.. cores];
    }

    /// <summary>The core the calling thread is on now.</summary>
    public static int CurrentCore => Libc.SchedGetCpu();
}
