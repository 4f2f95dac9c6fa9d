using System.Runtime.InteropServices;
using System.Text;
using ZcFlow.Ipc;
using ZcFlow.Native;
using ZcFlow.Queues;
using static ZcFlow.CLib.Pcap.QueueCapture;

namespace ZcFlow.CLib.Pcap;

/// <summary>
/// libzcflow-pcap.so: the functions of libpcap's capture API, put in front of the system's libpcap with LD_PRELOAD.
/// A name <c>zc:&lt;cluster&gt;@&lt;queue&gt;</c> opens a <see cref="QueueCapture"/>; every other name, every file and
/// every call on a handle that is not one of those goes to the system's libpcap (<see cref="SystemPcap"/>) untouched.
/// No exception crosses into C: each becomes libpcap's error code, with its message where pcap_geterr finds it.
/// </summary>
public static unsafe class PcapExports
{
    private static QueueCapture[] s_captures = [];
    private static readonly Lock s_lock = new();

    // The queue capture behind p, if p is one; a program with none of them pays one read per call.
    private static QueueCapture? Ours(nint p)
    {
        QueueCapture[] all = Volatile.Read(ref s_captures);
        foreach (QueueCapture c in all)
            if (c.Pcap == p) return c;
        return null;
    }

    private static bool IsQueueName(byte* name) => name is not null && name[0] == 'z' && name[1] == 'c' && name[2] == ':';

    private static string Text(byte* s) => Marshal.PtrToStringUTF8((nint)s) ?? "";

    // ---- opening ----

    [UnmanagedCallersOnly(EntryPoint = "pcap_create")]
    private static nint Create(byte* source, byte* errbuf)
    {
        if (!IsQueueName(source)) return SystemPcap.Create(source, errbuf);
        try
        {
            string name = Text(source);
            nint p = OpenHandle(PrecisionMicro, out string? problem);
            if (p == 0)
            {
                WriteError(errbuf, $"{name}: {problem}");
                return 0;
            }
            lock (s_lock) Volatile.Write(ref s_captures, [.. s_captures, new QueueCapture(p, name)]);
            return p;
        }
        catch (Exception e)
        {
            WriteError(errbuf, e.Message);
            return 0;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "pcap_activate")]
    private static int Activate(nint p) => Ours(p) is { } c ? Guard(c, c.Activate) : SystemPcap.Activate(p);

    [UnmanagedCallersOnly(EntryPoint = "pcap_open_live")]
    private static nint OpenLive(byte* device, int snaplen, int promisc, int timeoutMs, byte* errbuf)
    {
        if (!IsQueueName(device)) return SystemPcap.OpenLive(device, snaplen, promisc, timeoutMs, errbuf);
        nint p = ((delegate* unmanaged<byte*, byte*, nint>)&Create)(device, errbuf);
        if (p == 0) return 0;
        QueueCapture c = Ours(p)!;
        c.Snaplen = snaplen is <= 0 or > MaxSnaplen ? MaxSnaplen : snaplen;
        c.TimeoutMs = timeoutMs;
        if (Guard(c, c.Activate) >= 0) return p;
        WriteError(errbuf, Text(SystemPcap.GetErr(p)));
        Forget(c);
        return 0;
    }

    [UnmanagedCallersOnly(EntryPoint = "pcap_close")]
    private static void Close(nint p)
    {
        if (Ours(p) is { } c) Forget(c);
        else SystemPcap.Close(p);
    }

    private static void Forget(QueueCapture c)
    {
        lock (s_lock) Volatile.Write(ref s_captures, s_captures.Where(x => x != c).ToArray());
        try
        {
            c.Dispose();
        }
        catch (Exception)
        {
            // detaching failed half-way (the owner is gone): what is left goes with the mappings
        }
        SystemPcap.Close(c.Pcap);
    }

    // Runs a call on a queue capture, turning what it throws into PCAP_ERROR and its message.
    private static int Guard(QueueCapture c, Func<int> call)
    {
        try
        {
            return call();
        }
        catch (Exception e)
        {
            return c.Fail(PCAP_ERROR, $"{c.Name}: {e.Message}");
        }
    }

    // ---- options, set before pcap_activate ----

    private static int Option(nint p, Func<nint, int, int> system, int value, Func<QueueCapture, int, int> set)
    {
        if (Ours(p) is not { } c) return system(p, value);
        if (c.Activated) return c.Fail(PCAP_ERROR_ACTIVATED, $"{c.Name}: options are set before pcap_activate");
        return set(c, value);
    }

    [UnmanagedCallersOnly(EntryPoint = "pcap_set_snaplen")]
    private static int SetSnaplen(nint p, int v) => Option(p, SystemPcap.SetSnaplen, v, static (c, v) =>
    {
        c.Snaplen = v is <= 0 or > MaxSnaplen ? MaxSnaplen : v;
        return 0;
    });

    [UnmanagedCallersOnly(EntryPoint = "pcap_set_timeout")]
    private static int SetTimeout(nint p, int v) => Option(p, SystemPcap.SetTimeout, v, static (c, v) =>
    {
        c.TimeoutMs = v;
        return 0;
    });

    // A queue hands each packet over as soon as it is there: immediate mode always. Promiscuous mode, a buffer size and
    // monitor mode belong to the cluster's devices, not to its queues: accepted, with nothing to do.
    [UnmanagedCallersOnly(EntryPoint = "pcap_set_immediate_mode")]
    private static int SetImmediateMode(nint p, int v) => Option(p, SystemPcap.SetImmediateMode, v, static (_, _) => 0);

    [UnmanagedCallersOnly(EntryPoint = "pcap_set_promisc")]
    private static int SetPromisc(nint p, int v) => Option(p, SystemPcap.SetPromisc, v, static (_, _) => 0);

    [UnmanagedCallersOnly(EntryPoint = "pcap_set_buffer_size")]
    private static int SetBufferSize(nint p, int v) => Option(p, SystemPcap.SetBufferSize, v, static (_, _) => 0);

    [UnmanagedCallersOnly(EntryPoint = "pcap_set_rfmon")]
    private static int SetRfmon(nint p, int v) => Option(p, SystemPcap.SetRfmon, v, static (_, _) => 0);

    [UnmanagedCallersOnly(EntryPoint = "pcap_can_set_rfmon")]
    private static int CanSetRfmon(nint p) => Ours(p) is not null ? 0 : SystemPcap.CanSetRfmon(p);

    [UnmanagedCallersOnly(EntryPoint = "pcap_set_tstamp_precision")]
    private static int SetTstampPrecision(nint p, int v) => Option(p, SystemPcap.SetTstampPrecision, v, static (c, v) =>
    {
        if (v is not (PrecisionMicro or PrecisionNano)) return c.Fail(-12, $"{c.Name}: time stamps are in microseconds (0) or nanoseconds (1)");
        c.Precision = v;
        return 0;
    });

    // The queue's time stamps are what its cluster's devices took: the host's, in nanoseconds.
    [UnmanagedCallersOnly(EntryPoint = "pcap_set_tstamp_type")]
    private static int SetTstampType(nint p, int v) => Option(p, SystemPcap.SetTstampType, v, static (_, v) => v == 0 ? 0 : PCAP_WARNING_TSTAMP_TYPE_NOTSUP);

    [UnmanagedCallersOnly(EntryPoint = "pcap_get_tstamp_precision")]
    private static int GetTstampPrecision(nint p) => Ours(p) is { } c ? c.Precision : SystemPcap.GetTstampPrecision(p);

    [UnmanagedCallersOnly(EntryPoint = "pcap_list_tstamp_types")]
    private static int ListTstampTypes(nint p, int** types)
    {
        if (Ours(p) is null) return SystemPcap.ListTstampTypes(p, types);
        if (types is not null) *types = null;
        return 0;
    }

    // ---- what the handle carries ----

    [UnmanagedCallersOnly(EntryPoint = "pcap_datalink")]
    private static int Datalink(nint p) => Ours(p) is not null ? DLT_EN10MB : SystemPcap.Datalink(p);

    [UnmanagedCallersOnly(EntryPoint = "pcap_datalink_ext")]
    private static int DatalinkExt(nint p) => Ours(p) is not null ? DLT_EN10MB : SystemPcap.DatalinkExt(p);

    [UnmanagedCallersOnly(EntryPoint = "pcap_list_datalinks")]
    private static int ListDatalinks(nint p, int** links)
    {
        if (Ours(p) is not { } c) return SystemPcap.ListDatalinks(p, links);
        if (links is null) return c.Fail(PCAP_ERROR, $"{c.Name}: pcap_list_datalinks: NULL list");
        *links = (int*)NativeMemory.Alloc(sizeof(int));   // malloc: pcap_free_datalinks frees it
        **links = DLT_EN10MB;
        return 1;
    }

    [UnmanagedCallersOnly(EntryPoint = "pcap_set_datalink")]
    private static int SetDatalink(nint p, int link)
    {
        if (Ours(p) is not { } c) return SystemPcap.SetDatalink(p, link);
        return link == DLT_EN10MB ? 0 : c.Fail(PCAP_ERROR, $"{c.Name}: a queue carries Ethernet frames (DLT_EN10MB) only");
    }

    [UnmanagedCallersOnly(EntryPoint = "pcap_snapshot")]
    private static int Snapshot(nint p) => Ours(p) is { } c ? c.Snaplen : SystemPcap.Snapshot(p);

    [UnmanagedCallersOnly(EntryPoint = "pcap_file")]
    private static nint File(nint p) => Ours(p) is not null ? 0 : SystemPcap.File(p);

    [UnmanagedCallersOnly(EntryPoint = "pcap_fileno")]
    private static int Fileno(nint p) => Ours(p) is { } c ? Guard(c, c.SelectableDescriptor) : SystemPcap.Fileno(p);

    [UnmanagedCallersOnly(EntryPoint = "pcap_get_selectable_fd")]
    private static int GetSelectableFd(nint p) => Ours(p) is { } c ? Guard(c, c.SelectableDescriptor) : SystemPcap.GetSelectableFd(p);

    // The descriptor is readable whenever packets wait: no select needs a time limit for it.
    [UnmanagedCallersOnly(EntryPoint = "pcap_get_required_select_timeout")]
    private static nint GetRequiredSelectTimeout(nint p) => Ours(p) is not null ? 0 : SystemPcap.GetRequiredSelectTimeout(p);

    // ---- receiving ----

    // The receiving calls are made once a packet (pcap_next_ex) or once a burst: written out, with no closure to allocate.

    [UnmanagedCallersOnly(EntryPoint = "pcap_dispatch")]
    private static int Dispatch(nint p, int count, nint callback, nint user) => Deliver(p, count, callback, user, loop: false);

    [UnmanagedCallersOnly(EntryPoint = "pcap_loop")]
    private static int Loop(nint p, int count, nint callback, nint user) => Deliver(p, count, callback, user, loop: true);

    private static int Deliver(nint p, int count, nint callback, nint user, bool loop)
    {
        if (Ours(p) is not { } c) return loop ? SystemPcap.Loop(p, count, callback, user) : SystemPcap.Dispatch(p, count, callback, user);
        var call = (delegate* unmanaged<nint, PacketHeader*, byte*, void>)callback;
        try
        {
            return loop ? c.Loop(count, call, user) : c.Dispatch(count, call, user);
        }
        catch (Exception e)
        {
            return c.Fail(PCAP_ERROR, $"{c.Name}: {e.Message}");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "pcap_next_ex")]
    private static int NextEx(nint p, PacketHeader** header, byte** data)
    {
        if (Ours(p) is not { } c) return SystemPcap.NextEx(p, header, data);
        if (header is null || data is null) return c.Fail(PCAP_ERROR, $"{c.Name}: pcap_next_ex: NULL header or data pointer");
        return Next(c, header, data);
    }

    [UnmanagedCallersOnly(EntryPoint = "pcap_next")]
    private static byte* Next(nint p, PacketHeader* header)
    {
        if (Ours(p) is not { } c) return SystemPcap.Next(p, header);
        PacketHeader* h;
        byte* data;
        if (header is null || Next(c, &h, &data) != 1) return null;
        *header = *h;
        return data;
    }

    // pcap_next_ex's work, and pcap_next's: a call once a packet, written out, with no closure to allocate.
    private static int Next(QueueCapture c, PacketHeader** header, byte** data)
    {
        try
        {
            return c.NextEx(header, data);
        }
        catch (Exception e)
        {
            return c.Fail(PCAP_ERROR, $"{c.Name}: {e.Message}");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "pcap_setnonblock")]
    private static int SetNonBlock(nint p, int value, byte* errbuf) => Ours(p) is { } c ? c.SetNonBlocking(value != 0) : SystemPcap.SetNonBlock(p, value, errbuf);

    [UnmanagedCallersOnly(EntryPoint = "pcap_getnonblock")]
    private static int GetNonBlock(nint p, byte* errbuf) => Ours(p) is { } c ? (c.NonBlocking ? 1 : 0) : SystemPcap.GetNonBlock(p, errbuf);

    [UnmanagedCallersOnly(EntryPoint = "pcap_setfilter")]
    private static int SetFilter(nint p, BpfProgram* program) => Ours(p) is { } c ? Guard(c, () => c.SetFilter(program)) : SystemPcap.SetFilter(p, program);

    [UnmanagedCallersOnly(EntryPoint = "pcap_setdirection")]
    private static int SetDirection(nint p, int direction) => Ours(p) is { } c ? c.SetDirection(direction) : SystemPcap.SetDirection(p, direction);

    [UnmanagedCallersOnly(EntryPoint = "pcap_stats")]
    private static int Stats(nint p, PcapStat* stats) => Ours(p) is { } c ? Guard(c, () => c.Stats(stats)) : SystemPcap.Stats(p, stats);

    // ---- sending ----

    [UnmanagedCallersOnly(EntryPoint = "pcap_inject")]
    private static int Inject(nint p, byte* data, nuint size)
        => Ours(p) is { } c ? Guard(c, () => size > int.MaxValue ? c.Fail(PCAP_ERROR, $"{c.Name}: pcap_inject: {size} bytes is no packet") : c.Inject(data, (int)size)) : SystemPcap.Inject(p, data, size);

    [UnmanagedCallersOnly(EntryPoint = "pcap_sendpacket")]
    private static int SendPacket(nint p, byte* data, int size)
        => Ours(p) is { } c ? (Guard(c, () => c.Inject(data, size)) < 0 ? PCAP_ERROR : 0) : SystemPcap.SendPacket(p, data, size);

    // ---- writing what is captured: libpcap's own writer, given the link type, length and precision of the queue's capture ----

    private static nint Dump(QueueCapture c, Func<nint, nint> open)
    {
        nint dead = SystemPcap.OpenDead(DLT_EN10MB, c.Snaplen, (uint)c.Precision);
        if (dead == 0)
        {
            c.Fail(PCAP_ERROR, $"{c.Name}: out of memory");
            return 0;
        }
        nint dumper = open(dead);
        if (dumper == 0) c.Fail(PCAP_ERROR, Text(SystemPcap.GetErr(dead)));
        SystemPcap.Close(dead);
        return dumper;
    }

    [UnmanagedCallersOnly(EntryPoint = "pcap_dump_open")]
    private static nint DumpOpen(nint p, byte* file) => Ours(p) is { } c ? Dump(c, d => SystemPcap.DumpOpen(d, file)) : SystemPcap.DumpOpen(p, file);

    [UnmanagedCallersOnly(EntryPoint = "pcap_dump_open_append")]
    private static nint DumpOpenAppend(nint p, byte* file) => Ours(p) is { } c ? Dump(c, d => SystemPcap.DumpOpenAppend(d, file)) : SystemPcap.DumpOpenAppend(p, file);

    [UnmanagedCallersOnly(EntryPoint = "pcap_dump_fopen")]
    private static nint DumpFOpen(nint p, nint file) => Ours(p) is { } c ? Dump(c, d => SystemPcap.DumpFOpen(d, file)) : SystemPcap.DumpFOpen(p, file);

    // ---- devices ----

    private const uint PCAP_IF_UP = 0x2, PCAP_IF_RUNNING = 0x4, PCAP_IF_CONNECTION_STATUS_NOT_APPLICABLE = 0x30;

    /// <summary>The system's devices, then every queue of every cluster this user can reach, each with a description.</summary>
    [UnmanagedCallersOnly(EntryPoint = "pcap_findalldevs")]
    private static int FindAllDevs(PcapIf** devices, byte* errbuf)
    {
        int status = SystemPcap.FindAllDevs(devices, errbuf);
        if (status != 0 || devices is null) return status;
        try
        {
            PcapIf** tail = devices;
            while (*tail is not null) tail = &(*tail)->Next;
            foreach (ClusterInfo cluster in ClusterDirectory.List())
            {
                if (!cluster.Live) continue;
                foreach (QueueInfo q in cluster.Queues.Where(q => !q.Internal))   // between two stages: nobody may read them
                {
                    string use = q.Role == QueueRole.Ingress ? "ingress: programs send into it (pcap_inject)"
                        : q.ConsumerPid != 0 ? $"read by process {q.ConsumerPid}" : "free";
                    var entry = (PcapIf*)NativeMemory.AllocZeroed((nuint)sizeof(PcapIf));   // calloc: pcap_freealldevs frees it
                    entry->Name = Duplicate($"zc:{cluster.Id}@{q.Id}");
                    entry->Description = Duplicate($"ZcFlow cluster {cluster.Id} (owner pid {cluster.OwnerPid}), queue {q.Id}: {use}");
                    entry->Flags = PCAP_IF_UP | PCAP_IF_RUNNING | PCAP_IF_CONNECTION_STATUS_NOT_APPLICABLE;
                    *tail = entry;
                    tail = &entry->Next;
                }
            }
        }
        catch (Exception)
        {
            // the clusters could not be listed (no /dev/shm for this user): the system's devices are still the answer
        }
        return 0;
    }

    private static byte* Duplicate(string s)
    {
        int n = Encoding.UTF8.GetByteCount(s);
        byte* copy = (byte*)NativeMemory.Alloc((nuint)n + 1);
        Encoding.UTF8.GetBytes(s, new Span<byte>(copy, n));
        copy[n] = 0;
        return copy;
    }

    /// <summary>A queue has no network or mask: 0 for both, as for an interface without IPv4, but no error.</summary>
    [UnmanagedCallersOnly(EntryPoint = "pcap_lookupnet")]
    private static int LookupNet(byte* device, uint* net, uint* mask, byte* errbuf)
    {
        if (!IsQueueName(device)) return SystemPcap.LookupNet(device, net, mask, errbuf);
        if (net is not null) *net = 0;
        if (mask is not null) *mask = 0;
        return 0;
    }
}
