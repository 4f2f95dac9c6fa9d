using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ZcFlow.Parsing;

namespace ZcFlow.Devices;

/// <summary>
/// A pcap or pcapng file mapped into memory and read record by record, in place. Every length
/// and offset in the file is checked against what is left of it before use: a truncated or
/// hostile file ends early with <see cref="Problem"/> saying why, and never causes a read
/// outside the mapping. A file that is not a capture at all is refused by <see cref="Open"/>.
/// Used by one thread.
/// </summary>
public sealed unsafe class CaptureFile : IDisposable, IFrameReader
{
    private const int MaxRecord = 1 << 18;     // larger than any snap length a real capture uses
    private const int MaxInterfaces = 1024;
    private const int Ahead = 1024;            // bytes read ahead of the record walk

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private long _populated;                // the file is in the page tables up to here (see Populate)
    private static bool _noPopulate;        // the kernel has no MADV_POPULATE_READ (before 5.14)
    private readonly long _length;
    private readonly bool _pcapng;
    private readonly long _first;           // offset of the first record
    private readonly List<(LinkType Link, bool Binary, int Exponent)> _interfaces = [];
    private bool _swapped;                  // the file's byte order is not the host's
    private long _nsPerTick;                // pcap: 1000 (microsecond timestamps) or 1 (nanosecond)
    private long _offset;
    private long _previous;                 // where the record last returned started
    private int _disposed;
    private uint _snapLength;   // records are cut to it, as libpcap does; 0: not said

    private CaptureFile(string path)
    {
        Path = path;
        _length = new FileInfo(path).Length;
        if (_length < 24) throw new InvalidDataException($"{path} is {_length} bytes: too short to be a pcap or pcapng file");
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + _view.PointerOffset;
        try
        {
            uint magic = BinaryPrimitives.ReadUInt32LittleEndian(Span(0, 4));
            if (magic == 0x0A0D0D0A)
            {
                _pcapng = true;
                _first = 0;
            }
            else
            {
                (_swapped, _nsPerTick) = magic switch
                {
                    0xA1B2C3D4 => (false, 1000L),
                    0xD4C3B2A1 => (true, 1000L),
                    0xA1B23C4D => (false, 1L),
                    0x4D3CB2A1 => (true, 1L),
                    _ => throw new InvalidDataException($"{path} is neither a pcap nor a pcapng file (magic 0x{magic:x8})"),
                };
                LinkType = (LinkType)(U32(20) & 0xFFFF);
                _snapLength = U32(16);
                _first = 24;
            }
            _offset = _first;
            // A pcapng file's link type is its first interface's: read up to its first packet, so that it is known before.
            if (_pcapng && TryNext(out _, out _, out _)) StepBack();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Maps <paramref name="path"/> and checks its header; a file that is not a capture is an <see cref="InvalidDataException"/>.</summary>
    public static CaptureFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"no capture file {path}", path);
        return new CaptureFile(path);
    }

    public string Path { get; }

    /// <summary>The link type of the file (pcap) or of its first interface (pcapng).</summary>
    public LinkType LinkType { get; private set; } = LinkType.Ethernet;

    /// <summary>Why reading stopped before the end of the file, or null.</summary>
    public string? Problem { get; private set; }

    /// <summary>Records skipped because they could not be used (an unknown interface, say).</summary>
    public long Skipped { get; private set; }

    /// <summary>Makes the record last returned by <see cref="TryNext"/> the next one again.</summary>
    public void StepBack() => _offset = _previous;

    /// <summary>Goes back to the first record.</summary>
    public void Rewind()
    {
        _offset = _first;
        Problem = null;
    }

    /// <summary>The length on the wire of the packet <see cref="TryNext"/> gave last: at least its captured length.</summary>
    public int WireLength { get; private set; }

    /// <summary>
    /// The next packet: its captured bytes (in the mapping: valid until the file is disposed),
    /// timestamp in nanoseconds since the epoch and link type. False at the end, or when the
    /// rest of the file is damaged (<see cref="Problem"/> says so).
    /// </summary>
    public bool TryNext(out ReadOnlySpan<byte> data, out long timestampNs, out LinkType link)
    {
        data = default;
        WireLength = 0;
        timestampNs = 0;
        link = LinkType;
        if (Problem is not null) return false;
        return _pcapng ? NextBlock(ref data, ref timestampNs, ref link) : NextRecord(ref data, ref timestampNs);
    }

    /// <summary>
    /// The next records, up to as many as <paramref name="frames"/> holds, in place as <see cref="TryNext"/> gives them
    /// (their bytes stay in the mapping). Returns how many: fewer at the end of the file, or where it is damaged.
    /// </summary>
    public int ReadBurst(Span<CapturedFrame> frames)
    {
        if (_offset + PopulateWindow / 2 > _populated && _populated < _length) Populate();
        int n = !_pcapng && !_swapped && Problem is null ? ReadRecords(frames) : 0;
        while (n < frames.Length && TryNext(out ReadOnlySpan<byte> data, out long timestampNs, out LinkType link))
            frames[n++] = new CapturedFrame((byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(data)), data.Length, WireLength, timestampNs, link);
        return n;
    }

    private const long PopulateWindow = 4 << 20;

    // The next window of the file into the page tables, in one call: the records are then read without a page fault every
    // 4 KiB (about a seventh of reading a file of small records). A window at a time, never the whole file: it may be large.
    private void Populate()
    {
        long from = _populated, to = Math.Min(_length, _populated + PopulateWindow);
        _populated = to;
        if (_noPopulate) return;
        byte* start = (byte*)((nuint)(_base + from) & ~(nuint)4095);   // madvise takes a page's start
        if (ZcFlow.Native.Libc.Madvise((nint)start, (nuint)(_base + to - start), ZcFlow.Native.Libc.MADV_POPULATE_READ) != 0)
            _noPopulate = true;   // an older kernel: the page faults as before
    }

    // A pcap file in the host's byte order, record by record as NextRecord reads them, in one loop over locals. It stops
    // at a record it cannot take whole, for NextRecord to say what is wrong with it.
    private int ReadRecords(Span<CapturedFrame> frames)
    {
        long offset = _offset, length = _length, nsPerTick = _nsPerTick;
        uint snap = _snapLength == 0 ? uint.MaxValue : _snapLength;
        LinkType link = LinkType;
        int n = 0;
        for (; n < frames.Length && length - offset >= 16; n++)
        {
            uint* h = (uint*)(_base + offset);
            // Each record's place follows from the one before: the next ones are asked for ahead of the walk.
            if (System.Runtime.Intrinsics.X86.Sse.IsSupported && length - offset > Ahead) System.Runtime.Intrinsics.X86.Sse.Prefetch0(_base + offset + Ahead);
            uint captured = h[2];
            if (captured > MaxRecord || captured > length - offset - 16) break;
            _previous = offset;
            frames[n] = new CapturedFrame((byte*)(h + 4), (int)Math.Min(captured, snap), (int)Math.Clamp(h[3], captured, MaxRecord),
                h[0] * 1_000_000_000L + h[1] * nsPerTick, link);
            offset += 16 + captured;
        }
        _offset = offset;
        WireLength = n > 0 ? frames[n - 1].WireLength : 0;
        return n;
    }

    private bool NextRecord(ref ReadOnlySpan<byte> data, ref long timestampNs)
    {
        long left = _length - _offset;
        if (left == 0) return false;
        if (left < 16) return Fail($"a record header is cut off at byte {_offset}");
        uint seconds = U32(_offset), fraction = U32(_offset + 4), captured = U32(_offset + 8);
        if (captured > MaxRecord) return Fail($"a record at byte {_offset} claims {captured} bytes");
        if (captured > left - 16) return Fail($"the record at byte {_offset} is cut off ({captured} bytes claimed, {left - 16} left)");
        data = Span(_offset + 16, (int)Kept(captured));
        WireLength = (int)Math.Clamp(U32(_offset + 12), captured, MaxRecord);
        _previous = _offset;
        timestampNs = seconds * 1_000_000_000L + fraction * _nsPerTick;
        _offset += 16 + captured;
        return true;
    }

    private bool NextBlock(ref ReadOnlySpan<byte> data, ref long timestampNs, ref LinkType link)
    {
        while (true)
        {
            long left = _length - _offset;
            if (left == 0) return false;
            if (left < 12) return Fail($"a block header is cut off at byte {_offset}");
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(Span(_offset, 4));
            if (type == 0x0A0D0D0A)
            {
                // A section header fixes the byte order for what follows.
                uint order = BinaryPrimitives.ReadUInt32LittleEndian(Span(_offset + 8, 4));
                if (order == 0x1A2B3C4D) _swapped = !BitConverter.IsLittleEndian;
                else if (order == 0x4D3C2B1A) _swapped = BitConverter.IsLittleEndian;
                else return Fail($"the section header at byte {_offset} has no byte-order magic");
                _interfaces.Clear();
            }
            else
            {
                type = U32(_offset);
            }
            uint total = U32(_offset + 4);
            if (total < 12 || total % 4 != 0 || total > left) return Fail($"the block at byte {_offset} has an impossible length {total}");
            if (U32(_offset + total - 4) != total) return Fail($"the block at byte {_offset} does not end with its length");
            long body = _offset + 8, bodyLength = total - 12;
            _offset += total;
            switch (type)
            {
                case 1: // interface description
                    if (bodyLength < 8) return Fail($"an interface description at byte {body - 8} is cut off");
                    if (_interfaces.Count == MaxInterfaces) return Fail("more interfaces than a capture can sensibly have");
                    AddInterface(body, bodyLength);
                    break;
                case 6 or 2: // enhanced packet; obsolete packet (16-bit interface id, 16-bit drop count)
                {
                    if (bodyLength < 20) return Fail($"a packet block at byte {body - 8} is cut off");
                    uint iface = type == 6 ? U32(body) : U16(body), captured = U32(body + 12);
                    if (captured > bodyLength - 20 || captured > MaxRecord) return Fail($"the packet block at byte {body - 8} claims {captured} bytes");
                    if (iface >= _interfaces.Count) { Skipped++; continue; }
                    data = Span(body + 20, (int)Kept(captured));
                    WireLength = (int)Math.Clamp(U32(body + 16), captured, MaxRecord);
                    ulong ticks = (ulong)U32(body + 4) << 32 | U32(body + 8);
                    timestampNs = ToNanoseconds(ticks, _interfaces[(int)iface]);
                    link = _interfaces[(int)iface].Link;
                    _previous = body - 8;
                    return true;
                }
                case 3: // simple packet: no timestamp, captured length is what the block holds
                {
                    if (bodyLength < 4 || _interfaces.Count == 0) { Skipped++; continue; }
                    uint original = U32(body);
                    data = Span(body + 4, (int)Kept((uint)Math.Min(Math.Min(original, bodyLength - 4), MaxRecord)));
                    WireLength = (int)Math.Clamp(original, (uint)data.Length, MaxRecord);
                    link = _interfaces[0].Link;
                    _previous = body - 8;
                    return true;
                }
                default:
                    continue; // statistics, name resolution, custom blocks: nothing for us
            }
        }
    }

    private uint Kept(uint captured) => _snapLength != 0 && captured > _snapLength ? _snapLength : captured;

    private void AddInterface(long body, long length)
    {
        var link = (LinkType)U16(body);
        bool binary = false;
        int exponent = 6;
        // Options: code, length, value padded to 4; if_tsresol (9) sets the timestamp unit.
        for (long o = body + 8; o + 4 <= body + length;)
        {
            ushort code = U16(o), size = U16(o + 2);
            if (code == 0 || o + 4 + size > body + length) break;
            if (code == 9 && size >= 1)
            {
                byte r = *(_base + o + 4);
                binary = (r & 0x80) != 0;
                exponent = r & 0x7F;
            }
            o += 4 + (size + 3) / 4 * 4;
        }
        _interfaces.Add((link, binary, exponent));
        if (_interfaces.Count == 1)
        {
            LinkType = link;
            _snapLength = U32(body + 4);
        }
    }

    private static long ToNanoseconds(ulong ticks, (LinkType, bool Binary, int Exponent) unit)
    {
        if (unit.Binary) return (long)((double)ticks / Math.Pow(2, unit.Exponent) * 1e9);
        if (unit.Exponent <= 9)
        {
            ulong scale = (ulong)Math.Pow(10, 9 - unit.Exponent);
            return (long)(ticks * scale);
        }
        return (long)(ticks / (ulong)Math.Pow(10, Math.Min(unit.Exponent - 9, 19)));
    }

    private bool Fail(string why)
    {
        Problem = $"{Path}: {why}";
        return false;
    }

    private ReadOnlySpan<byte> Span(long offset, int length) => new(_base + offset, length);

    private uint U32(long offset)
    {
        uint v = BinaryPrimitives.ReadUInt32LittleEndian(Span(offset, 4));
        return _swapped ? BinaryPrimitives.ReverseEndianness(v) : v;
    }

    private ushort U16(long offset)
    {
        ushort v = BinaryPrimitives.ReadUInt16LittleEndian(Span(offset, 2));
        return _swapped ? BinaryPrimitives.ReverseEndianness(v) : v;
    }

    /// <summary>Unmaps the file. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (_view is not null)
        {
            if (_base != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}

/// <summary>A record of a <see cref="CaptureFile"/> read in place (<see cref="CaptureFile.ReadBurst"/>): valid while the file is open.</summary>
public readonly unsafe struct CapturedFrame
{
    private readonly byte* _data;

    internal CapturedFrame(byte* data, int length, int wireLength, long timestampNs, LinkType link)
    {
        _data = data;
        Length = length;
        WireLength = wireLength;
        TimestampNs = timestampNs;
        Link = link;
    }

    /// <summary>The captured bytes.</summary>
    public ReadOnlySpan<byte> Data => new(_data, Length);

    public int Length { get; }

    /// <summary>The length on the wire: at least <see cref="Length"/>.</summary>
    public int WireLength { get; }

    /// <summary>Nanoseconds since the Unix epoch.</summary>
    public long TimestampNs { get; }

    /// <summary>What the frame's first header is.</summary>
    public LinkType Link { get; }
}
