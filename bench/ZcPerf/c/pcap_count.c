/* A consumer that knows only libpcap: counts packets and bytes with pcap_dispatch and prints the rate every second.
 * ZcPerf runs it with the drop-in preloaded on a queue, beside samples/c/zcount (libzcflow) and ZCount.
 *
 *     pcap_count <device> [-a]      -a: non-blocking, polling without a pause (else pcap_dispatch sleeps when idle) */
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static unsigned long long packets, bytes;

static void count(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    (void)user; (void)data;
    packets++;
    bytes += h->caplen;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: pcap_count <device> [-a]\n"); return 2; }
    int active = argc > 2 && strcmp(argv[2], "-a") == 0;
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_create(argv[1], err);
    if (!p) { fprintf(stderr, "%s\n", err); return 1; }
    pcap_set_timeout(p, 100);
    if (pcap_activate(p) < 0) { fprintf(stderr, "%s\n", pcap_geterr(p)); return 1; }
    if (active && pcap_setnonblock(p, 1, err) < 0) { fprintf(stderr, "%s\n", err); return 1; }
    double last = now();
    unsigned long long before = 0;
    for (;;) {
        if (pcap_dispatch(p, -1, count, NULL) < 0) { fprintf(stderr, "%s\n", pcap_geterr(p)); return 1; }
        double t = now();
        if (t - last >= 1.0) {
            printf("%.2f Mpps %llu packets %llu bytes\n", (packets - before) / (t - last) / 1e6, packets, bytes);
            fflush(stdout);
            before = packets;
            last = t;
        }
    }
}
