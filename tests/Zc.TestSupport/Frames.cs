using System.Buffers.Binary;

namespace ZcFlow.Tests;

/// <summary>Builds test frames layer by layer, outermost first.</summary>
public sealed class Frames
{
    private readonly List<byte> _bytes = [];

    public static Frames Ethernet(ushort type) => new Frames().Add(0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1).U16(type);

    public Frames Add(params byte[] bytes) { _bytes.AddRange(bytes); return this; }

    public Frames U16(ushort v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16BigEndian(b, v); return Add(b.ToArray()); }

    public Frames U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32BigEndian(b, v); return Add(b.ToArray()); }

    public Frames Vlan(ushort id, ushort next) => U16(id).U16(next);

    /// <summary>An IPv4 header of <paramref name="payload"/> bytes after it, with <paramref name="optionWords"/> words of options.</summary>
    public Frames Ipv4(uint src, uint dst, byte proto, int payload, int optionWords = 0, ushort fragment = 0)
    {
        int ihl = 5 + optionWords;
        Add((byte)(0x40 | ihl), 0).U16((ushort)(ihl * 4 + payload)).U16(1).U16(fragment).Add(64, proto).U16(0).U32(src).U32(dst);
        for (int i = 0; i < optionWords; i++) Add(1, 1, 1, 1);
        return this;
    }

    public Frames Ipv6(UInt128 src, UInt128 dst, byte next, int payload)
    {
        Add(0x60, 0, 0, 0).U16((ushort)payload).Add(next, 64);
        Span<byte> a = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(a, src);
        Add(a.ToArray());
        BinaryPrimitives.WriteUInt128BigEndian(a, dst);
        return Add(a.ToArray());
    }

    public Frames Udp(ushort sport, ushort dport, int payload) => U16(sport).U16(dport).U16((ushort)(8 + payload)).U16(0);

    public Frames Tcp(ushort sport, ushort dport) => U16(sport).U16(dport).U32(1).U32(0).Add(0x50, 0x02).U16(1024).U16(0).U16(0);

    public byte[] ToArray() => [.. _bytes];

    public int Length => _bytes.Count;
}
