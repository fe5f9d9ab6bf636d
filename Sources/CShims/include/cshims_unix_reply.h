#ifndef CSHIMS_UNIX_REPLY_H
#define CSHIMS_UNIX_REPLY_H

#include <stddef.h>
#include <stdint.h>

/// O_PATH, which the Glibc module does not export (it needs _GNU_SOURCE).
extern const int cshims_o_path;

/// Looks up, through NETLINK_SOCK_DIAG, the Unix socket of type `type` (SOCK_DGRAM, …) that holds
/// the abstract name `name` (`length` bytes, without the leading NUL) in this network namespace,
/// and stores the uid that owns it in `*uid`.
/// Returns 0 when found; -1 with errno ENOENT when no socket holds the name, EOPNOTSUPP when the
/// kernel reports no owner (before Linux 5.3), or the errno of the failing call.
int cshims_unix_abstract_owner(const uint8_t *name, size_t length, int type, uint32_t *uid);

#endif
