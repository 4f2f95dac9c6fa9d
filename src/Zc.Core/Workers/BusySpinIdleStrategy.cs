namespace ZcFlow.Workers;

/// <summary>Active wait: a pause instruction per empty turn, nothing more.</summary>
public sealed class BusySpinIdleStrategy : IdleStrategy
{
    public override void Idle(int workDone)
    {
        if (workDone == 0) Thread.SpinWait(1);
    }
}
