using System.Numerics;
using ZcFlow.Memory;
using ZcFlow.Native;

namespace ZcFlow.Ipc;

/// <summary>
/// Finding clusters on the host and checking what their arenas say, before any number read
/// there is used as an offset or a size: the counterpart of PF_RING's <c>/proc/net/pf_ring</c>.
/// </summary>
public static unsafe class ClusterDirectory
{
    private const string Prefix = "zcflow-";

    /// <summary>Every place the arena file of cluster <paramref name="id"/> may be: each 2 MiB hugetlbfs mount, then /dev/shm.</summary>
    public static IEnumerable<string> CandidatePaths(uint id)
        => HugePages.Mounts().Append(Arena.ShmDirectory).Select(d => Path.Combine(d, ZcCluster.FileName(id)));

    /// <summary>The arena file of cluster <paramref name="id"/>, or null when there is none.</summary>
    public static string? Find(uint id) => CandidatePaths(id).FirstOrDefault(File.Exists);

    /// <summary>Every cluster on the host, with its queues and their counters, as far as this process may read them.</summary>
    public static IReadOnlyList<ClusterInfo> List()
    {
        var found = new List<ClusterInfo>();
        foreach (string dir in HugePages.Mounts().Append(Arena.ShmDirectory))
        {
            if (!Directory.Exists(dir)) continue;
            foreach (string path in Directory.EnumerateFiles(dir, Prefix + "*"))
            {
                if (!uint.TryParse(Path.GetFileName(path).AsSpan(Prefix.Length), out uint id)) continue;
                try
                {
                    using Arena arena = Arena.Open(path);
                    found.Add(Describe(arena, id));
                }
                catch (Exception e) when (e is ErrnoException or InvalidDataException)
                {
                    found.Add(new ClusterInfo(id, path, 0, false, 0, false, 0, 0, [], [], e.Message));
                }
            }
        }
        return found.OrderBy(c => c.Id).ToArray();
    }

    private static ClusterInfo Describe(Arena arena, uint id)
    {
        ref ArenaHeader h = ref Check(arena, id);
        var queues = new List<QueueInfo>();
        for (int q = 0; q < (int)h.QueueCount; q++)
        {
            ref QueueEntry e = ref CheckQueue(arena, id, q);
            RingControl* ring = (RingControl*)(arena.Base + e.ForwardOffset);
            queues.Add(new QueueInfo(q, (Queues.QueueRole)e.Role, (int)e.Capacity, Volatile.Read(ref e.ConsumerPid),
                new Queues.QueueStats(Volatile.Read(ref ring->Tail), Volatile.Read(ref ring->Head), Volatile.Read(ref ring->Dropped),
                    Volatile.Read(ref ring->ProducerErrors) + Volatile.Read(ref ring->ConsumerErrors))));
        }
        var devices = new List<DeviceInfo>();
        uint deviceCount = Math.Min(Volatile.Read(ref h.DeviceCount), ArenaLayout.MaxDevices);
        for (int d = 0; d < (int)deviceCount; d++)
        {
            ref DeviceEntry e = ref arena.At<DeviceEntry>(ArenaLayout.DeviceDirectoryOffset + (ulong)d * ArenaLayout.DeviceEntrySize);
            if (Volatile.Read(ref e.State) != DeviceEntry.Ready) continue;
            fixed (byte* name = e.Name)
            {
                devices.Add(new DeviceInfo(d, System.Text.Encoding.UTF8.GetString(name, (int)Math.Min(e.NameLength, DeviceEntry.MaxName)),
                    new Devices.DeviceStats(Volatile.Read(ref e.Received), Volatile.Read(ref e.Bytes), Volatile.Read(ref e.DroppedNoBuffer),
                        Volatile.Read(ref e.DroppedKernel), Volatile.Read(ref e.Sent), Volatile.Read(ref e.SendFailed))));
            }
        }
        return new ClusterInfo(id, arena.Path, h.OwnerPid, Processes.IsAlive(h.OwnerPid) && h.State == ArenaHeader.Running,
            h.Generation, (h.Flags & ArenaHeader.FlagHugePages) != 0, (int)h.BufferCount, (int)h.BufferCapacity, queues, devices, null);
    }

    /// <summary>Removes the arena of cluster <paramref name="id"/> left by a dead owner; a live owner is an error naming its pid.</summary>
    internal static void RemoveStale(uint id)
    {
        foreach (string path in CandidatePaths(id))
        {
            if (!File.Exists(path)) continue;
            int owner = 0;
            try
            {
                using Arena arena = Arena.Open(path);
                ref ArenaHeader h = ref arena.At<ArenaHeader>(0);
                if (h.Magic == ArenaLayout.Magic && h.State == ArenaHeader.Running) owner = h.OwnerPid;
            }
            catch (Exception e) when (e is ErrnoException or InvalidDataException)
            {
            }
            if (Processes.IsAlive(owner))
                throw new InvalidOperationException($"cluster {id} already exists and is owned by running process {owner} ({path}); stop it or pick another cluster id");
            Libc.Unlink(path);
        }
    }

    /// <summary>Checks the header of an arena mapped from another process; every later offset is derived from what passes here.</summary>
    internal static ref ArenaHeader Check(Arena arena, uint id)
    {
        ref ArenaHeader h = ref arena.At<ArenaHeader>(0);
        string where = $"cluster {id} ({arena.Path})";
        if (Volatile.Read(ref h.Magic) != ArenaLayout.Magic) throw Bad(where, "is not a ZcFlow arena, or its owner has not finished creating it");
        if (h.Version != ArenaLayout.Version) throw Bad(where, $"has layout version {h.Version}; this build reads version {ArenaLayout.Version}");
        if (h.HeaderSize != ArenaLayout.HeaderSize || h.ClusterId != id) throw Bad(where, "has a header of another size or for another cluster id");
        if (h.TotalSize != arena.Size) throw Bad(where, $"says it is {h.TotalSize} bytes but maps {arena.Size}");
        if (h.BufferCapacity is < 64 or > 1 << 20 || h.BufferStride != ArenaLayout.BufferStride((int)h.BufferCapacity))
            throw Bad(where, "has an impossible buffer size");
        if (h.BuffersOffset != ArenaLayout.BuffersOffset || h.BufferCount == 0 || h.BufferCount > 1 << 30
            || h.BuffersOffset + (ulong)h.BufferStride * h.BufferCount > h.QueueAreaOffset
            || h.QueueAreaOffset > h.TotalSize || h.QueueAreaSize > h.TotalSize - h.QueueAreaOffset)
            throw Bad(where, "has regions that do not fit in it");
        if (h.RecycleCapacity != BitOperations.RoundUpToPowerOf2(Math.Max(h.BufferCount, 2u)))
            throw Bad(where, "has recycle rings of the wrong size");
        if (h.QueueCount > ArenaLayout.MaxQueues || h.PoolCount > ArenaLayout.MaxPools) throw Bad(where, "lists too many queues or pools");
        return ref h;
    }

    /// <summary>Checks queue <paramref name="q"/>'s directory entry: both its rings lie inside the queue area.</summary>
    internal static ref QueueEntry CheckQueue(Arena arena, uint id, int q)
    {
        ref ArenaHeader h = ref arena.At<ArenaHeader>(0);
        if ((uint)q >= Volatile.Read(ref h.QueueCount))
            throw new ArgumentOutOfRangeException(nameof(q), q, $"cluster {id} has {h.QueueCount} queues, numbered from 0");
        ref QueueEntry e = ref arena.At<QueueEntry>(ArenaLayout.QueueDirectoryOffset + (ulong)q * ArenaLayout.EntrySize);
        string where = $"queue {q} of cluster {id}";
        if (Volatile.Read(ref e.State) != QueueEntry.Ready) throw Bad(where, "is not ready");
        if (e.Role > (uint)Queues.QueueRole.Ingress) throw Bad(where, "has an unknown role");
        if (e.Capacity < 2 || !BitOperations.IsPow2(e.Capacity) || e.Capacity > h.RecycleCapacity || e.RecycleCapacity != h.RecycleCapacity)
            throw Bad(where, "has an impossible capacity");
        if (!RingFits(h, e.ForwardOffset, e.Capacity) || !RingFits(h, e.RecycleOffset, e.RecycleCapacity))
            throw Bad(where, "has rings outside the queue area");
        return ref e;
    }

    private static bool RingFits(in ArenaHeader h, ulong offset, uint capacity)
        => offset % ArenaLayout.CacheLinePair == 0 && offset >= h.QueueAreaOffset
           && offset - h.QueueAreaOffset <= h.QueueAreaSize && ArenaLayout.RingSize(capacity) <= h.QueueAreaSize - (offset - h.QueueAreaOffset);

    private static InvalidDataException Bad(string where, string what) => new($"{where} {what}");
}
