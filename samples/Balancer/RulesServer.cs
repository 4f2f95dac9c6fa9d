using System.Buffers.Binary;
using System.Net;
using NetMQ;
using NetMQ.Sockets;
using ZcFlow.Filters;

namespace ZcFlow.Samples;

/// <summary>
/// zbalance_ipc's <c>-Z</c>: a ZeroMQ reply socket that takes pass/drop rules by IP address, in the
/// message format of PF_RING's <c>userland/examples_zc/zmq</c> client, so that client (or any that
/// speaks the format) drives this balancer unchanged. A request is an 8-byte header (request id,
/// rule count, magic 0x01032017; little-endian) and up to 64 rules of 20 bytes (flags: bit 0 IPv4,
/// bit 1 source address, bit 2 both directions, bit 3 accept, bit 4 remove; a lifetime in seconds,
/// 0 for ever; the address in network order), the whole XORed with the format's fixed key. The reply
/// is <c>OK</c>, <c>ERROR</c> (a rule was refused: the table is full, or the message is cut short), or
/// <c>DECODING ERROR</c> (the magic did not come out). Each change publishes a new <see cref="IpRules"/>,
/// and rules are taken out within a second of their lifetime's end.
/// </summary>
internal sealed class RulesServer : IDisposable
{
    public const string DefaultEndpoint = "tcp://127.0.0.1:5555";
    private const uint Magic = 0x01032017;
    private const int HeaderSize = 8, RuleSize = 20, MaxRulesPerMessage = 64, MaxRules = 65536;
    private static readonly byte[] Key = "kasjfha 98748213^%@^&%#!^&532165^%#@^&tehshj^@&*#@^"u8.ToArray();

    private readonly Dictionary<(bool Source, byte Version, UInt128 Address), (bool Accept, long Expires)> _rules = [];
    private readonly bool _acceptByDefault;
    private readonly Action<IpRules> _publish;
    private readonly ResponseSocket _socket;
    private readonly Thread _thread;
    private readonly CancellationTokenSource _stop = new();

    /// <param name="publish">Called, on the server's thread, with each new set of rules.</param>
    public RulesServer(string endpoint, bool acceptByDefault, Action<IpRules> publish)
    {
        _acceptByDefault = acceptByDefault;
        _publish = publish;
        _socket = new ResponseSocket();
        try
        {
            _socket.Bind(endpoint);
        }
        catch (Exception e) when (e is NetMQException or ArgumentException)
        {
            _socket.Dispose();
            throw new ArgumentException($"-E {endpoint}: cannot listen there ({e.Message.Trim()})", e);
        }
        publish(Current());
        _thread = new Thread(Serve) { IsBackground = true, Name = "rules server" };
        _thread.Start();
    }

    private static long Now => Environment.TickCount64 / 1000;

    private IpRules Current() => new(_acceptByDefault, _rules.Select(r => new IpRule(r.Key.Version, r.Key.Address, r.Key.Source, r.Value.Accept)));

    private void Serve()
    {
        long nextExpiry = Now + 1;
        while (!_stop.IsCancellationRequested)
        {
            if (_socket.TryReceiveFrameBytes(TimeSpan.FromMilliseconds(100), out byte[]? request))
            {
                string reply;
                lock (_rules)
                {
                    reply = Apply(request);
                    _publish(Current());
                }
                _socket.SendFrame(reply);
            }
            if (Now >= nextExpiry)
            {
                nextExpiry = Now + 1;
                lock (_rules)
                {
                    int before = _rules.Count;
                    foreach (var r in _rules.Where(r => r.Value.Expires <= Now).ToList()) _rules.Remove(r.Key);
                    if (_rules.Count != before) _publish(Current());
                }
            }
        }
    }

    /// <summary>Applies one request; returns the reply.</summary>
    private string Apply(byte[] message)
    {
        for (int i = 0; i < message.Length; i++) message[i] ^= Key[i % Key.Length];
        if (message.Length < HeaderSize || BinaryPrimitives.ReadUInt32LittleEndian(message.AsSpan(4)) != Magic) return "DECODING ERROR";
        int count = BinaryPrimitives.ReadUInt16LittleEndian(message.AsSpan(2));
        bool ok = count <= MaxRulesPerMessage && message.Length >= HeaderSize + count * RuleSize;
        for (int i = 0; i < Math.Min(count, (message.Length - HeaderSize) / RuleSize) && i < MaxRulesPerMessage; i++)
        {
            ReadOnlySpan<byte> rule = message.AsSpan(HeaderSize + i * RuleSize, RuleSize);
            byte flags = rule[0];
            bool v4 = (flags & 1) != 0, source = (flags & 2) != 0, both = (flags & 4) != 0, accept = (flags & 8) != 0, remove = (flags & 16) != 0;
            int lifetime = BinaryPrimitives.ReadUInt16LittleEndian(rule[2..]);
            UInt128 address = v4 ? BinaryPrimitives.ReadUInt32BigEndian(rule[4..]) : BinaryPrimitives.ReadUInt128BigEndian(rule[4..]);
            byte version = v4 ? (byte)4 : (byte)6;
            foreach (bool side in (bool[])[true, false])
            {
                if (!both && side != source) continue;
                var key = (side, version, address);
                if (remove) _rules.Remove(key);
                else if (_rules.Count < MaxRules || _rules.ContainsKey(key)) _rules[key] = (accept, lifetime == 0 ? long.MaxValue : Now + lifetime);
                else ok = false;
            }
        }
        return ok ? "OK" : "ERROR";
    }

    /// <summary>The rules in force, one a line, as zbalance_ipc prints them on SIGHUP.</summary>
    public List<string> Describe()
    {
        long now = Now;
        lock (_rules)
        {
            return [.. _rules.Select(r =>
            {
                byte[] bytes = new byte[16];
                BinaryPrimitives.WriteUInt128BigEndian(bytes, r.Key.Address);
                var ip = new IPAddress(r.Key.Version == 4 ? bytes[12..] : bytes);
                string lifetime = r.Value.Expires == long.MaxValue ? "forever" : $"{Math.Max(r.Value.Expires - now, 0)}s";
                return $"{(r.Key.Source ? "src" : "dst")} IPv{r.Key.Version} {ip} {(r.Value.Accept ? "PASS" : "DROP")} [lifetime {lifetime}]";
            })];
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _thread.Join();
        _socket.Dispose();
        NetMQConfig.Cleanup(block: false);
    }
}
