/*
 * The peers ZcPerf measures ZcFlow's queue against, driven the way ZcPerf drives ours: a producer thread pinned to one
 * core sends N 32-bit values (bursts of B, or one at a time with B = 1) to a consumer thread pinned to another, which
 * reads each one; the wall time from start to the consumer's last value gives Mops. One JSON line per run.
 *
 *   ring_peers rte_ring <items> <burst> <producer core> <consumer core>   DPDK's rte_ring, single producer / single consumer
 *   ring_peers plain    <items> <burst> <producer core> <consumer core>   a ring with no checks at all: the limit of the design
 *   ring_peers pingpong <round trips> 0 <core a> <core b>                 one cache line bounced between two cores
 *   ring_peers latency:rte_ring|latency:plain <items> <gap ns> <core> <core>
 *       one value every <gap ns>, the sender's CLOCK_MONOTONIC time; the consumer busy-polls and keeps now minus that:
 *       one-way latency percentiles, in nanoseconds
 *
 * Built by ZcPerf with gcc -O3 -march=native, with -DWITH_RTE_RING and DPDK's flags when dpdk-dev is installed.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef WITH_RTE_RING
#include <rte_ring.h>
#endif

#define SLOTS 4096
#define LINE 128   /* two cache lines: the adjacent-line prefetcher pulls pairs */

static long items;
static unsigned burst;
static int cores[2];
static pthread_barrier_t start;

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void pin(int core)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static inline void relax(void) { __builtin_ia32_pause(); }

static inline uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* ---- plain: each side keeps a copy of the other's index, reloads it only when it must, publishes its own once a burst ---- */

static struct {
    _Alignas(LINE) uint64_t tail;
    _Alignas(LINE) uint64_t head;
    _Alignas(LINE) uint32_t slot[SLOTS];
} plain;

static void *plain_consumer(void *arg)
{
    uint64_t head = 0, seen = 0, sum = 0;
    pin(cores[1]);
    pthread_barrier_wait(&start);
    for (long got = 0; got < items;) {
        if (seen == head) {
            seen = __atomic_load_n(&plain.tail, __ATOMIC_ACQUIRE);
            if (seen == head) { relax(); continue; }
        }
        unsigned n = seen - head < burst ? (unsigned)(seen - head) : burst;
        for (unsigned i = 0; i < n; i++) sum += plain.slot[(head + i) & (SLOTS - 1)];
        head += n;
        __atomic_store_n(&plain.head, head, __ATOMIC_RELEASE);
        got += n;
    }
    *(uint64_t *)arg = sum;
    return NULL;
}

static void plain_producer(void)
{
    uint64_t tail = 0, free_until = SLOTS;
    for (long sent = 0; sent < items;) {
        unsigned n = items - sent < burst ? (unsigned)(items - sent) : burst;
        if (free_until - tail < n) {
            free_until = __atomic_load_n(&plain.head, __ATOMIC_ACQUIRE) + SLOTS;
            if (free_until - tail < n) { relax(); continue; }
        }
        for (unsigned i = 0; i < n; i++) plain.slot[(tail + i) & (SLOTS - 1)] = (uint32_t)(sent + i);
        tail += n;
        __atomic_store_n(&plain.tail, tail, __ATOMIC_RELEASE);
        sent += n;
    }
}

/* ---- rte_ring, SP/SC ---- */

#ifdef WITH_RTE_RING
static struct rte_ring *ring;

static void *rte_consumer(void *arg)
{
    void *got[64];
    uint64_t sum = 0;
    pin(cores[1]);
    pthread_barrier_wait(&start);
    for (long n = 0; n < items;) {
        unsigned k = burst == 1 ? (unsigned)(rte_ring_sc_dequeue(ring, got) == 0) : rte_ring_sc_dequeue_burst(ring, got, burst, NULL);
        if (k == 0) { relax(); continue; }
        for (unsigned i = 0; i < k; i++) sum += (uintptr_t)got[i];
        n += k;
    }
    *(uint64_t *)arg = sum;
    return NULL;
}

static void rte_producer(void)
{
    void *values[64];
    for (long sent = 0; sent < items;) {
        unsigned n = items - sent < burst ? (unsigned)(items - sent) : burst;
        for (unsigned i = 0; i < n; i++) values[i] = (void *)(uintptr_t)(sent + i);
        unsigned k = burst == 1 ? (unsigned)(rte_ring_sp_enqueue(ring, values[0]) == 0) : rte_ring_sp_enqueue_burst(ring, values, n, NULL);
        if (k == 0) { relax(); continue; }
        sent += k;
    }
}
#endif

/* ---- latency: one value at a time, paced, so every value finds the ring empty: what it costs to cross, not to queue ---- */

static uint64_t gap_ns;
static uint64_t *latencies;
static int latency_rte;
static struct {
    _Alignas(LINE) uint64_t tail;
    _Alignas(LINE) uint64_t head;
    _Alignas(LINE) uint64_t slot[SLOTS];
} wide;   /* the plain ring with 64-bit slots, for the timestamps */

static void *latency_consumer(void *arg)
{
    (void)arg;
    pin(cores[1]);
    pthread_barrier_wait(&start);
    uint64_t head = 0;
    for (long got = 0; got < items;) {
        uint64_t sent;
#ifdef WITH_RTE_RING
        if (latency_rte) {
            void *value;
            if (rte_ring_sc_dequeue(ring, &value) != 0) { relax(); continue; }
            sent = (uint64_t)(uintptr_t)value;
        } else
#endif
        {
            if (__atomic_load_n(&wide.tail, __ATOMIC_ACQUIRE) == head) { relax(); continue; }
            sent = wide.slot[head & (SLOTS - 1)];
            __atomic_store_n(&wide.head, ++head, __ATOMIC_RELEASE);
        }
        latencies[got++] = now_ns() - sent;
    }
    return NULL;
}

static void latency_producer(void)
{
    uint64_t tail = 0, next = now_ns();
    for (long sent = 0; sent < items; sent++) {
        next += gap_ns;
        while (now_ns() < next) relax();
        uint64_t t = now_ns();
#ifdef WITH_RTE_RING
        if (latency_rte) {
            while (rte_ring_sp_enqueue(ring, (void *)(uintptr_t)t) != 0) relax();
            continue;
        }
#endif
        while (tail - __atomic_load_n(&wide.head, __ATOMIC_ACQUIRE) >= SLOTS) relax();
        wide.slot[tail & (SLOTS - 1)] = t;
        __atomic_store_n(&wide.tail, ++tail, __ATOMIC_RELEASE);
    }
}

static int by_value(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- pingpong: a counter in one cache line, each side waits for its turn and passes it on ---- */

static struct { _Alignas(LINE) volatile uint64_t turn; } line;

static void *pong(void *arg)
{
    (void)arg;
    pin(cores[1]);
    pthread_barrier_wait(&start);
    for (uint64_t i = 1; i <= (uint64_t)items; i++) {
        while (line.turn != 2 * i - 1) relax();
        line.turn = 2 * i;
    }
    return NULL;
}

static void ping(void)
{
    for (uint64_t i = 1; i <= (uint64_t)items; i++) {
        line.turn = 2 * i - 1;
        while (line.turn != 2 * i) relax();
    }
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: ring_peers rte_ring|plain|pingpong <items> <burst> <core> <core>\n");
        return 2;
    }
    const char *peer = argv[1];
    items = atol(argv[2]);
    burst = (unsigned)atoi(argv[3]);
    cores[0] = atoi(argv[4]);
    cores[1] = atoi(argv[5]);
    int latency = strncmp(peer, "latency:", 8) == 0;
    if (items <= 0 || (strcmp(peer, "pingpong") != 0 && !latency && (burst < 1 || burst > 64))) {
        fprintf(stderr, "ring_peers: items must be positive and the burst 1 to 64\n");
        return 2;
    }
    void *(*consumer)(void *) = NULL;
    void (*producer)(void) = NULL;
    if (latency) {
        gap_ns = burst;
        latencies = malloc(items * sizeof *latencies);
        consumer = latency_consumer;
        producer = latency_producer;
        latency_rte = strcmp(peer + 8, "rte_ring") == 0;
        if (!latency_rte && strcmp(peer + 8, "plain") != 0) { fprintf(stderr, "ring_peers: no peer '%s'\n", peer); return 2; }
#ifdef WITH_RTE_RING
        if (latency_rte) {
            ring = aligned_alloc(LINE, (rte_ring_get_memsize(SLOTS) + LINE - 1) / LINE * LINE);
            if (ring == NULL || rte_ring_init(ring, "zcperf", SLOTS, RING_F_SP_ENQ | RING_F_SC_DEQ) != 0) return 1;
        }
#else
        if (latency_rte) { fprintf(stderr, "ring_peers: built without rte_ring\n"); return 2; }
#endif
    }
    else if (strcmp(peer, "plain") == 0) { consumer = plain_consumer; producer = plain_producer; }
    else if (strcmp(peer, "pingpong") == 0) { consumer = pong; producer = ping; }
#ifdef WITH_RTE_RING
    else if (strcmp(peer, "rte_ring") == 0) {
        ring = aligned_alloc(LINE, (rte_ring_get_memsize(SLOTS) + LINE - 1) / LINE * LINE);
        if (ring == NULL || rte_ring_init(ring, "zcperf", SLOTS, RING_F_SP_ENQ | RING_F_SC_DEQ) != 0) {
            fprintf(stderr, "ring_peers: rte_ring_init failed\n");
            return 1;
        }
        consumer = rte_consumer;
        producer = rte_producer;
    }
#endif
    else {
        fprintf(stderr, "ring_peers: no peer '%s' in this build\n", peer);
        return 2;
    }
    pthread_t thread;
    uint64_t sum = 0;
    pthread_barrier_init(&start, NULL, 2);
    pin(cores[0]);
    pthread_create(&thread, NULL, consumer, &sum);
    pthread_barrier_wait(&start);
    double t0 = seconds();
    producer();
    pthread_join(thread, NULL);
    double elapsed = seconds() - t0;
    if (latency) {
        qsort(latencies, items, sizeof *latencies, by_value);
        printf("{\"peer\":\"%s\",\"items\":%ld,\"p50_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu,\"max_ns\":%llu}\n", peer, items,
               (unsigned long long)latencies[items / 2], (unsigned long long)latencies[items * 99 / 100],
               (unsigned long long)latencies[items * 999 / 1000], (unsigned long long)latencies[items - 1]);
    }
    else if (strcmp(peer, "pingpong") == 0)
        printf("{\"peer\":\"pingpong\",\"round_trips\":%ld,\"seconds\":%.6f,\"ns_per_round_trip\":%.2f}\n", items, elapsed, elapsed * 1e9 / items);
    else
        printf("{\"peer\":\"%s\",\"items\":%ld,\"burst\":%u,\"seconds\":%.6f,\"mops\":%.2f,\"checksum\":%llu}\n",
               peer, items, burst, elapsed, items / elapsed / 1e6, (unsigned long long)sum);
    return 0;
}
