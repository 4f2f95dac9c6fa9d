using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ZcFlow.Buffers;
using ZcFlow.Parsing;

namespace ZcFlow.Devices;

/// <summary>
/// Writes packets to a capture file, or a stream such as standard output, that tcpdump, tshark and
/// Wireshark read: pcapng when the name ends in <c>.pcapng</c>, else pcap, both with nanosecond timestamps. Buffered: each
/// record is composed in a buffer of the writer's own (its header, and the frame copied once), which goes to the file
/// or stream in one write when full; what was written is there after <see cref="Flush"/> or <see cref="Dispose"/>.
/// Writing allocates nothing per packet. Used by one thread.
/// </summary>
public sealed class CaptureWriter : IDisposable
{
    private const int SnapLength = 262144;
    private readonly Stream _file;
    private readonly bool _pcapng;
    private readonly byte[] _buffer = new byte[1 << 16];
    private int _used;   // bytes of _buffer not yet handed to _file
    private int _disposed;

    public CaptureWriter(string path, LinkType link = LinkType.Ethernet)
        : this(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize: 1), path.EndsWith(".pcapng", StringComparison.OrdinalIgnoreCase), link)
    {
        Path = path;
    }

    /// <summary>
    /// Writes to <paramref name="stream"/> (standard output, a pipe), pcapng or pcap; it is closed with the writer.
    /// Unbuffered here: wrap it in a <see cref="BufferedStream"/> and call <see cref="Flush"/> as often as a reader must see packets.
    /// </summary>
    public CaptureWriter(Stream stream, bool pcapng, LinkType link = LinkType.Ethernet)
    {
        Path = "-";
        _pcapng = pcapng;
        _file = stream;
        Span<byte> h = stackalloc byte[48];
        if (_pcapng)
        {
            // Section header block (28 bytes), then one interface with if_tsresol = 9 (nanoseconds).
            Block(h, 0x0A0D0D0A, 28);
            BinaryPrimitives.WriteUInt32LittleEndian(h[8..], 0x1A2B3C4D);
            BinaryPrimitives.WriteUInt16LittleEndian(h[12..], 1);
            BinaryPrimitives.WriteUInt16LittleEndian(h[14..], 0);
            BinaryPrimitives.WriteInt64LittleEndian(h[16..], -1);
            _file.Write(h[..28]);
            h.Clear();
            Block(h, 1, 32);
            BinaryPrimitives.WriteUInt16LittleEndian(h[8..], (ushort)link);
            BinaryPrimitives.WriteUInt32LittleEndian(h[12..], SnapLength);
            BinaryPrimitives.WriteUInt16LittleEndian(h[16..], 9);  // if_tsresol
            BinaryPrimitives.WriteUInt16LittleEndian(h[18..], 1);
            h[20] = 9;
            BinaryPrimitives.WriteUInt32LittleEndian(h[24..], 0);  // end of options
            _file.Write(h[..32]);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(h, 0xA1B23C4D); // nanosecond pcap
            BinaryPrimitives.WriteUInt16LittleEndian(h[4..], 2);
            BinaryPrimitives.WriteUInt16LittleEndian(h[6..], 4);
            BinaryPrimitives.WriteUInt64LittleEndian(h[8..], 0);
            BinaryPrimitives.WriteUInt32LittleEndian(h[16..], SnapLength);
            BinaryPrimitives.WriteUInt32LittleEndian(h[20..], (uint)link);
            _file.Write(h[..24]);
        }
    }

    // Writes a block's type and total length, and the trailing length at its end.
    private static void Block(Span<byte> h, uint type, int length)
    {
        h.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(h, type);
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], (uint)length);
        BinaryPrimitives.WriteUInt32LittleEndian(h[(length - 4)..], (uint)length);
    }

    public string Path { get; }

    /// <summary>Packets written.</summary>
    public long Packets { get; private set; }

    /// <summary>Appends one packet with its timestamp.</summary>
    public void Write(in PacketHandle packet) => Write(packet.Data, packet.TimestampNs, packet.WireLength);

    /// <summary>Appends a burst.</summary>
    public void WriteBurst(ReadOnlySpan<PacketHandle> packets)
    {
        foreach (ref readonly PacketHandle p in packets) Write(p.Data, p.TimestampNs, p.WireLength);
    }

    /// <summary>Writes a burst of frames read in place (<see cref="IFrameReader"/>).</summary>
    public void WriteBurst(ReadOnlySpan<CapturedFrame> frames)
    {
        foreach (ref readonly CapturedFrame f in frames) Write(f.Data, f.TimestampNs, f.WireLength);
    }

    /// <summary>Appends one frame with a timestamp in nanoseconds since the epoch.</summary>
    public void Write(ReadOnlySpan<byte> frame, long timestampNs, int wireLength = 0)
    {
        uint original = (uint)Math.Max(wireLength, frame.Length);
        if (!_pcapng && BitConverter.IsLittleEndian && timestampNs >= 0 && frame.Length <= _buffer.Length - 16 - _used)
        {
            // pcap, a record that fits (almost every one): its header in one store, in the file's (little-endian) order.
            ref byte at = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buffer), _used);
            ulong seconds = (ulong)timestampNs / 1_000_000_000;
            Unsafe.WriteUnaligned(ref at, Vector128.Create((uint)seconds, (uint)((ulong)timestampNs - seconds * 1_000_000_000), (uint)frame.Length, original));
            CopyFrame(frame, MemoryMarshal.CreateSpan(ref Unsafe.Add(ref at, 16), frame.Length));
            _used += 16 + frame.Length;
            Packets++;
            return;
        }
        int padded = _pcapng ? (frame.Length + 3) & ~3 : frame.Length;
        int header = _pcapng ? 28 : 16, total = header + padded + (_pcapng ? 4 : 0);
        if (_used + total > _buffer.Length) Drain();
        int tail = total - header - frame.Length;   // pcapng: the padding and the block's closing length
        if (total > _buffer.Length)
        {
            // A record larger than the buffer (a frame of tens of kilobytes): its header and tail from the buffer, its frame straight out.
            Header(_buffer, frame.Length, original, timestampNs, total);
            _file.Write(_buffer, 0, header);
            _file.Write(frame);
            Tail(_buffer.AsSpan(0, tail), total);
            if (tail != 0) _file.Write(_buffer, 0, tail);
        }
        else
        {
            Span<byte> record = _buffer.AsSpan(_used, total);
            Header(record, frame.Length, original, timestampNs, total);
            CopyFrame(frame, record[header..]);
            Tail(record[(header + frame.Length)..], total);
            _used += total;
        }
        Packets++;
    }

    // A frame of 16 to 64 bytes (most of a capture of small packets) in two vector copies that overlap in the middle, with
    // no call; a longer or shorter one by Memmove.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyFrame(ReadOnlySpan<byte> frame, Span<byte> to)
    {
        int n = frame.Length;
        if (n > 64 || n < 16 || to.Length < n)
        {
            frame.CopyTo(to);
            return;
        }
        ref byte from = ref MemoryMarshal.GetReference(frame), at = ref MemoryMarshal.GetReference(to);
        if (n >= 32)
        {
            Vector256<byte> head = Unsafe.ReadUnaligned<Vector256<byte>>(ref from), last = Unsafe.ReadUnaligned<Vector256<byte>>(ref Unsafe.Add(ref from, n - 32));
            Unsafe.WriteUnaligned(ref at, head);
            Unsafe.WriteUnaligned(ref Unsafe.Add(ref at, n - 32), last);
        }
        else
        {
            Vector128<byte> head = Unsafe.ReadUnaligned<Vector128<byte>>(ref from), last = Unsafe.ReadUnaligned<Vector128<byte>>(ref Unsafe.Add(ref from, n - 16));
            Unsafe.WriteUnaligned(ref at, head);
            Unsafe.WriteUnaligned(ref Unsafe.Add(ref at, n - 16), last);
        }
    }

    // pcapng: zeros to pad the frame to 4 bytes, then the block's length again (pcap has no tail: the span is empty).
    private static void Tail(Span<byte> tail, int total)
    {
        if (tail.IsEmpty) return;
        tail[..^4].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(tail[^4..], (uint)total);
    }

    // A record's header: pcapng's enhanced packet block (interface 0, nanoseconds), or pcap's record header.
    private void Header(Span<byte> h, int captured, uint original, long timestampNs, int total)
    {
        if (_pcapng)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(h, 6);
            BinaryPrimitives.WriteUInt32LittleEndian(h[4..], (uint)total);
            BinaryPrimitives.WriteUInt32LittleEndian(h[8..], 0);
            BinaryPrimitives.WriteUInt32LittleEndian(h[12..], (uint)((ulong)timestampNs >> 32));
            BinaryPrimitives.WriteUInt32LittleEndian(h[16..], (uint)timestampNs);
            BinaryPrimitives.WriteUInt32LittleEndian(h[20..], (uint)captured);
            BinaryPrimitives.WriteUInt32LittleEndian(h[24..], original);
        }
        else
        {
            (long seconds, long nanoseconds) = Math.DivRem(timestampNs, 1_000_000_000);
            BinaryPrimitives.WriteUInt32LittleEndian(h, (uint)seconds);
            BinaryPrimitives.WriteUInt32LittleEndian(h[4..], (uint)nanoseconds);
            BinaryPrimitives.WriteUInt32LittleEndian(h[8..], (uint)captured);
            BinaryPrimitives.WriteUInt32LittleEndian(h[12..], original);
        }
    }

    // Hands what the buffer holds to the file or stream.
    private void Drain()
    {
        if (_used == 0) return;
        int used = _used;
        _used = 0;   // gone, or lost with the stream's error
        _file.Write(_buffer, 0, used);
    }

    /// <summary>Hands every record written to the file or stream, and the stream's own buffer to the system.</summary>
    public void Flush()
    {
        Drain();
        if (_file is FileStream file) file.Flush(flushToDisk: false);
        else _file.Flush();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            Drain();
        }
        finally
        {
            _file.Dispose();
        }
    }
}
