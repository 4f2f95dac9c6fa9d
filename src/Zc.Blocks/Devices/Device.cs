using ZcFlow.Buffers;

namespace ZcFlow.Devices;

/// <summary>Opens a device by its PF_RING-style name.</summary>
public static class Device
{
    /// <summary>
    /// Opens <paramref name="name"/> as a packet source filling buffers of <paramref name="pool"/>,
    /// stamping each packet with <paramref name="index"/> as its input device:
    /// <c>gen:&lt;size&gt;[?…]</c> for generated traffic, <c>pcap:&lt;file&gt;</c> or a file ending in
    /// <c>.pcap</c>/<c>.pcapng</c> for a capture (options after <c>?</c>: <c>loop</c>, <c>pace</c>),
    /// <c>zc:&lt;cluster&gt;@&lt;queue&gt;</c> for a queue of another process's cluster.
    /// Any other name is an error that says what is supported.
    /// </summary>
    public static IPacketSource OpenSource(string name, BufferPool pool, uint index)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.StartsWith("gen:", StringComparison.Ordinal)) return GeneratorDevice.Open(name, pool, index);
        if (name.StartsWith("zc:", StringComparison.Ordinal)) return ZcQueueSource.Open(name, pool, index);
        if (name.StartsWith("pcap:", StringComparison.Ordinal) || name.Split('?')[0] is var file && (file.EndsWith(".pcap", StringComparison.Ordinal) || file.EndsWith(".pcapng", StringComparison.Ordinal)))
            return PcapFileDevice.Open(name, pool, index);
        throw new ArgumentException(
            $"unknown device '{name}': this build reads gen:<size>[?flows=N&rate=PPS&count=N], capture files (pcap:<file>, *.pcap, *.pcapng) and zc:<cluster>@<queue>; " +
            "interfaces (eth0, af_packet:eth0, xdp:eth0@0) are not supported yet", nameof(name));
    }
}
