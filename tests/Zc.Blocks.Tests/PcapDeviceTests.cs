using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Devices;

namespace ZcFlow.Tests;

public sealed class PcapDeviceTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"zcflow-paced-{Environment.ProcessId}-{Guid.NewGuid():N}.pcap");
    private readonly ZcCluster _cluster = TestClusters.Create(buffers: 256, bufferSize: 256);
    private readonly BufferPool _pool;

    public PcapDeviceTests()
    {
        _pool = _cluster.CreatePool(256);
        using var writer = new CaptureWriter(_path);
        var frame = Frames.Ethernet(0x0800).Ipv4(1, 2, 17, 8).Udp(1, 2, 0).ToArray();
        // Ten packets 30 ms apart.
        for (int i = 0; i < 10; i++) writer.Write(frame, 1_700_000_000_000_000_000 + i * 30_000_000L);
    }

    public void Dispose()
    {
        _cluster.Dispose();
        File.Delete(_path);
    }

    private long ReadAll(IPacketSource device, int limit = int.MaxValue)
    {
        var burst = new PacketHandle[32];
        long got = 0;
        while (!device.IsExhausted && got < limit)
        {
            int n = device.ReceiveBurst(burst);
            _pool.ReleaseBurst(burst.AsSpan(0, n));
            got += n;
        }
        return got;
    }

    [Fact]
    public void AtRecordedPace_TheLastPacketComesNoSoonerThanItsOffset()
    {
        using IPacketSource device = Device.OpenSource(_path + "?pace", _pool, 0);
        var clock = Stopwatch.StartNew();
        Assert.Equal(10, ReadAll(device));
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(270), $"ten packets 30 ms apart took {clock.Elapsed}");
    }

    [Fact]
    public void WaitingOnAFile_SaysTrueWhileItHasMore_AndFalseOnceExhausted()
    {
        using IPacketSource device = Device.OpenSource(_path + "?pace", _pool, 0);
        Assert.True(device.WaitReadable(100));
        Assert.Equal(10, ReadAll(device));
        var clock = Stopwatch.StartNew();
        Assert.False(device.WaitReadable(100));
        Assert.True(clock.ElapsedMilliseconds < 100, "an exhausted source has nothing to wait for");
    }

    [Fact]
    public void Looped_StartsOverAtTheEnd()
    {
        using IPacketSource device = Device.OpenSource("pcap:" + _path + "?loop", _pool, 0);
        Assert.True(ReadAll(device, limit: 35) >= 35);
        Assert.False(device.IsExhausted);
    }

    [Fact]
    public void UnknownOption_IsAClearError()
        => Assert.Contains("unknown option 'fast'", Assert.Throws<ArgumentException>(() => Device.OpenSource(_path + "?fast", _pool, 0)).Message);
}
