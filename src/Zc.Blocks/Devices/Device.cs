using ZcFlow.Buffers;

namespace ZcFlow.Devices;

/// <summary>Opens a device by its PF_RING-style name.</summary>
public static class Device
{
    /// <summary>
    /// The reader of <paramref name="source"/>'s frames in place, when it has one: a capture file read whole (not looped
    /// nor paced), an AF_PACKET device. Null for any other. Read from it or from the source, not both at once.
    /// </summary>
    public static IFrameReader? InPlace(IPacketSource source) => source switch
    {
        PcapFileDevice file => file.InPlace,
        AfPacketDevice packet => packet,
        _ => null,
    };

    /// <summary>
    /// Opens <paramref name="name"/> as a packet source filling buffers of <paramref name="pool"/>,
    /// stamping each packet with <paramref name="index"/> as its input device:
    /// <c>gen:&lt;size&gt;[?…]</c> for generated traffic, <c>pcap:&lt;file&gt;</c> or a file ending in
    /// <c>.pcap</c>/<c>.pcapng</c> for a capture (options after <c>?</c>: <c>loop</c>, <c>pace</c>),
    /// <c>zc:&lt;cluster&gt;@&lt;queue&gt;</c> for a queue of another process's cluster,
    /// <c>af_packet:eth0</c> or a bare interface name for an AF_PACKET socket (<see cref="AfPacketDevice"/>),
    /// <c>xdp:eth0@0</c> and <c>zc:eth0@0</c> for an AF_XDP socket on receive queue 0 (<see cref="XdpDevice"/>),
    /// <c>stack:zc0</c> for what the Linux stack sends out of a TAP interface (<see cref="TapDevice"/>),
    /// <c>multi:eth1;eth2</c> or <c>eth1,eth2</c> for several read as one. Any of them takes <c>rules=FILE</c> among its
    /// options (<see cref="Filters.Rule.Parse"/>, one a line): in the kernel for an AF_XDP device, in user space for the rest.
    /// Any other name is an error that says what is supported.
    /// </summary>
    public static IPacketSource OpenSource(string name, BufferPool pool, uint index)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (MultiSource.Parts(name) is { } parts) return MultiSource.Open(name, parts, pool, index);
        if (WithoutRules(name, out string device) is string rulesFile) return OpenSource(device, pool, index, new Filters.Rules().ReadFrom(rulesFile));
        if (name.StartsWith("gen:", StringComparison.Ordinal)) return GeneratorDevice.Open(name, pool, index);
        if (XdpDevice.IsName(name)) return XdpDevice.Open(name, pool, index);
        if (TapDevice.IsName(name)) return TapDevice.Open(name, pool, index);
        if (name.StartsWith("zc:", StringComparison.Ordinal)) return ZcQueueSource.Open(name, pool, index);
        if (IsAfPacketName(name)) return AfPacketDevice.Open(name, pool, index);
        if (name.StartsWith("pcap:", StringComparison.Ordinal) || name.Split('?')[0] is var file && (file.EndsWith(".pcap", StringComparison.Ordinal) || file.EndsWith(".pcapng", StringComparison.Ordinal)))
            return PcapFileDevice.Open(name, pool, index);
        throw Unknown(name);
    }

    /// <summary>
    /// Opens <paramref name="name"/> as <see cref="OpenSource(string, BufferPool, uint)"/> does, with <paramref name="rules"/>
    /// deciding what reaches the caller: in the kernel for an AF_XDP device (its own XDP program: what it drops, leaves to
    /// the kernel or reflects is never copied to user space) and for an AF_PACKET device whose rules do not reflect (a socket
    /// filter: what is not for the application never enters the ring), in user space for any other. Rules added to or
    /// removed from <paramref name="rules"/> while the device runs take effect at once; <see cref="Filters.Rules.Counters"/>
    /// counts both. A name with <c>rules=FILE</c> runs the file's rules in place of <paramref name="rules"/> (which must then
    /// hold none), read again on SIGUSR1 (<see cref="Filters.Rules.ReadFrom"/>); every member of a <c>multi:</c> name runs them.
    /// </summary>
    public static IPacketSource OpenSource(string name, BufferPool pool, uint index, Filters.Rules rules)
    {
        ArgumentNullException.ThrowIfNull(rules);
        if (MultiSource.Parts(name) is { } parts) return MultiSource.Open(name, parts, pool, index, rules);
        if (WithoutRules(name, out string device) is string rulesFile)
        {
            // The name's own file, in place of rules given empty (a front end's, for its -Z addresses); two sets are an error.
            if (rules.SourceFile is not null || rules.List().Count > 0)
                throw new ArgumentException($"'{name}': this device is given rules{(rules.SourceFile is { } f ? $" from {f}" : "")} and its name names a rules file too: give one of them", nameof(name));
            return OpenSource(device, pool, index, new Filters.Rules(rules.DefaultAction, rules.Filter).ReadFrom(rulesFile));
        }
        if (XdpDevice.IsName(name)) return XdpDevice.Open(name, pool, index, rules);
        if (IsAfPacketName(name) && AfPacketDevice.OpenWithRules(name, pool, index, rules) is { } filtered) return filtered;
        return new RuledSource(OpenSource(name, pool, index), rules, pool);
    }

    // The rules file of a name's rules=FILE option, and the name without it.
    private static string? WithoutRules(string name, out string device)
    {
        string? file = WithoutOption(name, "rules", out device);
        if (file is { Length: 0 }) throw new ArgumentException($"'{name}': rules= names a file of rules, one a line", nameof(name));
        return file;
    }

    /// <summary>The value of option <paramref name="option"/> among the name's (after <c>?</c>, joined by <c>&amp;</c>), or null; and the name without it.</summary>
    internal static string? WithoutOption(string name, string option, out string rest)
    {
        rest = name;
        int query = name.IndexOf('?', StringComparison.Ordinal);
        if (query < 0) return null;
        string prefix = option + "=";
        string[] options = name[(query + 1)..].Split('&');
        string? value = options.FirstOrDefault(o => o.StartsWith(prefix, StringComparison.Ordinal))?[prefix.Length..];
        if (value is null) return null;
        string[] kept = [.. options.Where(o => !o.StartsWith(prefix, StringComparison.Ordinal))];
        rest = kept.Length == 0 ? name[..query] : name[..(query + 1)] + string.Join('&', kept);
        return value;
    }

    /// <summary>
    /// True when <paramref name="name"/> is an AF_XDP device, or names several (<c>multi:</c>) of which one is: its rules,
    /// filter and <c>-Z</c> addresses run in its own XDP program in the kernel.
    /// </summary>
    public static bool RunsRulesInTheKernel(string name) => (MultiSource.Parts(name) ?? [name]).Any(XdpDevice.IsName);

    /// <summary>
    /// Opens <paramref name="name"/> as a device to send through: an interface (<c>eth0</c>,
    /// <c>af_packet:eth0</c>), the Linux stack through a TAP interface (<c>stack:zc0</c>), an AF_XDP socket (<c>xdp:eth0@0</c>), which copies what it sends
    /// into buffers of <paramref name="pool"/>, or another process's ingress queue (<c>zc:99@0</c>).
    /// </summary>
    public static IPacketSink OpenSink(string name, BufferPool? pool = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (IsAfPacketName(name)) return AfPacketDevice.Open(name, pool: null);
        if (TapDevice.IsName(name)) return TapDevice.Open(name, pool: null);
        if (Ipc.AttachedQueue.TryParse(name, out _, out _)) return IngressSink.Open(name);
        if (XdpDevice.IsName(name))
            return XdpDevice.Open(name, pool ?? throw new ArgumentException($"'{name}': an AF_XDP device sends from a pool's buffers, and none was given (a stage that takes other stages' queues holds their buffers, in a relay, and has no pool: send out of the interface by its name, eth1, instead)", nameof(pool)));
        throw new ArgumentException($"'{name}' cannot send: packets go out through interfaces (eth0, af_packet:eth0, xdp:eth0@0), into the Linux stack (stack:zc0) and into ingress queues (zc:<cluster>@<queue>)", nameof(name));
    }

    /// <summary>
    /// Lists <paramref name="source"/> in <paramref name="cluster"/> for the cluster listing (samples/ZStat, PF_RING's
    /// <c>/proc/net/pf_ring</c>): its kind and name, the kernel ring it reads, its fanout group and mode, and its counters,
    /// written every second, as a graph lists its devices. Dispose what it returns before the device.
    /// </summary>
    public static IDisposable ListIn(ZcCluster cluster, IPacketSource source) => new DeviceListing(cluster, [source], []);

    /// <summary>Waits up to <paramref name="timeoutMs"/> for a socket to have something to read.</summary>
    internal static unsafe bool Poll(int fd, int timeoutMs)
    {
        var poll = new Native.PollFd { Fd = fd, Events = Native.Libc.POLLIN };
        return Native.Libc.Poll(&poll, 1, timeoutMs) > 0;
    }

    /// <summary>
    /// <paramref name="name"/>, and for an AF_PACKET device whose name does not say itself, whether it also takes in what is
    /// sent out of its interface (<c>outgoing=0|1</c>): zbalance_ipc captures the receive direction only, and a bridge must
    /// not hear its own sends. Other devices' names come back as they are.
    /// </summary>
    public static string WithOutgoing(string name, bool outgoing)
    {
        if (MultiSource.Parts(name) is { } parts)
            return (name.StartsWith("multi:", StringComparison.Ordinal) ? "multi:" : "") + string.Join(name.StartsWith("multi:", StringComparison.Ordinal) ? ';' : ',', parts.Select(p => WithOutgoing(p, outgoing)));
        return IsAfPacketName(name) && !name.Contains("outgoing=", StringComparison.Ordinal)
            ? name + (name.Contains('?') ? "&" : "?") + (outgoing ? "outgoing=1" : "outgoing=0")
            : name;
    }

    /// <summary>True when <paramref name="name"/> opens an AF_PACKET device: <c>af_packet:eth0</c>, an interface of this network namespace, or <c>any</c>.</summary>
    public static bool IsAfPacketName(string name)
        => name.StartsWith("af_packet:", StringComparison.Ordinal) || (!name.Contains(':') && !name.Contains('.') && name.Split('?')[0].Split('@')[0] is var ifName && (ifName == "any" || Native.Libc.IfNameToIndex(ifName) != 0));

    private static ArgumentException Unknown(string name) => new(
        $"unknown device '{name}': devices are gen:<size>[?flows=N&rate=PPS&count=N], capture files (pcap:<file>, *.pcap, *.pcapng), " +
        "zc:<cluster>@<queue>, interfaces of this network namespace (eth0, eth0@2, af_packet:eth0?fanout=1, xdp:eth0@0, zc:eth0@0), stack:<tap>, and multi:eth0;eth1", nameof(name));
}
