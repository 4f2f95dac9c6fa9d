using ZcFlow.Buffers;

namespace ZcFlow.Tests;

/// <summary>
/// The test packets of the multi-process tests: 64 bytes, a sequence number in the first 8 and a
/// pattern derived from it in the rest, so a consumer sees both a lost or repeated packet and a
/// packet whose bytes anybody changed.
/// </summary>
public static class Payload
{
    public const int Length = 64;

    public static void Stamp(PacketHandle p, long seq)
    {
        Span<byte> b = p.Buffer;
        BitConverter.TryWriteBytes(b, seq);
        for (int i = 8; i < Length; i++) b[i] = Pattern(seq, i);
        p.Length = Length;
    }

    public static bool IsIntact(ReadOnlySpan<byte> data)
    {
        if (data.Length != Length) return false;
        long seq = BitConverter.ToInt64(data);
        for (int i = 8; i < Length; i++)
            if (data[i] != Pattern(seq, i)) return false;
        return true;
    }

    private static byte Pattern(long seq, int i) => (byte)(seq * 31 + i * 7);
}
