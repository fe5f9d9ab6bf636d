#ifndef CSHIMS_EXEC_H
#define CSHIMS_EXEC_H

#include <sys/types.h>

/// The process groups that exec children lead, in memory shared with every worker the daemon
/// forks afterwards (mmap MAP_SHARED|MAP_ANONYMOUS; exec does not carry it into a program).
/// A slot holds a group's id from just before its leader runs the program until the group is
/// empty; the daemon ends every group still listed when it stops.
struct cshims_group_table;

/// A table of `capacity` free slots; NULL with errno when mmap fails.
struct cshims_group_table *cshims_group_table_create(int capacity);

/// Forgets `pgid` if the group is empty now; returns 1 if it was forgotten, 0 if members live on.
int cshims_group_table_release(struct cshims_group_table *table, pid_t pgid);

/// Closes the table to new groups (a spawn that has not entered its group yet fails with
/// ECANCELED) and copies the groups listed into `out` (at most `max`); returns how many.
int cshims_group_table_close(struct cshims_group_table *table, pid_t *out, int max);

/// Forks and execs `file` (searched in PATH when it has no '/') with `argv` and `envp`: the
/// connection `conn_fd` on stdin and stdout, `err_fd` on stderr, every other descriptor closed,
/// default signal handling, empty signal mask. The child leads a new process group (set by the
/// child before exec and by the parent before returning) and is entered in `groups` before
/// exec. Returns the child's pid, or -1 with errno set to why the fork, the group or the exec
/// failed (a failure in the child is reported back through a close-on-exec pipe; EAGAIN: the
/// table is full of live groups; ECANCELED: the table is closed).
pid_t cshims_spawn(const char *file, char *const argv[], char *const envp[], int conn_fd, int err_fd,
                   struct cshims_group_table *groups);

/// pipe2(O_CLOEXEC) for a child's stderr, with the read end (fds[0]) non-blocking.
int cshims_stderr_pipe(int fds[2]);

/// pidfd_open(2): a close-on-exec descriptor that becomes readable when `pid` exits; -1 with errno.
int cshims_pidfd_open(pid_t pid);

/// Whether the child `pid` has exited, without reaping it (waitid with WNOWAIT).
int cshims_child_has_exited(pid_t pid);

#endif
