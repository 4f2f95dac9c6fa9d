using ZcFlow.Memory;
using ZcFlow.Native;

namespace ZcFlow.Ipc;

/// <summary>
/// Finding clusters on the host and reading what their owners publish: the counterpart of
/// PF_RING's <c>/proc/net/pf_ring</c>. Each cluster is asked over its socket for a read-only
/// view of its memory; everything read there is clamped to the directory before it is used.
/// </summary>
public static unsafe class ClusterDirectory
{
    private const string Prefix = "zcflow-";

    /// <summary>The socket of cluster <paramref name="id"/>, or null when there is none.</summary>
    public static string? Find(uint id) => File.Exists(ClusterLock.SocketPathOf(id)) ? ClusterLock.SocketPathOf(id) : null;

    /// <summary>Every cluster on the host, with its pools, queues, devices and their counters, as far as this process may reach them.</summary>
    public static IReadOnlyList<ClusterInfo> List()
    {
        var found = new List<ClusterInfo>();
        if (!Directory.Exists(ClusterLock.Directory)) return found;
        foreach (string path in Directory.EnumerateFiles(ClusterLock.Directory, Prefix + "*.sock"))
        {
            if (!uint.TryParse(Path.GetFileNameWithoutExtension(path).AsSpan(Prefix.Length), out uint id)) continue;
            try
            {
                found.Add(Describe(id, path));
            }
            catch (Exception e) when (e is ErrnoException or InvalidDataException or ClusterGoneException)
            {
                found.Add(new ClusterInfo(id, path, 0, false, 0, false, 0, 0, [], [], e.Message));
            }
        }
        return found.OrderBy(c => c.Id).ToArray();
    }

    private static ClusterInfo Describe(uint id, string path)
    {
        using SafeFileDescriptor socket = ClusterSocket.Connect(path, out int errno)
            ?? throw new ErrnoException($"connecting to cluster {id} ({path})", errno, errno == Libc.EACCES ? "it was created for another user or group" : "its owner is gone");
        int ownerPid = ClusterSocket.Credentials(socket).Pid;
        var fds = new List<SafeFileDescriptor>();
        AttachReply reply;
        try
        {
            reply = ClusterSocket.Ask(socket, id, AttachRequest.Monitor, 0, fds, 2000);
            if (fds.Count != 1 || reply.ClusterSize < ArenaLayout.BuffersOffset)
                throw new InvalidDataException($"cluster {id}'s owner handed over {fds.Count} descriptors of {reply.ClusterSize} bytes, not a view of its memory");
        }
        catch
        {
            foreach (SafeFileDescriptor f in fds) f.Dispose();
            throw;
        }
        bool huge = (reply.Flags & ArenaHeader.FlagHugePages) != 0;
        // The header and directories only: the first page (or hugepage) of the memory.
        using Arena arena = Arena.MapView(fds[0], reply.ClusterSize, huge ? ArenaLayout.HugePageSize : ArenaLayout.BuffersOffset, huge, $"cluster {id}", []);
        ref ArenaHeader h = ref arena.At<ArenaHeader>(0);

        var pools = new List<PoolInfo>();
        for (int p = 0; p < (int)Math.Min(Volatile.Read(ref h.PoolCount), ArenaLayout.MaxPools); p++)
        {
            ref PoolEntry e = ref arena.At<PoolEntry>(ArenaLayout.PoolDirectoryOffset + (ulong)p * ArenaLayout.EntrySize);
            if (Volatile.Read(ref e.State) == PoolEntry.Ready)
                pools.Add(new PoolInfo(p, (int)e.FirstBuffer, (int)e.Count, (int)Volatile.Read(ref e.Free)));
        }
        var queues = new List<QueueInfo>();
        for (int q = 0; q < Math.Min(reply.QueueCount, ArenaLayout.MaxQueues); q++)
        {
            ref QueueEntry e = ref arena.At<QueueEntry>(ArenaLayout.QueueDirectoryOffset + (ulong)q * ArenaLayout.QueueEntrySize);
            if (Volatile.Read(ref e.State) != QueueEntry.Ready) continue;
            queues.Add(new QueueInfo(q, (Queues.QueueRole)e.Role, (int)e.Capacity, Volatile.Read(ref e.ConsumerPid),
                new Queues.QueueStats(Volatile.Read(ref e.Sent), Volatile.Read(ref e.Received), Volatile.Read(ref e.Dropped), Volatile.Read(ref e.Errors)))
            {
                Held = (int)Volatile.Read(ref e.Held), Quota = (int)Volatile.Read(ref e.Quota), Stuck = (Volatile.Read(ref e.Flags) & QueueEntry.FlagStuck) != 0,
                Internal = (Volatile.Read(ref e.Flags) & QueueEntry.FlagInternal) != 0,
            });
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
                        Volatile.Read(ref e.DroppedKernel), Volatile.Read(ref e.Sent), Volatile.Read(ref e.SendFailed)),
                    (long)Math.Min(e.RingBytes, long.MaxValue), e.FanoutGroup, e.FanoutMode));
            }
        }
        return new ClusterInfo(id, path, ownerPid, true, reply.Generation, huge, (int)reply.BufferCount, (int)reply.BufferCapacity, queues, devices, null)
        {
            Pools = pools,
            Repairs = Volatile.Read(ref h.Repairs),
        };
    }
}
