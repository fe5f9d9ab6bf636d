// Who holds an abstract Unix socket name: the check behind replies to abstract datagram senders.
#define _GNU_SOURCE
#include "cshims_unix_reply.h"

#include <errno.h>
#include <pthread.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/// What a lookup searches for, and what it found.
struct search {
    const uint8_t *name;
    size_t length;
    int type;
    int found;
    int owner_known;
    uint32_t uid;
    uint32_t inode;
};

/// Records `msg` in `search` when it is a socket of the type bound to the abstract name.
static void consider(const struct unix_diag_msg *msg, size_t msg_len, struct search *search) {
    if (search->found || msg->udiag_type != search->type) {
        return;
    }
    int named = 0, has_uid = 0;
    uint32_t uid = 0;
    size_t attributes_len = msg_len - NLMSG_ALIGN(sizeof(*msg));
    for (const struct rtattr *attribute = (const struct rtattr *)(msg + 1);
         RTA_OK(attribute, attributes_len); attribute = RTA_NEXT(attribute, attributes_len)) {
        const uint8_t *data = RTA_DATA(attribute);
        size_t data_len = RTA_PAYLOAD(attribute);
        if (attribute->rta_type == UNIX_DIAG_NAME) {
            // An abstract name is reported with its leading NUL.
            named = data_len == search->length + 1 && data[0] == 0 && memcmp(data + 1, search->name, search->length) == 0;
        } else if (attribute->rta_type == UNIX_DIAG_UID && data_len >= sizeof(uint32_t)) {
            memcpy(&uid, data, sizeof(uint32_t));
            has_uid = 1;
        }
    }
    if (named) {
        search->found = 1;
        search->owner_known = has_uid;
        search->uid = uid;
        search->inode = msg->udiag_ino;
    }
}

/// The process's one sock_diag socket, opened at the first lookup and kept (a socket per reply
/// cost more than the lookup), with its network namespace's cookie; used under `diag_lock`, by
/// the process that opened it (a forked child opens its own).
static pthread_mutex_t diag_lock = PTHREAD_MUTEX_INITIALIZER;
static int diag_fd = -1;
static pid_t diag_pid;
static uint64_t diag_cookie;
static int diag_cookie_known;
static uint32_t diag_sequence;
static struct timespec diag_used;

/// Seconds from `earlier` to `later`.
static double seconds_between(struct timespec earlier, struct timespec later) {
    return (double)(later.tv_sec - earlier.tv_sec) + (double)(later.tv_nsec - earlier.tv_nsec) / 1e9;
}

void cshims_unix_diag_close_idle(double seconds) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&diag_lock);
    if (diag_fd >= 0 && diag_pid == getpid() && seconds_between(diag_used, now) >= seconds) {
        close(diag_fd);
        diag_fd = -1;
    }
    pthread_mutex_unlock(&diag_lock);
}

/// Opens the sock_diag socket if needed; returns 0 or an errno.
static int open_diag(void) {
    pid_t self = getpid();
    if (diag_fd >= 0 && diag_pid == self) {
        return 0;
    }
    if (diag_fd >= 0) {
        close(diag_fd);  // the parent's, inherited by fork
    }
    diag_fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (diag_fd < 0) {
        return errno;
    }
    diag_pid = self;
    socklen_t length = sizeof diag_cookie;
    diag_cookie_known = getsockopt(diag_fd, SOL_SOCKET, SO_NETNS_COOKIE, &diag_cookie, &length) == 0;
    return 0;
}

/// Whether `via` lives in the sock_diag socket's network namespace; 1 also when the kernel cannot
/// tell (before Linux 5.14), where both are ours anyway.
static int same_namespace(int via) {
    uint64_t cookie = 0;
    socklen_t length = sizeof cookie;
    if (!diag_cookie_known || getsockopt(via, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &length) != 0) {
        return 1;
    }
    return cookie == diag_cookie;
}

/// Sends one sock_diag request — the socket with `inode`, or every socket when `inode` is 0 —
/// and reads the answer to its end. Returns 0, or an errno (ENOENT: no socket has that inode).
static int ask(int fd, uint32_t inode, struct search *search) {
    struct {
        struct nlmsghdr header;
        struct unix_diag_req request;
    } query;
    memset(&query, 0, sizeof query);
    query.header.nlmsg_len = sizeof query;
    query.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    query.header.nlmsg_flags = NLM_F_REQUEST | (inode ? 0 : NLM_F_DUMP);
    query.header.nlmsg_seq = ++diag_sequence;
    query.request.sdiag_family = AF_UNIX;
    query.request.udiag_states = ~0U;
    query.request.udiag_ino = inode;
    query.request.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_UID;
    query.request.udiag_cookie[0] = query.request.udiag_cookie[1] = ~0U;  // any socket with that inode
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, &query, sizeof query, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        return errno;
    }
    long buffer[8192 / sizeof(long)];
    for (;;) {
        ssize_t received = recv(fd, buffer, sizeof buffer, 0);
        if (received < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (received == 0) {
            return 0;
        }
        size_t left = (size_t)received;
        for (const struct nlmsghdr *header = (const struct nlmsghdr *)buffer; NLMSG_OK(header, left);
             header = NLMSG_NEXT(header, left)) {
            if (header->nlmsg_seq != query.header.nlmsg_seq) {
                continue;  // the rest of an answer an earlier failure left unread
            }
            if (header->nlmsg_type == NLMSG_DONE) {
                return 0;
            }
            if (header->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *error = NLMSG_DATA(header);
                return error->error < 0 ? -error->error : 0;
            }
            if (header->nlmsg_len >= NLMSG_LENGTH(sizeof(struct unix_diag_msg))) {
                consider(NLMSG_DATA(header), header->nlmsg_len - NLMSG_LENGTH(0), search);
            }
            if (inode) {
                return 0;  // an exact request has a single answer, without NLMSG_DONE
            }
        }
    }
}

int cshims_unix_abstract_owner(int via, const uint8_t *name, size_t length, int type, uint32_t *uid,
                               uint32_t *inode_hint) {
    pthread_mutex_lock(&diag_lock);
    clock_gettime(CLOCK_MONOTONIC, &diag_used);
    int failure = open_diag();
    if (!failure && !same_namespace(via)) {
        failure = EXDEV;
    }
    struct search search = {.name = name, .length = length, .type = type};
    if (!failure && *inode_hint) {
        failure = ask(diag_fd, *inode_hint, &search);
        if (failure == ENOENT) {
            failure = 0;  // that socket is gone: look for whoever holds the name now
        }
    }
    if (!failure && !search.found) {
        failure = ask(diag_fd, 0, &search);
    }
    if (failure && failure != EXDEV && diag_fd >= 0) {
        close(diag_fd);  // start afresh next time
        diag_fd = -1;
    }
    pthread_mutex_unlock(&diag_lock);
    if (failure) {
        errno = failure;
        return -1;
    }
    if (!search.found) {
        errno = ENOENT;
        return -1;
    }
    if (!search.owner_known) {
        errno = EOPNOTSUPP;
        return -1;
    }
    *uid = search.uid;
    *inode_hint = search.inode;
    return 0;
}
