// Datagrams in batches: recvmmsg and sendmmsg for the serve loop of a datagram server.
#define _GNU_SOURCE
#include "cshims_dgram_batch.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

/// Room for one SCM_CREDENTIALS message, aligned for cmsghdr.
union credentials_control {
    char buf[CMSG_SPACE(sizeof(struct ucred))];
    struct cmsghdr align;
};

/// Copies the SCM_CREDENTIALS of `msg`, if any, into `slot`.
static void take_credentials(struct msghdr *msg, struct cshims_dgram_slot *slot) {
    slot->has_cred = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(c), sizeof(uc));
            slot->cred.pid = uc.pid;
            slot->cred.uid = uc.uid;
            slot->cred.gid = uc.gid;
            // As in cshims_recv_with_cred: pid 0 and the overflow ids are nobody's credentials.
            slot->has_cred = uc.pid != 0;
        }
    }
}

int cshims_recv_batch(int fd, struct cshims_dgram_slot *slots, unsigned count) {
    if (count == 0 || count > CSHIMS_DGRAM_BATCH_MAX) {
        errno = EINVAL;
        return -1;
    }
    struct mmsghdr messages[CSHIMS_DGRAM_BATCH_MAX];
    struct iovec vectors[CSHIMS_DGRAM_BATCH_MAX];
    union credentials_control controls[CSHIMS_DGRAM_BATCH_MAX];
    memset(messages, 0, sizeof(struct mmsghdr) * count);
    for (unsigned i = 0; i < count; i++) {
        vectors[i].iov_base = slots[i].buffer;
        vectors[i].iov_len = slots[i].capacity;
        messages[i].msg_hdr.msg_name = &slots[i].address;
        messages[i].msg_hdr.msg_namelen = sizeof(slots[i].address);
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_control = controls[i].buf;
        messages[i].msg_hdr.msg_controllen = sizeof(controls[i].buf);
    }
    int received;
    do {
        // MSG_TRUNC: each msg_len is the datagram's real length; MSG_DONTWAIT: only what is queued now.
        received = recvmmsg(fd, messages, count, MSG_TRUNC | MSG_DONTWAIT, NULL);
    } while (received < 0 && errno == EINTR);
    for (int i = 0; i < received; i++) {
        slots[i].length = messages[i].msg_len;
        slots[i].address_length = messages[i].msg_hdr.msg_namelen;
        take_credentials(&messages[i].msg_hdr, &slots[i]);
    }
    return received;
}

unsigned cshims_send_batch(int fd, struct cshims_dgram_reply *replies, unsigned count) {
    if (count > CSHIMS_DGRAM_BATCH_MAX) {
        for (unsigned i = CSHIMS_DGRAM_BATCH_MAX; i < count; i++) {
            replies[i].error = EMSGSIZE;  // beyond what one call takes: not sent, and said so
        }
        count = CSHIMS_DGRAM_BATCH_MAX;
    }
    struct mmsghdr messages[CSHIMS_DGRAM_BATCH_MAX];
    struct iovec vectors[CSHIMS_DGRAM_BATCH_MAX];
    memset(messages, 0, sizeof(struct mmsghdr) * count);
    for (unsigned i = 0; i < count; i++) {
        vectors[i].iov_base = (void *)replies[i].bytes;
        vectors[i].iov_len = replies[i].length;
        messages[i].msg_hdr.msg_name = &replies[i].address;
        messages[i].msg_hdr.msg_namelen = replies[i].address_length;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        replies[i].error = 0;
    }
    unsigned next = 0, sent = 0;
    while (next < count) {
        int done = sendmmsg(fd, messages + next, count - next, MSG_NOSIGNAL);
        if (done > 0) {
            next += (unsigned)done;
            sent += (unsigned)done;
        } else if (done < 0 && errno == EINTR) {
            continue;
        } else {
            // sendmmsg stops at the first reply the kernel refuses: that one alone fails.
            replies[next].error = done < 0 ? errno : EIO;
            next++;
        }
    }
    return sent;
}
