using System.Runtime.InteropServices;

namespace ZcFlow.Ipc;

/// <summary>What a process asks of a cluster's owner over its socket: a queue to consume, or a look at the counters.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct AttachRequest
{
    public const uint CurrentMagic = 0x5143_5A41; // "AZCQ"
    public const uint Attach = 1, Monitor = 2;

    public uint Magic;
    public uint Version;
    public uint Kind;
    public int Queue;
}

/// <summary>
/// The owner's answer: the layout the handed memory has, or why there is none. With an
/// accepted attach come three descriptors: the cluster memory (read-only), the queue's own memory and the read end of its
/// wake-up pipe; then one per piece of the cluster memory that has memory of its own (the ingress queues' spares), read-only
/// but for an ingress queue's own, which its application fills. With a monitor request, the cluster memory alone.
/// The owner later sends <see cref="Closing"/> once, when it shuts the cluster down.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct AttachReply
{
    public const uint CurrentMagic = 0x5243_5A41; // "AZCR"
    public const uint ClosingMagic = 0x4343_5A41; // "AZCC"
    public const int Ok = 0, NoQueue = 1, Busy = 2, Draining = 3, BadRequest = 4, Internal = 5, NotReady = 6;
    public const int MessageCapacity = 240;
    /// <summary>Pieces of the cluster memory that have memory of their own: one per ingress queue at most.</summary>
    public const int MaxPieces = Memory.ArenaLayout.MaxQueues;

    public uint Magic;
    public uint Version;
    public int Status;
    public uint ClusterId;
    public ulong Generation;
    public ulong ClusterSize;
    public uint BufferStride;
    public uint BufferCapacity;
    public uint BufferCount;
    public uint Flags;
    public uint Role;
    public uint Capacity;
    public uint RecycleCapacity;
    public int QueueCount;
    public ulong QueueSize;
    public int MessageLength;
    public fixed byte Message[MessageCapacity];
    /// <summary>The pieces (an ingress queue's spares each) whose descriptors follow the first three, by address.</summary>
    public int PieceCount;
    /// <summary>The piece handed over read-write (an ingress queue's own spares), or -1.</summary>
    public int WritablePiece;
    public fixed ulong PieceOffset[MaxPieces];
    public fixed ulong PieceLength[MaxPieces];

    public static AttachReply Closing => new() { Magic = ClosingMagic };

    public string Text
    {
        get
        {
            fixed (byte* m = Message) return System.Text.Encoding.UTF8.GetString(m, Math.Clamp(MessageLength, 0, MessageCapacity));
        }
        set
        {
            byte[] bytes = System.Text.Encoding.UTF8.GetBytes(value);
            MessageLength = Math.Min(bytes.Length, MessageCapacity);
            fixed (byte* m = Message) bytes.AsSpan(0, MessageLength).CopyTo(new Span<byte>(m, MessageCapacity));
        }
    }
}
