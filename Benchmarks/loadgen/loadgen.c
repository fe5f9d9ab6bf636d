/*
 * loadgen: the serverd benchmark's load generator.
 *
 * One thread, epoll, many connections.  Every mode is bounded both by time (--seconds) and by a
 * count (--max), and it only ever talks to loopback addresses or Unix sockets: an address outside
 * 127.0.0.0/8 and ::1 is refused.
 *
 *   loadgen stream  (--tcp H:P | --unix PATH) [--conns 64]   persistent echo connections, req/s
 *   loadgen latency (--tcp H:P | --unix PATH)                one connection, blocking ping-pong
 *   loadgen connect --tcp H:P [--conns 16]                   connect + one line + close, conn/s
 *   loadgen connect-eof (--tcp H:P | --unix PATH) [--conns 16]   connect + one line + the reply
 *                                                            until the server closes, conn/s
 *   loadgen udp     --udp H:P [--conns 32]                   datagrams outstanding, dgram/s
 *   loadgen udp     --unixgram PATH [--bind-path P] [--conns 32]   the same on a Unix datagram
 *                                                            socket (mode `dgram` is a synonym)
 *   loadgen idle    --tcp H:P [--conns 1000]                 hold idle connections (see below)
 *   loadgen startup --unix PATH [--max 5] [--log F] -- CMD…  start CMD, time until first echo
 *
 * Common options: --seconds S (measured time, counted from the end of the warm-up; default 2),
 * --warmup S (default 0.25, not counted), --max N (stop after N operations), --size B (line length
 * including the LF, default 64).
 *
 * Each request is a line of --size bytes ending in LF; a reply must be the same bytes.  Results
 * go to stdout as one JSON object on one line.  `idle` first prints {"ready":N,…} once N
 * connections have each had one echo, then holds them until a line arrives on stdin (or
 * --hold seconds pass), closes them and prints its result.  `startup` forks and execs CMD (its
 * stdout and stderr go to --log or /dev/null), connects to the Unix socket PATH until that
 * succeeds, does one echo, records the time since the fork, then sends CMD SIGTERM and waits for
 * it (SIGKILL after 10 s); it repeats that --max times.
 *
 * connect-eof is connect for a per-connection program behind a superserver (`head -n1`): after the
 * line comes back the client keeps reading until EOF, and only then closes (so the server side
 * holds the TCP TIME_WAIT).  More bytes than the line, or EOF before all of it, is an error; so is
 * a connection not finished 5 s after its connect started ("timeouts" in the JSON, also counted in
 * "errors"; the slot starts a new connection).  Its latency (p50_us, p99_us) runs from the start
 * of connect() to EOF, in 10 us buckets up to 10 s (the other modes: 100 ns up to 100 ms).
 *
 * Datagrams (udp): N datagrams outstanding on one connected socket, each tagged with its slot and
 * a sequence number; a reply must be the request byte for byte.  A datagram unanswered for 500 ms
 * is counted lost and resent under a new sequence number (a late reply to the old one counts as
 * stale).  A send the kernel refuses with EAGAIN (a Unix datagram peer's queue holds only
 * net.unix.max_dgram_qlen datagrams) stays queued here until the socket is writable again: it is
 * counted in "send_blocked", not as an error, and its 500 ms start when it is sent.  With
 * --unixgram the client socket must have a name for the replies to reach it: by default it
 * autobinds (bind() with only the family: the kernel picks an abstract name); --bind-path P binds
 * it to the filesystem path P instead (absolute; a stale socket file there is removed first, and
 * P is removed at exit).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE 4096
#define MAX_EVENTS 256

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void usage(const char *msg) {
    fprintf(stderr, "loadgen: %s\n"
            "usage: loadgen stream|latency|connect|connect-eof|udp|idle|startup [--tcp H:P|--udp H:P|--unix PATH|\n"
            "       --unixgram PATH [--bind-path PATH]] [--conns N] [--seconds S] [--warmup S] [--max N]\n"
            "       [--size B] [--hold S]\n"
            "       [--log FILE] [-- CMD ARGS...]\n", msg);
    exit(64);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram: 100 ns buckets up to 100 ms, the rest in the last bucket ---- */
#define HBUCKET_NS 100
#define HBUCKETS 1000000
static uint32_t hist[HBUCKETS];
static uint64_t hist_n, hist_max_ns;
static uint64_t hbucket_ns = HBUCKET_NS; /* connect-eof: 10 us buckets, up to 10 s */

static void hist_reset(void) {
    memset(hist, 0, sizeof hist);
    hist_n = 0;
    hist_max_ns = 0;
}

static void hist_add(uint64_t ns) {
    uint64_t b = ns / hbucket_ns;
    if (b >= HBUCKETS) b = HBUCKETS - 1;
    hist[b]++;
    hist_n++;
    if (ns > hist_max_ns) hist_max_ns = ns;
}

/* The p-th percentile (0 < p < 1) in microseconds; the bucket's midpoint. */
static double hist_pct(double p) {
    if (hist_n == 0) return 0;
    uint64_t want = (uint64_t)(p * (double)hist_n);
    if (want >= hist_n) want = hist_n - 1;
    uint64_t seen = 0;
    for (uint64_t i = 0; i < HBUCKETS; i++) {
        seen += hist[i];
        if (seen > want) return ((double)i + 0.5) * (double)hbucket_ns / 1000.0;
    }
    return (double)hist_max_ns / 1000.0;
}

/* ---- options ---- */
enum kind { K_NONE, K_TCP, K_UNIX, K_UDP, K_UNIXGRAM };
static struct {
    const char *mode;
    enum kind kind;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    const char *unix_path;
    const char *bind_path; /* --bind-path: the Unix datagram client's own name */
    int conns;
    double seconds, warmup, hold;
    uint64_t max;
    int size;
    const char *log;
    char **cmd;
} opt = { .conns = -1, .seconds = 2.0, .warmup = 0.25, .hold = 60.0, .max = 0, .size = 64 };

static char payload[MAX_LINE];

static void parse_inet(const char *s, int stream) {
    char host[256];
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) usage("address must be HOST:PORT");
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host) usage("host too long");
    memcpy(host, s, hl);
    host[hl] = 0;
    char *h = host;
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') { h[hl - 1] = 0; h++; }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535) usage("bad port");
    memset(&opt.addr, 0, sizeof opt.addr);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&opt.addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&opt.addr;
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127) usage("only loopback addresses (127.0.0.0/8, ::1) are allowed");
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        opt.addrlen = sizeof *a4;
    } else if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) usage("only loopback addresses (127.0.0.0/8, ::1) are allowed");
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        opt.addrlen = sizeof *a6;
    } else {
        usage("host must be a numeric loopback address");
    }
    opt.kind = stream ? K_TCP : K_UDP;
}

static void parse_unix(const char *path, enum kind kind) {
    struct sockaddr_un *u = (struct sockaddr_un *)&opt.addr;
    memset(&opt.addr, 0, sizeof opt.addr);
    if (strlen(path) >= sizeof u->sun_path) usage("unix path too long");
    u->sun_family = AF_UNIX;
    strcpy(u->sun_path, path);
    opt.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
    opt.unix_path = path;
    opt.kind = kind;
}

static void parse_args(int argc, char **argv) {
    if (argc < 2) usage("no mode");
    opt.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) { opt.cmd = &argv[i + 1]; break; }
        if (i + 1 >= argc) usage("option needs a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--tcp")) parse_inet(v, 1);
        else if (!strcmp(a, "--udp")) parse_inet(v, 0);
        else if (!strcmp(a, "--unix")) parse_unix(v, K_UNIX);
        else if (!strcmp(a, "--unixgram")) parse_unix(v, K_UNIXGRAM);
        else if (!strcmp(a, "--bind-path")) opt.bind_path = v;
        else if (!strcmp(a, "--conns")) opt.conns = atoi(v);
        else if (!strcmp(a, "--seconds")) opt.seconds = atof(v);
        else if (!strcmp(a, "--warmup")) opt.warmup = atof(v);
        else if (!strcmp(a, "--hold")) opt.hold = atof(v);
        else if (!strcmp(a, "--max")) opt.max = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--size")) opt.size = atoi(v);
        else if (!strcmp(a, "--log")) opt.log = v;
        else usage("unknown option");
    }
    if (opt.size < 16 || opt.size > MAX_LINE) usage("--size must be 16..4096");
    if (opt.seconds <= 0 || opt.seconds > 600) usage("--seconds must be in (0, 600]");
    if (opt.warmup < 0 || opt.warmup > 60) usage("--warmup must be in [0, 60]");
    if (opt.hold <= 0 || opt.hold > 600) usage("--hold must be in (0, 600]");
    if (opt.max == 0) opt.max = 100000000ull;
    if (opt.bind_path) {
        if (opt.kind != K_UNIXGRAM) usage("--bind-path goes with --unixgram");
        if (opt.bind_path[0] != '/') usage("--bind-path must be absolute (serverd answers no relative sender path)");
        if (strlen(opt.bind_path) >= sizeof ((struct sockaddr_un *)0)->sun_path) usage("--bind-path too long");
    }
    /* The line: printable bytes, LF last.  Every request carries the same line. */
    static const char pat[] = "serverd-benchmark-0123456789-abcdefghijklmnopqrstuvwxyz-";
    for (int i = 0; i < opt.size - 1; i++) payload[i] = pat[i % (sizeof pat - 1)];
    payload[opt.size - 1] = '\n';
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int family(void) { return ((struct sockaddr *)&opt.addr)->sa_family; }

static void set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void set_nodelay(int fd) {
    if (opt.kind == K_TCP) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}

/* A blocking stream connection with a 5 s bound on connect, send and receive. */
static int connect_blocking(void) {
    int fd = socket(family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&opt.addr, opt.addrlen) < 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) { close(fd); return -1; }
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        if (poll(&p, 1, 5000) != 1) { close(fd); errno = ETIMEDOUT; return -1; }
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) { close(fd); errno = err; return -1; }
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    set_nodelay(fd);
    return fd;
}

static void print_rate(const char *mode, uint64_t ops, double secs, uint64_t errors, int conns,
                       int live, const char *extra) {
    printf("{\"mode\":\"%s\",\"ops\":%llu,\"seconds\":%.4f,\"rate\":%.1f,"
           "\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,"
           "\"errors\":%llu,\"conns\":%d,\"live\":%d%s}\n",
           mode, (unsigned long long)ops, secs, secs > 0 ? (double)ops / secs : 0.0,
           hist_pct(0.50), hist_pct(0.99), hist_pct(0.999), (double)hist_max_ns / 1000.0,
           (unsigned long long)errors, conns, live, extra ? extra : "");
    fflush(stdout);
}

/* ---- stream: persistent connections, one line outstanding on each ---- */
struct sconn {
    int fd;
    int sent, rcvd;
    uint64_t t0;
};

static int mode_stream(void) {
    int n = opt.conns > 0 ? opt.conns : 64;
    struct sconn *c = calloc((size_t)n, sizeof *c);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    uint64_t errors = 0;
    int live = 0;
    for (int i = 0; i < n; i++) {
        c[i].fd = connect_blocking();
        if (c[i].fd < 0) { errors++; continue; }
        set_nonblock(c[i].fd);
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
        live++;
    }
    if (live == 0) { print_rate("stream", 0, 0, errors, n, 0, ",\"fatal\":\"no connection\""); return 1; }

    uint64_t start = now_ns();
    uint64_t warm_end = start + (uint64_t)(opt.warmup * 1e9);
    uint64_t end = warm_end + (uint64_t)(opt.seconds * 1e9);
    uint64_t ops = 0, mstart = start;
    int measuring = opt.warmup <= 0;
    for (int i = 0; i < n; i++) {
        if (c[i].fd < 0) continue;
        c[i].t0 = start;
        ssize_t w = write(c[i].fd, payload, (size_t)opt.size);
        if (w < 0) w = 0;
        c[i].sent = (int)w;
        if (w < opt.size) {
            struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i };
            epoll_ctl(ep, EPOLL_CTL_MOD, c[i].fd, &ev);
        }
    }
    struct epoll_event evs[MAX_EVENTS];
    char buf[MAX_LINE * 2];
    uint64_t t = start;
    while (live > 0) {
        int k = epoll_wait(ep, evs, MAX_EVENTS, 50);
        if (k < 0 && errno != EINTR) die("epoll_wait");
        t = now_ns();
        for (int e = 0; e < k; e++) {
            struct sconn *s = &c[evs[e].data.u32];
            if (s->fd < 0) continue;
            if (evs[e].events & EPOLLOUT && s->sent < opt.size) {
                ssize_t w = write(s->fd, payload + s->sent, (size_t)(opt.size - s->sent));
                if (w > 0) s->sent += (int)w;
                if (s->sent == opt.size) {
                    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = evs[e].data.u32 };
                    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
                }
            }
            if (!(evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            ssize_t r = read(s->fd, buf, sizeof buf);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0 || s->rcvd + r > opt.size || memcmp(buf, payload + s->rcvd, (size_t)r) != 0) {
                errors++;
                close(s->fd);
                s->fd = -1;
                live--;
                continue;
            }
            s->rcvd += (int)r;
            if (s->rcvd < opt.size) continue;
            if (measuring) { ops++; hist_add(t - s->t0); }
            s->rcvd = 0;
            s->t0 = t;
            ssize_t w = write(s->fd, payload, (size_t)opt.size);
            if (w < 0) w = 0;
            s->sent = (int)w;
            if (w < opt.size) {
                struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u32 = evs[e].data.u32 };
                epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
            }
        }
        if (!measuring && t >= warm_end) { measuring = 1; ops = 0; hist_reset(); mstart = t; end = t + (uint64_t)(opt.seconds * 1e9); }
        if (t >= end || ops >= opt.max) break;
    }
    if (!measuring) mstart = t;
    double secs = (double)(t - mstart) / 1e9;
    print_rate("stream", ops, secs, errors, n, live, NULL);
    for (int i = 0; i < n; i++) if (c[i].fd >= 0) close(c[i].fd);
    return live == n ? 0 : 1;
}

/* ---- latency: one connection, blocking write then read ---- */
static int mode_latency(void) {
    int fd = connect_blocking();
    if (fd < 0) { print_rate("latency", 0, 0, 1, 1, 0, ",\"fatal\":\"no connection\""); return 1; }
    char buf[MAX_LINE];
    uint64_t start = now_ns();
    uint64_t warm_end = start + (uint64_t)(opt.warmup * 1e9);
    uint64_t end = warm_end + (uint64_t)(opt.seconds * 1e9);
    uint64_t ops = 0, errors = 0, mstart = start, t = start;
    int measuring = opt.warmup <= 0;
    for (;;) {
        uint64_t t0 = now_ns();
        if (write(fd, payload, (size_t)opt.size) != opt.size) { errors++; break; }
        int got = 0;
        while (got < opt.size) {
            ssize_t r = read(fd, buf + got, (size_t)(opt.size - got));
            if (r <= 0) { if (r < 0 && errno == EINTR) continue; got = -1; break; }
            got += (int)r;
        }
        if (got < 0 || memcmp(buf, payload, (size_t)opt.size) != 0) { errors++; break; }
        t = now_ns();
        if (measuring) { ops++; hist_add(t - t0); }
        else if (t >= warm_end) { measuring = 1; mstart = t; end = t + (uint64_t)(opt.seconds * 1e9); }
        if (t >= end || ops >= opt.max) break;
    }
    close(fd);
    print_rate("latency", ops, (double)(t - mstart) / 1e9, errors, 1, errors ? 0 : 1, NULL);
    return errors ? 1 : 0;
}

/* ---- connect: connect, send one line, read it back, close; N in flight ---- */

/* The client closes first, so each connection leaves a TIME_WAIT socket on the client side, and
 * Linux gives connect() only the even half of ip_local_port_range and reuses a TIME_WAIT port
 * only after a second: one source address caps a client at about 14,000 connections a second.
 * Over IPv4 the connections therefore come from 127.0.0.1 ... 127.0.0.64 in turn (all loopback). */
#define CONNECT_SOURCES 64
static void bind_source(int fd) {
    static unsigned next;
    if (family() != AF_INET) return;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = { .sin_family = AF_INET };
    src.sin_addr.s_addr = htonl(0x7f000001u + (next++ % CONNECT_SOURCES));
    bind(fd, (struct sockaddr *)&src, sizeof src);
}
enum { C_IDLE, C_CONNECTING, C_WAITING, C_HELD };
struct cconn {
    int fd, state, rcvd;
    uint64_t t0, retry_at;
};

/* connect, and connect-eof (until_eof: after the line, read until EOF; a 5 s bound per connection;
 * when the window ends, no new connection starts and those in flight are finished, uncounted, for
 * at most 5 s more, so that no program is cut off mid-reply by the client). */
#define EOF_TIMEOUT_NS 5000000000ull
static int mode_connect(int until_eof) {
    const char *name = until_eof ? "connect-eof" : "connect";
    if (opt.kind != K_TCP && opt.kind != K_UNIX) usage("connect needs --tcp or --unix");
    if (until_eof) hbucket_ns = 10000;
    int n = opt.conns > 0 ? opt.conns : 16;
    struct cconn *c = calloc((size_t)n, sizeof *c);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    uint64_t start = now_ns();
    uint64_t warm_end = start + (uint64_t)(opt.warmup * 1e9);
    uint64_t end = warm_end + (uint64_t)(opt.seconds * 1e9);
    uint64_t ops = 0, errors = 0, addr_busy = 0, timeouts = 0, mstart = start, t = start, wend = 0;
    int measuring = opt.warmup <= 0, draining = 0;
    char buf[MAX_LINE * 2];
    struct epoll_event evs[MAX_EVENTS];

    for (int i = 0; i < n; i++) { c[i].fd = -1; c[i].state = C_IDLE; c[i].retry_at = 0; }
    for (;;) {
        /* (Re)start the idle slots whose back-off has passed. */
        int soonest = 50;
        for (int i = 0; i < n; i++) {
            struct cconn *s = &c[i];
            if (until_eof && s->state != C_IDLE && t - s->t0 > EOF_TIMEOUT_NS) {
                close(s->fd); /* epoll forgets it with its last descriptor */
                s->fd = -1;
                s->state = C_IDLE;
                timeouts++;
                errors++;
            }
            if (s->state != C_IDLE || draining) continue;
            if (s->retry_at > t) { soonest = 1; continue; }
            s->fd = socket(family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (s->fd < 0) die("socket");
            bind_source(s->fd);
            s->t0 = t;
            s->rcvd = 0;
            int r = connect(s->fd, (struct sockaddr *)&opt.addr, opt.addrlen);
            if (r < 0 && errno != EINPROGRESS) {
                if (errno == EADDRNOTAVAIL || errno == EAGAIN) addr_busy++;
                else errors++;
                close(s->fd);
                s->fd = -1;
                s->retry_at = t + 1000000; /* 1 ms */
                soonest = 1;
                continue;
            }
            struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)i };
            epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
            s->state = C_CONNECTING;
        }
        int k = epoll_wait(ep, evs, MAX_EVENTS, soonest);
        if (k < 0 && errno != EINTR) die("epoll_wait");
        t = now_ns();
        for (int e = 0; e < k; e++) {
            struct cconn *s = &c[evs[e].data.u32];
            if (s->state == C_IDLE) continue;
            int failed = 0, done = 0;
            if (s->state == C_CONNECTING && (evs[e].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                if (write(s->fd, payload, (size_t)opt.size) != opt.size) failed = 1;
                else s->state = C_WAITING;
            }
            if (!failed && s->state == C_WAITING && (evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
                for (;;) {
                    ssize_t r = read(s->fd, buf, sizeof buf);
                    if (r < 0 && errno == EAGAIN) break;
                    if (r < 0 && errno == EINTR) continue;
                    if (until_eof && r == 0 && s->rcvd == opt.size) { done = 1; break; } /* line, then EOF */
                    if (r <= 0 || s->rcvd + r > opt.size || memcmp(buf, payload + s->rcvd, (size_t)r)) { failed = 1; break; }
                    s->rcvd += (int)r;
                    if (s->rcvd == opt.size && !until_eof) { done = 1; break; }
                }
            }
            if (failed || done) {
                close(s->fd);
                s->fd = -1;
                s->state = C_IDLE;
                s->retry_at = 0;
                if (failed) errors++;
                else if (measuring && !draining) { ops++; hist_add(t - s->t0); }
            }
        }
        if (!measuring && t >= warm_end) { measuring = 1; ops = 0; errors = 0; addr_busy = 0; timeouts = 0; hist_reset(); mstart = t; end = t + (uint64_t)(opt.seconds * 1e9); }
        if (!draining && (t >= end || ops >= opt.max)) {
            if (!until_eof) break;
            draining = 1;
            wend = t;
        }
        if (draining) {
            int active = 0;
            for (int i = 0; i < n; i++) active += c[i].state != C_IDLE;
            if (!active || t - wend > EOF_TIMEOUT_NS) break;
        }
    }
    int unfinished = 0;
    for (int i = 0; i < n; i++) if (c[i].fd >= 0) { close(c[i].fd); unfinished++; }
    char extra[128];
    if (until_eof)
        snprintf(extra, sizeof extra, ",\"addr_busy\":%llu,\"timeouts\":%llu,\"unfinished\":%d",
                 (unsigned long long)addr_busy, (unsigned long long)timeouts, unfinished);
    else
        snprintf(extra, sizeof extra, ",\"addr_busy\":%llu", (unsigned long long)addr_busy);
    print_rate(name, ops, (double)((draining ? wend : t) - mstart) / 1e9, errors, n, n, extra);
    return ops > 0 ? 0 : 1;
}

/* ---- udp: N datagrams outstanding on one connected socket (UDP or Unix datagram) ---- */
#define UDP_BATCH 64
#define UDP_TIMEOUT_NS 500000000ull /* a datagram unanswered 500 ms counts as lost */

static const char *dgram_bound_path; /* removed at exit */

static void dgram_unlink_bound(void) {
    if (dgram_bound_path) unlink(dgram_bound_path);
}

/* Names the Unix datagram client socket so that replies can reach it. */
static void dgram_bind_unix(int fd) {
    struct sockaddr_un me;
    memset(&me, 0, sizeof me);
    me.sun_family = AF_UNIX;
    if (!opt.bind_path) {
        /* Autobind: only the family; the kernel picks an abstract name. */
        if (bind(fd, (struct sockaddr *)&me, sizeof(sa_family_t)) < 0) die("bind (autobind)");
        return;
    }
    struct stat st;
    if (lstat(opt.bind_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) usage("--bind-path names something that is not a socket");
        unlink(opt.bind_path);
    }
    strcpy(me.sun_path, opt.bind_path);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(opt.bind_path) + 1);
    if (bind(fd, (struct sockaddr *)&me, len) < 0) die("bind --bind-path");
    dgram_bound_path = opt.bind_path;
    atexit(dgram_unlink_bound);
}

static int mode_udp(void) {
    if (opt.kind != K_UDP && opt.kind != K_UNIXGRAM) usage("udp needs --udp or --unixgram");
    int unixgram = opt.kind == K_UNIXGRAM;
    int n = opt.conns > 0 ? opt.conns : 32;
    if (n > 4096) usage("--conns must be at most 4096 for udp");
    int fd = socket(family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int big = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (unixgram) dgram_bind_unix(fd);
    if (connect(fd, (struct sockaddr *)&opt.addr, opt.addrlen) < 0) die("connect");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 0 };
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    int want_out = 0;

    uint32_t *seq = calloc((size_t)n, sizeof *seq);
    uint64_t *t0 = calloc((size_t)n, sizeof *t0);
    /* Slots waiting to be sent, in order; a slot is in it at most once. */
    int *pending = calloc((size_t)n, sizeof *pending);
    char *queued = calloc((size_t)n, 1);
    int npend = 0;
    static char out[UDP_BATCH][MAX_LINE];
    struct mmsghdr omsg[UDP_BATCH];
    struct iovec oiov[UDP_BATCH];
    static char in[UDP_BATCH][MAX_LINE];
    struct mmsghdr imsg[UDP_BATCH];
    struct iovec iiov[UDP_BATCH];
    uint64_t ops = 0, lost = 0, stale = 0, errors = 0, send_blocked = 0;

    uint64_t start = now_ns();
    uint64_t warm_end = start + (uint64_t)(opt.warmup * 1e9);
    uint64_t end = warm_end + (uint64_t)(opt.seconds * 1e9);
    uint64_t mstart = start, t = start, last_scan = start;
    int measuring = opt.warmup <= 0;

#define QUEUE(slot) do {                                                           \
        int s_ = (slot);                                                           \
        if (!queued[s_]) { queued[s_] = 1; pending[npend++] = s_; }                \
    } while (0)

    for (int i = 0; i < n; i++) QUEUE(i);
    for (;;) {
        /* Send what is queued, UDP_BATCH at a time, until done or the socket is full. */
        int off = 0, blocked = 0;
        while (off < npend) {
            int m = npend - off < UDP_BATCH ? npend - off : UDP_BATCH;
            for (int i = 0; i < m; i++) {
                int s_ = pending[off + i];
                char tag[20];
                memcpy(out[i], payload, (size_t)opt.size);
                snprintf(tag, sizeof tag, "%04x%08x", (unsigned)s_, (unsigned)seq[s_]);
                memcpy(out[i], tag, 12);
                oiov[i].iov_base = out[i];
                oiov[i].iov_len = (size_t)opt.size;
                memset(&omsg[i], 0, sizeof omsg[i]);
                omsg[i].msg_hdr.msg_iov = &oiov[i];
                omsg[i].msg_hdr.msg_iovlen = 1;
            }
            int s = sendmmsg(fd, omsg, (unsigned)m, 0);
            if (s < 0 && errno == EINTR) continue;
            if (s < 0 && (errno == EAGAIN || errno == ENOBUFS)) { send_blocked++; blocked = 1; break; }
            if (s <= 0) {
                /* Refused (no server yet/any more): drop the rest; they time out, count as lost
                 * and are resent. */
                errors++;
                for (int i = off; i < npend; i++) { queued[pending[i]] = 0; t0[pending[i]] = t; }
                off = npend;
                break;
            }
            for (int i = 0; i < s; i++) { queued[pending[off + i]] = 0; t0[pending[off + i]] = t; }
            off += s;
        }
        if (off > 0) {
            memmove(pending, pending + off, (size_t)(npend - off) * sizeof *pending);
            npend -= off;
        }
        if (blocked != want_out) {
            want_out = blocked;
            ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        }

        struct epoll_event got;
        int k = epoll_wait(ep, &got, 1, 10);
        if (k < 0 && errno != EINTR) die("epoll_wait");
        t = now_ns();
        if (k > 0 && (got.events & (EPOLLIN | EPOLLERR))) {
            for (;;) {
                for (int i = 0; i < UDP_BATCH; i++) {
                    iiov[i].iov_base = in[i];
                    iiov[i].iov_len = MAX_LINE;
                    memset(&imsg[i], 0, sizeof imsg[i]);
                    imsg[i].msg_hdr.msg_iov = &iiov[i];
                    imsg[i].msg_hdr.msg_iovlen = 1;
                }
                int r = recvmmsg(fd, imsg, UDP_BATCH, MSG_DONTWAIT, NULL);
                if (r <= 0) {
                    if (r < 0 && errno == EINTR) continue;
                    if (r < 0 && errno != EAGAIN) errors++;
                    break;
                }
                for (int i = 0; i < r; i++) {
                    char *d = in[i];
                    unsigned slot, sq;
                    char tag[13];
                    memcpy(tag, d, 12);
                    tag[12] = 0;
                    if ((int)imsg[i].msg_len != opt.size || sscanf(tag, "%4x%8x", &slot, &sq) != 2 ||
                        slot >= (unsigned)n || memcmp(d + 12, payload + 12, (size_t)opt.size - 12)) {
                        errors++;
                        continue;
                    }
                    if (sq != seq[slot] || queued[slot]) { stale++; continue; }
                    if (measuring) { ops++; hist_add(t - t0[slot]); }
                    seq[slot]++;
                    QUEUE((int)slot);
                }
                if (r < UDP_BATCH) break;
            }
        }
        if (t - last_scan > 10000000ull) {
            last_scan = t;
            for (int i = 0; i < n; i++) {
                /* Only what was sent: a slot still queued here has not started its 500 ms. */
                if (!queued[i] && t - t0[i] > UDP_TIMEOUT_NS) {
                    if (measuring) lost++;
                    seq[i]++;
                    QUEUE(i);
                }
            }
        }
        if (!measuring && t >= warm_end) { measuring = 1; ops = 0; lost = 0; stale = 0; errors = 0; send_blocked = 0; hist_reset(); mstart = t; end = t + (uint64_t)(opt.seconds * 1e9); }
        if (t >= end || ops >= opt.max) break;
    }
#undef QUEUE
    close(fd);
    char extra[160];
    snprintf(extra, sizeof extra, ",\"lost\":%llu,\"stale\":%llu,\"send_blocked\":%llu%s",
             (unsigned long long)lost, (unsigned long long)stale, (unsigned long long)send_blocked,
             unixgram ? (opt.bind_path ? ",\"client\":\"path\"" : ",\"client\":\"abstract\"") : "");
    print_rate(unixgram ? "unixgram" : "udp", ops, (double)(t - mstart) / 1e9, errors, n, n, extra);
    return ops > 0 ? 0 : 1;
}

/* ---- idle: open N connections, one echo each, hold them, close ---- */
static int mode_idle(void) {
    if (opt.kind != K_TCP && opt.kind != K_UNIX) usage("idle needs --tcp or --unix");
    int n = opt.conns > 0 ? opt.conns : 1000;
    const int inflight_max = 64;
    struct cconn *c = calloc((size_t)n, sizeof *c);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    char buf[MAX_LINE * 2];
    struct epoll_event evs[MAX_EVENTS];
    uint64_t start = now_ns(), t = start;
    uint64_t deadline = start + (uint64_t)(opt.seconds * 1e9);
    uint64_t attempts = 0, errors = 0, closed_by_server = 0;
    int next = 0, inflight = 0, ready = 0;
    for (int i = 0; i < n; i++) { c[i].fd = -1; c[i].state = C_IDLE; }

    /* Phase 1: establish. */
    while (ready < n && t < deadline && attempts < (uint64_t)n * 3) {
        while (inflight < inflight_max && next < n) {
            struct cconn *s = &c[next];
            s->fd = socket(family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (s->fd < 0) die("socket");
            bind_source(s->fd);
            attempts++;
            s->rcvd = 0;
            s->t0 = t;
            int r = connect(s->fd, (struct sockaddr *)&opt.addr, opt.addrlen);
            if (r < 0 && errno != EINPROGRESS) {
                errors++;
                close(s->fd);
                s->fd = -1;
                if (errno == EAGAIN) { usleep(1000); continue; } /* Unix backlog full: retry */
                next++;
                continue;
            }
            struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)next };
            epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
            s->state = C_CONNECTING;
            inflight++;
            next++;
        }
        if (inflight == 0) break;
        int k = epoll_wait(ep, evs, MAX_EVENTS, 50);
        t = now_ns();
        for (int e = 0; e < k; e++) {
            struct cconn *s = &c[evs[e].data.u32];
            if (s->fd < 0) continue;
            int failed = 0;
            if (s->state == C_CONNECTING && (evs[e].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                if (write(s->fd, payload, (size_t)opt.size) != opt.size) failed = 1;
                else s->state = C_WAITING;
            }
            if (!failed && s->state == C_WAITING && (evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
                for (;;) {
                    ssize_t r = read(s->fd, buf, sizeof buf);
                    if (r < 0 && errno == EAGAIN) break;
                    if (r < 0 && errno == EINTR) continue;
                    if (r <= 0 || s->rcvd + r > opt.size || memcmp(buf, payload + s->rcvd, (size_t)r)) { failed = 1; break; }
                    s->rcvd += (int)r;
                    if (s->rcvd == opt.size) {
                        s->state = C_HELD;
                        inflight--;
                        ready++;
                        break;
                    }
                }
            }
            if (failed) {
                errors++;
                close(s->fd);
                s->fd = -1;
                inflight--;
            }
        }
    }
    printf("{\"ready\":%d,\"wanted\":%d,\"errors\":%llu,\"setup_seconds\":%.3f}\n", ready, n,
           (unsigned long long)errors, (double)(now_ns() - start) / 1e9);
    fflush(stdout);

    /* Phase 2: hold until stdin says go (or EOF), or --hold passes. */
    uint64_t hold_end = now_ns() + (uint64_t)(opt.hold * 1e9);
    for (;;) {
        struct pollfd p = { .fd = 0, .events = POLLIN };
        uint64_t nw = now_ns();
        if (nw >= hold_end) break;
        int ms = (int)((hold_end - nw) / 1000000) + 1;
        if (ms > 100) ms = 100;
        if (poll(&p, 1, ms) > 0) break;
        /* Count connections the server closed on us meanwhile. */
        int k = epoll_wait(ep, evs, MAX_EVENTS, 0);
        for (int e = 0; e < k; e++) {
            struct cconn *s = &c[evs[e].data.u32];
            if (s->fd < 0 || !(evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
            ssize_t r = read(s->fd, buf, sizeof buf);
            if (r == 0 || (r < 0 && errno != EAGAIN)) { closed_by_server++; close(s->fd); s->fd = -1; }
        }
    }
    int still = 0;
    for (int i = 0; i < n; i++) if (c[i].fd >= 0) { close(c[i].fd); still++; }
    printf("{\"mode\":\"idle\",\"ready\":%d,\"wanted\":%d,\"held\":%d,\"closed_by_server\":%llu,\"errors\":%llu}\n",
           ready, n, still, (unsigned long long)closed_by_server, (unsigned long long)errors);
    fflush(stdout);
    return ready == n ? 0 : 1;
}

/* ---- startup: fork+exec CMD, time until the first echo on the Unix socket ---- */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int reap(pid_t pid, double limit_s) {
    uint64_t until = now_ns() + (uint64_t)(limit_s * 1e9);
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return st;
        if (r < 0) return -1;
        if (now_ns() >= until) return -2;
        usleep(500);
    }
}

static int mode_startup(void) {
    if (opt.kind != K_UNIX) usage("startup needs --unix PATH (the socket the command will listen on)");
    if (!opt.cmd || !opt.cmd[0]) usage("startup needs -- CMD ARGS...");
    int n = opt.max > 0 && opt.max < 100 ? (int)opt.max : 5;
    double ms[100], stop_ms[100];
    int ok = 0, failures = 0;
    char buf[MAX_LINE];
    for (int run = 0; run < n; run++) {
        struct stat stt;
        if (lstat(opt.unix_path, &stt) == 0 && S_ISSOCK(stt.st_mode)) unlink(opt.unix_path);
        uint64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            int dn = open("/dev/null", O_RDONLY);
            dup2(dn, 0);
            int lf = opt.log ? open(opt.log, O_WRONLY | O_CREAT | O_APPEND, 0644) : open("/dev/null", O_WRONLY);
            if (lf >= 0) { dup2(lf, 1); dup2(lf, 2); }
            execvp(opt.cmd[0], opt.cmd);
            _exit(127);
        }
        uint64_t until = t0 + (uint64_t)(opt.seconds * 1e9);
        int fd = -1, exited = 0;
        while (now_ns() < until) {
            fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (connect(fd, (struct sockaddr *)&opt.addr, opt.addrlen) == 0) break;
            close(fd);
            fd = -1;
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) { exited = 1; break; }
            usleep(100);
        }
        double took = -1;
        if (fd >= 0) {
            struct timeval tv = { .tv_sec = 5 };
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            int got = 0;
            if (write(fd, payload, (size_t)opt.size) == opt.size) {
                while (got < opt.size) {
                    ssize_t r = read(fd, buf + got, (size_t)(opt.size - got));
                    if (r <= 0) break;
                    got += (int)r;
                }
            }
            if (got == opt.size && !memcmp(buf, payload, (size_t)opt.size)) took = (double)(now_ns() - t0) / 1e6;
            close(fd);
        }
        double stopped = -1;
        if (!exited) {
            uint64_t ts = now_ns();
            kill(pid, SIGTERM);
            int st = reap(pid, 10.0);
            if (st == -2) { kill(pid, SIGKILL); reap(pid, 5.0); }
            else stopped = (double)(now_ns() - ts) / 1e6;
        }
        if (took < 0) { failures++; continue; }
        stop_ms[ok] = stopped;
        ms[ok++] = took;
    }
    printf("{\"mode\":\"startup\",\"runs\":%d,\"ok\":%d,\"failures\":%d,\"ms\":[", n, ok, failures);
    for (int i = 0; i < ok; i++) printf("%s%.3f", i ? "," : "", ms[i]);
    printf("],\"stop_ms\":[");
    for (int i = 0; i < ok; i++) printf("%s%.3f", i ? "," : "", stop_ms[i]);
    printf("]");
    if (ok > 0) {
        qsort(ms, (size_t)ok, sizeof ms[0], cmp_double);
        printf(",\"median_ms\":%.3f,\"min_ms\":%.3f,\"max_ms\":%.3f", ms[ok / 2], ms[0], ms[ok - 1]);
    }
    printf("}\n");
    fflush(stdout);
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    parse_args(argc, argv);
    raise_nofile();
    if (opt.kind == K_NONE) usage("no address: give --tcp, --udp, --unix or --unixgram");
    if (opt.kind == K_UNIXGRAM && strcmp(opt.mode, "udp") && strcmp(opt.mode, "dgram"))
        usage("--unixgram goes with mode udp (or dgram)");
    if (!strcmp(opt.mode, "stream")) {
        if (opt.kind == K_UDP) usage("stream needs --tcp or --unix");
        return mode_stream();
    }
    if (!strcmp(opt.mode, "latency")) {
        if (opt.kind == K_UDP) usage("latency needs --tcp or --unix");
        return mode_latency();
    }
    if (!strcmp(opt.mode, "connect")) return mode_connect(0);
    if (!strcmp(opt.mode, "connect-eof")) return mode_connect(1);
    if (!strcmp(opt.mode, "udp") || !strcmp(opt.mode, "dgram")) return mode_udp();
    if (!strcmp(opt.mode, "idle")) return mode_idle();
    if (!strcmp(opt.mode, "startup")) return mode_startup();
    usage("unknown mode");
}
