// Who holds an abstract Unix socket name: the check behind replies to abstract datagram senders.
#define _GNU_SOURCE
#include "cshims_unix_reply.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/// Scans one unix_diag_msg; returns 1 when it is a socket of `type` bound to the abstract name.
static int matches(const struct unix_diag_msg *msg, size_t msg_len, const uint8_t *name, size_t length,
                   int type, uint32_t *uid, int *has_uid) {
    if (msg->udiag_type != type) {
        return 0;
    }
    int named = 0;
    *has_uid = 0;
    size_t attributes_len = msg_len - NLMSG_ALIGN(sizeof(*msg));
    for (const struct rtattr *attribute = (const struct rtattr *)(msg + 1);
         RTA_OK(attribute, attributes_len); attribute = RTA_NEXT(attribute, attributes_len)) {
        const uint8_t *data = RTA_DATA(attribute);
        size_t data_len = RTA_PAYLOAD(attribute);
        if (attribute->rta_type == UNIX_DIAG_NAME) {
            // An abstract name is reported with its leading NUL.
            named = data_len == length + 1 && data[0] == 0 && memcmp(data + 1, name, length) == 0;
        } else if (attribute->rta_type == UNIX_DIAG_UID && data_len >= sizeof(uint32_t)) {
            memcpy(uid, data, sizeof(uint32_t));
            *has_uid = 1;
        }
    }
    return named;
}

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/// Whether two sockets live in the same network namespace; 1 also when the kernel cannot tell
/// (before Linux 5.14), where both are ours anyway.
static int same_namespace(int a, int b) {
    uint64_t first = 0, second = 0;
    socklen_t length = sizeof first;
    if (getsockopt(a, SOL_SOCKET, SO_NETNS_COOKIE, &first, &length) != 0) {
        return 1;
    }
    length = sizeof second;
    if (getsockopt(b, SOL_SOCKET, SO_NETNS_COOKIE, &second, &length) != 0) {
        return 1;
    }
    return first == second;
}

int cshims_unix_abstract_owner(int via, const uint8_t *name, size_t length, int type, uint32_t *uid) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) {
        return -1;
    }
    if (!same_namespace(fd, via)) {
        close(fd);
        errno = EXDEV;
        return -1;
    }
    struct {
        struct nlmsghdr header;
        struct unix_diag_req request;
    } query;
    memset(&query, 0, sizeof query);
    query.header.nlmsg_len = sizeof query;
    query.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    query.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    query.request.sdiag_family = AF_UNIX;
    query.request.udiag_states = ~0U;
    query.request.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_UID;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, &query, sizeof query, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    int found = 0, owner_known = 0, failure = 0;
    long buffer[8192 / sizeof(long)];
    for (int done = 0; !done;) {
        ssize_t received = recv(fd, buffer, sizeof buffer, 0);
        if (received < 0) {
            if (errno == EINTR) {
                continue;
            }
            failure = errno;
            break;
        }
        if (received == 0) {
            break;
        }
        size_t left = (size_t)received;
        for (const struct nlmsghdr *header = (const struct nlmsghdr *)buffer; NLMSG_OK(header, left);
             header = NLMSG_NEXT(header, left)) {
            if (header->nlmsg_type == NLMSG_DONE) {
                done = 1;
                break;
            }
            if (header->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *error = NLMSG_DATA(header);
                failure = error->error < 0 ? -error->error : EPROTO;
                done = 1;
                break;
            }
            if (header->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg)) || found) {
                continue;  // read on to the end of the dump: the socket must be drained
            }
            int has_uid = 0;
            uint32_t candidate = 0;
            if (matches(NLMSG_DATA(header), header->nlmsg_len - NLMSG_LENGTH(0), name, length, type, &candidate,
                        &has_uid)) {
                found = 1;
                owner_known = has_uid;
                *uid = candidate;
            }
        }
    }
    close(fd);
    if (failure) {
        errno = failure;
        return -1;
    }
    if (!found) {
        errno = ENOENT;
        return -1;
    }
    if (!owner_known) {
        errno = EOPNOTSUPP;
        return -1;
    }
    return 0;
}
