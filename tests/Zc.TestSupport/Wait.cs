using System.Diagnostics;

namespace ZcFlow.Tests;

/// <summary>Polling for what another thread or process does, with a deadline: a test that waits never hangs.</summary>
public static class Wait
{
    public static void Until(Func<bool> condition, string what, int seconds = 30)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(seconds), $"timed out waiting for {what}");
            Thread.Sleep(1);
        }
    }
}
