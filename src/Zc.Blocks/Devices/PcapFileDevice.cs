using System.Diagnostics;
using ZcFlow.Buffers;

namespace ZcFlow.Devices;

/// <summary>
/// A capture file as a packet source, <c>pcap:&lt;file&gt;[?loop&amp;pace]</c> or a name ending in
/// <c>.pcap</c>/<c>.pcapng</c>: each record copied once from the mapped file into a pool buffer
/// (cut to the buffer size if longer), with its timestamp. At top speed by default; with
/// <c>pace</c> at the pace it was recorded; with <c>loop</c> from the start again at the end.
/// A file never drops: when the pool is empty it waits. A damaged file ends where the damage
/// starts (<see cref="Problem"/>).
/// </summary>
public sealed class PcapFileDevice : IPacketSource
{
    private readonly CaptureFile _file;
    private readonly BufferPool _pool;
    private readonly uint _index;
    private readonly bool _loop;
    private readonly bool _pace;
    private long _firstTimestamp = -1;
    private long _startTicks;
    private bool _ended;
    private ulong _received, _bytes;

    private PcapFileDevice(string name, CaptureFile file, BufferPool pool, uint index, bool loop, bool pace)
    {
        Name = name;
        _file = file;
        _pool = pool;
        _index = index;
        _loop = loop;
        _pace = pace;
    }

    /// <summary>Opens <c>pcap:&lt;file&gt;[?loop&amp;pace]</c> or <c>&lt;file&gt;.pcap[ng][?…]</c>.</summary>
    public static PcapFileDevice Open(string name, BufferPool pool, uint index)
    {
        string spec = name.StartsWith("pcap:", StringComparison.Ordinal) ? name[5..] : name;
        string[] parts = spec.Split('?', 2);
        bool loop = false, pace = false;
        if (parts.Length == 2)
            foreach (string option in parts[1].Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                if (option == "loop") loop = true;
                else if (option == "pace") pace = true;
                else throw new ArgumentException($"'{name}': unknown option '{option}' (loop, pace)", nameof(name));
            }
        return new PcapFileDevice(name, CaptureFile.Open(parts[0]), pool, index, loop, pace);
    }

    public string Name { get; }

    public bool IsExhausted => _ended;

    /// <summary>Why the file ended early, or null.</summary>
    public string? Problem => _file.Problem;

    public Parsing.LinkType LinkType => _file.LinkType;

    public Parsing.LinkType Link => _file.LinkType;

    /// <summary>
    /// The mapped file, for a reader that takes its records in place (<see cref="CaptureFile.ReadBurst"/>) rather than copied into
    /// buffers: null with <c>loop</c> or <c>pace</c>, which only the device does. Read from it or from the device, not both.
    /// </summary>
    public CaptureFile? InPlace => _loop || _pace ? null : _file;

    public DeviceStats Stats => new(Volatile.Read(ref _received), Volatile.Read(ref _bytes), 0);

    public int ReceiveBurst(Span<PacketHandle> packets)
    {
        if (_ended) return 0;
        int n = _pool.GetBurst(packets);
        int got = 0;
        ulong bytes = 0;
        while (got < n)
        {
            if (!_file.TryNext(out ReadOnlySpan<byte> data, out long timestamp, out Parsing.LinkType link))
            {
                if (_loop && _file.Problem is null && _received + (ulong)got > 0)
                {
                    _file.Rewind();
                    _firstTimestamp = -1;
                    continue;
                }
                _ended = true;
                break;
            }
            if (_pace && !DueNow(timestamp))
            {
                _file.StepBack();
                break;
            }
            PacketHandle p = packets[got++];
            int length = Math.Min(data.Length, p.Capacity);
            data[..length].CopyTo(p.Buffer);
            p.SetReceived(length, _file.WireLength, timestamp, _index, (uint)link);
            bytes += (ulong)length;
        }
        _pool.ReleaseBurst(packets[got..n]);
        if (got != 0)
        {
            Volatile.Write(ref _received, _received + (ulong)got);
            Volatile.Write(ref _bytes, _bytes + bytes);
        }
        return got;
    }

    // At recorded pace, a packet is due once as much time has passed since the first one as
    // separated their timestamps.
    private bool DueNow(long timestamp)
    {
        long now = Stopwatch.GetTimestamp();
        if (_firstTimestamp < 0)
        {
            _firstTimestamp = timestamp;
            _startTicks = now;
            return true;
        }
        double elapsedNs = (now - _startTicks) * (1e9 / Stopwatch.Frequency);
        return timestamp - _firstTimestamp <= elapsedNs;
    }

    public void Dispose() => _file.Dispose();
}
