#ifndef CSHIMS_EPOLL_H
#define CSHIMS_EPOLL_H

#include <stdint.h>
#include <sys/epoll.h>

/// The epoll constants, for Swift (the Glibc module does not export sys/epoll.h).
static const uint32_t cshims_epollin = EPOLLIN;
static const uint32_t cshims_epollout = EPOLLOUT;
static const uint32_t cshims_epollerr = EPOLLERR;
static const uint32_t cshims_epollhup = EPOLLHUP;
static const uint32_t cshims_epollrdhup = EPOLLRDHUP;
static const int cshims_epoll_ctl_add = EPOLL_CTL_ADD;
static const int cshims_epoll_ctl_mod = EPOLL_CTL_MOD;
static const int cshims_epoll_ctl_del = EPOLL_CTL_DEL;

/// epoll_create1(EPOLL_CLOEXEC); -1 with errno.
int cshims_epoll_create(void);

/// Watches `fd` for input, level-triggered, reported as `token`; 0 or -1 with errno.
int cshims_epoll_watch(int epfd, int fd, uint64_t token);

/// Stops watching `fd`; 0 or -1 with errno.
int cshims_epoll_forget(int epfd, int fd);

/// epoll_wait(2): the tokens of up to `max` ready descriptors into `tokens`; how many, or -1 with
/// errno. `timeout_ms` as for epoll_wait (0: do not wait).
int cshims_epoll_ready(int epfd, uint64_t *tokens, int max, int timeout_ms);

/// epoll_ctl(2) with an event mask: `op` is EPOLL_CTL_ADD, EPOLL_CTL_MOD or EPOLL_CTL_DEL, `events` the EPOLL*
/// bits, `token` what epoll_wait reports for `fd`; 0 or -1 with errno.
int cshims_epoll_control(int epfd, int op, int fd, uint32_t events, uint64_t token);

/// epoll_wait(2) keeping the events: the tokens and event masks of up to `max` (at most 256) ready descriptors
/// into `tokens` and `events`; how many, or -1 with errno.
int cshims_epoll_wait_events(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms);

#endif
