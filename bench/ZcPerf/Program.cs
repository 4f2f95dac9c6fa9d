using ZcFlow.Perf;

// ZcPerf: throughput figures that must stand side by side, measured in one run.
//   dotnet run -c Release --project bench/ZcPerf -- <queue|limit|latency|ipc|balancer|capture|flows|consumers> [--json] [--runs N]
if (args.FirstOrDefault() == "ipc-consumer") return IpcScenario.ConsumerProcess(args);
if (args.FirstOrDefault() == "balancer-consumer") return BalancerScenario.ConsumerProcess(args);
if (args.FirstOrDefault() == "latency-consumer") return LatencyScenario.ConsumerProcess(args);

var scenarios = new Dictionary<string, Action<PerfOptions>>
{
    ["queue"] = QueueScenario.Run,
    ["ipc"] = IpcScenario.Run,
    ["balancer"] = BalancerScenario.Run,
    ["capture"] = CaptureScenario.Run,
    ["flows"] = FlowsScenario.Run,
    ["consumers"] = ConsumersScenario.Run,
    ["limit"] = LimitScenario.Run,
    ["latency"] = LatencyScenario.Run,
};

string? name = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal));
if (name is null || !scenarios.TryGetValue(name, out Action<PerfOptions>? run))
{
    Console.Error.WriteLine($"usage: ZcPerf <{string.Join("|", scenarios.Keys)}> [--json] [--runs N]");
    return 2;
}
PerfOptions options = PerfOptions.Parse(args);
using var hugePages = new HugePageReserve();
new Report(options).Row(Machine.Describe(name));
run(options);
return 0;
