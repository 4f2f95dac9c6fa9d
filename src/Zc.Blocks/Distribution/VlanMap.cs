using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using ZcFlow.Buffers;

namespace ZcFlow.Distribution;

/// <summary>
/// <c>-m 7</c>, as zbalance_ipc: frames of one EtherType (<c>-Y</c>, 0x8585 by default) carry a VLAN tag
/// under it. Their EtherType is rewritten to 802.1Q (0x8100), and their VLAN id picks the queue: the
/// i-th id of the map (<c>-M</c>, one id each) goes to queue i + 1, an id not in the map is dropped.
/// Every other frame goes to queue 0. So the queues are one more than the ids in the map.
/// </summary>
public readonly struct VlanMap : IDistribution
{
    /// <summary>zbalance_ipc's default <c>-Y</c>.</summary>
    public const ushort DefaultEtherType = 0x8585;

    private readonly short[] _queueOfVlan;
    private readonly ushort _etherType;

    /// <param name="vlans">The VLAN id of queue 1, 2, …: at most 63 ids, each 0 to 4095, none twice.</param>
    /// <param name="etherType">The EtherType of the frames that carry the tag.</param>
    public VlanMap(IReadOnlyList<int> vlans, ushort etherType = DefaultEtherType)
    {
        if (vlans.Count > 63) throw new ArgumentOutOfRangeException(nameof(vlans), vlans.Count, "at most 63 VLAN ids: queue 0 and one queue for each make at most 64");
        _queueOfVlan = new short[4096];
        for (int i = 0; i < vlans.Count; i++)
        {
            if ((uint)vlans[i] > 4095) throw new ArgumentOutOfRangeException(nameof(vlans), vlans[i], "a VLAN id is 0 to 4095");
            if (_queueOfVlan[vlans[i]] != 0) throw new ArgumentException($"VLAN {vlans[i]} is mapped twice", nameof(vlans));
            _queueOfVlan[vlans[i]] = (short)(i + 1);
        }
        _etherType = etherType;
    }

    /// <summary>The queues this map routes to: queue 0, and one for each VLAN id.</summary>
    public int Queues => _queueOfVlan.Count(q => q != 0) + 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Route(in PacketHandle packet, int queues)
    {
        Span<byte> frame = packet.Data;
        if (frame.Length < 14 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != _etherType) return 1;
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], 0x8100);
        if (frame.Length <= 18) return 0;   // no room for the tag and something under it
        int q = _queueOfVlan?[BinaryPrimitives.ReadUInt16BigEndian(frame[14..]) & 0xfff] ?? 0;
        return q != 0 && q < queues ? 1UL << q : 0;
    }
}
