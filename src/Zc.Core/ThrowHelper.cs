using System.Diagnostics.CodeAnalysis;

namespace ZcFlow;

/// <summary>Throws for the hot paths, so that they stay small enough to inline.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void LengthOutOfRange(int length, uint capacity)
        => throw new ArgumentOutOfRangeException(nameof(length), length, $"a packet length must be between 0 and the buffer capacity, {capacity}");

    [DoesNotReturn]
    public static void ForeignBuffer(uint index)
        => throw new ArgumentException($"buffer {index} does not belong to this pool", "packet");

    [DoesNotReturn]
    public static void NotOwned(uint index)
        => throw new InvalidOperationException($"buffer {index} is not handed out by this pool: released twice, or never taken");

    [DoesNotReturn]
    public static void Disposed(string what) => throw new ObjectDisposedException(what);
}
