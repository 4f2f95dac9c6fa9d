using ZcFlow;
using ZcFlow.Buffers;
using ZcFlow.Ipc;
using ZcFlow.Memory;
using ZcFlow.Queues;

// The second process of the multi-process tests: one job per verb, results on stdout, exit 0 when
// all was as expected. Every verb that attaches prints "attached" once it holds its queue.
//   consume <cluster> <queue> <count> <first> <step>   receive count packets whose sequence numbers
//                                                      are first, first+step, ... (and whose other bytes
//                                                      are the pattern Payload.Stamp writes) and release them
//   spin <cluster> <queue>                             attach (waiting for the queue to be free), receive and
//                                                      release until killed
//   vandal <cluster> <queue> <seed> <rounds>           all a hostile consumer can try: resize the memory it was
//                                                      given, write random bytes over its queue's rings, then
//                                                      write into a packet (which must fault and kill it)
//   peek <cluster> <queue>                             attach, print "attached <own pid> owner <owner pid>",
//                                                      receive and release until stdin closes
//   hold <cluster> <queue> <n>                         receive n packets, keep them, wait to be killed
//   watch <cluster> <queue>                            receive until the cluster goes; print how
//   inject <cluster> <queue> <count> <forgeFrom> <forgeTo>  fill count spares with sequence numbers and
//                                                      send them; every 1000th, first send a buffer
//                                                      index in [forgeFrom, forgeTo) it was never given
//   ingress-vandal <cluster> <queue> <seed>            an ingress application that sends some spares, scribbles over
//                                                      every writable mapping it was given, then writes into a
//                                                      read-only one (which must fault and kill it)
//   attach <cluster> <queue>                           attach and detach
//   drain <cluster> <queue> <keys file>               attach (waiting up to 30 s for the cluster), receive
//                                                      until the cluster goes; write each conversation seen
//                                                      to the file and print "ok <packets>"
//   flows <cluster> <queue> <flows>                    attach (waiting up to 30 s), receive the Balancer's gen:
//                                                      frames until the cluster goes, checking that each flow's
//                                                      packets come exactly once and in order; print "ok <packets>"
//   own <cluster> <queues> [race|huge]                 create the cluster, print "ready", keep it until stdin closes;
//                                                      with race, print "refused" if another process owns the id;
//                                                      with huge, on hugepages
//   member <device> <keys file>                        open a device of a cluster of its own (a member of a fanout group),
//                                                      print "receiving", receive until stdin closes, write each
//                                                      conversation and direction seen with its packets to the file,
//                                                      print "ok <packets>"
if (args[0] == "member") return Member(args[1], args[2]);
string verb = args[0];
uint cluster = args.Length > 1 ? uint.Parse(args[1]) : 0;
int queueId = args.Length > 2 ? int.Parse(args[2]) : 0;
using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));

try
{
    switch (verb)
    {
        case "own":
            ZcCluster owned;
            bool huge = args.Length > 3 && args[3] == "huge";
            try { owned = ZcCluster.Create(cluster, new ClusterOptions { BufferCount = 1024, BufferSize = 128, MaxQueues = 4, UseHugePages = huge, RequireHugePages = huge, Warn = _ => { } }); }
            catch (InvalidOperationException e) when (args.Length > 3 && args[3] == "race")
            {
                Console.WriteLine($"refused {e.Message}");
                Console.In.ReadToEnd();
                return 0;
            }
            using (owned)
            {
                for (int q = 0; q < queueId; q++) owned.CreateQueue(64);
                Console.WriteLine($"ready {Environment.ProcessId}");
                Console.In.ReadToEnd();
            }
            return 0;
        case "attach":
            using (AttachedQueue.Attach($"zc:{cluster}@{queueId}")) Console.WriteLine("attached");
            return 0;
    }

    if (verb == "drain") return Drain(cluster, queueId, args[3], timeout.Token);
    if (verb == "flows") return Flows(cluster, queueId, int.Parse(args[3]), timeout.Token);

    using AttachedQueue attached = AttachedQueue.Attach(cluster, queueId, verb == "spin" ? TimeSpan.FromSeconds(30) : null);
    // The verbs of an ingress queue send into it; every other verb receives.
    QueueConsumer queue = attached.Role == QueueRole.Egress ? attached.Queue : null!;
    Console.WriteLine("attached");
    var burst = new PacketHandle[32];
    switch (verb)
    {
        case "consume":
        {
            long count = long.Parse(args[3]), expected = long.Parse(args[4]), step = long.Parse(args[5]);
            long got = 0;
            while (got < count)
            {
                int n = queue.ReceiveBurst(burst, QueueWait.Passive, timeout.Token);
                if (n == 0) { Console.WriteLine($"error: timed out after {got} packets"); return 1; }
                for (int k = 0; k < n; k++)
                {
                    long seq = BitConverter.ToInt64(burst[k].Data);
                    if (seq != expected) { Console.WriteLine($"error: packet {got}: expected sequence {expected}, got {seq}"); return 1; }
                    if (!ZcFlow.Tests.Payload.IsIntact(burst[k].Data)) { Console.WriteLine($"error: packet {got} (sequence {seq}) was changed"); return 1; }
                    expected += step;
                    got++;
                }
                queue.ReleaseBurst(burst.AsSpan(0, n));
            }
            Console.WriteLine($"ok {got}");
            return 0;
        }
        case "hold":
        {
            int want = int.Parse(args[3]), got = 0;
            while (got < want) got += queue.ReceiveBurst(burst.AsSpan(0, Math.Min(32, want - got)), QueueWait.Passive, timeout.Token);
            Console.WriteLine($"holding {got}");
            Thread.Sleep(Timeout.Infinite);
            return 0;
        }
        case "inject":
        {
            long count = long.Parse(args[3]);
            uint forgeFrom = uint.Parse(args[4]), forgeTo = uint.Parse(args[5]);
            var random = new Random(5);
            var one = new PacketHandle[1];
            IngressSender sender = attached.Sender;
            for (long seq = 0; seq < count; seq++)
            {
                if (seq % 1000 == 999)
                {
                    one[0] = sender.Buffers.At((uint)random.NextInt64(forgeFrom, forgeTo));
                    sender.SendBurst(one, QueueWait.Passive, timeout.Token);
                }
                while (sender.TakeSpares(one) == 0) Thread.Yield();
                BitConverter.TryWriteBytes(one[0].Buffer, seq);
                one[0].Length = 60;
                if (sender.SendBurst(one, QueueWait.Passive, timeout.Token) != 1) { Console.WriteLine("error: send timed out"); return 1; }
            }
            Console.WriteLine($"sent {count}");
            return 0;
        }
        case "spin":
            while (true)
            {
                int n = queue.ReceiveBurst(burst, QueueWait.Passive, timeout.Token);
                queue.ReleaseBurst(burst.AsSpan(0, n));
            }
        case "peek":
        {
            Console.WriteLine($"attached {Environment.ProcessId} owner {attached.OwnerPid}");
            var stdin = Task.Run(() => Console.In.ReadToEnd());
            while (!stdin.IsCompleted)
            {
                int n = queue.ReceiveBurst(burst);
                queue.ReleaseBurst(burst.AsSpan(0, n));
                if (n == 0) Thread.Sleep(1);
            }
            return 0;
        }
        case "vandal":
            return Vandal(attached, int.Parse(args[3]), int.Parse(args[4]));
        case "ingress-vandal":
            return IngressVandal(attached, int.Parse(args[3]));
        case "watch":
            try
            {
                while (true)
                {
                    int n = queue.ReceiveBurst(burst, QueueWait.Passive, timeout.Token);
                    if (n == 0) { Console.WriteLine("error: timed out"); return 1; }
                    queue.ReleaseBurst(burst.AsSpan(0, n));
                }
            }
            catch (ClusterGoneException e)
            {
                Console.WriteLine($"gone restarted={e.Restarted} {e.Message}");
                return 0;
            }
        default:
            Console.WriteLine($"error: unknown verb {verb}");
            return 2;
    }
}
catch (Exception e)
{
    Console.WriteLine($"error: {e.GetType().Name}: {e.Message}");
    return 1;
}

// A consumer that tries everything it can against the owner and the other consumers. Each step
// prints what happened; the last one, a write into a packet, must kill this process.
static unsafe int Vandal(AttachedQueue attached, int seed, int rounds)
{
    QueueConsumer queue = attached.Queue;
    // Every descriptor this process holds of the cluster's memory: none may be resized.
    int refused = 0, tried = 0;
    foreach (string fd in Directory.GetFiles("/proc/self/fd"))
    {
        string target;
        try { target = new FileInfo(fd).LinkTarget ?? ""; } catch (IOException) { continue; }
        if (!target.StartsWith("/memfd:zcflow-", StringComparison.Ordinal)) continue;
        int n = int.Parse(Path.GetFileName(fd));
        tried += 2;
        if (ZcFlow.Native.Libc.Ftruncate(n, 4096) != 0) refused++;
        if (ZcFlow.Native.Libc.Ftruncate(n, 1L << 40) != 0) refused++;
    }
    Console.WriteLine($"truncate refused {refused} of {tried}");
    var random = new Random(seed);
    var burst = new PacketHandle[32];
    RingControl* forward = queue.ForwardRing.Control, recycle = queue.RecycleRing.Control;
    for (int r = 0; r < rounds; r++)
    {
        // Take some packets, then scribble over every byte of the memory it may write: both rings, whole.
        int got = queue.ReceiveBurst(burst);
        if (r % 3 == 0) queue.ReleaseBurst(burst.AsSpan(0, got));
        random.NextBytes(new Span<byte>(forward, ArenaLayout.RingControlSize + 4 * queue.Capacity));
        random.NextBytes(new Span<byte>(recycle, ArenaLayout.RingControlSize + 4 * queue.RecycleRing.Capacity));
        recycle->Tail = r % 2 == 0 ? (ulong)random.NextInt64() : recycle->Head + (ulong)random.Next(queue.RecycleRing.Capacity + 1);
        Thread.Sleep(1);
    }
    Console.WriteLine("scribbled");
    // The packets are mapped read-only: this write faults, here and nowhere else.
    PacketHandle victim = queue.Buffers.At(0);
    Console.WriteLine("writing into a packet");
    victim.Buffer[0] = 0xEE;
    Console.WriteLine("error: wrote into a packet");
    return 1;
}

// An ingress application that writes random bytes into every mapping of the cluster it was given: those it may write
// (its own spares, after sending some, and its queue's rings) are scribbled whole; then one write into the first
// read-only one, which must fault and kill this process.
static unsafe int IngressVandal(AttachedQueue attached, int seed)
{
    IngressSender queue = attached.Sender;
    var random = new Random(seed);
    var spares = new PacketHandle[32];
    int sent = 0;
    for (int round = 0; round < 50; round++)
    {
        int n = queue.TakeSpares(spares);
        for (int i = 0; i < n; i++) spares[i].Length = 60;
        sent += queue.SendBurst(spares.AsSpan(0, n));
        Thread.Sleep(1);
    }
    var mappings = File.ReadAllLines("/proc/self/maps").Where(l => l.Contains($"/memfd:zcflow-{attached.ClusterId}", StringComparison.Ordinal))
        .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(f => (Range: f[0].Split('-'), Writable: f[1][1] == 'w', Name: f[5]))
        .Select(m => (From: Convert.ToUInt64(m.Range[0], 16), To: Convert.ToUInt64(m.Range[1], 16), m.Writable, m.Name)).ToArray();
    long written = 0;
    foreach (var m in mappings.Where(m => m.Writable))
    {
        random.NextBytes(new Span<byte>((void*)m.From, (int)(m.To - m.From)));
        written += (long)(m.To - m.From);
    }
    Console.WriteLine($"sent {sent}, scribbled {written} bytes over {mappings.Count(m => m.Writable)} writable mappings: {string.Join(", ", mappings.Where(m => m.Writable).Select(m => m.Name))}");
    foreach (var m in mappings.Where(m => !m.Writable))
    {
        Console.WriteLine($"writing into {m.Name} at {m.From:x}");
        *(byte*)(m.From + (ulong)random.NextInt64((long)(m.To - m.From))) = 0xEE;
        Console.WriteLine("error: wrote into a read-only mapping");
    }
    return 1;
}

// Receives the frames of a gen:<size>?flows=<flows> device until the owner goes. The generator sends
// its templates in turn (flow f's two directions are templates 2f and 2f+1 of 2*flows) with a global
// sequence number, so the k-th packet of flow f must carry (k/2)*2*flows + 2f + k%2: any loss,
// repeat or reordering within a flow, or a flow split between two queues, breaks that.
static int Flows(uint cluster, int queueId, int flows, CancellationToken cancel)
{
    using AttachedQueue attached = AttachedQueue.Attach(cluster, queueId, TimeSpan.FromSeconds(30), waitForOwner: true);
    Console.WriteLine("attached");
    long templates = 2L * flows;
    var seen = new long[flows];
    var burst = new PacketHandle[32];
    long packets = 0;
    try
    {
        while (!cancel.IsCancellationRequested)
        {
            int n = attached.Queue.ReceiveBurst(burst, QueueWait.Passive, cancel);
            for (int k = 0; k < n; k++)
            {
                long seq = System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(burst[k].Data[ZcFlow.Devices.GeneratorDevice.SequenceOffset..]);
                int flow = (int)(seq % templates / 2);
                long i = seen[flow]++, expected = i / 2 * templates + 2 * flow + i % 2;
                if (seq != expected)
                {
                    Console.WriteLine($"error: flow {flow}: packet {i} carries sequence {seq}, expected {expected}");
                    return 1;
                }
            }
            attached.Queue.ReleaseBurst(burst.AsSpan(0, n));
            packets += n;
        }
    }
    catch (ClusterGoneException)
    {
    }
    Console.WriteLine($"ok {packets} in {seen.Count(c => c > 0)} flows");
    return 0;
}

// Receives everything until the owner goes, noting each conversation (both directions as one).
static int Drain(uint cluster, int queueId, string keysFile, CancellationToken cancel)
{
    AttachedQueue? attached = null;
    for (var clock = System.Diagnostics.Stopwatch.StartNew(); attached is null; Thread.Sleep(20))
    {
        try { attached = AttachedQueue.Attach(cluster, queueId); }
        catch (Exception) when (clock.Elapsed < TimeSpan.FromSeconds(30)) { }
    }
    using (attached)
    {
        Console.WriteLine("attached");
        var seen = new HashSet<string>();
        var burst = new PacketHandle[32];
        long packets = 0;
        try
        {
            while (!cancel.IsCancellationRequested)
            {
                int n = attached.Queue.ReceiveBurst(burst, QueueWait.Passive, cancel);
                for (int k = 0; k < n; k++) seen.Add(ZcFlow.Tests.Conversation.Key(burst[k].Data));
                attached.Queue.ReleaseBurst(burst.AsSpan(0, n));
                packets += n;
            }
        }
        catch (ClusterGoneException)
        {
        }
        File.WriteAllLines(keysFile, seen);
        Console.WriteLine($"ok {packets}");
        return 0;
    }
}

static int Member(string name, string keysFile)
{
    using ZcCluster own = ZcCluster.Create((uint)(0x5D00_0000 + Environment.ProcessId % 0x100_0000), new ClusterOptions { BufferCount = 4096, BufferSize = 2048, Warn = _ => { } });
    BufferPool pool = own.CreatePool(4096);
    using ZcFlow.Devices.IPacketSource device = ZcFlow.Devices.Device.OpenSource(name, pool, 0);
    using IDisposable listed = ZcFlow.Devices.Device.ListIn(own, device);
    var seen = new Dictionary<string, long>();
    var burst = new PacketHandle[32];
    long packets = 0;
    var stdin = Task.Run(() => Console.In.ReadToEnd());
    Console.WriteLine("receiving");
    while (!stdin.IsCompleted || device.WaitReadable(100))
    {
        int n = device.ReceiveBurst(burst);
        if (n == 0)
        {
            device.WaitReadable(10);
            continue;
        }
        for (int k = 0; k < n; k++)
        {
            ZcFlow.Parsing.PacketParser.Parse(burst[k].Data, out ZcFlow.Parsing.PacketInfo info);
            string key = $"{ZcFlow.Tests.Conversation.Key(burst[k].Data)}\t{(info.Outer.Source < info.Outer.Destination ? "up" : "down")}";
            seen[key] = seen.GetValueOrDefault(key) + 1;
        }
        pool.ReleaseBurst(burst.AsSpan(0, n));
        packets += n;
    }
    File.WriteAllLines(keysFile, seen.Select(kv => $"{kv.Key}\t{kv.Value}"));
    Console.WriteLine($"ok {packets}");
    return 0;
}
