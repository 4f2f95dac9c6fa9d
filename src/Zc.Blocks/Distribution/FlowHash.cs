using System.Runtime.CompilerServices;
using ZcFlow.Parsing;

namespace ZcFlow.Distribution;

/// <summary>
/// Flow hashes that are symmetric by construction: source and destination are combined with
/// an addition, so both directions of a conversation hash alike; a finaliser then spreads the bits.
/// </summary>
public static class FlowHash
{
    /// <summary>Hash of the two IP addresses (zbalance_ipc's <c>-m 1</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Addresses(in FlowKey key) => Mix(Fold(key.Source) + Fold(key.Destination) + key.IpVersion);

    /// <summary>Hash of addresses, ports and protocol: one value per bidirectional conversation.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint FiveTuple(in FlowKey key)
        => Mix(Fold(key.Source) + Fold(key.Destination) + ((ulong)(uint)(key.SourcePort + key.DestinationPort) << 8 | key.Protocol));

    /// <summary>Hash of the two MAC addresses, for frames without IP.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Macs(in PacketInfo info) => Mix((ulong)info.MacSourceHash + info.MacDestinationHash);

    /// <summary>
    /// The queue a hash picks among <paramref name="queues"/>, as a one-bit mask: the hash scaled
    /// to the queue count (its high bits, which the finaliser spreads as well as the low), so the
    /// packet path pays a multiply where a modulo would cost a division.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Queue(uint hash, int queues) => 1UL << (int)((ulong)hash * (uint)queues >> 32);

    /// <summary>Spreads a 64-bit value over 32 bits (MurmurHash3's 64-bit finaliser).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Mix(ulong x)
    {
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdUL;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53UL;
        x ^= x >> 33;
        return (uint)x;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Fold(UInt128 address) => (ulong)address ^ (ulong)(address >> 64);
}
