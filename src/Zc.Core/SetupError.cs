using ZcFlow.Ipc;
using ZcFlow.Native;

namespace ZcFlow;

/// <summary>
/// The one rule for what is a user's mistake, or the host's, rather than a bug: what creating a cluster, opening a device,
/// building a graph or attaching to a queue throws for what the user gave (a bad device name or option, a file that is missing
/// or not a capture, a cluster id in use or not served, a queue that is busy or internal, no permission). A program says it
/// in one line (<see cref="Describe"/>), not with a stack; anything else is a bug and keeps its stack.
/// </summary>
public static class SetupError
{
    /// <summary>True when <paramref name="e"/> is the user's or the host's doing, said well enough by its message.</summary>
    public static bool Is(Exception e) => e is ZcFlowException or ArgumentException or IOException or InvalidDataException or InvalidOperationException
        or TimeoutException or UnauthorizedAccessException;

    /// <summary>
    /// <paramref name="e"/>'s message as a user reads it: without what an <see cref="ArgumentException"/> adds for programmers,
    /// " (Parameter 'name')" (a parameter of ours, not anything the user typed) and an out-of-range value's line.
    /// </summary>
    public static string Describe(Exception e)
    {
        string message = e.Message;
        if (e is ArgumentOutOfRangeException { ActualValue: not null } && message.LastIndexOf('\n') is >= 0 and int end) message = message[..end];
        return e is ArgumentException { ParamName: { } name } ? message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : message;
    }
}
