using System.Runtime.CompilerServices;
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

    public BufferRegion(byte* firstBuffer, uint stride, uint count, uint capacity)
    {
        _base = firstBuffer;
        _stride = stride;
        _count = count;
        _capacity = capacity;
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

    /// <summary>The buffer whose data starts at <paramref name="offset"/>, if one does.</summary>
    public bool TryIndexAt(ulong offset, out uint index)
    {
        ulong o = offset - ArenaLayout.PageSize - ArenaLayout.BufferHeaderSize;
        index = (uint)(o / _stride);
        return offset >= ArenaLayout.PageSize + ArenaLayout.BufferHeaderSize && o % _stride == 0 && o / _stride < _count;
    }

    /// <summary>The handle of buffer <paramref name="index"/>, which the caller has checked with <see cref="Contains"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public PacketHandle At(uint index) => new((BufferHeader*)(_base + (ulong)index * _stride), index, _capacity);
}
