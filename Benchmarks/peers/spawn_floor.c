/*
 * spawn_floor: the superserver benchmark's floor (Benchmarks/superservers.py).  One thread:
 * blocking accept, posix_spawn of PROG with the connection on its stdin and stdout (stderr
 * inherited), close, reap whatever exited with waitpid(-1, WNOHANG).  No limits, no logging, no
 * environment of its own: the least a superserver can do per connection.
 *
 *   spawn_floor tcp HOST:PORT PROG ARGS...     (numeric IPv4 host; port 0 picks one)
 *   spawn_floor unix PATH PROG ARGS...
 *
 * Prints `spawn_floor: listening on exec@tcp://HOST:PORT` (the real port) or `…exec@unix:PATH`
 * to stderr, as serverd does.  Runs until a signal ends it (SIGTERM's default action).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void die(const char *what) { perror(what); exit(71); }

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: spawn_floor tcp HOST:PORT|unix PATH PROG ARGS...\n"); return 64; }
    int tcp = !strcmp(argv[1], "tcp"), fd;
    if (tcp) {
        char *colon = strrchr(argv[2], ':');
        struct sockaddr_in a = { .sin_family = AF_INET };
        if (!colon) return 64;
        *colon = 0;
        if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) return 64;
        a.sin_port = htons((unsigned short)atoi(colon + 1));
        int one = 1;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
        socklen_t len = sizeof a;
        getsockname(fd, (struct sockaddr *)&a, &len);
        fprintf(stderr, "spawn_floor: listening on exec@tcp://%s:%d\n", argv[2], ntohs(a.sin_port));
    } else {
        struct sockaddr_un u = { .sun_family = AF_UNIX };
        if (strcmp(argv[1], "unix") || strlen(argv[2]) >= sizeof u.sun_path) return 64;
        strcpy(u.sun_path, argv[2]);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (bind(fd, (struct sockaddr *)&u, sizeof u) < 0) die("bind");
        fprintf(stderr, "spawn_floor: listening on exec@unix:%s\n", argv[2]);
    }
    if (listen(fd, SOMAXCONN) < 0) die("listen");
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0) {
            posix_spawn_file_actions_t fa; /* dup2 clears close-on-exec on 0 and 1 */
            posix_spawn_file_actions_init(&fa);
            posix_spawn_file_actions_adddup2(&fa, c, 0);
            posix_spawn_file_actions_adddup2(&fa, c, 1);
            pid_t pid;
            if (posix_spawn(&pid, argv[3], &fa, NULL, &argv[3], environ) != 0) perror("posix_spawn");
            posix_spawn_file_actions_destroy(&fa);
            close(c);
        }
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
    }
}
