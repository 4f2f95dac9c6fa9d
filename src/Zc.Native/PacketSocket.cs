using System.Runtime.InteropServices;

namespace ZcFlow.Native;

/// <summary>
/// The socket calls of AF_PACKET and AF_XDP (linux/if_packet.h, linux/filter.h, poll.h),
/// and <c>setns</c> for tests that work inside a network namespace of their own.
/// </summary>
internal static unsafe partial class Libc
{
    public const int AF_PACKET = 17;
    public const int AF_XDP = 44;
    public const int SOCK_RAW = 3;
    public const int SOCK_CLOEXEC = 0x80000;
    public const ushort ETH_P_ALL = 0x0003;

    public const int SOL_SOCKET = 1;
    public const int SO_ATTACH_FILTER = 26;
    public const int SO_DETACH_FILTER = 27;
    public const int SO_ATTACH_BPF = 50;
    public const int SO_LOCK_FILTER = 44;

    public const int SOL_PACKET = 263;
    public const int PACKET_ADD_MEMBERSHIP = 1;
    public const int PACKET_RX_RING = 5;
    public const int PACKET_STATISTICS = 6;
    public const int PACKET_VERSION = 10;
    public const int PACKET_RESERVE = 12;
    public const int PACKET_TX_RING = 13;
    public const int PACKET_QDISC_BYPASS = 20;
    public const int PACKET_IGNORE_OUTGOING = 23;
    public const int PACKET_FANOUT = 18;
    public const int PACKET_FANOUT_HASH = 0, PACKET_FANOUT_LB = 1, PACKET_FANOUT_CPU = 2, PACKET_FANOUT_ROLLOVER = 3, PACKET_FANOUT_RND = 4, PACKET_FANOUT_QM = 5;
    public const int PACKET_FANOUT_FLAG_UNIQUEID = 0x2000, PACKET_FANOUT_FLAG_DEFRAG = 0x8000;
    public const int ENOSPC = 28;
    public const ushort PACKET_MR_PROMISC = 1;
    public const int TPACKET_V3 = 2;
    public const byte PACKET_OUTGOING = 4;

    public const uint TP_STATUS_KERNEL = 0;
    public const uint TP_STATUS_USER = 1;
    public const uint TP_STATUS_COPY = 1 << 1;
    public const uint TP_STATUS_LOSING = 1 << 2;
    public const uint TP_STATUS_VLAN_VALID = 1 << 4;
    public const uint TP_STATUS_VLAN_TPID_VALID = 1 << 6;
    public const uint TP_STATUS_AVAILABLE = 0;
    public const uint TP_STATUS_SEND_REQUEST = 1;
    public const uint TP_STATUS_SENDING = 2;
    public const uint TP_STATUS_WRONG_FORMAT = 4;

    public const int MSG_DONTWAIT = 0x40;
    public const short POLLIN = 0x1;
    public const short POLLOUT = 0x4;
    public const int CLONE_NEWNET = 0x40000000;
    public const int ENOBUFS = 105;
    public const int ENETDOWN = 100;
    public const int ENXIO = 6;
    public const int EOPNOTSUPP = 95;
    public const int EBUSY = 16;

    [LibraryImport(Lib, EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Lib, EntryPoint = "bind", SetLastError = true)]
    public static partial int Bind(int fd, void* address, int length);

    [LibraryImport(Lib, EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSockOpt(int fd, int level, int name, void* value, int length);

    [LibraryImport(Lib, EntryPoint = "getsockopt", SetLastError = true)]
    public static partial int GetSockOpt(int fd, int level, int name, void* value, ref int length);

    [LibraryImport(Lib, EntryPoint = "sendto", SetLastError = true)]
    public static partial nint SendTo(int fd, void* buffer, nuint length, int flags, void* address, int addressLength);

    [LibraryImport(Lib, EntryPoint = "recvfrom", SetLastError = true)]
    public static partial nint RecvFrom(int fd, void* buffer, nuint length, int flags, void* address, int* addressLength);

    [LibraryImport(Lib, EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport(Lib, EntryPoint = "if_nametoindex", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial uint IfNameToIndex(string name);

    public const nuint SIOCETHTOOL = 0x8946;
    public const nuint SIOCGIFFLAGS = 0x8913, SIOCSIFFLAGS = 0x8914;
    public const short IFF_UP = 0x1;

    // linux/if_tun.h
    public const nuint TUNSETIFF = 0x400454ca;
    public const short IFF_TAP = 0x0002, IFF_NO_PI = 0x1000;
    public const uint ETHTOOL_GCHANNELS = 0x3c;

    [LibraryImport(Lib, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, void* argument);

    [LibraryImport(Lib, EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNs(int fd, int type);

    /// <summary>Sets an integer socket option, throwing with <paramref name="what"/> on failure.</summary>
    public static void SetSockOpt(int fd, int level, int name, int value, string what)
    {
        if (SetSockOpt(fd, level, name, &value, sizeof(int)) != 0) throw ErrnoException.FromLastError(what);
    }
}

/* linux/if_packet.h: struct sockaddr_ll (20 bytes) */
[StructLayout(LayoutKind.Sequential)]
internal struct SockAddrLl
{
    public ushort Family;
    public ushort Protocol;      // network byte order
    public int IfIndex;
    public ushort HaType;
    public byte PktType;
    public byte HaLen;
    public ulong Address;
}

/* linux/if_packet.h: struct tpacket_req3 */
[StructLayout(LayoutKind.Sequential)]
internal struct TpacketReq3
{
    public uint BlockSize;
    public uint BlockCount;
    public uint FrameSize;
    public uint FrameCount;
    public uint RetireBlockTimeoutMs;
    public uint SizeofPriv;
    public uint FeatureReqWord;
}

/* linux/if_packet.h: struct tpacket_block_desc with its tpacket_hdr_v1, the fields a reader needs */
[StructLayout(LayoutKind.Explicit, Size = 48)]
internal struct TpacketBlockDesc
{
    [FieldOffset(0)] public uint Version;
    [FieldOffset(4)] public uint OffsetToPriv;
    [FieldOffset(8)] public uint BlockStatus;
    [FieldOffset(12)] public uint PacketCount;
    [FieldOffset(16)] public uint OffsetToFirstPacket;
    [FieldOffset(20)] public uint BlockLength;
    [FieldOffset(24)] public ulong SequenceNumber;
}

/* linux/if_packet.h: struct tpacket3_hdr (48 bytes) */
[StructLayout(LayoutKind.Explicit, Size = 48)]
internal struct Tpacket3Hdr
{
    [FieldOffset(0)] public uint NextOffset;
    [FieldOffset(4)] public uint Seconds;
    [FieldOffset(8)] public uint Nanoseconds;
    [FieldOffset(12)] public uint SnapLength;
    [FieldOffset(16)] public uint Length;
    [FieldOffset(20)] public uint Status;
    [FieldOffset(24)] public ushort MacOffset;
    [FieldOffset(26)] public ushort NetOffset;
    [FieldOffset(28)] public uint RxHash;
    [FieldOffset(32)] public uint VlanTci;
    [FieldOffset(36)] public ushort VlanTpid;
}

/* linux/if_packet.h: struct tpacket_stats_v3 */
[StructLayout(LayoutKind.Sequential)]
internal struct TpacketStatsV3
{
    public uint Packets;
    public uint Drops;
    public uint FreezeQueueCount;
}

/* linux/if_packet.h: struct packet_mreq */
[StructLayout(LayoutKind.Sequential)]
internal struct PacketMreq
{
    public int IfIndex;
    public ushort Type;
    public ushort AddressLength;
    public ulong Address;
}

/* net/if.h: struct ifreq (40 bytes): the name, then a union of which ZcFlow uses the pointer (ifr_data) and the flags (ifr_flags) */
[StructLayout(LayoutKind.Explicit, Size = 40)]
internal unsafe struct IfReq
{
    [FieldOffset(0)] public fixed byte Name[16];
    [FieldOffset(16)] public void* Data;
    [FieldOffset(16)] public short Flags;

    public void SetName(string name)
    {
        for (int i = 0; i < 15 && i < name.Length; i++) Name[i] = (byte)name[i];
    }
}

/* linux/ethtool.h: struct ethtool_channels */
[StructLayout(LayoutKind.Sequential)]
internal struct EthtoolChannels
{
    public uint Command;
    public uint MaxRx, MaxTx, MaxOther, MaxCombined;
    public uint Rx, Tx, Other, Combined;
}

/* linux/filter.h: struct sock_filter, the same as libpcap's struct bpf_insn */
[StructLayout(LayoutKind.Sequential)]
internal struct BpfInstruction
{
    public ushort Code;
    public byte JumpTrue;
    public byte JumpFalse;
    public uint K;
}

/* linux/filter.h: struct sock_fprog, the same as libpcap's struct bpf_program */
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct BpfProgram
{
    public uint Length;
    public BpfInstruction* Instructions;
}

/* poll.h: struct pollfd */
[StructLayout(LayoutKind.Sequential)]
internal struct PollFd
{
    public int Fd;
    public short Events;
    public short Revents;
}
