/*
 * epoll_echo: the benchmark's "limit" reference, an echo server written for the benchmark.
 *
 * One thread (or --threads N, each with its own epoll set), level-triggered epoll, non-blocking
 * sockets.  Stream connections (TCP and Unix) get
 * every byte back: one read of up to 64 KiB, written straight back; what the socket does not take
 * is kept and the connection stops reading until it is written.  UDP: recvmmsg/sendmmsg in batches
 * of 32, each datagram back to its sender.  Unix datagrams (--unixgram) the same way, each back to
 * its sender's address (an abstract name or a path; an unbound sender cannot be answered and is
 * skipped).  That socket alone blocks on send, for at most 100 ms: a Unix datagram peer takes only
 * net.unix.max_dgram_qlen datagrams into its queue and, unlike UDP, refuses more with EAGAIN
 * rather than dropping them, and a reply dropped there would cost the client a 500 ms resend.
 *
 *   epoll_echo [--threads N] [--tcp HOST:PORT] [--unix PATH] [--udp HOST:PORT] [--unixgram PATH]
 *
 * With --threads N (1 to 64, default 1) each thread runs its own loop: TCP and UDP listeners get one
 * socket per thread on the same port (SO_REUSEPORT, the kernel spreads connections and datagrams),
 * a Unix socket is shared and watched by every thread with EPOLLEXCLUSIVE (one thread woken per
 * event).  The main thread only waits for the stop signal.
 *
 * Numeric hosts only.  For each listener it prints `listening on echo@tcp://HOST:PORT` (real
 * port) to stderr, as serverd does.  Runs until SIGTERM or SIGINT, then removes its Unix socket
 * files and exits 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum kind { L_TCP, L_UNIX, L_UDP, CONN };

struct item {
    enum kind kind;
    int fd;
    char *pend; /* bytes read but not yet written back */
    size_t pend_off, pend_len;
};

/* Each thread's epoll set and read buffer. */
static __thread int ep;
static __thread char buf[65536];

/* A listener as given, with its socket for each thread (one shared socket for Unix sockets). */
#define MAX_THREADS 64
#define MAX_LISTENERS 16
struct listener {
    enum kind kind;
    int shared;
    int fds[MAX_THREADS];
};
static struct listener listeners[MAX_LISTENERS];
static int nlisteners, nthreads = 1;

static void die(const char *what) {
    fprintf(stderr, "epoll_echo: %s: %s\n", what, strerror(errno));
    exit(71);
}

static void usage(void) {
    fprintf(stderr, "usage: epoll_echo [--threads N] [--tcp HOST:PORT] [--unix PATH] [--udp HOST:PORT] [--unixgram PATH]\n");
    exit(64);
}

static struct item *add_with(enum kind k, int fd, uint32_t extra) {
    struct item *it = calloc(1, sizeof *it);
    it->kind = k;
    it->fd = fd;
    struct epoll_event ev = { .events = EPOLLIN | extra, .data.ptr = it };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    return it;
}

static struct item *add(enum kind k, int fd) { return add_with(k, fd, 0); }

static void drop(struct item *it) {
    close(it->fd); /* also leaves the epoll set */
    free(it->pend);
    free(it);
}

static void parse_inet(const char *s, struct sockaddr_storage *ss, socklen_t *len) {
    char host[256];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host) usage();
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    char *h = host;
    size_t hl = strlen(h);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') { h[hl - 1] = 0; h++; }
    int port = atoi(colon + 1);
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
    } else if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
    } else {
        usage();
    }
}

static socklen_t local_address(int fd, struct sockaddr_storage *ss) {
    socklen_t len = sizeof *ss;
    if (getsockname(fd, (struct sockaddr *)ss, &len) < 0) die("getsockname");
    return len;
}

static void print_inet(const char *scheme, int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN];
    getsockname(fd, (struct sockaddr *)&ss, &len);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
        fprintf(stderr, "epoll_echo: listening on echo@%s://[%s]:%d\n", scheme, host, ntohs(a6->sin6_port));
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
        fprintf(stderr, "epoll_echo: listening on echo@%s://%s:%d\n", scheme, host, ntohs(a4->sin_port));
    }
}

static void on_accept(struct item *l) {
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return; /* EAGAIN, or EMFILE and friends: try again on the next event */
        }
        if (l->kind == L_TCP) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        add(CONN, fd);
    }
}

static void want(struct item *c, uint32_t events) {
    struct epoll_event ev = { .events = events, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_conn(struct item *c, uint32_t events) {
    if (c->pend) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        ssize_t w = write(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            drop(c);
            return;
        }
        c->pend_off += (size_t)w;
        if (c->pend_off == c->pend_len) {
            free(c->pend);
            c->pend = NULL;
            want(c, EPOLLIN);
        }
        return;
    }
    ssize_t r = read(c->fd, buf, sizeof buf);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r <= 0) { drop(c); return; }
    ssize_t w = write(c->fd, buf, (size_t)r);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) { drop(c); return; }
        w = 0;
    }
    if (w < r) {
        c->pend_len = (size_t)(r - w);
        c->pend_off = 0;
        c->pend = malloc(c->pend_len);
        memcpy(c->pend, buf + w, c->pend_len);
        want(c, EPOLLOUT);
    }
}

#define BATCH 32
static void on_udp(struct item *u) {
    static __thread char data[BATCH][2048];
    static __thread struct sockaddr_storage from[BATCH];
    struct mmsghdr m[BATCH];
    struct iovec iov[BATCH];
    for (int round = 0; round < 16; round++) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = data[i];
            iov[i].iov_len = sizeof data[i];
            memset(&m[i], 0, sizeof m[i]);
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
            m[i].msg_hdr.msg_name = &from[i];
            m[i].msg_hdr.msg_namelen = sizeof from[i];
        }
        int got = recvmmsg(u->fd, m, BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0) return;
        int keep = 0;
        for (int i = 0; i < got; i++) {
            /* An unbound Unix sender has no address to answer (namelen is just the family). */
            if (m[i].msg_hdr.msg_namelen <= sizeof(sa_family_t)) continue;
            iov[i].iov_len = m[i].msg_len;
            if (keep != i) { m[keep] = m[i]; iov[keep] = iov[i]; }
            m[keep].msg_hdr.msg_iov = &iov[keep];
            keep++;
        }
        int off = 0, n = keep;
        while (off < n) {
            int s = sendmmsg(u->fd, m + off, (unsigned)(n - off), 0);
            if (s <= 0) { off++; continue; } /* drop the one that failed */
            off += s;
        }
        if (got < BATCH) return;
    }
}

/* One thread's loop over its own epoll set. */
static void *serve(void *arg) {
    int index = (int)(intptr_t)arg;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    for (int l = 0; l < nlisteners; l++) {
        struct listener *li = &listeners[l];
        if (li->shared)
            add_with(li->kind, li->fds[0], nthreads > 1 ? EPOLLEXCLUSIVE : 0);
        else
            add(li->kind, li->fds[index]);
    }
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct item *it = evs[i].data.ptr;
            switch (it->kind) {
            case L_TCP:
            case L_UNIX: on_accept(it); break;
            case L_UDP: on_udp(it); break;
            case CONN: on_conn(it, evs[i].events); break;
            }
        }
    }
    return NULL;
}

/* An inet socket bound to ss (the first of a SO_REUSEPORT group when reuseport). */
static int inet_socket(int tcp, struct sockaddr_storage *ss, socklen_t len, int reuseport) {
    int fd = socket(ss->ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) die("SO_REUSEPORT");
    if (bind(fd, (struct sockaddr *)ss, len) < 0) die("bind");
    if (tcp && listen(fd, 4096) < 0) die("listen");
    if (!tcp) {
        int big = 1 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    }
    return fd;
}

int main(int argc, char **argv) {
    const char *unix_paths[8];
    int nunix = 0;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--threads")) {
            nthreads = atoi(argv[++i]);
            if (nthreads < 1 || nthreads > MAX_THREADS) usage();
            if (nlisteners) usage(); /* --threads comes first */
            continue;
        }
        const char *a = argv[i], *v = argv[++i];
        if (nlisteners == MAX_LISTENERS) usage();
        struct listener *li = &listeners[nlisteners];
        if (!strcmp(a, "--tcp") || !strcmp(a, "--udp")) {
            int tcp = !strcmp(a, "--tcp");
            struct sockaddr_storage ss;
            socklen_t len;
            parse_inet(v, &ss, &len);
            li->kind = tcp ? L_TCP : L_UDP;
            li->fds[0] = inet_socket(tcp, &ss, len, nthreads > 1);
            /* The others take the port the first one got. */
            len = local_address(li->fds[0], &ss);
            for (int t = 1; t < nthreads; t++) li->fds[t] = inet_socket(tcp, &ss, len, 1);
            print_inet(tcp ? "tcp" : "udp", li->fds[0]);
        } else if (!strcmp(a, "--unix") || !strcmp(a, "--unixgram")) {
            int stream = !strcmp(a, "--unix");
            struct sockaddr_un un = { .sun_family = AF_UNIX };
            if (strlen(v) >= sizeof un.sun_path || nunix == 8) usage();
            strcpy(un.sun_path, v);
            struct stat st;
            if (lstat(v, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(v);
            /* The datagram socket stays blocking for its sends (see the top); it is read with
             * MSG_DONTWAIT. */
            int fd = socket(AF_UNIX, (stream ? SOCK_STREAM | SOCK_NONBLOCK : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
            if (fd < 0) die("socket");
            if (bind(fd, (struct sockaddr *)&un, sizeof un) < 0) die("bind");
            if (stream && listen(fd, 4096) < 0) die("listen");
            if (!stream) {
                struct timeval tv = { .tv_usec = 100000 };
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
                int big = 1 << 20;
                setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
            }
            li->kind = stream ? L_UNIX : L_UDP;
            li->shared = 1;
            li->fds[0] = fd;
            unix_paths[nunix++] = v;
            fprintf(stderr, "epoll_echo: listening on echo@%s:%s\n", stream ? "unix" : "unixgram", v);
        } else {
            usage();
        }
        nlisteners++;
    }
    if (!nlisteners) usage();

    /* Every thread inherits the blocked mask; the main thread alone takes the stop signal. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (int t = 0; t < nthreads; t++) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, serve, (void *)(intptr_t)t) != 0) {
            errno = EAGAIN;
            die("pthread_create");
        }
    }
    int sig;
    while (sigwait(&mask, &sig) != 0) {}
    for (int u = 0; u < nunix; u++) unlink(unix_paths[u]);
    return 0;
}
