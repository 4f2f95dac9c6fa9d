using ZcFlow.Ipc;

namespace ZcFlow.Devices;

/// <summary>
/// Devices listed in the cluster of the process that opened them, as <c>/proc/net/pf_ring</c> lists PF_RING's sockets: their
/// kind in the name, the kernel ring each reads, its fanout group and mode, and the counters, written every second, where
/// the cluster listing (<see cref="ClusterDirectory.List"/>, samples/ZStat) reads them. Disposing stops the writing, and
/// must come before the devices close.
/// </summary>
internal sealed class DeviceListing : IDisposable
{
    private readonly ZcCluster _cluster;
    private readonly (int Id, Func<DeviceStats> Stats)[] _devices;
    private readonly Timer _publish;

    public DeviceListing(ZcCluster cluster, IEnumerable<IPacketSource> sources, IEnumerable<IPacketSink> sinks)
    {
        _cluster = cluster;
        _devices = [.. sources.SelectMany(Devices).Select(s => Add(s, s.Name, () => s.Stats))
            .Concat(sinks.Select(s => Add(s, s.Name, () => s.Stats)))];
        _publish = new Timer(_ => Publish(), null, TimeSpan.Zero, TimeSpan.FromSeconds(1));
    }

    // The devices a source reads: a multi:'s each, the one a rules stage runs over.
    private static IEnumerable<IPacketSource> Devices(IPacketSource source) => source switch
    {
        MultiSource multi => multi.Sources.SelectMany(Devices),
        RuledSource ruled => Devices(ruled.Inner),
        _ => [source],
    };

    private (int, Func<DeviceStats>) Add(object device, string name, Func<DeviceStats> stats)
    {
        (string listed, long ring, int group, int mode) = device switch
        {
            AfPacketDevice a => (name.StartsWith("af_packet:", StringComparison.Ordinal) ? name : "af_packet:" + name, a.RingBytes,
                a.Fanout?.Group ?? -1, (int)(a.Fanout?.Mode ?? 0)),
            PcapFileDevice => (name.StartsWith("pcap:", StringComparison.Ordinal) ? name : "pcap:" + name, 0L, -1, 0),
            _ => (name, 0L, -1, 0),
        };
        return (_cluster.AddDevice(listed, ring, group, mode), stats);
    }

    private void Publish()
    {
        try
        {
            foreach ((int id, Func<DeviceStats> stats) in _devices) _cluster.PublishDeviceStats(id, stats());
        }
        catch (ObjectDisposedException)
        {
            // the cluster or a device was closed under the listing by its user: nothing left to show
        }
    }

    public void Dispose()
    {
        using var published = new ManualResetEvent(false);
        if (_publish.Dispose(published)) published.WaitOne();   // no publishing once the devices close
    }
}
