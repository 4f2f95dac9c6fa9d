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
        int fd = Libc.Socket(Libc.AF_UNIX, 2 /* SOCK_DGRAM */ | Libc.SOCK_CLOEXEC, 0);
        if (fd >= 0)
        {
            try
            {
                var channels = new EthtoolChannels { Command = Libc.ETHTOOL_GCHANNELS };
                var request = new IfReq { Data = &channels };
                request.SetName(ifName);
                if (Libc.Ioctl(fd, Libc.SIOCETHTOOL, &request) == 0 && channels.Rx + channels.Combined > 0) return (int)(channels.Rx + channels.Combined);
            }
            finally
            {
                Libc.Close(fd);
            }
        }
        string dir = $"/sys/class/net/{ifName}/queues";
        return Directory.Exists(dir) ? Math.Max(1, Directory.GetDirectories(dir, "rx-*").Length) : 1;
    }
}
