namespace ZcFlow.Tests;

/// <summary>
/// The token every waiting call of a test passes: cancelled after five minutes, so a test whose
/// other side never comes fails with a timeout instead of hanging the suite.
/// </summary>
public static class TestDeadline
{
    public static CancellationToken Token => new CancellationTokenSource(TimeSpan.FromMinutes(5)).Token;
}
