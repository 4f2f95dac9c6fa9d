using System.Runtime.CompilerServices;
using ZcFlow.Memory;

namespace ZcFlow.Buffers;

/// <summary>
/// Names one packet buffer of a cluster and exposes its bytes and metadata in place.
/// A value: copying it copies the name, not the packet; it owns nothing and never allocates.
/// The data capacity comes from the process's own view of the cluster, not from shared
/// memory, so a length written by another process can never make a span reach past the buffer.
/// </summary>
public readonly unsafe struct PacketHandle
{
    private readonly BufferHeader* _header;
    private readonly uint _index;
    private readonly uint _capacity;

    internal PacketHandle(BufferHeader* header, uint index, uint capacity)
    {
        _header = header;
        _index = index;
        _capacity = capacity;
    }

    /// <summary>The buffer's 32-bit index in its cluster: what queues carry.</summary>
    public uint Index => _index;

    /// <summary>False for <c>default</c>.</summary>
    public bool IsValid => _header != null;

    /// <summary>Bytes the buffer can hold.</summary>
    public int Capacity => (int)_capacity;

    /// <summary>Bytes of packet in the buffer, never more than <see cref="Capacity"/>; setting it also says the packet is new (its wire length the same, its link type Ethernet).</summary>
    public int Length
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (int)Math.Min(Volatile.Read(ref _header->Length), _capacity);
        set
        {
            if ((uint)value > _capacity) ThrowHelper.LengthOutOfRange(value, _capacity);
            _header->Length = (uint)value;
            _header->WireLength = 0;
            _header->LinkType = 1;   // new contents: Ethernet unless the writer says otherwise
        }
    }

    /// <summary>
    /// Bytes the packet had on the wire, which is more than <see cref="Length"/> when the device
    /// kept only its start (a snap length, a buffer too small). Setting <see cref="Length"/> resets
    /// it to the same; a device that cut the packet sets it afterwards.
    /// </summary>
    public int WireLength
    {
        get => (int)Math.Max(_header->WireLength, (uint)Length);
        set => _header->WireLength = (uint)Math.Max(value, 0);
    }

    /// <summary>
    /// Sets all a receiving device knows of a new packet: its length, its length on the wire
    /// (<paramref name="wireLength"/>, when the device kept less), receive time and input device, with
    /// the hash and flags cleared, and what its first header is (<see cref="LinkType"/>, a pcap LINKTYPE: 1, Ethernet,
    /// unless the device says otherwise). It is one 32-byte store rather than seven, so a device filling a burst
    /// of buffers that come back cold from a kernel ring has more of them in flight at once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetReceived(int length, int wireLength, long timestampNs, uint deviceIndex) => SetReceived(length, wireLength, timestampNs, deviceIndex, 1);

    /// <inheritdoc cref="SetReceived(int, int, long, uint)"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetReceived(int length, int wireLength, long timestampNs, uint deviceIndex, uint linkType)
    {
        if ((uint)length > _capacity) ThrowHelper.LengthOutOfRange(length, _capacity);
        // BufferHeader: Length, Hash | TimestampNs | WireLength, DeviceIndex | Flags, LinkType
        Unsafe.WriteUnaligned(_header, System.Runtime.Intrinsics.Vector256.Create(
            (uint)length, (ulong)timestampNs, (uint)Math.Max(wireLength, 0) | (ulong)deviceIndex << 32, (ulong)linkType << 32));
    }

    /// <summary>The packet: the first <see cref="Length"/> bytes of the buffer.</summary>
    public Span<byte> Data
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => new((byte*)(_header + 1), Length);
    }

    /// <summary>The whole buffer, for a writer that sets <see cref="Length"/> afterwards.</summary>
    public Span<byte> Buffer => new((byte*)(_header + 1), (int)_capacity);

    /// <summary>Receive time in nanoseconds since the Unix epoch, 0 if unknown.</summary>
    public long TimestampNs { get => _header->TimestampNs; set => _header->TimestampNs = value; }

    /// <summary>The flow hash a device or balancer computed.</summary>
    public uint Hash { get => _header->Hash; set => _header->Hash = value; }

    /// <summary>The index of the device the packet came in on.</summary>
    public uint DeviceIndex { get => _header->DeviceIndex; set => _header->DeviceIndex = value; }

    /// <summary>Free for the application and devices (PF_RING's flags).</summary>
    public uint Flags { get => _header->Flags; set => _header->Flags = value; }

    /// <summary>What the packet's first header is, as a pcap LINKTYPE: 1 (Ethernet) unless its device said otherwise (276, <c>LINUX_SLL2</c>, for <c>any</c>).</summary>
    public uint LinkType { get => _header->LinkType; set => _header->LinkType = value; }
}
