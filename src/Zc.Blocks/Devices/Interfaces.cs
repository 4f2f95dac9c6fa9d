using ZcFlow.Native;

namespace ZcFlow.Devices;

/// <summary>What the devices ask of an interface beyond its index.</summary>
internal static unsafe class Interfaces
{
    /// <summary>
    /// The receive queues <paramref name="ifName"/> has now: the driver's channel counts (ethtool's, receive and combined),
    /// read through a socket of the calling thread's network namespace; where the driver does not say, the queues in
    /// <c>/sys/class/net</c>, and 1 where neither does.
    /// </summary>
    public static int RxQueues(string ifName)
    {
        var channels = new EthtoolChannels { Command = Libc.ETHTOOL_GCHANNELS };
        var request = new IfReq { Data = &channels };
        if (Ioctl(ifName, Libc.SIOCETHTOOL, ref request) == 0 && channels.Rx + channels.Combined > 0) return (int)(channels.Rx + channels.Combined);
        string dir = $"/sys/class/net/{ifName}/queues";
        return Directory.Exists(dir) ? Math.Max(1, Directory.GetDirectories(dir, "rx-*").Length) : 1;
    }

    /// <summary>
    /// An interface ioctl (<c>SIOCGIFFLAGS</c>, <c>SIOCETHTOOL</c>…) on <paramref name="ifName"/> through a socket of the calling
    /// thread's network namespace; 0, or the errno.
    /// </summary>
    public static int Ioctl(string ifName, nuint command, ref IfReq request)
    {
        int fd = Libc.Socket(Libc.AF_UNIX, 2 /* SOCK_DGRAM */ | Libc.SOCK_CLOEXEC, 0);
        if (fd < 0) return System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        try
        {
            request.SetName(ifName);
            fixed (IfReq* r = &request)
                return Libc.Ioctl(fd, command, r) == 0 ? 0 : System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        }
        finally
        {
            Libc.Close(fd);
        }
    }
}
