using Microsoft.Extensions.Configuration;
using ZcFlow;
using ZcFlow.Graphs;
using ZcFlow.Hosting;
using ZcFlow.Samples;

// Any topology from a JSON file (ZcFlowTopologyOptions' keys: stages reading devices or earlier stages, filtering,
// delaying, balancing, each on a core), so that a graph changes without a rebuild; --Key=value after the file overrides
// a key (--ClusterId=12, --Stages:0:From=eth3). Runs until Ctrl-C/SIGTERM, or, when every input ends (files), until the
// consumers have released every packet; stats every second with -p, and at the end.
const string Usage = "usage: Topology <topology.json> [-p | --plan] [--Key=value ...]   (filter-and-merge.json, two-applications.json, pipeline-delay.json are examples)\n"
    + "  -p  stats every second    --plan  print what would run where (threads, cores, queues, pools) and exit\n"
    + "  --Key=value  overrides a key of the file, e.g. --ClusterId=12 --Stages:0:From=eth3";
if (args.Length > 0 && args[0] is "-h" or "--help")
{
    Console.WriteLine(Usage);
    return 0;
}
if (args.Length == 0 || !File.Exists(args[0]))
{
    Console.Error.WriteLine(args.Length == 0 ? "error: no topology file given" : $"error: no file '{args[0]}'");
    Console.Error.WriteLine(Usage);
    return 2;
}
bool stats = args[1..].Contains("-p"), plan = args[1..].Contains("--plan");
IConfigurationRoot config = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(args[0])).AddCommandLine([.. args[1..].Where(a => a is not ("-p" or "--plan"))]).Build();
ZcFlowTopologyOptions options;
try
{
    options = ZcFlowTopologyOptions.From(config);
}
catch (InvalidOperationException e)
{
    Console.Error.WriteLine($"error: {SetupError.Describe(e)}");
    return 2;
}
IReadOnlyList<string> problems = options.Problems(Path.GetFileName(args[0]));
if (problems.Count != 0)
{
    foreach (string problem in problems) Console.Error.WriteLine($"error: {problem}");
    return 2;
}
Graph graph;
try
{
    if (plan)
    {
        Console.Write(options.Plan());
        return 0;
    }
    graph = options.Build(w => Console.Error.WriteLine(w));
}
catch (Exception e) when (SetupError.Is(e))
{
    Console.Error.WriteLine($"error: {SetupError.Describe(e)}");
    return 1;
}
CancellationToken stop = CommandLine.StopSignal();
using (graph)
{
    Console.WriteLine($"running {graph.Pipes.Count + graph.Balancers.Count} stages in cluster {options.ClusterId}; consumers attach to "
        + string.Join(", ", graph.ConsumerQueues.Select(q => $"zc:{options.ClusterId}@{q.Id}")));
    var clock = System.Diagnostics.Stopwatch.StartNew();
    long reported = 0;
    while (!stop.IsCancellationRequested && graph.IsRunning && !graph.Delivered)
    {
        stop.WaitHandle.WaitOne(100);
        if (stats && clock.ElapsedMilliseconds >= reported + 1000)
        {
            reported = clock.ElapsedMilliseconds;
            Print(graph);
        }
    }
    Print(graph);
}
return 0;

static void Print(Graph graph)
{
    GraphStats stats = graph.Stats();
    foreach (StageStats p in stats.Stages) Console.WriteLine($"{p.Name}: {p.Received:N0} in, {p.Forwarded:N0} on, {p.Filtered:N0} filtered, {p.Dropped:N0} dropped");
    foreach (var b in stats.Balancers) Console.WriteLine($"balancer: {b.Received:N0} in, {b.Filtered:N0} sent nowhere");
    Console.WriteLine("queues: " + string.Join(" ", stats.Outputs.Select(o => $"{o.Device ?? $"Q{o.Queue}"} {o.Sent:N0} ({o.Dropped:N0} dropped)")));
}
