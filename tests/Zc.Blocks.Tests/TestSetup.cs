using System.Runtime.CompilerServices;

namespace ZcFlow.Tests;

internal static class TestSetup
{
    /// <summary>A test that needs a network namespace the host cannot make is skipped, with the reason.</summary>
    [ModuleInitializer]
    internal static void SkipWithoutNamespaces() => Veth.Unavailable = reason => Assert.Skip(reason);

    /// <summary>Skips the test, saying so, when <paramref name="tool"/> is not installed.</summary>
    internal static void RequireTool(string tool)
    {
        if (!Tools.Installed(tool)) Assert.Skip($"{tool} is not installed (.ci/run installs it)");
    }
}
