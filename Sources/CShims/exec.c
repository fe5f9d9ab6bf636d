#define _GNU_SOURCE
#include "cshims_exec.h"
#include "CShims.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
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

/* In the child, before exec: lists its group in a slot (stored in *slot), or says why it must
   not run. */
static int enter_group(struct cshims_group_table *table, pid_t pgid, volatile int *slot) {
    int claimed = claim_slot(table, pgid);
    if (claimed < 0) {
        prune(table);
        claimed = claim_slot(table, pgid);
    }
    if (claimed < 0) {
        return EAGAIN;
    }
    if (atomic_load(&table->closed)) {
        atomic_store(&table->slots[claimed], 0);
        return ECANCELED;
    }
    *slot = claimed;
    return 0;
}

int cshims_group_table_release(struct cshims_group_table *table, pid_t pgid, int slot) {
    if (!group_is_gone(pgid)) {
        return 0;
    }
    if (slot >= 0 && slot < table->capacity) {
        int expected = pgid;
        atomic_compare_exchange_strong(&table->slots[slot], &expected, 0);
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

/* Everything the child of cshims_spawn needs, on the parent's memory (CLONE_VM): the parent's
   thread is suspended until the child has exec'd or exited, so nothing here changes meanwhile. */
struct spawn_child {
    const struct cshims_spawn_request *request;
    volatile int error;   /* set by the child when it could not run the program */
    volatile int slot;    /* the group table slot the child took */
};

/* Writes `value` in decimal into `out` (at least 12 bytes), NUL-terminated. Async-signal-safe. */
static void format_pid(char *out, pid_t value) {
    char digits[12];
    int n = 0;
    unsigned int v = (unsigned int)value;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && n < 11);
    for (int i = 0; i < n; i++) {
        out[i] = digits[n - 1 - i];
    }
    out[n] = '\0';
}

/* In the child: everything between clone and exec, async-signal-safe calls only (it runs on the
   parent's memory). Returns the errno that stopped it. */
static int run_child(const struct cshims_spawn_request *request, volatile int *slot) {
    /* Default dispositions for every signal (handlers are the parent's code; an ignored SIGPIPE
       is serverd's choice, not the program's), then an empty mask: every signal was blocked by
       the parent around clone, so none can reach a handler before this. */
    cshims_reset_signals();
    if (setpgid(0, 0) != 0) {
        return errno;
    }
    int code = enter_group(request->groups, getpid(), slot);
    if (code != 0) {
        return code;
    }
    if (request->pid_digits != NULL) {
        format_pid(request->pid_digits, getpid());
    }
    for (int i = 0; i < request->limit_count; i++) {
        struct rlimit limit = { .rlim_cur = request->limit_values[i], .rlim_max = request->limit_values[i] };
        if (setrlimit(request->limit_resources[i], &limit) != 0) {
            return errno;
        }
    }
    if (request->root != NULL) {
        if (chroot(request->root) != 0) {
            return errno;
        }
        if (request->directory == NULL && chdir("/") != 0) {
            return errno;
        }
    }
    if (request->directory != NULL && chdir(request->directory) != 0) {
        return errno;
    }
    if (request->set_ids) {
        if (syscall(SYS_setgroups, (size_t)request->group_count, request->groups_list) != 0
            || syscall(SYS_setresgid, request->gid, request->gid, request->gid) != 0) {
            return errno;
        }
        if (request->set_uid && syscall(SYS_setresuid, request->uid, request->uid, request->uid) != 0) {
            return errno;
        }
    }
    if (request->umask >= 0) {
        umask((mode_t)request->umask);
    }
    int count = request->count;
    /* Every source above the targets first, so that no dup2 below can clobber one. */
    int moved[CSHIMS_SPAWN_MAX_DESCRIPTORS];
    for (int i = 0; i < count; i++) {
        moved[i] = fcntl(request->descriptors[i], F_DUPFD, count);
        if (moved[i] < 0) {
            return errno;
        }
    }
    for (int i = 0; i < count; i++) {
        if (dup2(moved[i], i) < 0) {
            return errno;
        }
    }
    if (syscall(SYS_close_range, (unsigned int)count, ~0U, 0) != 0) {
        return errno;
    }
    execvpe(request->file, request->argv, request->envp);
    return errno;
}

static int child_main(void *argument) {
    struct spawn_child *child = argument;
    child->error = run_child(child->request, &child->slot);
    _exit(127);
}

/* The child's stack: it needs room for execvpe's PATH search and a script's /bin/sh argv. */
#define CHILD_STACK_SIZE (64 * 1024)

pid_t cshims_spawn(const struct cshims_spawn_request *request, int *pidfd, int *group_slot) {
    *pidfd = -1;
    *group_slot = -1;
    if (request->count < 0 || request->count > CSHIMS_SPAWN_MAX_DESCRIPTORS) {
        errno = EINVAL;
        return -1;
    }
    char *stack = malloc(CHILD_STACK_SIZE);
    if (stack == NULL) {
        errno = ENOMEM;
        return -1;
    }
    struct spawn_child child = { .request = request, .error = 0, .slot = -1 };
    unsigned long mask = 0;
    (void)cshims_block_every_signal(&mask);
    int flags = CLONE_VM | CLONE_VFORK | SIGCHLD;
    pid_t pid = clone(child_main, stack + CHILD_STACK_SIZE, flags | CLONE_PIDFD, &child, pidfd);
    if (pid < 0 && errno == EINVAL) {
        /* A kernel before 5.2 has no CLONE_PIDFD: the caller falls back on waitpid. */
        *pidfd = -1;
        pid = clone(child_main, stack + CHILD_STACK_SIZE, flags, &child);
    }
    int saved = errno;
    cshims_restore_signal_mask(&mask);
    free(stack);
    if (pid < 0) {
        *pidfd = -1;
        errno = saved;
        return -1;
    }
    if (child.error != 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        (void)cshims_group_table_release(request->groups, pid, child.slot);
        if (*pidfd >= 0) {
            close(*pidfd);
            *pidfd = -1;
        }
        errno = child.error;
        return -1;
    }
    *group_slot = child.slot;
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
