#define _GNU_SOURCE
#include "cshims_cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// Everything the helper runs after fork is async-signal-safe: the caller may have other threads.

/// Whether `name` in `file->directory` is still `file` (not followed through a symlink).
static int still_same(const struct cshims_cleanup_file *file) {
    struct stat info;
    if (fstatat(file->directory, file->name, &info, AT_SYMLINK_NOFOLLOW) != 0) return 0;
    return info.st_dev == file->device && info.st_ino == file->inode && (info.st_mode & S_IFMT) == file->type;
}

static void remove_if_same(const struct cshims_cleanup_file *file) {
    if (!still_same(file)) return;
    unlinkat(file->directory, file->name, file->type == S_IFDIR ? AT_REMOVEDIR : 0);
}

static int take_lock(int fd, enum cshims_cleanup_lock kind) {
    if (kind == CSHIMS_CLEANUP_FLOCK) return flock(fd, LOCK_EX | LOCK_NB);
    struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    return fcntl(fd, F_SETLK, &lock);
}

static void clean(const struct cshims_cleanup_entry *entry) {
    if (entry->lock_kind == CSHIMS_CLEANUP_NO_LOCK) {
        if (entry->has_guarded) remove_if_same(&entry->guarded);
        return;
    }
    const struct cshims_cleanup_file *lock = &entry->lock;
    int fd = openat(lock->directory, lock->name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return;
    struct stat info;
    // The lock file must be ours, locked by nobody else, and still at its name once locked.
    if (fstat(fd, &info) == 0 && info.st_dev == lock->device && info.st_ino == lock->inode
        && take_lock(fd, entry->lock_kind) == 0 && still_same(lock)) {
        if (entry->has_guarded) remove_if_same(&entry->guarded);
        remove_if_same(lock);
    }
    close(fd);
}

/// Whether `fd` is one of the `count` descriptors in `keep`.
static int is_kept(int fd, const int *keep, int count) {
    for (int i = 0; i < count; i++) {
        if (keep[i] == fd) return 1;
    }
    return 0;
}

static void close_all_but(const int *keep, int count) {
    struct rlimit limit;
    long top = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY ? (long)limit.rlim_cur : 65536;
    if (top > 1048576) top = 1048576;
    int highest_kept = -1;
    for (int i = 0; i < count; i++) {
        if (keep[i] > highest_kept) highest_kept = keep[i];
    }
    for (int fd = 0; fd <= highest_kept; fd++) {
        if (!is_kept(fd, keep, count)) close(fd);
    }
    if (close_range((unsigned)highest_kept + 1, ~0U, 0) != 0) {
        for (long fd = highest_kept + 1; fd < top; fd++) close((int)fd);
    }
}

/// After an EOF without the daemon's byte (it died): waits (at most 5 s) until the daemon is
/// gone, which the helper sees by being reparented. The kernel reparents children only after the
/// last thread of the daemon has closed its descriptors, so the daemon's locks are released by
/// then; the pipe itself reaches EOF earlier, while its other descriptors may still be closing.
static void wait_until_gone(pid_t daemon) {
    struct timespec pause = { 0, 5 * 1000 * 1000 };
    for (int i = 0; i < 1000 && getppid() == daemon; i++) nanosleep(&pause, NULL);
}

static void run_helper(const struct cshims_cleanup_entry *entries, int count, const int *keep, int kept, int pipe_fd) {
    pid_t daemon = getppid();
    static const int ignored[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM };
    struct sigaction ignore = { .sa_handler = SIG_IGN };
    for (unsigned i = 0; i < sizeof ignored / sizeof ignored[0]; i++) sigaction(ignored[i], &ignore, NULL);
    close_all_but(keep, kept);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        for (int fd = 0; fd <= 2; fd++) {
            if (null != fd) dup2(null, fd);
        }
        if (null > 2) close(null);
    }
    if (chdir("/") != 0) { /* stays where it was; it opens nothing by a relative path */ }
    prctl(PR_SET_NAME, "serverd-cleanup", 0, 0, 0);
    char byte;
    ssize_t got;
    do {
        got = read(pipe_fd, &byte, 1);
    } while (got < 0 && errno == EINTR);
    if (got != 1) wait_until_gone(daemon);
    for (int i = 0; i < count; i++) clean(&entries[i]);
    _exit(0);
}

pid_t cshims_cleanup_start(const struct cshims_cleanup_entry *entries, int count, int *pipe_fd) {
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) return -1;
    // The descriptors the helper keeps, listed before the fork (no allocation after it).
    int *keep = malloc(sizeof(int) * (size_t)(2 * count + 1));
    if (keep == NULL) {
        close(ends[0]);
        close(ends[1]);
        errno = ENOMEM;
        return -1;
    }
    int kept = 0;
    keep[kept++] = ends[0];
    for (int i = 0; i < count; i++) {
        if (entries[i].lock_kind != CSHIMS_CLEANUP_NO_LOCK) keep[kept++] = entries[i].lock.directory;
        if (entries[i].has_guarded) keep[kept++] = entries[i].guarded.directory;
    }
    pid_t pid = fork();
    if (pid == 0) run_helper(entries, count, keep, kept, ends[0]);
    int saved = errno;
    free(keep);
    close(ends[0]);
    if (pid < 0) {
        close(ends[1]);
        errno = saved;
        return -1;
    }
    *pipe_fd = ends[1];
    return pid;
}
