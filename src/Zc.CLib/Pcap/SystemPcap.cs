using System.Runtime.InteropServices;
using ZcFlow.Native;

namespace ZcFlow.CLib.Pcap;

/// <summary>
/// The system's libpcap, which every call on a name, a file or a handle that is not a ZcFlow queue's goes to. Bound by
/// dlopen of libpcap.so.0.8 and dlsym on that handle, which finds libpcap's own definitions, never the ones this library
/// puts in front of them with LD_PRELOAD. The drop-in's forwarding table, not a binding for other code: the one
/// call ZcFlow's own code makes to libpcap (compiling filters) is in Zc.Native.
/// </summary>
internal static unsafe partial class SystemPcap
{
    private const string Lib = "libpcap.so.0.8";

    [LibraryImport(Lib, EntryPoint = "pcap_create")] public static partial nint Create(byte* source, byte* errbuf);
    [LibraryImport(Lib, EntryPoint = "pcap_activate")] public static partial int Activate(nint p);
    [LibraryImport(Lib, EntryPoint = "pcap_open_live")] public static partial nint OpenLive(byte* device, int snaplen, int promisc, int timeoutMs, byte* errbuf);
    [LibraryImport(Lib, EntryPoint = "pcap_fopen_offline_with_tstamp_precision")] public static partial nint FOpenOffline(nint file, uint precision, byte* errbuf);
    [LibraryImport(Lib, EntryPoint = "pcap_open_dead_with_tstamp_precision")] public static partial nint OpenDead(int linkType, int snaplen, uint precision);
    [LibraryImport(Lib, EntryPoint = "pcap_close")] public static partial void Close(nint p);
    [LibraryImport(Lib, EntryPoint = "pcap_breakloop")] public static partial void BreakLoop(nint p);
    [LibraryImport(Lib, EntryPoint = "pcap_geterr")] public static partial byte* GetErr(nint p);

    [LibraryImport(Lib, EntryPoint = "pcap_set_snaplen")] public static partial int SetSnaplen(nint p, int value);
    [LibraryImport(Lib, EntryPoint = "pcap_set_promisc")] public static partial int SetPromisc(nint p, int value);
    [LibraryImport(Lib, EntryPoint = "pcap_set_timeout")] public static partial int SetTimeout(nint p, int value);
    [LibraryImport(Lib, EntryPoint = "pcap_set_immediate_mode")] public static partial int SetImmediateMode(nint p, int value);
    [LibraryImport(Lib, EntryPoint = "pcap_set_buffer_size")] public static partial int SetBufferSize(nint p, int value);
    [LibraryImport(Lib, EntryPoint = "pcap_set_rfmon")] public static partial int SetRfmon(nint p, int value);
    [LibraryImport(Lib, EntryPoint = "pcap_can_set_rfmon")] public static partial int CanSetRfmon(nint p);
    [LibraryImport(Lib, EntryPoint = "pcap_set_tstamp_precision")] public static partial int SetTstampPrecision(nint p, int value);
    [LibraryImport(Lib, EntryPoint = "pcap_set_tstamp_type")] public static partial int SetTstampType(nint p, int value);
    [LibraryImport(Lib, EntryPoint = "pcap_get_tstamp_precision")] public static partial int GetTstampPrecision(nint p);
    [LibraryImport(Lib, EntryPoint = "pcap_list_tstamp_types")] public static partial int ListTstampTypes(nint p, int** types);

    [LibraryImport(Lib, EntryPoint = "pcap_datalink")] public static partial int Datalink(nint p);
    [LibraryImport(Lib, EntryPoint = "pcap_datalink_ext")] public static partial int DatalinkExt(nint p);
    [LibraryImport(Lib, EntryPoint = "pcap_list_datalinks")] public static partial int ListDatalinks(nint p, int** links);
    [LibraryImport(Lib, EntryPoint = "pcap_set_datalink")] public static partial int SetDatalink(nint p, int link);
    [LibraryImport(Lib, EntryPoint = "pcap_snapshot")] public static partial int Snapshot(nint p);
    [LibraryImport(Lib, EntryPoint = "pcap_file")] public static partial nint File(nint p);
    [LibraryImport(Lib, EntryPoint = "pcap_fileno")] public static partial int Fileno(nint p);
    [LibraryImport(Lib, EntryPoint = "pcap_get_selectable_fd")] public static partial int GetSelectableFd(nint p);
    [LibraryImport(Lib, EntryPoint = "pcap_get_required_select_timeout")] public static partial nint GetRequiredSelectTimeout(nint p);

    [LibraryImport(Lib, EntryPoint = "pcap_next")] public static partial byte* Next(nint p, PacketHeader* header);
    [LibraryImport(Lib, EntryPoint = "pcap_next_ex")] public static partial int NextEx(nint p, PacketHeader** header, byte** data);
    [LibraryImport(Lib, EntryPoint = "pcap_dispatch")] public static partial int Dispatch(nint p, int count, nint callback, nint user);
    [LibraryImport(Lib, EntryPoint = "pcap_loop")] public static partial int Loop(nint p, int count, nint callback, nint user);
    [LibraryImport(Lib, EntryPoint = "pcap_setnonblock")] public static partial int SetNonBlock(nint p, int value, byte* errbuf);
    [LibraryImport(Lib, EntryPoint = "pcap_getnonblock")] public static partial int GetNonBlock(nint p, byte* errbuf);
    [LibraryImport(Lib, EntryPoint = "pcap_setfilter")] public static partial int SetFilter(nint p, BpfProgram* program);
    [LibraryImport(Lib, EntryPoint = "pcap_setdirection")] public static partial int SetDirection(nint p, int direction);
    [LibraryImport(Lib, EntryPoint = "pcap_stats")] public static partial int Stats(nint p, PcapStat* stats);
    [LibraryImport(Lib, EntryPoint = "pcap_inject")] public static partial int Inject(nint p, byte* data, nuint size);
    [LibraryImport(Lib, EntryPoint = "pcap_sendpacket")] public static partial int SendPacket(nint p, byte* data, int size);

    [LibraryImport(Lib, EntryPoint = "pcap_dump_open")] public static partial nint DumpOpen(nint p, byte* file);
    [LibraryImport(Lib, EntryPoint = "pcap_dump_open_append")] public static partial nint DumpOpenAppend(nint p, byte* file);
    [LibraryImport(Lib, EntryPoint = "pcap_dump_fopen")] public static partial nint DumpFOpen(nint p, nint file);

    [LibraryImport(Lib, EntryPoint = "pcap_findalldevs")] public static partial int FindAllDevs(PcapIf** devices, byte* errbuf);
    [LibraryImport(Lib, EntryPoint = "pcap_lookupnet")] public static partial int LookupNet(byte* device, uint* net, uint* mask, byte* errbuf);

    // libc, for the handle a queue's capture stands behind
    [LibraryImport("libc", EntryPoint = "fmemopen")] public static partial nint FMemOpen(void* buffer, nuint size, byte* mode);
    [LibraryImport("libc", EntryPoint = "malloc_usable_size")] public static partial nuint MallocUsableSize(nint pointer);
}

/// <summary>struct pcap_pkthdr on 64-bit Linux: a struct timeval, then caplen and len.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct PacketHeader
{
    public long Seconds;
    public long Fraction;      // microseconds, or nanoseconds on a handle of nanosecond precision
    public uint CapturedLength;
    public uint WireLength;
}

/// <summary>struct pcap_stat.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct PcapStat
{
    public uint Received;
    public uint Dropped;
    public uint InterfaceDropped;
}

/// <summary>struct pcap_if: one entry of pcap_findalldevs' list.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct PcapIf
{
    public PcapIf* Next;
    public byte* Name;
    public byte* Description;
    public nint Addresses;
    public uint Flags;
}
