using System.Runtime.CompilerServices;

namespace ZcFlow.Tests;

internal static class TestSetup
{
    /// <summary>A test that needs a network namespace the host cannot make is skipped, with the reason.</summary>
    [ModuleInitializer]
    internal static void SkipWithoutNamespaces() => Veth.Unavailable = reason => Assert.Skip(reason);
}
