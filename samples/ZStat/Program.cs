using ZcFlow.Ipc;

// The clusters on this host, their owners and queues, with live counters: what
// /proc/net/pf_ring shows for PF_RING.
const string Usage = "usage: ZStat   (every ZcFlow cluster on this host this user can reach: owner, queues, pools, devices and their counters)";
if (args.Length > 0)
{
    bool help = args[0] is "-h" or "--help";
    if (!help) Console.Error.WriteLine($"error: unexpected argument '{args[0]}'");
    (help ? Console.Out : Console.Error).WriteLine(Usage);
    return help ? 0 : 2;
}
var clusters = ClusterDirectory.List();
if (clusters.Count == 0) Console.WriteLine("no ZcFlow cluster on this host");
foreach (ClusterInfo c in clusters)
{
    if (c.Problem is not null)
    {
        Console.WriteLine($"cluster {c.Id}  {c.Path}  unreadable: {c.Problem}");
        continue;
    }
    Console.WriteLine($"cluster {c.Id}  owner pid {c.OwnerPid} ({(c.Live ? "running" : "gone")})  generation {c.Generation:x16}  " +
                      $"{c.BufferCount} buffers of {c.BufferSize} B{(c.OnHugePages ? " on hugepages" : "")}  {c.Path}" +
                      (c.Repairs != 0 ? $"  header and directories overwritten and put back {c.Repairs:N0} times" : ""));
    foreach (QueueInfo q in c.Queues)
    {
        string consumer = q.Internal ? "internal (between two stages: not attachable)"
            : q.ConsumerPid == 0 ? "no consumer" : $"consumer pid {q.ConsumerPid}{(q.Stuck ? " STUCK" : "")}";
        Console.WriteLine($"  zc:{c.Id}@{q.Id}  {q.Role.ToString().ToLowerInvariant()}  {q.Capacity} slots  {consumer}  sent {q.Stats.Sent:N0}  received {q.Stats.Received:N0}  " +
                          $"queued {q.Stats.Queued:N0}  dropped {q.Stats.Dropped:N0}  errors {q.Stats.Errors:N0}  holds {q.Held:N0} of {q.Quota:N0} buffers");
    }
    foreach (PoolInfo p in c.Pools)
        Console.WriteLine($"  pool {p.Id}  buffers {p.FirstBuffer}-{p.FirstBuffer + p.Count - 1}  free {p.Free:N0} of {p.Count:N0}");
    foreach (DeviceInfo d in c.Devices)
    {
        var s = d.Stats;
        Console.WriteLine($"  {d.Name}{(d.RingBytes != 0 ? $"  ring {d.RingBytes / 1024:N0} KiB" : "")}{(d.FanoutGroup is int g ? $"  fanout {g} {d.FanoutMode}" : "")}" +
                          $"  received {s.Received:N0} ({s.Bytes:N0} B)  no buffer {s.DroppedNoBuffer:N0}  dropped by the kernel {s.DroppedKernel:N0}" +
                          (s.Sent + s.SendFailed != 0 ? $"  sent {s.Sent:N0}  not sent {s.SendFailed:N0}" : ""));
    }
    // The counters of the rules its process runs on its devices (Balancer -F, ZCount and FlowExport -R), each second.
    string rules = Path.Combine("/run/zcflow/rules", c.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
    if (c.Live && File.Exists(rules))
    {
        try
        {
            // Written by the cluster's owner (its first line names it), not by another process of the shared directory.
            string[] lines = File.ReadAllLines(rules);
            if (lines.Length > 0 && lines[0].StartsWith($"pid {c.OwnerPid} ", StringComparison.Ordinal))
                foreach (string line in lines) Console.WriteLine($"  {line}");
        }
        catch (IOException)
        {
            // gone as it was read: the process ended
        }
    }
}
return 0;
