using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ZcFlow.Memory;
using ZcFlow.Native;

namespace ZcFlow.Queues;

/// <summary>
/// A single-producer single-consumer ring of 32-bit values in shared memory: the one ring
/// every queue and recycle path of ZcFlow is made of, whether its two ends are threads of
/// one process or two processes.
///
/// Head and Tail are 64-bit running counts that never wrap; a slot is <c>count &amp; mask</c>.
/// The consumer alone writes Head, the producer alone writes Tail, each on its own pair of
/// cache lines. Each side keeps a private copy of the other's index and re-reads the shared
/// one only when its copy says the ring is full (producer) or empty (consumer).
///
/// Producer: <see cref="Claim"/> n free slots, <see cref="Put"/> values, <see cref="Advance"/>,
/// then <see cref="Flush"/> to publish. Consumer: <see cref="Available"/>, <see cref="Get"/>,
/// <see cref="Consume"/> (which publishes at once). Each side may be used by one thread at a time.
///
/// Nothing read from the other side is trusted: an index that goes backwards or claims more
/// than the ring holds is counted as an error and treated as "nothing there", never used.
/// Each side keeps its own counters (drops, errors) in its private record and copies them into
/// the shared control block only for the other side to see; it never reads them back from there.
/// </summary>
internal sealed unsafe class SpscRing
{
    private readonly RingControl* _ctl;
    private readonly uint* _slots;
    private readonly ulong _capacity;
    private readonly ulong _mask;
    private readonly Wakeup? _wakeup;
    private Cursors _c;

    /// <summary>
    /// This process's private view of each side, padded so the two sides never share a line, nor a pair of lines (which
    /// the adjacent-line prefetcher fetches together) wherever the object lands: the runtime aligns it to 8 bytes only, so
    /// the two sides are more than a pair apart.
    /// </summary>
    [StructLayout(LayoutKind.Explicit, Size = 4 * ArenaLayout.CacheLinePair)]
    private struct Cursors
    {
        [FieldOffset(128)] public ulong Tail;          // next slot the producer writes
        [FieldOffset(136)] public ulong PublishedTail; // last Tail made visible
        [FieldOffset(144)] public ulong HeadCache;     // producer's copy of Head
        [FieldOffset(152)] public ulong Dropped;       // values the producer could not place
        [FieldOffset(160)] public ulong ProducerErrors;

        [FieldOffset(384)] public ulong Head;          // next slot the consumer reads
        [FieldOffset(392)] public ulong TailCache;     // consumer's copy of Tail
        [FieldOffset(400)] public ulong ConsumerErrors;
    }

    /// <param name="control">The ring's control block; its slots follow it.</param>
    /// <param name="capacity">A power of two, checked by the caller.</param>
    /// <param name="wakeup">How a sleeping consumer is woken, on a ring it may sleep on; without, <see cref="Flush"/> skips the wake-up check.</param>
    public SpscRing(RingControl* control, uint capacity, Wakeup? wakeup)
    {
        _ctl = control;
        _slots = (uint*)(control + 1);
        _capacity = capacity;
        _mask = capacity - 1;
        _wakeup = wakeup;
        // Pick up where the ring is: a process attaching to a ring in use starts from its current indices.
        ulong head = Volatile.Read(ref control->Head), tail = Volatile.Read(ref control->Tail);
        _c.Head = _c.TailCache = _c.HeadCache = head;
        _c.Tail = _c.PublishedTail = tail;
    }

    public int Capacity => (int)_capacity;

    public RingControl* Control => _ctl;

    // ---- producer ----

    /// <summary>How many of <paramref name="want"/> slots are free (0 when full).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Claim(int want)
    {
        if (_capacity - (_c.Tail - _c.HeadCache) >= (ulong)want) return want;
        return ClaimSlow(want);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private int ClaimSlow(int want)
    {
        ulong head = Volatile.Read(ref _ctl->Head);
        // The consumer can neither go back nor pass what was published.
        if (head < _c.HeadCache || head > _c.PublishedTail)
        {
            CountProducerError();
            return 0;
        }
        _c.HeadCache = head;
        return (int)Math.Min(_capacity - (_c.Tail - head), (ulong)want);
    }

    /// <summary>
    /// The slots and where each side stands, for a burst loop that keeps them in registers (the JIT cannot, through
    /// <see cref="Put"/> and <see cref="Get"/>: a store through a pointer might change them): slot <c>(position + k) &amp; Mask</c>.
    /// </summary>
    public uint* Slots => _slots;

    public ulong Mask => _mask;

    /// <summary>Where the producer writes next (<see cref="Put"/>'s slot 0).</summary>
    public ulong ProducerPosition => _c.Tail;

    /// <summary>Where the consumer reads next (<see cref="Get"/>'s slot 0).</summary>
    public ulong ConsumerPosition => _c.Head;

    /// <summary>Writes the <paramref name="k"/>-th claimed slot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Put(int k, uint value) => _slots[(_c.Tail + (ulong)k) & _mask] = value;

    /// <summary>Makes <paramref name="n"/> written slots part of the ring (not yet visible: see <see cref="Flush"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Advance(int n) => _c.Tail += (ulong)n;

    /// <summary>Publishes every slot advanced so far to the consumer and wakes it if it sleeps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Flush()
    {
        ulong tail = _c.Tail;
        if (tail == _c.PublishedTail) return;
        _c.PublishedTail = tail;
        if (_wakeup is null)
        {
            // Publish: the slots are written before Tail moves (release); the consumer
            // reads Tail (acquire) before it reads them.
            Volatile.Write(ref _ctl->Tail, tail);
            return;
        }
        // As above, then a look at Waiters, with no fence between: the publish is a plain store, as cheap as an
        // unwakeable ring's. The read of Waiters may therefore pass the store of Tail, and miss a consumer that is
        // going to sleep at that very moment; that consumer pays for it instead (see WaitForData): it sleeps only
        // briefly at first and looks again, and by then this store is visible. A consumer that waits on the descriptor
        // itself is looked after by the owner's tenth-of-a-second check (WakeIfWaiting).
        Volatile.Write(ref _ctl->Tail, tail);
        if (Volatile.Read(ref _ctl->Waiters) != 0) Wake();
    }

    // Waiters back to 0 first, so the consumer is signalled once per sleep, not once per publish until it wakes.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Wake()
    {
        if (Interlocked.Exchange(ref _ctl->Waiters, 0) != 0) _wakeup!.Signal();
    }

    /// <summary>
    /// The producer's process, from any thread: wakes a consumer that sleeps although something was published (its wait
    /// raced with a publish that did not see it waiting, see <see cref="Flush"/>). The owner calls it every tenth of a second.
    /// </summary>
    public void WakeIfWaiting()
    {
        if (_wakeup is not null && Volatile.Read(ref _ctl->Waiters) != 0 && Volatile.Read(ref _c.PublishedTail) != Volatile.Read(ref _ctl->Head)) Wake();
    }

    /// <summary>Counts a value that failed a check on the producer side.</summary>
    public void CountProducerError()
    {
        Volatile.Write(ref _c.ProducerErrors, _c.ProducerErrors + 1);
        Volatile.Write(ref _ctl->ProducerErrors, _c.ProducerErrors);
    }

    /// <summary>Counts values the producer could not place because the ring was full.</summary>
    public void CountDropped(int n)
    {
        Volatile.Write(ref _c.Dropped, _c.Dropped + (ulong)n);
        Volatile.Write(ref _ctl->Dropped, _c.Dropped);
    }

    /// <summary>Values the producer side of this process published (its private record).</summary>
    public ulong Published => Volatile.Read(ref _c.PublishedTail);

    /// <summary>Drops counted by the producer side of this process.</summary>
    public ulong Dropped => Volatile.Read(ref _c.Dropped);

    /// <summary>Errors counted by this process, on either side.</summary>
    public ulong Errors => Volatile.Read(ref _c.ProducerErrors) + Volatile.Read(ref _c.ConsumerErrors);

    /// <summary>
    /// The producer's view of how far the consumer has read: the shared Head read once and kept only
    /// if it lies between the last value seen and what was published. Any thread.
    /// </summary>
    public ulong ObservedHead
    {
        get
        {
            ulong head = Volatile.Read(ref _ctl->Head), low = Volatile.Read(ref _c.HeadCache), high = Volatile.Read(ref _c.PublishedTail);
            return head >= low && head <= high ? head : low;
        }
    }

    /// <summary>Slots the producer sees free without asking the consumer.</summary>
    public bool LooksFull => _c.Tail - _c.HeadCache >= _capacity && ClaimSlow(1) == 0;

    // ---- consumer ----

    /// <summary>How many values (at most <paramref name="want"/>) can be read now (0 when empty).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Available(int want)
    {
        ulong ready = _c.TailCache - _c.Head;
        if (ready >= (ulong)want) return want;
        return AvailableSlow(want);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private int AvailableSlow(int want)
    {
        ulong tail = Volatile.Read(ref _ctl->Tail);
        // The producer can neither go back nor publish more than the ring holds.
        if (tail < _c.TailCache || tail - _c.Head > _capacity)
        {
            CountConsumerError();
        }
        else
        {
            _c.TailCache = tail;
        }
        return (int)Math.Min(_c.TailCache - _c.Head, (ulong)want);
    }

    /// <summary>Reads the <paramref name="k"/>-th available value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Get(int k) => _slots[(_c.Head + (ulong)k) & _mask];

    /// <summary>Frees <paramref name="n"/> read slots and tells the producer at once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Consume(int n)
    {
        ulong head = _c.Head + (ulong)n;
        _c.Head = head;
        // Release: the slots were read before the producer may reuse them.
        Volatile.Write(ref _ctl->Head, head);
    }

    /// <summary>Counts a value that failed a check on the consumer side.</summary>
    public void CountConsumerError()
    {
        Volatile.Write(ref _c.ConsumerErrors, _c.ConsumerErrors + 1);
        Volatile.Write(ref _ctl->ConsumerErrors, _c.ConsumerErrors);
    }

    /// <summary>Values the consumer side of this process has taken (its private record).</summary>
    public ulong Consumed => Volatile.Read(ref _c.Head);

    /// <summary>The consumer's view of what was published: its last checked copy of Tail.</summary>
    public ulong ObservedTail => Volatile.Read(ref _c.TailCache);

    /// <summary>
    /// Sleeps until the producer publishes, <paramref name="timeoutMs"/> passes, a signal handler runs, or a spurious
    /// wake-up; the caller checks again either way. Only the consumer calls it, on a ring it may sleep on.
    /// </summary>
    public void WaitForData(int timeoutMs)
    {
        if (Arm())
        {
            // A producer publishing right now may have read Waiters before this process set it (it does not fence,
            // see Flush), and not wake us: so the first sleep is short, then Tail is read again. A store leaves a
            // core's store buffer within nanoseconds, so by then that publish is seen here, and every later one sees
            // Waiters set and wakes us; the rest of the wait can be long.
            _wakeup!.Wait(Math.Min(FirstSleepMs, timeoutMs));
            if (timeoutMs > FirstSleepMs && Volatile.Read(ref _ctl->Tail) == _c.Head) _wakeup.Wait(timeoutMs - FirstSleepMs);
        }
        Volatile.Write(ref _ctl->Waiters, 0);
    }

    /// <summary>
    /// The consumer, before it sleeps on its wake-up by itself: empties the wake-up pipe and asks the
    /// producer to make it readable at its next publish. False, and nothing asked, when something is there already.
    /// </summary>
    public bool Arm()
    {
        _wakeup!.Drain();
        Interlocked.Exchange(ref _ctl->Waiters, 1); // fence: Waiters is set before Tail is read
        if (Volatile.Read(ref _ctl->Tail) == _c.Head) return true;
        Volatile.Write(ref _ctl->Waiters, 0);
        return false;
    }

    /// <summary>Closes this process's ends of the wake-up pipe, with the memory the ring lives in.</summary>
    public void DisposeWakeup() => _wakeup?.Dispose();

    /// <summary>The read end of the wake-up pipe, which the owner hands to the consumer that attaches.</summary>
    public int WakeDescriptor => _wakeup?.ReadEnd.Fd ?? -1;

    /// <summary>The consumer's wake-up, for a consumer that waits by itself (<see cref="QueueReceiver.WaitDescriptor"/>); null on a ring nobody sleeps on.</summary>
    public Wakeup? Wakeup => _wakeup;

    /// <summary>The first sleep of <see cref="WaitForData"/>: the longest a publish that raced with it can go unseen.</summary>
    private const int FirstSleepMs = 1;

    /// <summary>
    /// The producer, for a consumer that is gone: empties the ring and rewrites both indices
    /// from its own record, whatever the consumer left there, so a new consumer starts clean.
    /// </summary>
    public void ResetConsumerSide()
    {
        ulong tail = _c.PublishedTail;
        _c.HeadCache = tail;
        Volatile.Write(ref _ctl->Waiters, 0);
        Volatile.Write(ref _ctl->Head, tail);
        Volatile.Write(ref _ctl->Tail, tail);
    }

    /// <summary>The consumer, for a producer that is gone: the same, from the consumer's record.</summary>
    public void ResetProducerSide()
    {
        ulong head = _c.Head;
        _c.TailCache = head;
        Volatile.Write(ref _ctl->Head, head);
        Volatile.Write(ref _ctl->Tail, head);
    }

    /// <summary>Values published and not yet consumed, as the producer's record and the consumer's (checked) Head say. Producer's process.</summary>
    public ulong Count => Published - ObservedHead;
}
