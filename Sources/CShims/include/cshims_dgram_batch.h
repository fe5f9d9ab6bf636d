#ifndef CSHIMS_DGRAM_BATCH_H
#define CSHIMS_DGRAM_BATCH_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "CShims.h"

/// The most datagrams one cshims_recv_batch or cshims_send_batch call handles (its message
/// headers live on the C stack).
#define CSHIMS_DGRAM_BATCH_MAX 64

/// One datagram of a received batch: the caller sets `buffer` and `capacity` once (the buffers are
/// reused), cshims_recv_batch fills in the rest.
struct cshims_dgram_slot {
    /// Where the payload goes, and its size: a longer datagram is cut to `capacity` bytes.
    void *buffer;
    size_t capacity;
    /// The payload's length in the datagram (MSG_TRUNC: more than `capacity` when it was cut).
    size_t length;
    /// The sender's address and its length.
    struct sockaddr_storage address;
    socklen_t address_length;
    /// 1 when SCM_CREDENTIALS came along (SO_PASSCRED on a Unix socket; never for a datagram
    /// queued before SO_PASSCRED was set, which the kernel reports as pid 0), with them in `cred`.
    int has_cred;
    struct cshims_peercred cred;
};

/// recvmmsg(2) of up to `count` (at most CSHIMS_DGRAM_BATCH_MAX) datagrams that are queued now
/// on `fd`, each into its slot, without waiting for more. Returns how many arrived (>= 1), or -1
/// with errno (EAGAIN when none is queued on a non-blocking socket, EINVAL for a `count` of 0 or
/// above the maximum).
int cshims_recv_batch(int fd, struct cshims_dgram_slot *slots, unsigned count);

/// One reply of a batch to send: the bytes and the destination; `error` is set by
/// cshims_send_batch.
struct cshims_dgram_reply {
    const void *bytes;
    size_t length;
    struct sockaddr_storage address;
    socklen_t address_length;
    /// 0 once sent, else the errno that refused this reply alone.
    int error;
};

/// sendmmsg(2) of `count` (at most CSHIMS_DGRAM_BATCH_MAX) replies from `fd`, in order, with
/// MSG_NOSIGNAL. A reply the kernel refuses (EAGAIN on a full send buffer, ECONNREFUSED, …) gets
/// its errno in `error` and the rest are still sent; EINTR is retried; replies past the maximum
/// are not sent and get EMSGSIZE. Returns how many were sent.
unsigned cshims_send_batch(int fd, struct cshims_dgram_reply *replies, unsigned count);

#endif
