/*
 * zcflow.h: attach to a ZcFlow queue from C (or C++, Rust, Go, Python's ctypes) and receive its packets
 * in place, in the cluster's shared memory, without a copy. Link with -lzcflow (libzcflow.so).
 *
 *     zcflow_queue *q;
 *     if (zcflow_attach("zc:99@0", 2000, &q) != ZCFLOW_OK) { fprintf(stderr, "%s\n", zcflow_error()); return 1; }
 *     zcflow_packet burst[32];
 *     for (;;) {
 *         int n = zcflow_recv_burst(q, burst, 32, 100);      // waits up to 100 ms; 0: nothing came
 *         if (n < 0) break;                                   // ZCFLOW_EGONE: the owner went
 *         for (int i = 0; i < n; i++) inspect(burst[i].data, burst[i].length);
 *         zcflow_release_burst(q, burst, n);                  // the buffers go back to the cluster
 *     }
 *     zcflow_detach(q);
 *
 * A queue has one consumer: use a zcflow_queue from one thread at a time. Several queues may be used from
 * as many threads. Every function is safe to call with bad arguments: it returns ZCFLOW_EINVAL and says why.
 */
#ifndef ZCFLOW_H
#define ZCFLOW_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes: 0 or a count on success, one of these below zero. zcflow_error() says more. */
#define ZCFLOW_OK          0
#define ZCFLOW_EINVAL    (-1)   /* a bad argument: a NULL pointer, a name that is not zc:<cluster>@<queue>, a negative count */
#define ZCFLOW_ENOENT    (-2)   /* no such cluster on this host, or no such queue in it */
#define ZCFLOW_EBUSY     (-3)   /* the queue has a consumer already, or its last one is still being cleaned up */
#define ZCFLOW_EPERM     (-4)   /* the cluster is not open to this user */
#define ZCFLOW_EGONE     (-5)   /* the owner of the cluster has gone (ended, died or restarted): detach, attach again */
#define ZCFLOW_ERROR     (-6)   /* anything else, for instance memory the owner described impossibly */

/* One received packet. Its bytes stay valid, and are not reused, until it is released. */
typedef struct zcflow_packet {
    const uint8_t *data;      /* the packet, from its first byte (Ethernet header for a live device) */
    uint32_t length;          /* bytes at data */
    uint32_t wire_length;     /* bytes it had on the wire: more than length when the device kept only its start */
    int64_t timestamp_ns;     /* when it was received, in nanoseconds since the Unix epoch */
    uint32_t hash;            /* the hash the balancer spread it by (0 when it did not hash) */
    uint32_t device_index;    /* which input device of the owner's it came from */
    uint32_t flags;           /* set by the stages before this one; 0 unless they say otherwise */
    uint32_t buffer;          /* the buffer's index in the cluster: what a release gives back */
} zcflow_packet;

/* A queue's counters, as the owner and this consumer keep them. */
typedef struct zcflow_queue_stats {
    uint64_t sent;            /* packets the owner put into the queue */
    uint64_t received;        /* packets taken out of it */
    uint64_t dropped;         /* packets the owner dropped because the queue was full */
    uint64_t errors;          /* values that failed a check (a bad index, a buffer released twice) */
} zcflow_queue_stats;

typedef struct zcflow_queue zcflow_queue;

/* Attaches to the queue named "zc:<cluster>@<queue>" as its consumer. With timeout_ms > 0, a cluster that is not
 * there yet, or a queue whose last consumer is being cleaned up, is waited for that long; -1 waits forever. */
int zcflow_attach(const char *name, int timeout_ms, zcflow_queue **queue);

/* Receives up to max packets into packets[0..]. Returns how many (0 when none came), or ZCFLOW_EGONE when the owner
 * has gone. timeout_ms 0 returns at once; > 0 sleeps until a packet comes or that long has passed (to within 50 ms);
 * -1 sleeps until a packet comes. */
int zcflow_recv_burst(zcflow_queue *queue, zcflow_packet *packets, int max, int timeout_ms);

/* A descriptor for poll, select, epoll or an event loop: readable while packets wait in the queue. Once it has been
 * asked for, every zcflow_recv_burst leaves it ready to wait on: readable at once if packets are left, else as soon as
 * one comes. Waiting on it uses no CPU, and costs the owner nothing while the consumer is busy. It belongs to the queue:
 * do not close it; it goes with zcflow_detach. Returns the descriptor, or a code below zero.
 *
 *     struct pollfd pfd = { .fd = zcflow_fd(q), .events = POLLIN };
 *     for (;;) { int n = zcflow_recv_burst(q, burst, 32, 0); if (n == 0) poll(&pfd, 1, -1); ... } */
int zcflow_fd(zcflow_queue *queue);

/* Gives received packets back to the cluster, in any order and at any time after receiving them; a packet
 * released twice, or a buffer index that is not one of this cluster's, is counted as an error and ignored. */
int zcflow_release_burst(zcflow_queue *queue, const zcflow_packet *packets, int count);

/* Fills *stats with the queue's counters. */
int zcflow_stats(zcflow_queue *queue, zcflow_queue_stats *stats);

/* Detaches: what was not released goes back to the owner, and the queue is free for the next consumer. */
void zcflow_detach(zcflow_queue *queue);

/* What went wrong in this thread's last call that failed; valid until this thread's next call. */
const char *zcflow_error(void);

#ifdef __cplusplus
}
#endif

#endif
