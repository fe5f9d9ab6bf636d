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

/// The most descriptors a spawned program is given (a binary upgrade passes every listener).
#define CSHIMS_SPAWN_MAX_DESCRIPTORS 512

/// What ``cshims_spawn`` starts. Nothing of it needs to outlive the call: the spawn copies it.
struct cshims_spawn_request {
    /// The program, searched in serverd's PATH when it has no '/' (as execvpe does, a file
    /// without `#!` running under /bin/sh).
    const char *file;
    /// NULL-terminated arguments and `NAME=value` environment.
    char *const *argv;
    char *const *envp;
    /// When not negative: the index of a `LISTEN_PID=` entry of `envp`, whose value the child
    /// sets to its own pid.
    int listen_pid_index;
    /// `descriptors[i]` becomes descriptor i of the program, for i < `count` (at most
    /// CSHIMS_SPAWN_MAX_DESCRIPTORS); every other descriptor is closed.
    const int *descriptors;
    int count;
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
    /// When `set_ids`: setgroups(`groups_list`), setresgid(`gid`) and, when `set_uid`,
    /// setresuid(`uid`), changing the child alone.
    int set_ids;
    int set_uid;
    uid_t uid;
    gid_t gid;
    const gid_t *groups_list;
    int group_count;
    /// umask(2) to this mask, or -1 to keep serverd's.
    int umask;
    /// When set, the program runs in a grandchild that enters no process group table: the child
    /// forks it, waits until it ran the program (or learns why it could not) and exits, so that
    /// the program's parent becomes the nearest subreaper or PID 1 — the service manager, which
    /// then supervises it as a child of its own (a binary upgrade's new serverd). The
    /// grandchild's pid is cshims_spawn_detached_pid once the child has been reaped.
    int detach;
};

/// A started child's record: a copy of everything it reads, its stack, and what it reports back
/// (the slot of its process group, or why it could not run the program). Keep it until the
/// child has been reaped, then free it.
struct cshims_spawn_record;

/// Starts a program without copying the daemon and without waiting for it: clone(CLONE_VM) on a
/// stack of its own, with a copy of the request, and returns at once while the child goes on to
/// exec on the other side. Until exec the child runs on serverd's memory, so it makes raw system
/// calls only (no libc, no errno, no lock): every disposition back to the default with every
/// signal blocked, then an empty mask; a new process group, entered in `groups`; the limits,
/// root, directory, ids and umask of the request; exactly the descriptors of the request; its pid
/// where `listen_pid_index` says; then the PATH search of execvpe.
///
/// Returns the record, the child's pid in `*pid` and, in `*pidfd`, a close-on-exec pidfd of it
/// (CLONE_PIDFD; -1 on a kernel without it); NULL with errno when the clone (or the copy) failed.
/// Whether the program runs is known once the child has been reaped: see cshims_spawn_failure.
struct cshims_spawn_record *cshims_spawn(const struct cshims_spawn_request *request, pid_t *pid, int *pidfd);

/// Once the child has been reaped: 0 if it ran the program, else the errno that stopped it
/// before (the group table full: EAGAIN, closed: ECANCELED; the exec: ENOENT, EACCES, …); it then
/// exited with status 127.
int cshims_spawn_failure(const struct cshims_spawn_record *record);

/// With `detach`, once the child has been reaped: the grandchild's pid, -1 if none was forked.
pid_t cshims_spawn_detached_pid(const struct cshims_spawn_record *record);

/// Once the child has been reaped: the group table slot it took, -1 if none.
int cshims_spawn_group_slot(const struct cshims_spawn_record *record);

/// Frees a record once its child has been reaped.
void cshims_spawn_record_free(struct cshims_spawn_record *record);

/// pipe2(O_CLOEXEC) for a child's stderr, with the read end (fds[0]) non-blocking.
int cshims_stderr_pipe(int fds[2]);

#endif
