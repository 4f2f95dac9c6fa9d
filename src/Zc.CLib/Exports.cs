using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ZcFlow.Buffers;
using ZcFlow.Ipc;
using ZcFlow.Native;
using ZcFlow.Queues;

namespace ZcFlow.CLib;

/// <summary>
/// The functions of <c>zcflow.h</c>. No exception crosses into C: each is caught, turned into a code and a message
/// the calling thread reads with <c>zcflow_error</c>.
/// </summary>
public static unsafe class Exports
{
    private const int Ok = 0, Invalid = -1, NotFound = -2, Busy = -3, Denied = -4, Gone = -5, Failed = -6;
    private const int MaxBurst = 256;

    // zcflow_packet
    [StructLayout(LayoutKind.Sequential)]
    private struct Packet
    {
        public byte* Data;
        public uint Length, WireLength;
        public long TimestampNs;
        public uint Hash, DeviceIndex, Flags, Buffer;
    }

    // What a zcflow_queue* stands for.
    private sealed class Consumer(AttachedQueue attached)
    {
        public readonly AttachedQueue Attached = attached;
        public readonly PacketHandle[] Received = new PacketHandle[MaxBurst];
        public readonly uint[] Released = new uint[MaxBurst];
        public CancellationTokenSource? Timeout;   // reused for waits with a time limit
        public bool WaitsOnDescriptor;             // zcflow_fd was asked for: each receive leaves the descriptor ready to wait on
    }

    [ThreadStatic] private static nint t_error;

    [UnmanagedCallersOnly(EntryPoint = "zcflow_attach")]
    private static int Attach(byte* name, int timeoutMs, nint* queue)
    {
        try
        {
            if (name is null || queue is null) return Fail(Invalid, "zcflow_attach: name and queue must not be NULL");
            if (timeoutMs < -1) return Fail(Invalid, $"zcflow_attach: timeout_ms {timeoutMs}: give -1 (forever), 0 or a number of milliseconds");
            string text = Marshal.PtrToStringUTF8((nint)name)!;
            TimeSpan wait = timeoutMs switch { -1 => System.Threading.Timeout.InfiniteTimeSpan, 0 => TimeSpan.FromSeconds(2), _ => TimeSpan.FromMilliseconds(timeoutMs) };
            AttachedQueue attached = AttachedQueue.Attach(text, wait, waitForOwner: timeoutMs != 0);
            *queue = GCHandle.ToIntPtr(GCHandle.Alloc(new Consumer(attached)));
            return Ok;
        }
        catch (Exception e)
        {
            return Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "zcflow_recv_burst")]
    private static int ReceiveBurst(nint queue, Packet* packets, int max, int timeoutMs)
    {
        try
        {
            if (From(queue, "zcflow_recv_burst") is not Consumer c) return Invalid;
            if (packets is null || max < 0) return Fail(Invalid, "zcflow_recv_burst: packets must not be NULL and max must not be negative");
            if (timeoutMs < -1) return Fail(Invalid, $"zcflow_recv_burst: timeout_ms {timeoutMs}: give -1 (forever), 0 or a number of milliseconds");
            QueueConsumer q = c.Attached.Queue;
            Span<PacketHandle> received = c.Received.AsSpan(0, Math.Min(max, MaxBurst));
            int n = q.ReceiveBurst(received);
            if (n == 0 && timeoutMs != 0 && !received.IsEmpty)
                n = q.ReceiveBurst(received, QueueWait.Passive, timeoutMs == -1 ? default : Deadline(c, timeoutMs));
            if (c.WaitsOnDescriptor) q.PrepareToWait();
            for (int i = 0; i < n; i++)
            {
                ref readonly PacketHandle p = ref received[i];
                Span<byte> data = p.Data;
                packets[i] = new Packet
                {
                    Data = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(data)),
                    Length = (uint)data.Length,
                    WireLength = (uint)p.WireLength,
                    TimestampNs = p.TimestampNs,
                    Hash = p.Hash,
                    DeviceIndex = p.DeviceIndex,
                    Flags = p.Flags,
                    Buffer = p.Index,
                };
            }
            return n;
        }
        catch (Exception e)
        {
            return Fail(e);
        }
    }

    // A token cancelled timeoutMs from now; the source is reused until a wait runs out on it.
    private static CancellationToken Deadline(Consumer c, int timeoutMs)
    {
        if (c.Timeout is null || !c.Timeout.TryReset())
        {
            c.Timeout?.Dispose();
            c.Timeout = new CancellationTokenSource();
        }
        c.Timeout.CancelAfter(timeoutMs);
        return c.Timeout.Token;
    }

    [UnmanagedCallersOnly(EntryPoint = "zcflow_fd")]
    private static int Descriptor(nint queue)
    {
        try
        {
            if (From(queue, "zcflow_fd") is not Consumer c) return Invalid;
            c.WaitsOnDescriptor = true;
            int fd = c.Attached.Queue.WaitDescriptor;
            c.Attached.Queue.PrepareToWait();
            return fd;
        }
        catch (Exception e)
        {
            return Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "zcflow_release_burst")]
    private static int ReleaseBurst(nint queue, Packet* packets, int count)
    {
        try
        {
            if (From(queue, "zcflow_release_burst") is not Consumer c) return Invalid;
            if (count < 0 || (packets is null && count != 0)) return Fail(Invalid, "zcflow_release_burst: packets must not be NULL and count must not be negative");
            for (int done = 0; done < count;)
            {
                int n = Math.Min(count - done, MaxBurst);
                for (int i = 0; i < n; i++) c.Released[i] = packets[done + i].Buffer;
                c.Attached.Queue.ReleaseBurst(c.Released.AsSpan(0, n));
                done += n;
            }
            return Ok;
        }
        catch (Exception e)
        {
            return Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "zcflow_stats")]
    private static int Stats(nint queue, QueueStats* stats)
    {
        try
        {
            if (From(queue, "zcflow_stats") is not Consumer c) return Invalid;
            if (stats is null) return Fail(Invalid, "zcflow_stats: stats must not be NULL");
            *stats = c.Attached.Queue.Stats;   // four ulongs, as zcflow_queue_stats
            return Ok;
        }
        catch (Exception e)
        {
            return Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "zcflow_detach")]
    private static void Detach(nint queue)
    {
        try
        {
            if (From(queue, "zcflow_detach") is not Consumer c) return;
            GCHandle.FromIntPtr(queue).Free();
            c.Timeout?.Dispose();
            c.Attached.Dispose();
        }
        catch (Exception e)
        {
            Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "zcflow_error")]
    private static byte* Error() => t_error == 0 ? (byte*)NoError : (byte*)t_error;

    private static readonly nint NoError = Marshal.StringToCoTaskMemUTF8("no error");

    private static Consumer? From(nint queue, string function)
    {
        if (queue == 0)
        {
            Fail(Invalid, $"{function}: queue is NULL");
            return null;
        }
        return (Consumer)GCHandle.FromIntPtr(queue).Target!;
    }

    private static int Fail(Exception e) => Fail(e switch
    {
        ClusterGoneException => Gone,
        QueueBusyException or TimeoutException => Busy,
        ArgumentOutOfRangeException => NotFound,       // a queue the cluster does not have
        ArgumentException => Invalid,                  // a name that is not a queue's
        ErrnoException { Errno: Libc.EACCES } => Denied,
        InvalidOperationException => NotFound,         // nobody serves the cluster
        _ => Failed,
    }, e.Message);

    private static int Fail(int code, string message)
    {
        nint old = t_error;
        t_error = Marshal.StringToCoTaskMemUTF8(message);
        if (old != 0) Marshal.FreeCoTaskMem(old);
        return code;
    }
}
