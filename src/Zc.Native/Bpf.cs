using System.Runtime.InteropServices;

namespace ZcFlow.Native;

/// <summary>
/// libbpf's calls on raw eBPF instructions and maps (bpf.h, libbpf.h): no object file, no compiler. Each returns a file
/// descriptor or 0, or a negative errno.
/// </summary>
internal static unsafe partial class Bpf
{
    private const string Lib = "libbpf.so.1";

    public const int BPF_PROG_TYPE_SOCKET_FILTER = 1, BPF_PROG_TYPE_XDP = 6;
    public const int BPF_MAP_TYPE_HASH = 1, BPF_MAP_TYPE_ARRAY = 2, BPF_MAP_TYPE_PERCPU_ARRAY = 6, BPF_MAP_TYPE_DEVMAP = 14, BPF_MAP_TYPE_XSKMAP = 17;
    public const ulong BPF_ANY = 0;
    public const uint XDP_ABORTED = 0, XDP_DROP = 1, XDP_PASS = 2, XDP_TX = 3, XDP_REDIRECT = 4;

    [LibraryImport(Lib, EntryPoint = "bpf_map_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int MapCreate(int type, string name, uint keySize, uint valueSize, uint maxEntries, void* options);

    [LibraryImport(Lib, EntryPoint = "bpf_map_update_elem")]
    public static partial int MapUpdate(int fd, void* key, void* value, ulong flags);

    [LibraryImport(Lib, EntryPoint = "bpf_map_lookup_elem")]
    public static partial int MapLookup(int fd, void* key, void* value);

    [LibraryImport(Lib, EntryPoint = "bpf_map_delete_elem")]
    public static partial int MapDelete(int fd, void* key);

    [LibraryImport(Lib, EntryPoint = "bpf_prog_load", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int ProgramLoad(int type, string name, string license, EbpfInstruction* instructions, nuint count, BpfProgramLoadOptions* options);

    [LibraryImport(Lib, EntryPoint = "bpf_prog_test_run_opts")]
    public static partial int TestRun(int fd, BpfTestRunOptions* options);

    public const int BPF_XDP = 37;

    [LibraryImport(Lib, EntryPoint = "bpf_link_create")]
    public static partial int LinkCreate(int programFd, int target, int attachType, BpfLinkCreateOptions* options);

    [LibraryImport(Lib, EntryPoint = "bpf_xdp_attach")]
    public static partial int XdpAttach(int ifIndex, int fd, uint flags, void* options);

    [LibraryImport(Lib, EntryPoint = "bpf_xdp_detach")]
    public static partial int XdpDetach(int ifIndex, uint flags, void* options);
}

/* linux/bpf.h: struct bpf_insn (8 bytes): opcode, destination and source registers in one byte, offset, immediate */
[StructLayout(LayoutKind.Sequential)]
internal struct EbpfInstruction
{
    public byte Code;
    public byte Registers;   // dst in the low nibble, src in the high
    public short Offset;
    public int Immediate;
}

/* bpf.h: struct bpf_prog_load_opts (libbpf 1.x) */
[StructLayout(LayoutKind.Explicit, Size = 104)]
internal unsafe struct BpfProgramLoadOptions
{
    [FieldOffset(0)] public nuint Size;
    [FieldOffset(88)] public uint LogLevel;
    [FieldOffset(92)] public uint LogSize;
    [FieldOffset(96)] public byte* LogBuffer;
}

/* bpf.h: struct bpf_link_create_opts (for XDP: the mode flags) */
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct BpfLinkCreateOptions
{
    [FieldOffset(0)] public nuint Size;
    [FieldOffset(8)] public uint Flags;
}

/* bpf.h: struct bpf_test_run_opts */
[StructLayout(LayoutKind.Explicit, Size = 80)]
internal unsafe struct BpfTestRunOptions
{
    [FieldOffset(0)] public nuint Size;
    [FieldOffset(8)] public void* DataIn;
    [FieldOffset(16)] public void* DataOut;
    [FieldOffset(24)] public uint DataSizeIn;
    [FieldOffset(28)] public uint DataSizeOut;
    [FieldOffset(56)] public uint ReturnValue;
    [FieldOffset(60)] public int Repeat;
    [FieldOffset(64)] public uint Duration;
}
