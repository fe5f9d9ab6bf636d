#ifndef CSHIMS_EXEC_H
#define CSHIMS_EXEC_H

#include <sys/resource.h>
#include <sys/types.h>

/// The resource limits an exec listener may set (RLIMIT_NPROC is hidden from Swift's Glibc module).
static const int cshims_rlimit_nofile = RLIMIT_NOFILE;
static const int cshims_rlimit_as = RLIMIT_AS;
static const int cshims_rlimit_cpu = RLIMIT_CPU;
static const int cshims_rlimit_nproc = RLIMIT_NPROC;

/// The process groups that exec children lead (mmap'd memory; exec does not carry it into a
/// program). A slot holds a group's id from just before its leader runs the program until the group is
/// empty; the daemon ends every group still listed when it stops.
struct cshims_group_table;

/// A table of `capacity` free slots; NULL with errno when mmap fails.
struct cshims_group_table *cshims_group_table_create(int capacity);

/// Forgets `pgid`, listed in `slot`, if the group is empty now; returns 1 if it was forgotten (or
/// is not listed there), 0 if members live on (a full table then frees the slot once they are gone).
int cshims_group_table_release(struct cshims_group_table *table, pid_t pgid, int slot);

/// Closes the table to new groups (a spawn that has not entered its group yet fails with
/// ECANCELED) and copies the groups listed into `out` (at most `max`); returns how many.
int cshims_group_table_close(struct cshims_group_table *table, pid_t *out, int max);

/// The most descriptors a spawned program is given.
#define CSHIMS_SPAWN_MAX_DESCRIPTORS 8

/// What ``cshims_spawn`` starts.
struct cshims_spawn_request {
    /// The program, searched in PATH when it has no '/'.
    const char *file;
    /// NULL-terminated arguments and `NAME=value` environment.
    char *const *argv;
    char *const *envp;
    /// `descriptors[i]` becomes descriptor i of the program, for i < `count` (at most
    /// CSHIMS_SPAWN_MAX_DESCRIPTORS); every other descriptor is closed.
    const int *descriptors;
    int count;
    /// When not NULL: room for at least 12 bytes inside one of the `envp` strings (after
    /// `LISTEN_PID=`), where the child writes its own pid before exec.
    char *pid_digits;
    /// The table the child enters its process group in before exec.
    struct cshims_group_table *groups;
    /// Resource limits (soft and hard) to set: `limit_count` pairs of resource and value.
    const int *limit_resources;
    const unsigned long long *limit_values;
    int limit_count;
    /// chroot(2) to this directory first (then chdir("/") unless `directory` is given), or NULL.
    const char *root;
    /// chdir(2) to this directory, or NULL.
    const char *directory;
    /// When `set_ids`: setgroups(`groups`), setresgid(`gid`) and, when `set_uid`, setresuid(`uid`), as raw system
    /// calls (glibc's wrappers would signal the parent's threads, whose memory the child shares).
    int set_ids;
    int set_uid;
    uid_t uid;
    gid_t gid;
    const gid_t *groups_list;
    int group_count;
    /// umask(2) to this mask, or -1 to keep serverd's.
    int umask;
};

/// Starts a program without copying the daemon: clone(CLONE_VM|CLONE_VFORK) on a stack of its
/// own, as glibc's posix_spawn does, with a child that makes only async-signal-safe calls and
/// returns once the program runs (or could not). The child gets default signal handling and an
/// empty signal mask, leads a new process group (entered in `groups` before exec), has exactly
/// the descriptors of the request, runs with the limits, root, directory, ids and umask of the
/// request, and writes its pid where `pid_digits` points.
///
/// Returns the child's pid and, in `*pidfd`, a close-on-exec pidfd of it (CLONE_PIDFD; -1 on a
/// kernel without it), in `*group_slot` the table slot that lists its group. Returns -1 with errno set to why the clone, the group or the exec failed
/// (a child that failed is reaped; EAGAIN: the table is full of live groups; ECANCELED: it is
/// closed).
pid_t cshims_spawn(const struct cshims_spawn_request *request, int *pidfd, int *group_slot);

/// pipe2(O_CLOEXEC) for a child's stderr, with the read end (fds[0]) non-blocking.
int cshims_stderr_pipe(int fds[2]);

#endif
