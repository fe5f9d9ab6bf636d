#define _GNU_SOURCE
#include "cshims_exec.h"
#include "CShims.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

struct cshims_group_table {
    /* Set once by the daemon when it stops. A spawn writes its slot, then reads `closed`; the
       daemon writes `closed`, then reads the slots (all sequentially consistent): either the
       daemon sees the slot or the spawn sees the table closed and does not run the program. */
    atomic_int closed;
    int capacity;
    atomic_int slots[];   /* a process group id, 0 when free */
};

struct cshims_group_table *cshims_group_table_create(int capacity) {
    size_t size = sizeof(struct cshims_group_table) + (size_t)capacity * sizeof(atomic_int);
    void *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
        return NULL;
    }
    struct cshims_group_table *table = memory;   /* mmap zero-fills: open, every slot free */
    table->capacity = capacity;
    return table;
}

static int group_is_gone(pid_t pgid) {
    int saved = errno;
    int gone = kill(-pgid, 0) < 0 && errno == ESRCH;
    errno = saved;
    return gone;
}

static int claim_slot(struct cshims_group_table *table, pid_t pgid) {
    for (int i = 0; i < table->capacity; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&table->slots[i], &expected, pgid)) {
            return i;
        }
    }
    return -1;
}

/* Frees the slots of groups that no longer exist (kill(-pgid, 0) fails with ESRCH). Runs in a
   spawned child that finds the table full, so only async-signal-safe calls. */
static void prune(struct cshims_group_table *table) {
    for (int i = 0; i < table->capacity; i++) {
        int pgid = atomic_load(&table->slots[i]);
        if (pgid != 0 && group_is_gone(pgid)) {
            atomic_compare_exchange_strong(&table->slots[i], &pgid, 0);
        }
    }
}

/* In the child, before exec: lists its group, or says why it must not run. */
static int enter_group(struct cshims_group_table *table, pid_t pgid) {
    int slot = claim_slot(table, pgid);
    if (slot < 0) {
        prune(table);
        slot = claim_slot(table, pgid);
    }
    if (slot < 0) {
        return EAGAIN;
    }
    if (atomic_load(&table->closed)) {
        atomic_store(&table->slots[slot], 0);
        return ECANCELED;
    }
    return 0;
}

int cshims_group_table_release(struct cshims_group_table *table, pid_t pgid) {
    if (!group_is_gone(pgid)) {
        return 0;
    }
    for (int i = 0; i < table->capacity; i++) {
        int expected = pgid;
        atomic_compare_exchange_strong(&table->slots[i], &expected, 0);
    }
    return 1;
}

int cshims_group_table_close(struct cshims_group_table *table, pid_t *out, int max) {
    atomic_store(&table->closed, 1);
    int count = 0;
    for (int i = 0; i < table->capacity && count < max; i++) {
        int pgid = atomic_load(&table->slots[i]);
        if (pgid != 0) {
            out[count++] = pgid;
        }
    }
    return count;
}

/* Closes every descriptor from 3 up except the (at most three) in `keep`: a busy daemon's
   descriptor table, copied by fork, must not leave the child without room for its dups. */
static void close_all_but(const int keep[3]) {
    int sorted[3] = { keep[0], keep[1], keep[2] };
    for (int i = 0; i < 3; i++) {
        for (int j = i + 1; j < 3; j++) {
            if (sorted[j] < sorted[i]) { int t = sorted[i]; sorted[i] = sorted[j]; sorted[j] = t; }
        }
    }
    unsigned int next = 3;
    for (int i = 0; i < 3; i++) {
        if (sorted[i] >= (int)next) {
            if (sorted[i] > (int)next) {
                syscall(SYS_close_range, next, (unsigned int)sorted[i] - 1, 0);
            }
            next = (unsigned int)sorted[i] + 1;
        }
    }
    syscall(SYS_close_range, next, ~0U, 0);
}

/* In the child: everything between fork and exec. Returns the errno that stopped it. */
static int run_child(const char *file, char *const argv[], char *const envp[], int conn_fd, int err_fd,
                     struct cshims_group_table *groups, int *report) {
    cshims_reset_signals();
    if (setpgid(0, 0) != 0) {
        return errno;
    }
    int code = enter_group(groups, getpid());
    if (code != 0) {
        return code;
    }
    const int keep[3] = { *report, conn_fd, err_fd };
    close_all_but(keep);
    /* Move the report pipe above 2 first so the dup2s below cannot clobber it. */
    int out = fcntl(*report, F_DUPFD_CLOEXEC, 3);
    if (out < 0) {
        return errno;
    }
    *report = out;
    int conn = fcntl(conn_fd, F_DUPFD, 3);
    int err = fcntl(err_fd, F_DUPFD, 3);
    if (conn < 0 || err < 0 || dup2(conn, 0) < 0 || dup2(conn, 1) < 0 || dup2(err, 2) < 0) {
        return errno;
    }
    syscall(SYS_close_range, 3, (unsigned int)out - 1, 0);
    syscall(SYS_close_range, (unsigned int)out + 1, ~0U, 0);
    execvpe(file, argv, envp);
    return errno;
}

pid_t cshims_spawn(const char *file, char *const argv[], char *const envp[], int conn_fd, int err_fd,
                   struct cshims_group_table *groups) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(report[0]);
        close(report[1]);
        errno = saved;
        return -1;
    }
    if (pid == 0) {
        int out = report[1];
        int code = run_child(file, argv, envp, conn_fd, err_fd, groups, &out);
        (void)!write(out, &code, sizeof(code));
        _exit(127);
    }
    /* The child does the same before exec; whichever runs first, the group exists from here on.
       Once the child has exec'd this fails with EACCES, harmlessly. */
    (void)setpgid(pid, pid);
    close(report[1]);
    int code = 0;
    ssize_t n;
    do {
        n = read(report[0], &code, sizeof(code));
    } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof(code)) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        (void)cshims_group_table_release(groups, pid);
        errno = code;
        return -1;
    }
    return pid;
}

int cshims_stderr_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) != 0) {
        return -1;
    }
    int flags = fcntl(fds[0], F_GETFL);
    if (flags < 0 || fcntl(fds[0], F_SETFL, flags | O_NONBLOCK) < 0) {
        int saved = errno;
        close(fds[0]);
        close(fds[1]);
        errno = saved;
        return -1;
    }
    return 0;
}

int cshims_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int cshims_child_has_exited(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
        return 0;
    }
    return info.si_pid == pid;
}
