using System.Buffers.Binary;
using System.Globalization;
using ZcFlow.Buffers;

namespace ZcFlow.Filters;

/// <summary>
/// zbalance_ipc's <c>-x</c>: a frame passes when any of its stacked VLAN tags (802.1Q, 802.1ad,
/// and the old 0x9100) carries a listed id; an untagged frame does not. Checked on the frame's
/// bytes (a tag the kernel took off is put back by the AF_PACKET device), apart from any BPF
/// filter, so that the two mean what each says. A bitmap of the 4096 ids: no allocation, a few
/// reads per packet.
/// </summary>
public sealed class VlanAllowList
{
    /// <summary>Tags looked at, outermost first; more than any real stack has.</summary>
    public const int MaxTags = 8;

    private readonly ulong[] _ids = new ulong[4096 / 64];

    public VlanAllowList(IEnumerable<int> ids)
    {
        foreach (int id in ids)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(id, nameof(ids));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(id, 4095, nameof(ids));
            _ids[id >> 6] |= 1UL << (id & 63);
            Ids.Add(id);
        }
        if (Ids.Count == 0) throw new ArgumentException("a VLAN allow-list names at least one id", nameof(ids));
    }

    /// <summary>The ids, in the order given.</summary>
    public List<int> Ids { get; } = [];

    /// <summary>Parses <c>10,20,30</c>.</summary>
    public static VlanAllowList Parse(string list)
    {
        var ids = new List<int>();
        foreach (string part in list.Split(','))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int id) || id > 4095)
                throw new ArgumentException($"'{list}': VLAN ids are 0 to 4095, comma separated", nameof(list));
            ids.Add(id);
        }
        return new VlanAllowList(ids);
    }

    /// <summary>Whether <paramref name="packet"/> carries a listed VLAN id in any of its tags.</summary>
    public bool Matches(in PacketHandle packet) => Matches(packet.Data);

    /// <summary>Whether the Ethernet frame <paramref name="frame"/> carries a listed VLAN id in any of its tags.</summary>
    public bool Matches(ReadOnlySpan<byte> frame)
    {
        int offset = 12;
        for (int tag = 0; tag < MaxTags && offset + 4 <= frame.Length; tag++, offset += 4)
        {
            ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]);
            if (type is not (0x8100 or 0x88A8 or 0x9100)) return false;
            int id = BinaryPrimitives.ReadUInt16BigEndian(frame[(offset + 2)..]) & 0xFFF;
            if ((_ids[id >> 6] & 1UL << (id & 63)) != 0) return true;
        }
        return false;
    }
}
