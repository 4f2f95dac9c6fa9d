using ZcFlow.Buffers;
using ZcFlow.Native;

namespace ZcFlow.Devices;

/// <summary>
/// The Linux network stack through a TAP interface, <c>stack:zc0</c> (PF_RING's <c>stack:</c> devices): a frame sent to the
/// device enters the stack as if it had been received on <c>zc0</c>, and what the stack sends out of <c>zc0</c> (replies,
/// ARP, anything routed there) is received from it. The device creates the interface (<c>IFF_TAP | IFF_NO_PI</c>) and
/// sets it up, or opens one made beforehand (<c>ip tuntap add zc0 mode tap</c>); one it created goes when it closes.
/// Addresses and routes are the user's (<c>ip addr add … dev zc0</c>). Each frame is one <c>read</c> (into its pool buffer) or
/// <c>write</c>, as the kernel's TAP interface allows.
/// </summary>
internal sealed unsafe class TapDevice : IPacketSource, IPacketSink
{
    private readonly SafeFileDescriptor _tap;
    private readonly BufferPool? _pool;
    private readonly uint _deviceIndex;
    private ulong _received, _bytes, _sent, _sendFailed, _noBuffer;

    private TapDevice(string name, string ifName, SafeFileDescriptor tap, BufferPool? pool, uint deviceIndex)
        => (Name, Interface, _tap, _pool, _deviceIndex) = (name, ifName, tap, pool, deviceIndex);

    public string Name { get; }

    /// <summary>The TAP interface's name.</summary>
    public string Interface { get; }

    public bool IsExhausted => false;

    public static bool IsName(string name) => name.StartsWith("stack:", StringComparison.Ordinal);

    /// <summary>Opens <c>stack:&lt;interface&gt;</c>; with a pool it receives into it, without one it only sends.</summary>
    public static TapDevice Open(string name, BufferPool? pool, uint deviceIndex = 0)
    {
        string ifName = name["stack:".Length..];
        if (ifName.Length is 0 or > 15 || ifName.Any(c => c is '/' or ':' or '?' or '@' || char.IsWhiteSpace(c)))
            throw new ArgumentException($"'{name}': write stack:<interface>, a TAP interface's name of 1 to 15 characters, for example stack:zc0", nameof(name));
        int fd = Libc.Open("/dev/net/tun", Libc.O_RDWR | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
        if (fd < 0) throw ErrnoException.FromLastError($"opening /dev/net/tun for '{name}'", "the kernel's TUN/TAP driver (the tun module) is needed");
        var tap = new SafeFileDescriptor(fd);
        try
        {
            var request = new IfReq { Flags = Libc.IFF_TAP | Libc.IFF_NO_PI };
            request.SetName(ifName);
            if (Libc.Ioctl(fd, Libc.TUNSETIFF, &request) != 0)
            {
                int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                throw new ErrnoException($"creating or opening the TAP interface '{ifName}' of '{name}'", errno, errno is Libc.EPERM or Libc.EACCES
                    ? $"a TAP interface is created with CAP_NET_ADMIN (run as root), or made beforehand for this user: ip tuntap add {ifName} mode tap user <user>"
                    : errno is Libc.EINVAL or Libc.EBUSY ? $"'{ifName}' exists and is not a TAP interface this process may open" : null);
            }
            SetUp(ifName);
            return new TapDevice(name, ifName, tap, pool, deviceIndex);
        }
        catch
        {
            tap.Dispose();
            throw;
        }
    }

    // The interface up, as a device that is opened is ready: an error only when it is down and cannot be brought up.
    private static void SetUp(string ifName)
    {
        var request = new IfReq();
        if (Interfaces.Ioctl(ifName, Libc.SIOCGIFFLAGS, ref request) is int read and not 0) throw new ErrnoException($"reading the flags of '{ifName}'", read);
        if ((request.Flags & Libc.IFF_UP) != 0) return;
        request.Flags |= Libc.IFF_UP;
        if (Interfaces.Ioctl(ifName, Libc.SIOCSIFFLAGS, ref request) is int set and not 0)
            throw new ErrnoException($"setting '{ifName}' up", set, $"bring it up first (ip link set {ifName} up), or run with CAP_NET_ADMIN");
    }

    /// <summary>Reads what the stack sent out of the interface, one frame a packet, until none is waiting or the burst is full.</summary>
    public int ReceiveBurst(Span<PacketHandle> packets)
    {
        if (_pool is null) return 0;
        int n = 0;
        ulong bytes = 0;
        while (n < packets.Length)
        {
            if (!_pool.TryGet(out PacketHandle p))
            {
                // Left in the interface's queue, where the kernel drops what overflows it.
                if (Device.Poll(_tap.Fd, 0)) Volatile.Write(ref _noBuffer, _noBuffer + 1);
                break;
            }
            // Straight into the buffer: a frame longer than the buffer (an MTU above the pool's) is cut to it.
            nint got;
            fixed (byte* buffer = p.Buffer) got = Libc.Read(_tap.Fd, buffer, (nuint)p.Capacity);
            if (got <= 0)
            {
                _pool.Release(p);
                break;
            }
            int length = (int)got;
            p.SetReceived(length, length, (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100, _deviceIndex);
            packets[n++] = p;
            bytes += (ulong)length;
        }
        if (n > 0)
        {
            Volatile.Write(ref _received, _received + (ulong)n);
            Volatile.Write(ref _bytes, _bytes + bytes);
        }
        return n;
    }

    /// <summary>Hands the frame to the stack as received on the interface, at once (there is nothing to flush).</summary>
    public bool TrySend(in PacketHandle packet)
    {
        ReadOnlySpan<byte> data = packet.Data;
        nint written;
        fixed (byte* frame = data) written = Libc.Write(_tap.Fd, frame, (nuint)data.Length);
        if (written != data.Length)
        {
            Volatile.Write(ref _sendFailed, _sendFailed + 1);
            return false;
        }
        Volatile.Write(ref _sent, _sent + 1);
        return true;
    }

    public void Flush(bool wait = false)
    {
    }

    public DeviceStats Stats => new(Volatile.Read(ref _received), Volatile.Read(ref _bytes), Volatile.Read(ref _noBuffer), 0, Volatile.Read(ref _sent), Volatile.Read(ref _sendFailed));

    public bool WaitReadable(int timeoutMs) => Device.Poll(_tap.Fd, timeoutMs);

    public void Dispose() => _tap.Dispose();

    public override string ToString() => Name;
}
