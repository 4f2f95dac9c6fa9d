/* A libpcap program of the kind an event loop makes (Zeek, ntopng): non-blocking, it waits with epoll on
 * pcap_get_selectable_fd and reads what is there with pcap_dispatch. For each packet it notes how long after
 * the packet's time stamp it woke (the balancer stamps a generator's packets as it makes them); once <count>
 * packets have come it measures the CPU it uses while it waits <idle_ms> more with nothing coming. The first <skip>
 * packets are not timed (a generator that starts before the program attaches sends what it owes in one go).
 *
 *     pcap_epoll <device> <skip> <count> <idle_ms>
 * prints "latency_us p50 <n> p90 <n> max <n>" and "idle cpu_ms <n> wakeups <n>". */
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long cpu_us(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000LL + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

static long long *latency;
static int seen, wanted, skip;
static long long woke;

static void one(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
    (void)user; (void)bytes;
    long long stamp = h->ts.tv_sec * 1000000000LL + h->ts.tv_usec;   /* nanosecond precision */
    if (seen >= skip && seen < skip + wanted) latency[seen - skip] = (woke - stamp) / 1000;
    seen++;
}

static int order(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 5) { fprintf(stderr, "usage: pcap_epoll <device> <skip> <count> <idle_ms>\n"); return 2; }
    char err[PCAP_ERRBUF_SIZE];
    skip = atoi(argv[2]);
    wanted = atoi(argv[3]);
    int idle_ms = atoi(argv[4]);
    latency = calloc(wanted, sizeof *latency);
    pcap_t *p = pcap_create(argv[1], err);
    if (!p) { fprintf(stderr, "pcap_create: %s\n", err); return 1; }
    pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
    pcap_set_immediate_mode(p, 1);
    if (pcap_activate(p) < 0) { fprintf(stderr, "pcap_activate: %s\n", pcap_geterr(p)); return 1; }
    if (pcap_setnonblock(p, 1, err) < 0) { fprintf(stderr, "pcap_setnonblock: %s\n", err); return 1; }
    int fd = pcap_get_selectable_fd(p);
    if (fd < 0) { fprintf(stderr, "no selectable descriptor\n"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    printf("waiting\n");
    fflush(stdout);
    long long idle_from = 0, idle_cpu = 0;
    int wakeups = 0;
    while (1) {
        int timeout = seen >= skip + wanted ? idle_ms - (int)((now_ns() - idle_from) / 1000000) : -1;
        if (seen >= skip + wanted && timeout <= 0) break;
        struct epoll_event got;
        int n = epoll_wait(ep, &got, 1, timeout);
        if (n < 0) { perror("epoll_wait"); return 1; }
        if (n == 0) continue;
        woke = now_ns();
        int before = seen;
        int r = pcap_dispatch(p, -1, one, NULL);
        if (r < 0) { fprintf(stderr, "pcap_dispatch: %s\n", pcap_geterr(p)); return 1; }
        if (before >= skip + wanted) wakeups++;
        if (before < skip + wanted && seen >= skip + wanted) { idle_from = now_ns(); idle_cpu = cpu_us(); }
    }
    long long used = cpu_us() - idle_cpu;
    qsort(latency, wanted, sizeof *latency, order);
    printf("latency_us p50 %lld p90 %lld max %lld\n", latency[wanted / 2], latency[wanted * 9 / 10], latency[wanted - 1]);
    printf("idle cpu_ms %lld wakeups %d\n", used / 1000, wakeups);
    pcap_close(p);
    return 0;
}
