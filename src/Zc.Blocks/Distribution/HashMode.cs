namespace ZcFlow.Distribution;

/// <summary>zbalance_ipc's <c>-m</c>: how a balancer picks the queues of each packet (<see cref="BalancerMode"/>). The numbers are zbalance_ipc's.</summary>
public enum HashMode
{
    /// <summary>0: each application's queues in turn (<see cref="Distribution.RoundRobin"/>).</summary>
    RoundRobin = 0,

    /// <summary>1: the IP pair, symmetric (<see cref="Distribution.IpHash"/>).</summary>
    IpHash = 1,

    /// <summary>2: every queue (<see cref="Distribution.FanOutAll"/>).</summary>
    FanOutAll = 2,

    /// <summary>3: the first queue, and round-robin over the rest (<see cref="Distribution.FanOutFirstRoundRobinRest"/>).</summary>
    FanOutFirstRoundRobinRest = 3,

    /// <summary>4: GTP-C by sequence number, GTP-U by inner IPs and ports, else outer IPs and ports (<see cref="GtpHash"/>).</summary>
    Gtp = 4,

    /// <summary>5: GRE by inner IPs, else outer IPs and ports (<see cref="GreHash"/>).</summary>
    Gre = 5,

    /// <summary>6: input device i to queue i (<see cref="Distribution.InterfaceIndex"/>).</summary>
    InterfaceIndex = 6,

    /// <summary>7: the VLAN id under an EtherType to the queue it names, others to queue 0 (<see cref="VlanMap"/>).</summary>
    Vlan = 7,

    /// <summary>8: the symmetric 5-tuple (<see cref="FiveTupleHash"/>).</summary>
    FiveTuple = 8,
}
