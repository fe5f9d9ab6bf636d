#include "cshims_epoll.h"

#include <sys/epoll.h>

int cshims_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int cshims_epoll_watch(int epfd, int fd, uint64_t token) {
    struct epoll_event event = { .events = EPOLLIN, .data.u64 = token };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int cshims_epoll_forget(int epfd, int fd) {
    struct epoll_event unused = { 0 };
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &unused);
}

int cshims_epoll_ready(int epfd, uint64_t *tokens, int max, int timeout_ms) {
    struct epoll_event events[64];
    if (max > 64) {
        max = 64;
    }
    int count = epoll_wait(epfd, events, max, timeout_ms);
    for (int i = 0; i < count; i++) {
        tokens[i] = events[i].data.u64;
    }
    return count;
}
