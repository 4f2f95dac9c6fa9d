using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ZcFlow.Memory;

namespace ZcFlow.Buffers;

/// <summary>
/// The buffers of one cluster as this process maps them: where they start, how far apart
/// they are, how many there are. Turns an index read from a queue into a handle after
/// checking it, which is the one place an index from shared memory becomes an address.
/// </summary>
internal readonly unsafe struct BufferRegion
{
    private readonly byte* _base;
    private readonly uint _stride;
    private readonly uint _count;
    private readonly uint _capacity;
    private readonly ulong _reciprocal;   // 2^64 / stride, rounded up: a multiply in place of a division (Lemire's fastdiv)

    public BufferRegion(byte* firstBuffer, uint stride, uint count, uint capacity)
    {
        _base = firstBuffer;
        _stride = stride;
        _count = count;
        _capacity = capacity;
        _reciprocal = ulong.MaxValue / stride + 1;
    }

    public uint Count => _count;

    public uint Capacity => _capacity;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Contains(uint index) => index < _count;

    /// <summary>
    /// Where a device registering the buffers starts: a page before the first buffer (the arena
    /// puts its buffers 64 KiB in, page aligned), so that every buffer has room in front of it.
    /// </summary>
    public byte* DeviceRegionStart => _base - ArenaLayout.PageSize;

    public ulong DeviceRegionLength => ArenaLayout.PageSize + (ulong)_count * _stride;

    /// <summary>Offset from <see cref="DeviceRegionStart"/> of buffer <paramref name="index"/>'s data.</summary>
    public ulong DataOffset(uint index) => ArenaLayout.PageSize + (ulong)index * _stride + ArenaLayout.BufferHeaderSize;

    /// <summary>The buffer whose data starts at <paramref name="offset"/>, if one does (a device hands offsets back for every packet: no division here).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryIndexAt(ulong offset, out uint index)
    {
        ulong o = offset - (ArenaLayout.PageSize + ArenaLayout.BufferHeaderSize);
        // exact for every o below 2^32; a larger o is past the last buffer or checked by the division
        index = o <= uint.MaxValue ? (uint)Math.BigMul(o, _reciprocal, out _) : (uint)Math.Min(o / _stride, uint.MaxValue);
        return offset >= ArenaLayout.PageSize + ArenaLayout.BufferHeaderSize && index < _count && (ulong)index * _stride == o;
    }

    /// <summary>
    /// The handles of the <paramref name="n"/> buffers (a multiple of four) whose indices are at <paramref name="indices"/>,
    /// four at a time with AVX2, into <paramref name="handles"/>; returns a word whose top bit is set if any index is not
    /// the region's (the caller then does not use them).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong AtFour(uint* indices, int n, Span<PacketHandle> handles)
    {
        Vector256<ulong> first = Vector256.Create((ulong)_base), stride = Vector256.Create((ulong)_stride);
        Vector256<ulong> capacity = Vector256.Create((ulong)_capacity << 32);
        Vector128<uint> last = Vector128.Create(_count - 1), bad = Vector128<uint>.Zero;
        fixed (PacketHandle* to = handles)
        {
            for (int i = 0; i < n; i += 4)
            {
                Vector128<uint> index = Vector128.Load(indices + i);
                bad |= Vector128.GreaterThan(index, last);
                Vector256<ulong> wide = Avx2.ConvertToVector256Int64(index).AsUInt64();
                Vector256<ulong> header = first + Avx2.Multiply(wide.AsUInt32(), stride.AsUInt32());
                Vector256<ulong> rest = wide | capacity;   // the handle's second word: index, then capacity
                Vector256<ulong> even = Avx2.UnpackLow(header, rest), odd = Avx2.UnpackHigh(header, rest);
                ulong* o = (ulong*)(to + i);
                Avx.Store(o, Avx2.Permute2x128(even, odd, 0x20));
                Avx.Store(o + 4, Avx2.Permute2x128(even, odd, 0x31));
            }
        }
        return bad == Vector128<uint>.Zero ? 0 : 1UL << 63;
    }

    /// <summary>The handle of buffer <paramref name="index"/>, which the caller has checked with <see cref="Contains"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public PacketHandle At(uint index) => new((BufferHeader*)(_base + (ulong)index * _stride), index, _capacity);
}
