/*
 * zcount: ZCount in C, over libzcflow. Attaches to a queue, counts packets and bytes, prints the rates every
 * second (with -v) and the totals when it ends: after -n packets, on SIGINT or SIGTERM, or when the owner goes.
 *
 *   gcc -O2 -o zcount zcount.c -I<dir of zcflow.h> -L<dir of libzcflow.so> -lzcflow -Wl,-rpath,<that dir>
 *   ./zcount zc:99@0 [-n <packets>] [-v] [-a]      (-a: busy-poll an empty queue instead of sleeping)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "zcflow.h"

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { (void)sig; stopping = 1; }

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *usage = "usage: zcount zc:<cluster>@<queue> [-n <packets>] [-v] [-a] [-w]\n"
                        "  -n  stop after this many packets    -v  the rate every second    -a  poll without sleeping\n"
                        "  -w  wait for the cluster when it is not there yet, instead of an error\n";
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    unsigned long long limit = 0;
    int verbose = 0, wait_ms = 100, attach_ms = 2000;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) limit = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-v") == 0) verbose = 1;
        else if (strcmp(argv[i], "-a") == 0) wait_ms = 0;
        else if (strcmp(argv[i], "-w") == 0) attach_ms = -1;   /* zcflow_attach waits for the owner for as long as it takes */
        else { fprintf(stderr, "zcount: unknown option %s\n", argv[i]); return 2; }
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    zcflow_queue *q;
    int rc = zcflow_attach(argv[1], attach_ms, &q);
    if (rc != ZCFLOW_OK) {
        printf("error %d: %s\n", rc, zcflow_error());
        return 1;
    }
    printf("attached to %s\n", argv[1]);
    fflush(stdout);

    zcflow_packet burst[32];
    unsigned long long packets = 0, bytes = 0, last_packets = 0;
    double start = now(), last = start;
    int status = 0;
    while (!stopping && (limit == 0 || packets < limit)) {
        int n = zcflow_recv_burst(q, burst, 32, wait_ms);
        if (n < 0) {
            printf("owner gone: %s\n", zcflow_error());
            status = n == ZCFLOW_EGONE ? 0 : 1;
            break;
        }
        for (int i = 0; i < n; i++) bytes += burst[i].length;
        packets += n;
        zcflow_release_burst(q, burst, n);
        if (verbose && now() - last >= 1.0) {
            double t = now();
            printf("%llu pkts | %.3f Mpps\n", packets, (packets - last_packets) / (t - last) / 1e6);
            fflush(stdout);
            last_packets = packets;
            last = t;
        }
    }
    double seconds = now() - start;
    zcflow_queue_stats stats;
    zcflow_stats(q, &stats);
    zcflow_detach(q);
    printf("total %llu pkts %llu bytes in %.1f s (%.3f Mpps), queue sent %llu dropped %llu errors %llu\n",
           packets, bytes, seconds, packets / seconds / 1e6, (unsigned long long)stats.sent,
           (unsigned long long)stats.dropped, (unsigned long long)stats.errors);
    return status;
}
