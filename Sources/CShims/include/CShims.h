#ifndef CSHIMS_H
#define CSHIMS_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stdint.h>


/// Socket types the Glibc module does not reliably export to Swift (seen missing in clean builds).
static const int cshims_sock_seqpacket = SOCK_SEQPACKET;
static const int cshims_sock_raw = SOCK_RAW;
static const int cshims_sock_rdm = SOCK_RDM;

/// Credentials of a Unix-socket peer (struct ucred, which needs _GNU_SOURCE).
struct cshims_peercred {
    pid_t pid;
    uid_t uid;
    gid_t gid;
};

/// accept4(2): the Glibc module hides it because it needs _GNU_SOURCE.
int cshims_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);

/// getsockopt(SO_PEERCRED) on a connected Unix stream socket. Returns 0 or -1 with errno.
int cshims_getpeercred(int fd, struct cshims_peercred *out);

/// eventfd(2) with EFD_CLOEXEC | EFD_NONBLOCK.
int cshims_eventfd_cloexec_nonblock(unsigned int initval);

/// signalfd(2) for the given signals, with SFD_CLOEXEC | SFD_NONBLOCK; -1 with errno on failure.
int cshims_signalfd(const int *signals, int count);

/// Reads one signal from a signalfd; returns the signal number, 0 if none was pending, -1 on error.
int cshims_signalfd_read(int fd);

/// Blocks (how = SIG_BLOCK) or unblocks (SIG_UNBLOCK) the given signals in the calling thread.
int cshims_sigmask(int how, const int *signals, int count);

/// Unblocks every signal and resets the disposition of every signal, glibc's internal ones
/// included, to SIG_DFL, with raw system calls only: for a freshly forked or cloned child.
void cshims_reset_signals(void);

/// Blocks every signal of the calling thread, glibc's internal ones included (raw
/// rt_sigprocmask); stores the mask it replaced in `*previous`. 0 or -1 with errno.
int cshims_block_every_signal(unsigned long *previous);

/// Sets the calling thread's signal mask back to what cshims_block_every_signal stored.
void cshims_restore_signal_mask(const unsigned long *previous);

/// fork(2), kept explicit and greppable.
pid_t cshims_fork(void);

/// recvmsg(2) of one datagram with SO_PASSCRED credentials, if the sender's arrive.
/// Returns the byte count or -1 with errno; *has_cred is set to 1 when credentials came along
/// (not for a datagram queued before SO_PASSCRED was set, which the kernel reports as pid 0).
ssize_t cshims_recv_with_cred(int fd, void *buf, size_t len, int flags,
                              struct sockaddr *addr, socklen_t *addrlen,
                              struct cshims_peercred *cred, int *has_cred);

/// Sends a datagram with explicit SCM_RIGHTS descriptors (for the systemd fd store).
ssize_t cshims_send_with_fds(int fd, const void *buf, size_t len,
                             const struct sockaddr *addr, socklen_t addrlen,
                             const int *fds, int nfds);

/// recvmsg(2) of one message that may carry SCM_RIGHTS descriptors: the first is stored in *received_fd
/// (close-on-exec), any others are closed; *received_fd is -1 when none came. Returns the byte count
/// (0 at end of file) or -1 with errno.
ssize_t cshims_recv_with_fd(int fd, void *buf, size_t len, int flags, int *received_fd);

/// errno's current value, read in C so that no Swift runtime call can clobber it first.
int cshims_errno(void);

/// The processors in the calling thread's CPU affinity mask (sched_getaffinity, CPU_COUNT), or -1
/// with errno.
int cshims_affinity_processor_count(void);

#include "cshims_epoll.h"
#include "cshims_exec.h"

#endif
