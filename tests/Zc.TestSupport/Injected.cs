using System.Diagnostics;
using ZcFlow.Buffers;
using ZcFlow.Queues;

namespace ZcFlow.Tests;

/// <summary>The owner's side of the test host's <c>inject</c> verb.</summary>
public static class Injected
{
    /// <summary>
    /// Receives <paramref name="count"/> packets from <paramref name="ingress"/>, a queue of this process, stocking it with
    /// spares from <paramref name="pool"/> as it goes, and checks that they carry the sequence numbers 0, 1, 2… in order.
    /// </summary>
    public static void ReceiveInOrder(BufferPool pool, IngressQueue ingress, long count, int seconds = 60)
    {
        var burst = new PacketHandle[32];
        long expected = 0;
        var clock = Stopwatch.StartNew();
        while (expected < count)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(seconds), $"received {expected} of {count} from the application");
            pool.Replenish(ingress);
            int n = ingress.ReceiveBurst(burst);
            for (int k = 0; k < n; k++) Assert.Equal(expected++, BitConverter.ToInt64(burst[k].Data));
            pool.ReleaseBurst(burst.AsSpan(0, n));
        }
    }
}
