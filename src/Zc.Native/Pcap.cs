using System.Runtime.InteropServices;

namespace ZcFlow.Native;

/// <summary>
/// The part of libpcap ZcFlow uses: compiling tcpdump filter expressions to classic BPF, and
/// running such a program over a packet in user space. No capture goes through libpcap.
/// </summary>
internal static unsafe partial class Pcap
{
    private const string Lib = "libpcap.so.0.8";

    public const int DLT_EN10MB = 1;
    public const uint PCAP_NETMASK_UNKNOWN = 0xffffffff;

    [LibraryImport(Lib, EntryPoint = "pcap_open_dead")]
    public static partial nint OpenDead(int linkType, int snapLength);

    [LibraryImport(Lib, EntryPoint = "pcap_close")]
    public static partial void Close(nint pcap);

    [LibraryImport(Lib, EntryPoint = "pcap_compile", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Compile(nint pcap, BpfProgram* program, string expression, int optimize, uint netmask);

    [LibraryImport(Lib, EntryPoint = "pcap_freecode")]
    public static partial void FreeCode(BpfProgram* program);

    [LibraryImport(Lib, EntryPoint = "pcap_geterr")]
    public static partial nint GetError(nint pcap);

    /// <summary>Runs <paramref name="program"/> over a packet: 0 rejects, anything else accepts that many bytes.</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_filter")]
    [SuppressGCTransition]
    public static partial uint Filter(BpfInstruction* program, byte* packet, uint wireLength, uint capturedLength);
}
