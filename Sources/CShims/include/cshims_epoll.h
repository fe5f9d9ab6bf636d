#ifndef CSHIMS_EPOLL_H
#define CSHIMS_EPOLL_H

#include <stdint.h>

/// epoll_create1(EPOLL_CLOEXEC); -1 with errno.
int cshims_epoll_create(void);

/// Watches `fd` for input, level-triggered, reported as `token`; 0 or -1 with errno.
int cshims_epoll_watch(int epfd, int fd, uint64_t token);

/// Stops watching `fd`; 0 or -1 with errno.
int cshims_epoll_forget(int epfd, int fd);

/// epoll_wait(2): the tokens of up to `max` ready descriptors into `tokens`; how many, or -1 with
/// errno. `timeout_ms` as for epoll_wait (0: do not wait).
int cshims_epoll_ready(int epfd, uint64_t *tokens, int max, int timeout_ms);

#endif
