#ifndef CSHIMS_BIND_H
#define CSHIMS_BIND_H

#include <sys/socket.h>

/// bind(2) on a short-lived thread that first calls unshare(CLONE_FS) and umask(0), joined before
/// returning. A filesystem Unix socket then appears with exactly the permission bits of its
/// socket inode (set them with fchmod(2) on the socket first): no window with other bits, and no
/// chmod by path afterwards. The umask is per fs_struct, so no other thread, nor a child spawned
/// meanwhile, ever sees umask 0. Returns 0, or -1 with errno set by pthread_create, unshare or bind.
int cshims_bind_umask0(int fd, const struct sockaddr *addr, socklen_t len);

#endif
