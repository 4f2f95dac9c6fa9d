using System.Diagnostics;
using ZcFlow.Memory;
using ZcFlow.Native;
using ZcFlow.Queues;

namespace ZcFlow.Ipc;

/// <summary>
/// The owner's side of the cluster's socket: one thread that hands consumers the memory they
/// need and notices, through the kernel, when one goes. An attach request names a queue; if the
/// queue is free, the consumer gets a read-only descriptor of the cluster memory and of each ingress queue's spares (but
/// read-write for the spares of the ingress queue it attaches to, which its application fills) and a read-write one of
/// that queue's rings, and nothing of any other queue. The connection stays open for as long as the consumer is
/// attached: when it closes, however the consumer ended, the queue is marked
/// leaving (<see cref="ConsumerLink.Leave"/>) and the pool's thread takes back what it held
/// (<see cref="Buffers.BufferOwner.CheckConsumers"/>). Nothing a consumer writes into shared memory
/// can declare it, or another consumer, gone.
///
/// The same thread copies each queue's counters into the owner's record every tenth of a second, and the record into the
/// cluster memory (<see cref="ZcCluster.PublishRecord"/>), putting back whatever someone else wrote there.
/// </summary>
internal sealed class ClusterServer : IDisposable
{
    private const int TickMs = 100;

    private readonly ZcCluster _cluster;
    private readonly SafeFileDescriptor _listen;
    private readonly Thread _thread;
    private readonly List<Client> _clients = [];
    private volatile bool _stop;
    private int _disposed;

    private sealed class Client(SafeFileDescriptor fd, int pid, long deadline)
    {
        public SafeFileDescriptor Fd { get; } = fd;
        public int Pid { get; } = pid;
        public long Deadline { get; } = deadline;   // to send its request by
        public QueueEnd? Queue { get; set; }
    }

    public ClusterServer(ZcCluster cluster, ClusterLock clusterLock, int? group)
    {
        _cluster = cluster;
        _listen = ClusterSocket.Listen(clusterLock.SocketPath, group);
        _thread = new Thread(Run) { Name = $"zcflow cluster {cluster.Id}", IsBackground = true };
        _thread.Start();
    }

    private unsafe void Run()
    {
        long nextPublish = 0;
        var polls = new PollFd[1 + 64];
        while (!_stop)
        {
            int n = 1 + _clients.Count;
            if (polls.Length < n) polls = new PollFd[n * 2];
            polls[0] = new PollFd { Fd = _listen.Fd, Events = Libc.POLLIN };
            for (int i = 0; i < _clients.Count; i++) polls[1 + i] = new PollFd { Fd = _clients[i].Fd.Fd, Events = Libc.POLLIN };
            int ready;
            fixed (PollFd* p = polls) ready = Libc.Poll(p, (nuint)n, TickMs);
            if (_stop) break;
            long now = Stopwatch.GetTimestamp();
            if (ready > 0)
            {
                for (int i = _clients.Count - 1; i >= 0; i--)
                {
                    if (polls[1 + i].Revents == 0) continue;
                    try
                    {
                        Serve(_clients[i]);
                    }
                    catch (ErrnoException)
                    {
                        // a descriptor could not be made for this client (out of descriptors, no /proc): it is
                        // refused by the hang-up, and the cluster goes on serving the others
                        if (_clients[i].Queue is null) Drop(_clients[i]);
                    }
                }
                if (polls[0].Revents != 0) Accept(now);
            }
            // A connection that never asks for anything is closed after a second.
            for (int i = _clients.Count - 1; i >= 0; i--)
                if (_clients[i].Queue is null && now > _clients[i].Deadline) Drop(_clients[i]);
            if (now >= nextPublish)
            {
                nextPublish = now + Stopwatch.Frequency * TickMs / 1000;
                foreach (QueueEnd q in _cluster.Queues) q.Publish();
                _cluster.PublishRecord();
            }
        }
    }

    private void Accept(long now)
    {
        while (true)
        {
            int raw = Libc.Accept4(_listen.Fd, 0, 0, Libc.SOCK_CLOEXEC | Libc.SOCK_NONBLOCK);
            if (raw < 0) return;
            var fd = new SafeFileDescriptor(raw);
            _clients.Add(new Client(fd, ClusterSocket.Credentials(fd).Pid, now + Stopwatch.Frequency));
        }
    }

    // A message or a hang-up from a client: its request if it has none yet; otherwise, the end of it.
    private void Serve(Client client)
    {
        var fds = new List<SafeFileDescriptor>();
        int n = ClusterSocket.Receive(client.Fd, out AttachRequest request, fds, 0);
        foreach (SafeFileDescriptor f in fds) f.Dispose(); // nobody sends the owner descriptors
        if (client.Queue is not null)
        {
            if (n <= 0) Drop(client);   // hung up: the consumer is gone; anything else it sends is ignored
            return;
        }
        if (n <= 0) { Drop(client); return; }
        Answer(client, request, n);
        if (client.Queue is null) Drop(client);
    }

    private void Answer(Client client, in AttachRequest request, int length)
    {
        AttachReply reply = Describe();
        if (length != System.Runtime.CompilerServices.Unsafe.SizeOf<AttachRequest>() || request.Magic != AttachRequest.CurrentMagic || request.Version != ArenaLayout.Version)
        {
            reply.Status = AttachReply.BadRequest;
            reply.Text = $"cluster {_cluster.Id} speaks layout version {ArenaLayout.Version}; the request was not of that version";
            ClusterSocket.Send(client.Fd, reply, []);
            return;
        }
        Memory.Arena memory = _cluster.Memory;
        if (request.Kind == AttachRequest.Monitor)
        {
            using SafeFileDescriptor view = memory.OpenReadOnly();
            ClusterSocket.Send(client.Fd, reply, [view.Fd]);
            return;
        }
        IReadOnlyList<QueueEnd> queues = _cluster.Queues;
        if (request.Kind != AttachRequest.Attach || (uint)request.Queue >= (uint)queues.Count)
        {
            reply.Status = AttachReply.NoQueue;
            reply.Text = $"cluster {_cluster.Id} has {queues.Count} queues, numbered from 0";
            ClusterSocket.Send(client.Fd, reply, []);
            return;
        }
        QueueEnd queue = queues[request.Queue];
        (ulong Offset, Memory.Arena Memory, IngressQueue Queue)[] spares = _cluster.Spares;
        int own = Array.FindIndex(spares, s => s.Queue == queue);
        if (queue.Role == QueueRole.Ingress && own < 0)
        {
            reply.Status = AttachReply.NotReady;
            reply.Text = $"queue {queue.Id} of cluster {_cluster.Id} has no spare buffers of its own for an application to fill: its owner gives them "
                + "with the pool that stocks it (ZcCluster.CreatePool with the queue)";
            ClusterSocket.Send(client.Fd, reply, []);
            return;
        }
        // Made before the queue is claimed, so that a failure here leaves the queue free. Everything read-only but an
        // ingress queue's own spares.
        var handed = new List<SafeFileDescriptor>();
        try
        {
            handed.Add(memory.OpenReadOnly());
            for (int i = 0; i < spares.Length; i++) handed.Add(i == own ? spares[i].Memory.Descriptor : spares[i].Memory.OpenReadOnly());
            Claim(client, queue, reply, spares, own, handed);
        }
        finally
        {
            for (int i = 0; i < handed.Count; i++)
                if (own < 0 || i != own + 1) handed[i].Dispose();   // the queue's own spares' descriptor is the cluster's
        }
    }

    private unsafe void Claim(Client client, QueueEnd queue, AttachReply reply, (ulong Offset, Memory.Arena Memory, IngressQueue Queue)[] spares, int own, List<SafeFileDescriptor> handed)
    {
        ConsumerLink link = queue.Link!;
        if (link.TryClaim(client.Pid) is { } state)
        {
            reply.Status = state switch
            {
                ConsumerLink.State.Attached => AttachReply.Busy,
                ConsumerLink.State.Internal => AttachReply.Internal,
                _ => AttachReply.Draining,
            };
            reply.Text = state switch
            {
                ConsumerLink.State.Attached => $"queue {queue.Id} of cluster {_cluster.Id} already has a consumer, process {link.Pid}",
                ConsumerLink.State.Internal => $"queue {queue.Id} of cluster {_cluster.Id} is internal: it carries packets between two stages of its owner's graph, "
                    + "and a consumer there would take them from the graph; attach to one of the queues the graph ends in (ZStat lists them)",
                _ => $"queue {queue.Id} of cluster {_cluster.Id} still holds what its last consumer left; its owner takes that back when it next checks its consumers",
            };
            ClusterSocket.Send(client.Fd, reply, []);
            return;
        }
        reply.Role = (uint)queue.Role;
        reply.Capacity = (uint)queue.Capacity;
        reply.RecycleCapacity = (uint)queue.RecycleRing.Capacity;
        reply.QueueSize = link.Memory.Size;
        reply.PieceCount = spares.Length;
        reply.WritablePiece = queue.Role == QueueRole.Ingress ? own : -1;
        for (int i = 0; i < spares.Length; i++)
        {
            reply.PieceOffset[i] = spares[i].Offset;
            reply.PieceLength[i] = spares[i].Memory.Size;
        }
        client.Queue = queue;
        int[] fds = [handed[0].Fd, link.Memory.Descriptor.Fd, queue.ForwardRing.WakeDescriptor, .. handed.Skip(1).Select(f => f.Fd)];
        bool sent = ClusterSocket.Send(client.Fd, reply, fds);
        if (!sent) Drop(client);
    }

    private AttachReply Describe()
    {
        var reply = new AttachReply
        {
            Magic = AttachReply.CurrentMagic, Version = ArenaLayout.Version, ClusterId = _cluster.Id, Generation = _cluster.Generation,
            ClusterSize = _cluster.ArenaSize, BufferStride = (uint)ArenaLayout.BufferStride(_cluster.BufferSize),
            BufferCapacity = (uint)_cluster.BufferSize, BufferCount = (uint)_cluster.BufferCount,
            Flags = _cluster.OnHugePages ? ArenaHeader.FlagHugePages : 0, QueueCount = _cluster.Queues.Count,
        };
        return reply;
    }

    private void Drop(Client client)
    {
        _clients.Remove(client);
        client.Queue?.Link!.Leave();
        client.Fd.Dispose();
    }

    /// <summary>Tells every attached consumer the cluster is closing, then closes its connection and the socket. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop = true;
        Libc.Shutdown(_listen.Fd, Libc.SHUT_RDWR);   // wakes the thread's poll at once (the listening socket hangs up)
        _thread.Join();
        foreach (Client c in _clients)
        {
            if (c.Queue is not null) ClusterSocket.Send(c.Fd, AttachReply.Closing, []);
            c.Fd.Dispose();
        }
        _clients.Clear();
        _listen.Dispose();
    }
}
