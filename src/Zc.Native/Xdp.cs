using System.Runtime.InteropServices;

namespace ZcFlow.Native;

/// <summary>
/// libxdp's AF_XDP calls: a UMEM over memory we own, a socket bound to one queue of an
/// interface with libxdp's default XDP program loaded (and removed with the last socket), and
/// the detaching of a program a crashed process left behind. The rings themselves are read
/// and written in C# (<see cref="XskRing"/>), as libxdp's header-only inline functions do in C.
/// </summary>
internal static unsafe partial class Xdp
{
    private const string Lib = "libxdp.so.1";

    public const uint XDP_FLAGS_SKB_MODE = 1 << 1;
    public const uint XDP_FLAGS_DRV_MODE = 1 << 2;
    public const ushort XDP_COPY = 1 << 1;
    public const ushort XDP_ZEROCOPY = 1 << 2;
    public const ushort XDP_USE_NEED_WAKEUP = 1 << 3;
    public const uint XDP_UMEM_UNALIGNED_CHUNK_FLAG = 1 << 0;
    public const uint XDP_RING_NEED_WAKEUP = 1 << 0;
    public const int SOL_XDP = 283;
    public const int XDP_STATISTICS = 7;
    public const int XDP_OPTIONS = 8;
    public const uint XDP_OPTIONS_ZEROCOPY = 1 << 0;
    public const int XSK_UNALIGNED_BUF_OFFSET_SHIFT = 48;
    public const uint XDP_MODE_UNSPEC = 0;

    [LibraryImport(Lib, EntryPoint = "xsk_umem__create")]
    public static partial int UmemCreate(out nint umem, void* area, ulong size, XskRing* fill, XskRing* completion, in XskUmemConfig config);

    [LibraryImport(Lib, EntryPoint = "xsk_umem__delete")]
    public static partial int UmemDelete(nint umem);

    [LibraryImport(Lib, EntryPoint = "xsk_socket__create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SocketCreate(out nint socket, string ifName, uint queue, nint umem, XskRing* rx, XskRing* tx, in XskSocketConfig config);

    [LibraryImport(Lib, EntryPoint = "xsk_socket__delete")]
    public static partial void SocketDelete(nint socket);

    public const uint XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD = 1 << 0;
    public const uint XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0;

    [LibraryImport(Lib, EntryPoint = "xsk_socket__update_xskmap")]
    public static partial int SocketUpdateXskMap(nint socket, int mapFd);

    [LibraryImport(Lib, EntryPoint = "xsk_socket__fd")]
    public static partial int SocketFd(nint socket);

    [LibraryImport(Lib, EntryPoint = "xdp_multiprog__get_from_ifindex")]
    public static partial nint MultiprogFromIfIndex(int ifIndex);

    [LibraryImport(Lib, EntryPoint = "xdp_multiprog__detach")]
    public static partial int MultiprogDetach(nint multiprog);

    [LibraryImport(Lib, EntryPoint = "xdp_multiprog__close")]
    public static partial void MultiprogClose(nint multiprog);

    /// <summary>True for a null pointer or one of libxdp's error pointers (-errno in the last 4095 values).</summary>
    public static bool IsError(nint pointer) => pointer == 0 || (nuint)pointer >= unchecked((nuint)(-4095));
}

/* xsk.h: struct xsk_umem_config */
[StructLayout(LayoutKind.Sequential)]
internal struct XskUmemConfig
{
    public uint FillSize;
    public uint CompletionSize;
    public uint FrameSize;
    public uint FrameHeadroom;
    public uint Flags;
}

/* xsk.h: struct xsk_socket_config */
[StructLayout(LayoutKind.Sequential)]
internal struct XskSocketConfig
{
    public uint RxSize;
    public uint TxSize;
    public uint LibxdpFlags;
    public uint XdpFlags;
    public ushort BindFlags;
}

/* xsk.h: struct xsk_ring_prod and xsk_ring_cons (the same fields) */
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct XskRing
{
    public uint CachedProducer;
    public uint CachedConsumer;
    public uint Mask;
    public uint Size;
    public uint* Producer;
    public uint* Consumer;
    public void* Ring;
    public uint* Flags;
}

/* if_xdp.h: struct xdp_desc */
[StructLayout(LayoutKind.Sequential)]
internal struct XdpDesc
{
    public ulong Address;
    public uint Length;
    public uint Options;
}

/* if_xdp.h: struct xdp_statistics */
[StructLayout(LayoutKind.Sequential)]
internal struct XdpStatistics
{
    public ulong RxDropped;
    public ulong RxInvalidDescs;
    public ulong TxInvalidDescs;
    public ulong RxRingFull;
    public ulong RxFillRingEmptyDescs;
    public ulong TxRingEmptyDescs;
}
