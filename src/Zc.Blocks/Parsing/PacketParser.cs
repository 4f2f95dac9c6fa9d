using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

using ZcFlow.Buffers;

namespace ZcFlow.Parsing;

/// <summary>
/// Reads a frame's headers in place: Ethernet, 802.1Q/802.1ad tags, MPLS, IPv4 (options,
/// fragments), IPv6 (extension headers), TCP, UDP, SCTP, ICMP/ICMPv6, and one level of GTP-U,
/// GTP-C, GRE (IPv4, IPv6 or Ethernet inside) and VXLAN. Every byte is bounds-checked before it
/// is read; a short or malformed frame parses as far as it is valid and says where it stopped
/// (<see cref="PacketInfo.Stop"/>). Never throws, never allocates.
/// </summary>
public static class PacketParser
{
    private const int MaxVlanTags = 8;
    private const int MaxMplsLabels = 16;
    private const int MaxIpv6Extensions = 8;
    private const int MaxGtpExtensions = 8;

    private const ushort EtherIpv4 = 0x0800, EtherIpv6 = 0x86DD, EtherVlan = 0x8100, EtherQinQ = 0x88A8, EtherQinQOld = 0x9100;
    private const ushort EtherMpls = 0x8847, EtherMplsMulticast = 0x8848, EtherTransparentBridging = 0x6558;
    private const byte ProtoIcmp = 1, ProtoTcp = 6, ProtoUdp = 17, ProtoGre = 47, ProtoIcmpv6 = 58, ProtoSctp = 132;
    private const ushort PortGtpC = 2123, PortGtpU = 2152, PortVxlan = 4789;

    /// <summary>Parses <paramref name="frame"/>, which starts with a header of type <paramref name="link"/>.</summary>
    public static void Parse(ReadOnlySpan<byte> frame, out PacketInfo info, LinkType link = LinkType.Ethernet)
    {
        info = default;
        if (link == LinkType.Ethernet && PlainTcpOrUdp(frame, ref info)) return;
        Layers(frame, ref info, link);
    }

    /// <summary>Parses a packet, which starts with the header its device said (<see cref="PacketHandle.LinkType"/>: Ethernet unless it said otherwise).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Parse(in PacketHandle packet, out PacketInfo info) => Parse(packet.Data, out info, (LinkType)packet.LinkType);

    /// <summary>Parses as <see cref="Parse(ReadOnlySpan{byte}, out PacketInfo, LinkType)"/> does, every frame the general way (what the fast path is checked against).</summary>
    internal static void ParseLayers(ReadOnlySpan<byte> frame, out PacketInfo info, LinkType link)
    {
        info = default;
        Layers(frame, ref info, link);
    }

    private static void Layers(ReadOnlySpan<byte> frame, ref PacketInfo info, LinkType link)
    {
        int off = 0;
        ushort type;
        switch (link)
        {
            case LinkType.Ethernet:
                if (!Ethernet(frame, ref info, ref off, out type, inner: false)) return;
                break;
            case LinkType.Raw:
                if (frame.Length < 1) { Stop(ref info, ParseStop.Truncated, 0); return; }
                type = TypeFromVersion(frame[0]);
                break;
            case LinkType.Null or LinkType.Loop:
                if (frame.Length < 4) { Stop(ref info, ParseStop.Truncated, 0); return; }
                // The address family, in the capturing host's byte order for Null, big-endian for Loop.
                uint family = link == LinkType.Loop ? BinaryPrimitives.ReadUInt32BigEndian(frame) : Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(frame), BinaryPrimitives.ReadUInt32BigEndian(frame));
                type = family switch { 2 => EtherIpv4, 10 or 24 or 28 or 30 => EtherIpv6, _ => 0 };
                off = 4;
                break;
            case LinkType.LinuxSll:
                if (frame.Length < 16) { Stop(ref info, ParseStop.Truncated, 0); return; }
                type = BinaryPrimitives.ReadUInt16BigEndian(frame[14..]);
                off = 16;
                break;
            case LinkType.LinuxSll2:
                if (frame.Length < 20) { Stop(ref info, ParseStop.Truncated, 0); return; }
                type = BinaryPrimitives.ReadUInt16BigEndian(frame);
                off = 20;
                break;
            default:
                Stop(ref info, ParseStop.Unsupported, 0);
                return;
        }
        info.EtherType = type;
        Network(frame, ref info, off, type, inner: false);
    }

    /// <summary>
    /// The frame most links carry most of, read at once: Ethernet without tags, IPv4 without options, not a
    /// fragment, whole TCP or UDP that is not a tunnel's port. Fills exactly what the general path would for it
    /// (a test compares the two on the corpus); false, having read nothing into <paramref name="info"/>, for
    /// anything else. Its length is checked once, for every byte it reads.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool PlainTcpOrUdp(ReadOnlySpan<byte> f, ref PacketInfo info)
    {
        if (!PlainFlow(f, ref info.Outer)) return false;
        ref byte b = ref MemoryMarshal.GetReference(f);
        info.MacDestinationHash = Be32(ref b, 0) ^ Be16(ref b, 4);
        info.MacSourceHash = Be32(ref b, 6) ^ Be16(ref b, 10);
        info.EtherType = EtherIpv4;
        info.L3Offset = PlainL3;
        info.L4Offset = PlainL4;
        return true;
    }

    /// <summary>Where the IP header and the TCP or UDP header of a frame <see cref="PlainFlow"/> takes start.</summary>
    internal const int PlainL3 = 14, PlainL4 = PlainL3 + 20;

    /// <summary>
    /// The flow key of the frame the fast path covers (Ethernet without tags, IPv4 without options, not a fragment, whole TCP
    /// or UDP that is not a tunnel's port), and nothing else of it: for a reader that needs only the key. False, and
    /// <paramref name="key"/> untouched, for any other frame.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool PlainFlow(ReadOnlySpan<byte> f, ref FlowKey key)
    {
        const int L3 = PlainL3, L4 = PlainL4;
        if (f.Length < L4 + 8) return false;
        ref byte b = ref MemoryMarshal.GetReference(f);
        byte proto = Unsafe.Add(ref b, L3 + 9);
        int total = Be16(ref b, L3 + 2);
        if (Be16(ref b, 12) != EtherIpv4 || Unsafe.Add(ref b, L3) != 0x45 || (Be16(ref b, L3 + 6) & 0x3FFF) != 0
            || (proto != ProtoTcp && proto != ProtoUdp)
            || L4 + (proto == ProtoTcp ? 20 : 8) > Math.Min(L3 + total, f.Length)) return false;
        ushort sport = Be16(ref b, L4), dport = Be16(ref b, L4 + 2);
        if (proto == ProtoUdp && (sport is PortGtpU or PortGtpC || dport is PortGtpU or PortGtpC or PortVxlan)) return false;
        key.IpVersion = 4;
        key.Protocol = proto;
        key.Source = Be32(ref b, L3 + 12);
        key.Destination = Be32(ref b, L3 + 16);
        key.SourcePort = sport;
        key.DestinationPort = dport;
        key.HasPorts = true;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort Be16(ref byte b, int at) => BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref b, at)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Be32(ref byte b, int at) => BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref b, at)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Stop(ref PacketInfo info, ParseStop why, int at)
    {
        info.Stop = why;
        info.StopOffset = (ushort)Math.Min(at, ushort.MaxValue);
    }

    private static ushort TypeFromVersion(byte first) => (first >> 4) switch { 4 => EtherIpv4, 6 => EtherIpv6, _ => 0 };

    private static ushort U16(ReadOnlySpan<byte> f, int at) => BinaryPrimitives.ReadUInt16BigEndian(f[at..]);

    private static uint U32(ReadOnlySpan<byte> f, int at) => BinaryPrimitives.ReadUInt32BigEndian(f[at..]);

    private static bool Ethernet(ReadOnlySpan<byte> f, ref PacketInfo info, ref int off, out ushort type, bool inner)
    {
        type = 0;
        if (f.Length - off < 14) { Stop(ref info, ParseStop.Truncated, off); return false; }
        if (!inner)
        {
            info.MacDestinationHash = U32(f, off) ^ U16(f, off + 4);
            info.MacSourceHash = U32(f, off + 6) ^ U16(f, off + 10);
        }
        type = U16(f, off + 12);
        off += 14;
        for (int tags = 0; type is EtherVlan or EtherQinQ or EtherQinQOld; tags++)
        {
            if (tags == MaxVlanTags) { Stop(ref info, ParseStop.Malformed, off); return false; }
            if (f.Length - off < 4) { Stop(ref info, ParseStop.Truncated, off); return false; }
            if (!inner)
            {
                ushort id = (ushort)(U16(f, off) & 0x0FFF);
                if (info.VlanCount == 0) info.VlanId = id;
                else if (info.VlanCount == 1) info.InnerVlanId = id;
                info.VlanCount++;
            }
            type = U16(f, off + 2);
            off += 4;
        }
        if (type < 0x0600) { Stop(ref info, ParseStop.Unsupported, off); return false; } // 802.3 length: LLC follows
        return true;
    }

    private static void Network(ReadOnlySpan<byte> f, ref PacketInfo info, int off, ushort type, bool inner)
    {
        if (type is EtherMpls or EtherMplsMulticast)
        {
            for (int labels = 0; ; labels++)
            {
                if (labels == MaxMplsLabels) { Stop(ref info, ParseStop.Malformed, off); return; }
                if (f.Length - off < 4) { Stop(ref info, ParseStop.Truncated, off); return; }
                bool bottom = (f[off + 2] & 1) != 0;
                off += 4;
                if (!inner) info.MplsLabels++;
                if (bottom) break;
            }
            if (f.Length - off < 1) { Stop(ref info, ParseStop.Truncated, off); return; }
            type = TypeFromVersion(f[off]);
        }
        ref FlowKey key = ref inner ? ref info.Inner : ref info.Outer;
        int l4, end;
        byte proto;
        if (type == EtherIpv4)
        {
            if (f.Length - off < 20) { Stop(ref info, ParseStop.Truncated, off); return; }
            int ihl = (f[off] & 0x0F) * 4;
            int total = U16(f, off + 2);
            if (f[off] >> 4 != 4 || ihl < 20 || total < ihl) { Stop(ref info, ParseStop.Malformed, off); return; }
            if (f.Length - off < ihl) { Stop(ref info, ParseStop.Truncated, off); return; }
            key.IpVersion = 4;
            proto = key.Protocol = f[off + 9];
            key.Source = U32(f, off + 12);
            key.Destination = U32(f, off + 16);
            ushort fragment = U16(f, off + 6);
            bool fragmented = (fragment & 0x3FFF) != 0;
            if (!inner) { info.L3Offset = (ushort)off; info.IsFragment = fragmented; }
            else info.InnerL3Offset = (ushort)off;
            if ((fragment & 0x1FFF) != 0) { Stop(ref info, ParseStop.Fragment, off); return; }
            l4 = off + ihl;
            end = Math.Min(off + total, f.Length);
        }
        else if (type == EtherIpv6)
        {
            if (f.Length - off < 40) { Stop(ref info, ParseStop.Truncated, off); return; }
            if (f[off] >> 4 != 6) { Stop(ref info, ParseStop.Malformed, off); return; }
            key.IpVersion = 6;
            key.Source = BinaryPrimitives.ReadUInt128BigEndian(f[(off + 8)..]);
            key.Destination = BinaryPrimitives.ReadUInt128BigEndian(f[(off + 24)..]);
            if (!inner) info.L3Offset = (ushort)off; else info.InnerL3Offset = (ushort)off;
            int payload = U16(f, off + 4);
            end = payload == 0 ? f.Length : Math.Min(off + 40 + payload, f.Length);
            proto = f[off + 6];
            l4 = off + 40;
            for (int ext = 0; ; ext++)
            {
                if (proto is not (0 or 43 or 44 or 51 or 60 or 135 or 139 or 140)) break;
                if (ext == MaxIpv6Extensions) { Stop(ref info, ParseStop.Malformed, l4); return; }
                if (end - l4 < 8) { Stop(ref info, ParseStop.Truncated, l4); return; }
                byte next = f[l4];
                if (proto == 44)
                {
                    if (!inner) info.IsFragment = true;
                    if ((U16(f, l4 + 2) & 0xFFF8) != 0) { key.Protocol = next; Stop(ref info, ParseStop.Fragment, l4); return; }
                    l4 += 8;
                }
                else
                {
                    l4 += proto == 51 ? (f[l4 + 1] + 2) * 4 : (f[l4 + 1] + 1) * 8;
                }
                proto = next;
            }
            key.Protocol = proto;
        }
        else
        {
            Stop(ref info, ParseStop.Unsupported, off);
            return;
        }
        if (l4 > end) { Stop(ref info, ParseStop.Truncated, end); return; }
        Transport(f[..end], ref info, ref key, l4, proto, inner);
    }

    private static void Transport(ReadOnlySpan<byte> f, ref PacketInfo info, ref FlowKey key, int l4, byte proto, bool inner)
    {
        if (!inner) info.L4Offset = (ushort)l4; else info.InnerL4Offset = (ushort)l4;
        int need = proto switch { ProtoTcp => 20, ProtoUdp => 8, ProtoSctp => 12, ProtoIcmp or ProtoIcmpv6 => 4, ProtoGre => 4, _ => 0 };
        if (f.Length - l4 < need) { Stop(ref info, ParseStop.Truncated, l4); return; }
        if (proto is ProtoTcp or ProtoUdp or ProtoSctp)
        {
            key.SourcePort = U16(f, l4);
            key.DestinationPort = U16(f, l4 + 2);
            key.HasPorts = true;
        }
        if (inner) return;
        if (proto == ProtoUdp)
        {
            ushort sport = key.SourcePort, dport = key.DestinationPort;
            int p = l4 + 8;
            if (dport == PortGtpU || sport == PortGtpU) GtpU(f, ref info, p);
            else if (dport == PortGtpC || sport == PortGtpC) GtpC(f, ref info, p);
            else if (dport == PortVxlan) Vxlan(f, ref info, p);
        }
        else if (proto == ProtoGre)
        {
            Gre(f, ref info, l4);
        }
    }

    private static void GtpU(ReadOnlySpan<byte> f, ref PacketInfo info, int p)
    {
        if (f.Length - p < 8) { Stop(ref info, ParseStop.Truncated, p); return; }
        byte flags = f[p];
        if (flags >> 5 != 1 || (flags & 0x10) == 0) { Stop(ref info, ParseStop.Unsupported, p); return; }
        info.Tunnel = TunnelKind.GtpU;
        info.TunnelVersion = 1;
        info.TunnelId = U32(f, p + 4);
        int header = 8;
        if ((flags & 0x07) != 0)
        {
            if (f.Length - p < 12) { Stop(ref info, ParseStop.Truncated, p); return; }
            info.TunnelSequence = U16(f, p + 8);
            byte next = f[p + 11];
            header = 12;
            for (int ext = 0; (flags & 0x04) != 0 && next != 0; ext++)
            {
                if (ext == MaxGtpExtensions) { Stop(ref info, ParseStop.Malformed, p + header); return; }
                if (f.Length - p - header < 1) { Stop(ref info, ParseStop.Truncated, p + header); return; }
                int length = f[p + header] * 4;
                if (length == 0) { Stop(ref info, ParseStop.Malformed, p + header); return; }
                if (f.Length - p - header < length) { Stop(ref info, ParseStop.Truncated, p + header); return; }
                next = f[p + header + length - 1];
                header += length;
            }
        }
        if (f[p + 1] != 255) return; // signalling (echo, error indication…): no user packet inside
        int inner = p + header;
        if (f.Length - inner < 1) { Stop(ref info, ParseStop.Truncated, inner); return; }
        Network(f, ref info, inner, TypeFromVersion(f[inner]), inner: true);
    }

    private static void GtpC(ReadOnlySpan<byte> f, ref PacketInfo info, int p)
    {
        if (f.Length - p < 8) { Stop(ref info, ParseStop.Truncated, p); return; }
        byte flags = f[p];
        int version = flags >> 5;
        info.Tunnel = TunnelKind.GtpC;
        info.TunnelVersion = (byte)version;
        if (version == 1)
        {
            info.TunnelId = U32(f, p + 4);
            if ((flags & 0x02) != 0 && f.Length - p >= 10) info.TunnelSequence = U16(f, p + 8);
        }
        else if (version == 2)
        {
            bool hasTeid = (flags & 0x08) != 0;
            int seq = hasTeid ? p + 8 : p + 4;
            if (hasTeid) info.TunnelId = U32(f, p + 4);
            if (f.Length - seq < 3) { Stop(ref info, ParseStop.Truncated, seq); return; }
            info.TunnelSequence = (uint)(f[seq] << 16 | f[seq + 1] << 8 | f[seq + 2]);
        }
        else
        {
            Stop(ref info, ParseStop.Unsupported, p);
        }
    }

    private static void Gre(ReadOnlySpan<byte> f, ref PacketInfo info, int p)
    {
        ushort flags = U16(f, p);
        ushort type = U16(f, p + 2);
        if ((flags & 0x0007) != 0 || (flags & 0x4000) != 0) { Stop(ref info, ParseStop.Unsupported, p); return; } // GRE v1 (PPTP), source routing
        info.Tunnel = TunnelKind.Gre;
        int header = 4;
        if ((flags & 0x8000) != 0) header += 4; // checksum
        if ((flags & 0x2000) != 0)
        {
            if (f.Length - p < header + 4) { Stop(ref info, ParseStop.Truncated, p + header); return; }
            info.TunnelId = U32(f, p + header);
            header += 4;
        }
        if ((flags & 0x1000) != 0) header += 4; // sequence number
        int inner = p + header;
        if (inner > f.Length) { Stop(ref info, ParseStop.Truncated, f.Length); return; }
        if (type == EtherTransparentBridging)
        {
            if (!Ethernet(f, ref info, ref inner, out type, inner: true)) return;
        }
        else if (type is not (EtherIpv4 or EtherIpv6))
        {
            Stop(ref info, ParseStop.Unsupported, inner);
            return;
        }
        Network(f, ref info, inner, type, inner: true);
    }

    private static void Vxlan(ReadOnlySpan<byte> f, ref PacketInfo info, int p)
    {
        if (f.Length - p < 8) { Stop(ref info, ParseStop.Truncated, p); return; }
        if ((f[p] & 0x08) == 0) { Stop(ref info, ParseStop.Unsupported, p); return; }
        info.Tunnel = TunnelKind.Vxlan;
        info.TunnelId = U32(f, p + 4) >> 8;
        int inner = p + 8;
        if (!Ethernet(f, ref info, ref inner, out ushort type, inner: true)) return;
        Network(f, ref info, inner, type, inner: true);
    }
}
