using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/Zc.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
