using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace ZcFlow.Flows;

/// <summary>How a <see cref="FlowEncoder"/> writes.</summary>
public sealed class FlowEncoderOptions
{
    /// <summary>9 for NetFlow v9 (RFC 3954), 10 for IPFIX (RFC 7011).</summary>
    public int Version { get; init; } = 10;

    /// <summary>The observation domain (IPFIX) or source id (NetFlow v9): distinct per exporter behind one collector.</summary>
    public uint ObservationDomain { get; init; }

    /// <summary>IPFIX only: one record for both directions, with RFC 5103's reverse elements; otherwise a record per direction.</summary>
    public bool Biflow { get; init; }

    /// <summary>The largest export packet (the UDP payload).</summary>
    public int MaxPacket { get; init; } = 1400;

    /// <summary>The templates go again after this many export packets…</summary>
    public int TemplateEveryPackets { get; init; } = 20;

    /// <summary>…or this long after they last went (by the flows' clock), whichever comes first.</summary>
    public long TemplateEveryNs { get; init; } = 60_000_000_000;
}

/// <summary>
/// Writes flows as NetFlow v9 or IPFIX: one template each for IPv4 and IPv6 flows (addresses, ports,
/// protocol, TCP flags, packets, octets, VLAN, start and end; IPFIX adds the end reason, and with
/// <see cref="FlowEncoderOptions.Biflow"/> RFC 5103's reverse counters), sent again by packet count and
/// by time; export packets no larger than <see cref="FlowEncoderOptions.MaxPacket"/>; sequence numbers
/// as each protocol counts them (v9: export packets, IPFIX: data records). Each packet goes to the
/// sender given (<see cref="Udp"/>, or IPFIX over <see cref="Tcp"/>); one that fails loses its records, counted, and nothing waits. Times are the flows'
/// own (from the packets), so a capture file exports the same bytes at any replay speed.
/// </summary>
public sealed class FlowEncoder : IFlowExport
{
    private const ushort TemplateV4 = 256, TemplateV6 = 257;
    private const uint ReversePen = 29305;   // RFC 5103's enterprise number for reverse elements
    private readonly FlowEncoderOptions _options;
    private readonly Func<ReadOnlyMemory<byte>, bool> _send;
    private readonly byte[] _packet;
    private readonly int _header;
    private readonly (ushort Id, int Length, bool Reverse)[] _v4, _v6;
    private readonly int _v4Size, _v6Size;
    private int _length, _setStart = -1, _setId, _records, _dataRecords, _packetsSinceTemplate;
    private bool _templatesDue = true;
    private uint _sequence;
    private long _baseNs, _nowNs, _templateNs;
    private ulong _recordsSent, _recordsDropped, _packetsSent, _packetsDropped;

    /// <param name="options">The format, templates and identity of the export.</param>
    /// <param name="send">Sends one export packet; false when it could not.</param>
    public FlowEncoder(FlowEncoderOptions options, Func<ReadOnlyMemory<byte>, bool> send)
    {
        if (options.Version is not (9 or 10)) throw new ArgumentOutOfRangeException(nameof(options), options.Version, "the version is 9 (NetFlow v9) or 10 (IPFIX)");
        if (options.Biflow && options.Version != 10) throw new ArgumentException("biflows are IPFIX's (RFC 5103): use version 10", nameof(options));
        _options = options;
        _send = send;
        _header = options.Version == 9 ? 20 : 16;
        _v4 = [.. Fields(4)];
        _v6 = [.. Fields(6)];
        _v4Size = _v4.Sum(f => f.Length);
        _v6Size = _v6.Sum(f => f.Length);
        if (options.MaxPacket < _header + 4 + TemplateSetSize() || options.MaxPacket > 65_000)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxPacket, $"an export packet takes at least the header and the templates ({_header + 4 + TemplateSetSize()} bytes), and at most 65000");
        _packet = new byte[options.MaxPacket];
    }

    /// <summary>
    /// An encoder that sends each packet over UDP to <paramref name="collector"/>, never waiting for the socket;
    /// with <paramref name="packetsPerSecond"/>, no faster than that (the caller waits between packets when a burst
    /// of flows ends at once: a collector's socket overflows, unseen by the sender, when packets come faster than it reads).
    /// </summary>
    public static FlowEncoder Udp(FlowEncoderOptions options, IPEndPoint collector, long packetsPerSecond = 0)
    {
        var socket = new Socket(collector.AddressFamily, SocketType.Dgram, ProtocolType.Udp) { Blocking = false };
        socket.Connect(collector);
        long started = System.Diagnostics.Stopwatch.GetTimestamp(), sent = 0;
        return new FlowEncoder(options, packet =>
        {
            if (packetsPerSecond > 0)
            {
                long due = started + sent++ * System.Diagnostics.Stopwatch.Frequency / packetsPerSecond;
                while (System.Diagnostics.Stopwatch.GetTimestamp() < due) Thread.Sleep(0);
                if (System.Diagnostics.Stopwatch.GetTimestamp() - due > System.Diagnostics.Stopwatch.Frequency) (started, sent) = (System.Diagnostics.Stopwatch.GetTimestamp(), 1);   // no credit for a quiet second
            }
            try
            {
                return socket.Send(packet.Span, SocketFlags.None) == packet.Length;
            }
            catch (SocketException)
            {
                return false;   // a full socket buffer, or the collector's port unreachable (an ICMP error from an earlier packet)
            }
        });
    }

    /// <summary>
    /// An encoder that sends IPFIX messages over TCP to <paramref name="collector"/> (RFC 7011, section 10.4), never
    /// waiting once started: it connects before it returns (for up to a second), and again in the background, each
    /// second, after the connection is lost; each new connection gets the templates first. A message goes whole or
    /// not at all: one that finds no connection, or no room in the socket while the rest of an earlier one still
    /// waits there, loses its records, counted; so the stream always holds whole messages.
    /// </summary>
    public static FlowEncoder Tcp(FlowEncoderOptions options, IPEndPoint collector)
    {
        if (options.Version != 10) throw new ArgumentException("over TCP, flows go as IPFIX (version 10): NetFlow v9 is UDP's", nameof(options));
        Socket? socket = null;
        byte[] pending = new byte[options.MaxPacket];
        int pendingStart = 0, pendingEnd = 0;
        long nextAttempt = 0;
        FlowEncoder? encoder = null;
        bool Connect(bool wait)
        {
            socket?.Dispose();
            socket = new Socket(collector.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                if (wait)
                {
                    IAsyncResult connecting = socket.BeginConnect(collector, null, null);
                    if (!connecting.AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(1))) throw new SocketException((int)SocketError.TimedOut);
                    socket.EndConnect(connecting);
                }
                else
                {
                    socket.Blocking = false;
                    socket.Connect(collector);
                }
            }
            catch (SocketException e) when (!wait && e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
            {
                // connecting: finished (or not) by the time of a later message
            }
            catch (SocketException)
            {
                socket.Dispose();
                socket = null;
                nextAttempt = System.Diagnostics.Stopwatch.GetTimestamp() + System.Diagnostics.Stopwatch.Frequency;
                return false;
            }
            socket.Blocking = false;
            pendingStart = pendingEnd = 0;
            encoder?.ResendTemplates();
            return true;
        }
        bool Drain()
        {
            while (pendingStart < pendingEnd)
            {
                int n = socket!.Send(pending.AsSpan(pendingStart, pendingEnd - pendingStart), SocketFlags.None, out SocketError error);
                if (error == SocketError.WouldBlock) return false;
                if (error != SocketError.Success) throw new SocketException((int)error);
                pendingStart += n;
            }
            return true;
        }
        Connect(wait: true);
        encoder = new FlowEncoder(options, message =>
        {
            if (socket is null && (System.Diagnostics.Stopwatch.GetTimestamp() < nextAttempt || !Connect(wait: false))) return false;
            try
            {
                if (!socket!.Poll(0, SelectMode.SelectWrite) || !Drain()) return false;
                int n = socket.Send(message.Span, SocketFlags.None, out SocketError error);
                if (error == SocketError.WouldBlock) return false;
                if (error != SocketError.Success) throw new SocketException((int)error);
                if (n < message.Length)
                {
                    // Part of it went: the rest waits, and goes before anything else, so the collector sees it whole.
                    message.Span[n..].CopyTo(pending);
                    (pendingStart, pendingEnd) = (0, message.Length - n);
                }
                return true;
            }
            catch (SocketException)
            {
                socket!.Dispose();
                socket = null;
                nextAttempt = System.Diagnostics.Stopwatch.GetTimestamp() + System.Diagnostics.Stopwatch.Frequency;
                return false;
            }
        });
        return encoder;
    }

    /// <summary>The next export packet starts with the templates (a transport's new connection).</summary>
    public void ResendTemplates() => _templatesDue = true;

    /// <summary>Flow records in export packets that went.</summary>
    public ulong RecordsSent => Volatile.Read(ref _recordsSent);

    /// <summary>Flow records in export packets that could not be sent.</summary>
    public ulong RecordsDropped => Volatile.Read(ref _recordsDropped);

    public ulong PacketsSent => Volatile.Read(ref _packetsSent);

    public ulong PacketsDropped => Volatile.Read(ref _packetsDropped);

    private IEnumerable<(ushort Id, int Length, bool Reverse)> Fields(int ipVersion)
    {
        bool v9 = _options.Version == 9;
        int address = ipVersion == 4 ? 4 : 16;
        yield return (ipVersion == 4 ? (ushort)8 : (ushort)27, address, false);   // source address
        yield return (ipVersion == 4 ? (ushort)12 : (ushort)28, address, false);  // destination address
        yield return (7, 2, false);      // source port
        yield return (11, 2, false);     // destination port
        yield return (4, 1, false);      // protocol
        yield return (6, 1, false);      // TCP flags
        yield return (2, 8, false);      // packets
        yield return (1, 8, false);      // octets
        yield return (58, 2, false);     // VLAN id
        // ICMP's type * 256 + code (0 for other protocols), where collectors read it: ICMP_TYPE in v9, icmpTypeCodeIPv4 or
        // icmpTypeCodeIPv6 in IPFIX (nfdump shows it as the destination port, 3.3).
        yield return (ipVersion == 4 || v9 ? (ushort)32 : (ushort)139, 2, false);
        if (v9)
        {
            yield return (22, 4, false); // FIRST_SWITCHED, milliseconds of system uptime
            yield return (21, 4, false); // LAST_SWITCHED
            yield break;
        }
        yield return (152, 8, false);    // flowStartMilliseconds
        yield return (153, 8, false);    // flowEndMilliseconds
        yield return (136, 1, false);    // flowEndReason
        if (!_options.Biflow) yield break;
        yield return (6, 1, true);
        yield return (2, 8, true);
        yield return (1, 8, true);
        yield return (152, 8, true);
        yield return (153, 8, true);
    }

    private int TemplateSetSize() => 4 + 2 * 4 + (_v4.Length + _v6.Length) * 4 + (_v4.Count(f => f.Reverse) + _v6.Count(f => f.Reverse)) * 4;

    /// <summary>Adds a flow (its two directions as two records, unless biflows); sends the packet when it is full.</summary>
    public void Export(in FlowRecord flow)
    {
        _nowNs = Math.Max(_nowNs, Math.Max(flow.LastNs, flow.ReverseLastNs));
        if (_baseNs == 0) _baseNs = flow.FirstNs - 86_400_000_000_000;   // v9's uptime: from a day before the first flow
        if (flow.Packets != 0) Write(flow, reverse: false);
        if (!_options.Biflow && flow.ReversePackets != 0) Write(flow, reverse: true);
    }

    /// <summary>Sends what is written so far (call it at the end, and now and then, so records do not wait long).</summary>
    public void Flush()
    {
        if (_records == 0) return;
        CloseSet();
        Span<byte> h = _packet;
        BinaryPrimitives.WriteUInt16BigEndian(h, (ushort)_options.Version);
        long now = Math.Max(_nowNs, _baseNs);
        if (_options.Version == 9)
        {
            BinaryPrimitives.WriteUInt16BigEndian(h[2..], (ushort)_records);
            BinaryPrimitives.WriteUInt32BigEndian(h[4..], Uptime(now));
            BinaryPrimitives.WriteUInt32BigEndian(h[8..], (uint)(now / 1_000_000_000));
            BinaryPrimitives.WriteUInt32BigEndian(h[12..], _sequence++);
            BinaryPrimitives.WriteUInt32BigEndian(h[16..], _options.ObservationDomain);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(h[2..], (ushort)_length);
            BinaryPrimitives.WriteUInt32BigEndian(h[4..], (uint)(now / 1_000_000_000));
            BinaryPrimitives.WriteUInt32BigEndian(h[8..], _sequence);
            BinaryPrimitives.WriteUInt32BigEndian(h[12..], _options.ObservationDomain);
            _sequence += (uint)_dataRecords;
        }
        if (_send(_packet.AsMemory(0, _length)))
        {
            _packetsSent++;
            _recordsSent += (ulong)_dataRecords;
        }
        else
        {
            _packetsDropped++;
            _recordsDropped += (ulong)_dataRecords;
        }
        _length = 0;
        _records = 0;
        _dataRecords = 0;
    }

    private uint Uptime(long ns) => (uint)((ns - _baseNs) / 1_000_000);

    private void Write(in FlowRecord flow, bool reverse)
    {
        ushort template = flow.IpVersion == 4 ? TemplateV4 : TemplateV6;
        int size = flow.IpVersion == 4 ? _v4Size : _v6Size;
        if (_length == 0) Begin();
        if (_setId != template && _length + 4 + size + 3 > _packet.Length || _length + size > _packet.Length)
        {
            Flush();
            Begin();
        }
        if (_setId != template)
        {
            CloseSet();
            _setStart = _length;
            _setId = template;
            _length += 4;
        }
        Span<byte> r = _packet.AsSpan(_length, size);
        if (Record(r, flow, reverse) != size) throw new InvalidOperationException("a record's fields and its template's differ");
        _length += size;
        _records++;
        _dataRecords++;
    }

    // One data record, straight through, in the order of Fields (checked by its length against the template's, and by the
    // collectors in the tests): a record per flow direction is the encoder's whole work, so no field is looked up.
    // Returns its length.
    private int Record(Span<byte> r, in FlowRecord flow, bool reverse)
    {
        int at;
        if (flow.IpVersion == 4)
        {
            BinaryPrimitives.WriteUInt32BigEndian(r, (uint)(reverse ? flow.DestinationAddress : flow.SourceAddress));
            BinaryPrimitives.WriteUInt32BigEndian(r[4..], (uint)(reverse ? flow.SourceAddress : flow.DestinationAddress));
            at = 8;
        }
        else
        {
            BinaryPrimitives.WriteUInt128BigEndian(r, reverse ? flow.DestinationAddress : flow.SourceAddress);
            BinaryPrimitives.WriteUInt128BigEndian(r[16..], reverse ? flow.SourceAddress : flow.DestinationAddress);
            at = 32;
        }
        BinaryPrimitives.WriteUInt16BigEndian(r[at..], reverse ? flow.DestinationPort : flow.SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(r[(at + 2)..], reverse ? flow.SourcePort : flow.DestinationPort);
        r[at + 4] = flow.Protocol;
        r[at + 5] = reverse ? flow.ReverseTcpFlags : flow.TcpFlags;
        BinaryPrimitives.WriteUInt64BigEndian(r[(at + 6)..], reverse ? flow.ReversePackets : flow.Packets);
        BinaryPrimitives.WriteUInt64BigEndian(r[(at + 14)..], reverse ? flow.ReverseBytes : flow.Bytes);
        BinaryPrimitives.WriteUInt16BigEndian(r[(at + 22)..], flow.Vlan);
        BinaryPrimitives.WriteUInt16BigEndian(r[(at + 24)..], flow.Protocol is 1 or 58 ? flow.DestinationPort : (ushort)0);   // the flow's type and code
        at += 26;
        long first = reverse ? flow.ReverseFirstNs : flow.FirstNs, last = reverse ? flow.ReverseLastNs : flow.LastNs;
        if (_options.Version == 9)
        {
            BinaryPrimitives.WriteUInt32BigEndian(r[at..], Uptime(first));
            BinaryPrimitives.WriteUInt32BigEndian(r[(at + 4)..], Uptime(last));
            return at + 8;
        }
        BinaryPrimitives.WriteUInt64BigEndian(r[at..], (ulong)(first / 1_000_000));
        BinaryPrimitives.WriteUInt64BigEndian(r[(at + 8)..], (ulong)(last / 1_000_000));
        r[at + 16] = (byte)flow.End;
        at += 17;
        if (!_options.Biflow) return at;
        // The reverse direction's (a biflow is one record: reverse is false here).
        r[at] = flow.ReverseTcpFlags;
        BinaryPrimitives.WriteUInt64BigEndian(r[(at + 1)..], flow.ReversePackets);
        BinaryPrimitives.WriteUInt64BigEndian(r[(at + 9)..], flow.ReverseBytes);
        BinaryPrimitives.WriteUInt64BigEndian(r[(at + 17)..], (ulong)(flow.ReverseFirstNs / 1_000_000));
        BinaryPrimitives.WriteUInt64BigEndian(r[(at + 25)..], (ulong)(flow.ReverseLastNs / 1_000_000));
        return at + 33;
    }

    // A new packet: its header's room, and the templates when they are due.
    private void Begin()
    {
        _length = _header;
        _setStart = -1;
        _setId = 0;
        if (!_templatesDue && ++_packetsSinceTemplate < _options.TemplateEveryPackets && _nowNs - _templateNs < _options.TemplateEveryNs) return;
        _templatesDue = false;
        _packetsSinceTemplate = 0;
        _templateNs = _nowNs;
        Span<byte> p = _packet;
        int start = _length;
        BinaryPrimitives.WriteUInt16BigEndian(p[start..], (ushort)(_options.Version == 9 ? 0 : 2));
        _length += 4;
        foreach ((ushort template, (ushort Id, int Length, bool Reverse)[] fields) in ((ushort, (ushort, int, bool)[])[])[(TemplateV4, _v4), (TemplateV6, _v6)])
        {
            BinaryPrimitives.WriteUInt16BigEndian(p[_length..], template);
            BinaryPrimitives.WriteUInt16BigEndian(p[(_length + 2)..], (ushort)fields.Length);
            _length += 4;
            foreach ((ushort id, int length, bool reverse) in fields)
            {
                BinaryPrimitives.WriteUInt16BigEndian(p[_length..], reverse ? (ushort)(id | 0x8000) : id);
                BinaryPrimitives.WriteUInt16BigEndian(p[(_length + 2)..], (ushort)length);
                _length += 4;
                if (!reverse) continue;
                BinaryPrimitives.WriteUInt32BigEndian(p[_length..], ReversePen);
                _length += 4;
            }
            _records++;
        }
        BinaryPrimitives.WriteUInt16BigEndian(p[(start + 2)..], (ushort)(_length - start));
    }

    // Ends the data set being written: padded to four bytes (NetFlow v9 asks for it; IPFIX allows it), its length filled in.
    private void CloseSet()
    {
        if (_setStart < 0) return;
        while ((_length - _setStart) % 4 != 0) _packet[_length++] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(_packet.AsSpan(_setStart), (ushort)_setId);
        BinaryPrimitives.WriteUInt16BigEndian(_packet.AsSpan(_setStart + 2), (ushort)(_length - _setStart));
        _setStart = -1;
        _setId = 0;
    }
}
