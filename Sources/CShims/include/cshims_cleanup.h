#ifndef CSHIMS_CLEANUP_H
#define CSHIMS_CLEANUP_H

#include <sys/types.h>

/// A file the privileged cleanup helper may remove: by name inside a directory it holds open,
/// and only while that name still is this very file (device, inode and type).
struct cshims_cleanup_file {
    /// An O_PATH descriptor of the directory holding the file.
    int directory;
    /// The file's name in that directory (no '/').
    const char *name;
    dev_t device;
    ino_t inode;
    /// S_IFSOCK, S_IFREG or S_IFDIR: what the file must still be.
    mode_t type;
};

/// How the lock file of an entry is locked.
enum cshims_cleanup_lock {
    /// No lock: the entry is a directory, removed only if it is empty.
    CSHIMS_CLEANUP_NO_LOCK = 0,
    /// flock(2), as a Unix socket's PATH.lock.
    CSHIMS_CLEANUP_FLOCK = 1,
    /// fcntl(2) F_SETLK, as the pidfile.
    CSHIMS_CLEANUP_POSIX_LOCK = 2,
};

/// One thing to clean up. With a lock: the helper locks `lock` (which must still be the same file
/// at the same name), removes `guarded` if there is one, then `lock` itself; if the lock is held
/// by another process (another instance took over), it removes nothing. Without a lock:
/// `guarded` is a directory, removed only if empty.
struct cshims_cleanup_entry {
    enum cshims_cleanup_lock lock_kind;
    struct cshims_cleanup_file lock;
    int has_guarded;
    struct cshims_cleanup_file guarded;
};

/// Forks the privileged cleanup helper: it keeps the caller's privileges, ignores the stop
/// signals, closes every descriptor but the entries' directories and its end of a pipe, and
/// waits. When a byte arrives (the caller's clean exit, its locks released), or when the pipe
/// reaches EOF and the caller is gone (it died), it cleans up `entries` in order and exits 0. The list is fixed here: nothing the caller does later can extend it.
/// Returns the helper's pid and stores the pipe's write end (close-on-exec) in *pipe_fd, or
/// returns -1 with errno.
pid_t cshims_cleanup_start(const struct cshims_cleanup_entry *entries, int count, int *pipe_fd);

#endif
