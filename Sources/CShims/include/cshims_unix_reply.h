#ifndef CSHIMS_UNIX_REPLY_H
#define CSHIMS_UNIX_REPLY_H

#include <stddef.h>
#include <stdint.h>

/// Looks up, through NETLINK_SOCK_DIAG, the Unix socket of type `type` (SOCK_DGRAM, …) that holds
/// the abstract name `name` (`length` bytes, without the leading NUL) in the network namespace of
/// the socket `via` (the one the reply would be sent from), and stores the uid that owns it in
/// `*uid`. `*inode_hint` is the inode of the socket that held the name last time, or 0: that
/// socket is asked for first (one exact request), and all of them only when it no longer holds the
/// name; on success it is set to the holder's inode.
/// Returns 0 when found; -1 with errno ENOENT when no socket holds the name, EXDEV when `via`
/// belongs to another network namespace than this process (a netlink socket of ours cannot see
/// its names), EOPNOTSUPP when the kernel reports no owner (before Linux 5.3), or the errno of the
/// failing call (EAFNOSUPPORT or EPERM where a sandbox forbids netlink sockets).
int cshims_unix_abstract_owner(int via, const uint8_t *name, size_t length, int type, uint32_t *uid,
                               uint32_t *inode_hint);

/// Closes the sock_diag socket that cshims_unix_abstract_owner keeps between lookups if it went
/// unused for `seconds`, so that a burst of replies leaves no descriptor open.
void cshims_unix_diag_close_idle(double seconds);

#endif
