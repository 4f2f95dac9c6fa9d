using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using ZcFlow.Buffers;

namespace ZcFlow.Devices;

/// <summary>
/// Synthetic traffic, <c>gen:&lt;frame size&gt;[?flows=N&amp;rate=PPS&amp;count=N]</c>: Ethernet/IPv4/UDP
/// frames of one size (or <c>gen:imix</c>: the simple IMIX, 7 of 60 bytes, 4 of 590 and 1 of 1514 in every 12, the
/// 64/594/1518 of the wire less its CRC) over N flows in turn, each flow's two directions alternating (so that a
/// symmetric hash has something to prove), at a packet rate or as fast as it can, forever or
/// for a count. Each frame carries a 64-bit sequence number at the start of its UDP payload.
/// Frames are prebuilt per flow. A buffer that comes back to the pool still holds the frame it was given, and every
/// frame's payload after the sequence number is zeros: when the generator takes a buffer that this device received
/// into last (its header says so), it writes the 42 bytes of headers and the sequence number, and clears only what a
/// longer frame needs past the zeros the buffer already has; any other buffer gets its whole frame. An IMIX frame of
/// 1514 bytes is written once per buffer, not once per packet. Code of this process that writes into a generated
/// packet's payload in place sees that payload come back in the buffer's next frames; headers are always rewritten.
/// </summary>
internal sealed class GeneratorDevice : IPacketSource
{
    /// <summary>Offset of the sequence number in every frame (after Ethernet, IPv4 and UDP headers).</summary>
    public const int SequenceOffset = 42;

    private readonly BufferPool _pool;
    private readonly uint _deviceIndex;
    private readonly byte[][] _frames;     // per frame size: every flow's two directions
    private readonly int[] _sizes;         // the frame sizes, one per size class
    private readonly int[] _pattern;       // the size class of packet seq, by seq % length
    private readonly int _templates;
    private readonly uint _first;          // the pool's first buffer: _zeros is by index - _first
    private readonly int[] _zeros;         // per pool buffer (by index - _first): its payload is zeros up to here, 0 if unknown
    private int _template, _phase;         // the template and the pattern's place of packet _sequence
    private ulong _bytes;
    private readonly long _rate;
    private readonly long _count;
    private readonly long _start = Stopwatch.GetTimestamp();
    private long _sequence;
    private ulong _noBuffer;

    /// <summary>The simple IMIX, in the order <c>gen:imix</c> sends it: 7 frames of 60 bytes, 4 of 590, 1 of 1514.</summary>
    public static ReadOnlySpan<int> Imix => [60, 590, 60, 60, 590, 60, 60, 590, 60, 60, 590, 1514];

    public GeneratorDevice(string name, BufferPool pool, uint deviceIndex, int frameSize, int flows, long rate, long count)
        : this(name, pool, deviceIndex, [frameSize], flows, rate, count)
    {
    }

    /// <summary>A generator whose packet n has size <c>frameSizes[n % frameSizes.Length]</c>.</summary>
    public GeneratorDevice(string name, BufferPool pool, uint deviceIndex, ReadOnlySpan<int> frameSizes, int flows, long rate, long count)
    {
        foreach (int frameSize in frameSizes)
            if (frameSize < 60 || frameSize > pool.BufferCapacity)
                throw new ArgumentOutOfRangeException(nameof(frameSizes), frameSize, $"a generated frame is 60 to {pool.BufferCapacity} bytes (the buffer size)");
        if (frameSizes.IsEmpty) throw new ArgumentException("give at least one frame size", nameof(frameSizes));
        if (flows < 1 || flows > 1 << 20) throw new ArgumentOutOfRangeException(nameof(flows), flows, "flows is 1 to 1048576");
        Name = name;
        _pool = pool;
        _deviceIndex = deviceIndex;
        _rate = rate;
        _count = count;
        _templates = flows * 2;
        _sizes = [.. frameSizes.ToArray().Distinct()];
        _pattern = [.. frameSizes.ToArray().Select(s => Array.IndexOf(_sizes, s))];
        _first = pool.FirstBuffer;
        _zeros = new int[pool.Capacity];
        _frames = new byte[_sizes.Length][];
        for (int c = 0; c < _sizes.Length; c++)
        {
            int size = _sizes[c];
            _frames[c] = new byte[_templates * size];
            for (int f = 0; f < flows; f++)
            {
                Build(_frames[c].AsSpan(2 * f * size, size), f, reverse: false);
                Build(_frames[c].AsSpan((2 * f + 1) * size, size), f, reverse: true);
            }
        }
    }

    /// <summary>Parses <c>gen:64?flows=4096&amp;rate=1000000&amp;count=0</c>.</summary>
    public static GeneratorDevice Open(string name, BufferPool pool, uint deviceIndex)
    {
        string spec = name["gen:".Length..];
        string[] parts = spec.Split('?', 2);
        int size = 0;
        if (parts[0] != "imix" && !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out size))
            throw new ArgumentException($"'{name}': write gen:<frame size>|imix[?flows=N&rate=PPS&count=N], for example gen:64?flows=4096", nameof(name));
        int flows = 4096;
        long rate = 0, count = 0;
        if (parts.Length == 2)
        {
            foreach (string option in parts[1].Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                string[] kv = option.Split('=', 2);
                if (kv.Length != 2 || !long.TryParse(kv[1], NumberStyles.None, CultureInfo.InvariantCulture, out long v))
                    throw new ArgumentException($"'{name}': option '{option}' is not key=number", nameof(name));
                switch (kv[0])
                {
                    case "flows": flows = (int)Math.Min(v, int.MaxValue); break;
                    case "rate": rate = v; break;
                    case "count": count = v; break;
                    default: throw new ArgumentException($"'{name}': unknown option '{kv[0]}' (flows, rate, count)", nameof(name));
                }
            }
        }
        return parts[0] == "imix" ? new GeneratorDevice(name, pool, deviceIndex, Imix, flows, rate, count)
            : new GeneratorDevice(name, pool, deviceIndex, size, flows, rate, count);
    }

    public string Name { get; }

    public bool IsExhausted => _count > 0 && _sequence >= _count;

    public DeviceStats Stats => new((ulong)Volatile.Read(ref _sequence), Volatile.Read(ref _bytes), _noBuffer);

    public int ReceiveBurst(Span<PacketHandle> packets)
    {
        long want = packets.Length;
        if (_count > 0) want = Math.Min(want, _count - _sequence);
        if (_rate > 0) want = Math.Min(want, (long)((Stopwatch.GetTimestamp() - _start) / (double)Stopwatch.Frequency * _rate) - _sequence);
        if (want <= 0) return 0;
        int n = _pool.GetBurst(packets[..(int)want]);
        if (n < want) _noBuffer += (ulong)(want - n);
        long now = (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
        ulong bytes = 0;
        int template = _template, phase = _phase;
        for (int i = 0; i < n; i++)
        {
            PacketHandle p = packets[i];
            int c = _pattern[phase];
            int size = _sizes[c];
            uint slot = p.Index - _first;
            Span<byte> buffer = p.Buffer;
            if (slot < (uint)_zeros.Length && p.DeviceIndex == _deviceIndex)
            {
                // The buffer holds a frame of ours: its zeros after the sequence number are still there, and only what
                // a longer frame needs past them is cleared. The headers are written whatever they hold.
                ref int zeros = ref _zeros[slot];
                if (zeros < size)
                {
                    buffer[zeros..size].Clear();
                    zeros = size;
                }
                _frames[c].AsSpan(template * size, SequenceOffset).CopyTo(buffer);
            }
            else
            {
                // Never ours, or received into by another device since: the whole frame. An ingress queue's spare
                // (past the pool's own buffers) is not remembered.
                _frames[c].AsSpan(template * size, size).CopyTo(buffer);
                if (slot < (uint)_zeros.Length) _zeros[slot] = size;
            }
            BinaryPrimitives.WriteInt64BigEndian(buffer[SequenceOffset..], _sequence + i);
            p.SetReceived(size, size, now, _deviceIndex);
            bytes += (ulong)size;
            if (++template == _templates) template = 0;
            if (++phase == _pattern.Length) phase = 0;
        }
        (_template, _phase) = (template, phase);
        Volatile.Write(ref _bytes, _bytes + bytes);
        Volatile.Write(ref _sequence, _sequence + n);
        return n;
    }

    // 02:00:00:00:00:01 <-> 02:00:00:00:00:02, 10.0.f.x:port <-> 10.1.f.x:80, UDP.
    private static void Build(Span<byte> f, int flow, bool reverse)
    {
        f.Clear();
        byte[] macA = [0x02, 0, 0, 0, 0, 1], macB = [0x02, 0, 0, 0, 0, 2];
        (reverse ? macB : macA).CopyTo(f);
        (reverse ? macA : macB).CopyTo(f[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(f[12..], 0x0800);
        Span<byte> ip = f[14..];
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(f.Length - 14));
        ip[8] = 64;
        ip[9] = 17;
        uint a = 0x0A00_0000u | (uint)(flow & 0xFFFF), b = 0x0A01_0000u | (uint)(flow & 0xFFFF);
        ushort portA = (ushort)(1024 + flow % 60000), portB = 80;
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], reverse ? b : a);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], reverse ? a : b);
        uint sum = 0;
        for (int i = 0; i < 20; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(ip[i..]);
        while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], (ushort)~sum);
        Span<byte> udp = ip[20..];
        BinaryPrimitives.WriteUInt16BigEndian(udp, reverse ? portB : portA);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], reverse ? portA : portB);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)(f.Length - 34));
    }

    public void Dispose()
    {
    }
}
