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

/* Code the spawned child runs: never instrumented by a sanitizer at all (not even ThreadSanitizer's
   function entry and exit hooks, which no_sanitize keeps), as the runtime keeps its state in the
   thread-local storage of the thread that started the child, which runs on at the same time. */
#define CHILD_CODE __attribute__((disable_sanitizer_instrumentation))

static long raw_syscall(long number, long a, long b, long c, long d, long e, long f);

/* Raw kill: the spawned child calls this too, and must not touch errno. */
CHILD_CODE static int group_is_gone(pid_t pgid) {
    return raw_syscall(SYS_kill, -(long)pgid, 0, 0, 0, 0, 0) == -ESRCH;
}

CHILD_CODE static int claim_slot(struct cshims_group_table *table, pid_t pgid) {
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
CHILD_CODE static void prune(struct cshims_group_table *table) {
    for (int i = 0; i < table->capacity; i++) {
        int pgid = atomic_load(&table->slots[i]);
        if (pgid != 0 && group_is_gone(pgid)) {
            atomic_compare_exchange_strong(&table->slots[i], &pgid, 0);
        }
    }
}

/* In the child, before exec: lists its group in a slot (stored in *slot), or says why it must
   not run. */
CHILD_CODE static int enter_group(struct cshims_group_table *table, pid_t pgid, volatile int *slot) {
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

/* ---- The child's system calls ----
   The child of cshims_spawn runs on serverd's memory, next to the thread that started it, until
   it execs: it must not touch errno (that thread's, through the shared thread pointer), take a
   lock or call into libc. So it makes raw system calls, which return -errno. */

CHILD_CODE static long raw_syscall(long number, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
    long result;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(result)
                     : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return result;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = number;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory", "cc");
    return x0;
#else
#error "cshims_spawn's child needs raw system calls for this architecture"
#endif
}

#define RAW0(n) raw_syscall((n), 0, 0, 0, 0, 0, 0)
#define RAW1(n, a) raw_syscall((n), (long)(a), 0, 0, 0, 0, 0)
#define RAW2(n, a, b) raw_syscall((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define RAW3(n, a, b, c) raw_syscall((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define RAW4(n, a, b, c, d) raw_syscall((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

/* The kernel's struct sigaction (the 64-bit ABIs). */
struct raw_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long mask;
};

/* ---- The record: everything the child reads, copied into one block that lives until the
   child has been reaped (it may still be reading it after cshims_spawn returned) ---- */

#define CHILD_STACK_SIZE (16 * 1024)

struct cshims_spawn_record {
    /* Written by the child, read once it has been reaped. */
    volatile int failure;
    volatile int slot;
    /* What the child reads. */
    struct cshims_group_table *groups;
    char **argv;
    char **envp;
    char **candidates;        /* the paths to try, in order */
    char **script_argv;       /* /bin/sh, (the candidate), argv[1...]: for a file without #! */
    char *pid_digits;         /* where LISTEN_PID's value goes, or NULL */
    int *descriptors;
    int count;
    int *limit_resources;
    unsigned long long *limit_values;
    int limit_count;
    char *root;
    char *directory;
    int set_ids;
    int set_uid;
    uid_t uid;
    gid_t gid;
    gid_t *groups_list;
    int group_count;
    int umask;
    /* With `detach`: the grandchild's pid (written by the child), and in the grandchild's own copy
       of the record the write end of the pipe that reports a failure to the child. */
    int detach;
    volatile pid_t detached_pid;
    int report_fd;
    /* The child's stack, at the end; 16-byte aligned. */
    _Alignas(16) char stack[CHILD_STACK_SIZE];
};

/* Bump allocation inside the block after the record. */
struct arena {
    char *next;
};

static void *take(struct arena *arena, size_t size) {
    size = (size + 15) & ~(size_t)15;
    void *memory = arena->next;
    arena->next += size;
    return memory;
}

static size_t room_for(size_t size) {
    return (size + 15) & ~(size_t)15;
}

static size_t strings_size(char *const *strings, int *count) {
    size_t size = 0;
    int n = 0;
    for (; strings != NULL && strings[n] != NULL; n++) {
        size += room_for(strlen(strings[n]) + 1);
    }
    *count = n;
    return size + room_for(((size_t)n + 1) * sizeof(char *));
}

static char **copy_strings(struct arena *arena, char *const *strings, int count) {
    char **copy = take(arena, ((size_t)count + 1) * sizeof(char *));
    for (int i = 0; i < count; i++) {
        size_t length = strlen(strings[i]) + 1;
        copy[i] = take(arena, length);
        memcpy(copy[i], strings[i], length);
    }
    copy[count] = NULL;
    return copy;
}

static char *copy_string(struct arena *arena, const char *string) {
    if (string == NULL) {
        return NULL;
    }
    size_t length = strlen(string) + 1;
    char *copy = take(arena, length);
    memcpy(copy, string, length);
    return copy;
}

/* The paths execvpe would try for `file`: itself when it holds a '/', else each PATH entry
   (serverd's PATH; an empty entry is the working directory) joined with it. */
static int candidate_count(const char *file, const char *path) {
    if (strchr(file, '/') != NULL) {
        return 1;
    }
    int count = 1;
    for (const char *p = path; *p != '\0'; p++) {
        if (*p == ':') count++;
    }
    return count;
}

static size_t candidates_size(const char *file, const char *path) {
    int count = candidate_count(file, path);
    return room_for(((size_t)count + 1) * sizeof(char *)) + (size_t)count * room_for(strlen(path) + strlen(file) + 3);
}

static char **copy_candidates(struct arena *arena, const char *file, const char *path) {
    int count = candidate_count(file, path);
    char **candidates = take(arena, ((size_t)count + 1) * sizeof(char *));
    if (strchr(file, '/') != NULL) {
        candidates[0] = copy_string(arena, file);
        candidates[1] = NULL;
        return candidates;
    }
    const char *entry = path;
    for (int i = 0; i < count; i++) {
        const char *end = strchr(entry, ':');
        size_t length = end != NULL ? (size_t)(end - entry) : strlen(entry);
        char *candidate = take(arena, length + strlen(file) + 3);
        if (length == 0) {
            memcpy(candidate, ".", 1);
            length = 1;
        } else {
            memcpy(candidate, entry, length);
        }
        candidate[length] = '/';
        strcpy(candidate + length + 1, file);
        candidates[i] = candidate;
        entry = end != NULL ? end + 1 : entry + length;
    }
    candidates[count] = NULL;
    return candidates;
}

/* ---- The child ---- */

/* Writes `value` in decimal into `out` (at least 12 bytes), NUL-terminated. */
CHILD_CODE static void format_pid(char *out, long value) {
    char digits[12];
    int n = 0;
    unsigned long v = (unsigned long)value;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && n < 11);
    for (int i = 0; i < n; i++) {
        out[i] = digits[n - 1 - i];
    }
    out[n] = '\0';
}

/* execvpe's search, with raw execve: the candidates in order; a file without #! runs under
   /bin/sh; EACCES from one candidate is reported only if no later one runs. Returns the errno. */
CHILD_CODE static int exec_program(struct cshims_spawn_record *r) {
    int denied = 0;
    int last = ENOENT;
    for (int i = 0; r->candidates[i] != NULL; i++) {
        int error = (int)-RAW3(SYS_execve, r->candidates[i], r->argv, r->envp);
        if (error == ENOEXEC) {
            r->script_argv[1] = r->candidates[i];
            return (int)-RAW3(SYS_execve, "/bin/sh", r->script_argv, r->envp);
        }
        if (error == EACCES) {
            denied = 1;
        } else if (error != ENOENT && error != ENOTDIR && error != ESTALE && error != ENODEV && error != ETIMEDOUT) {
            return error;
        }
        last = error;
    }
    return denied ? EACCES : last;
}

/* Everything between clone and exec. Returns the errno that stopped it. */
CHILD_CODE static int run_child(struct cshims_spawn_record *r) {
    /* Every signal was blocked by the parent around clone and stays blocked here until every
       disposition is the default: no handler of serverd's can run on its memory. An ignored
       SIGPIPE is serverd's choice, not the program's. */
    /* Field by field: an initializer may become a call to memset, which a sanitizer intercepts. */
    struct raw_sigaction dfl;
    dfl.handler = SIG_DFL;
    dfl.flags = 0;
    dfl.restorer = NULL;
    dfl.mask = 0;
    for (int sig = 1; sig <= 64; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            (void)RAW4(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask));
        }
    }
    unsigned long empty = 0;
    long result = RAW4(SYS_rt_sigprocmask, SIG_SETMASK, &empty, NULL, sizeof(empty));
    if (result < 0) return (int)-result;
    if (r->detach) {
        /* A grandchild on a copy of this memory (a plain fork: clone without CLONE_VM, on a copy
           of this stack). The child waits until the close-on-exec pipe closes (the grandchild ran
           the program) or brings the grandchild's errno, and returns it. */
        int report[2];
        if ((result = RAW2(SYS_pipe2, report, O_CLOEXEC)) < 0) return (int)-result;
        long forked = raw_syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
        if (forked < 0) return (int)-forked;
        if (forked > 0) {
            r->detached_pid = (pid_t)forked;
            (void)RAW1(SYS_close, report[1]);
            int failure = 0;
            long n;
            do {
                n = RAW3(SYS_read, report[0], &failure, sizeof(failure));
            } while (n == -EINTR);
            return n == (long)sizeof(failure) ? failure : 0;
        }
        (void)RAW1(SYS_close, report[0]);
        /* Above every descriptor the program gets, where the moves below leave it alone. */
        if ((result = RAW3(SYS_fcntl, report[1], F_DUPFD_CLOEXEC, r->count)) < 0) return (int)-result;
        (void)RAW1(SYS_close, report[1]);
        r->report_fd = (int)result;
    }
    if ((result = RAW2(SYS_setpgid, 0, 0)) < 0) return (int)-result;
    long pid = RAW0(SYS_getpid);
    if (!r->detach) {
        int code = enter_group(r->groups, (pid_t)pid, &r->slot);
        if (code != 0) return code;
    }
    if (r->pid_digits != NULL) {
        format_pid(r->pid_digits, pid);
    }
    for (int i = 0; i < r->limit_count; i++) {
        struct rlimit limit;
        limit.rlim_cur = r->limit_values[i];
        limit.rlim_max = r->limit_values[i];
        if ((result = RAW4(SYS_prlimit64, 0, r->limit_resources[i], &limit, NULL)) < 0) return (int)-result;
    }
    if (r->root != NULL) {
        if ((result = RAW1(SYS_chroot, r->root)) < 0) return (int)-result;
        if (r->directory == NULL && (result = RAW1(SYS_chdir, "/")) < 0) return (int)-result;
    }
    if (r->directory != NULL && (result = RAW1(SYS_chdir, r->directory)) < 0) return (int)-result;
    if (r->set_ids) {
        if ((result = RAW2(SYS_setgroups, r->group_count, r->groups_list)) < 0) return (int)-result;
        if ((result = RAW3(SYS_setresgid, r->gid, r->gid, r->gid)) < 0) return (int)-result;
        if (r->set_uid && (result = RAW3(SYS_setresuid, r->uid, r->uid, r->uid)) < 0) return (int)-result;
    }
    if (r->umask >= 0) {
        (void)RAW1(SYS_umask, r->umask);
    }
    /* A source among the targets is moved above them first, so that no dup3 below can clobber it.
       Only those: a move takes a free descriptor, which a serverd short of descriptors may not
       have (the child's table is a copy of serverd's), and the sources usually lie above. */
    int moved[CSHIMS_SPAWN_MAX_DESCRIPTORS];
    for (int i = 0; i < r->count; i++) {
        moved[i] = r->descriptors[i];
        if (moved[i] >= r->count) continue;
        if ((result = RAW3(SYS_fcntl, moved[i], F_DUPFD, r->count)) < 0) return (int)-result;
        moved[i] = (int)result;
    }
    for (int i = 0; i < r->count; i++) {
        if ((result = RAW3(SYS_dup3, moved[i], i, 0)) < 0) return (int)-result;
    }
    if (r->report_fd >= r->count) {
        /* Every descriptor but the program's and the report pipe (close-on-exec) is closed. */
        if (r->report_fd > r->count &&
            (result = RAW3(SYS_close_range, (unsigned int)r->count, (unsigned int)r->report_fd - 1, 0)) < 0) {
            return (int)-result;
        }
        if ((result = RAW3(SYS_close_range, (unsigned int)r->report_fd + 1, ~0U, 0)) < 0) return (int)-result;
        return exec_program(r);
    }
    if ((result = RAW3(SYS_close_range, (unsigned int)r->count, ~0U, 0)) < 0) return (int)-result;
    return exec_program(r);
}

CHILD_CODE static int child_main(void *argument) {
    struct cshims_spawn_record *r = argument;
    int failure = run_child(r);
    if (r->report_fd >= 0) {
        /* The grandchild of a detached spawn, on its own copy of the record: tells the child. */
        (void)RAW3(SYS_write, r->report_fd, &failure, sizeof(failure));
        (void)RAW1(SYS_exit_group, 127);
    }
    r->failure = failure;
    /* Only the child of a detached spawn returns 0 here: the grandchild runs the program. */
    (void)RAW1(SYS_exit_group, failure == 0 ? 0 : 127);
    return 127;
}

/* ---- The parent ---- */

/* clone(2) running `fn(argument)` on `stack_top` in the child, which then exits: the raw system
   call, not glibc's wrapper, which a sanitizer intercepts to run fork bookkeeping in the child
   (on shared memory, that corrupts the runtime of the parent). Returns the child's pid, or
   -errno. With CLONE_PIDFD the pidfd is stored in *pidfd. */
static long spawn_clone(unsigned long flags, char *stack_top, int *pidfd, int (*fn)(void *), void *argument) {
#if defined(__x86_64__)
    void **sp = (void **)stack_top;
    *--sp = argument;
    *--sp = (void *)fn;
    long result;
    register long r10 __asm__("r10") = 0;   /* child_tid */
    register long r8 __asm__("r8") = 0;     /* tls */
    __asm__ volatile(
        "syscall\n\t"
        "test %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        /* The child, on its own stack: fn(argument), then exit_group with what it returned. */
        "xor %%ebp, %%ebp\n\t"
        "pop %%rax\n\t"
        "pop %%rdi\n\t"
        "call *%%rax\n\t"
        "mov %%eax, %%edi\n\t"
        "mov %[exit_group], %%eax\n\t"
        "syscall\n\t"
        "hlt\n\t"
        "1:\n\t"
        : "=a"(result)
        : "a"((long)SYS_clone), "D"(flags), "S"(sp), "d"(pidfd), "r"(r10), "r"(r8),
          [exit_group] "i"(SYS_exit_group)
        : "rcx", "r11", "memory");
    return result;
#else
    /* Elsewhere glibc's wrapper, fine without a sanitizer. */
    pid_t child = clone(fn, stack_top, (int)flags, argument, pidfd);
    return child < 0 ? -errno : child;
#endif
}

struct cshims_spawn_record *cshims_spawn(const struct cshims_spawn_request *request, pid_t *pid, int *pidfd) {
    *pid = -1;
    *pidfd = -1;
    if (request->count < 0 || request->count > CSHIMS_SPAWN_MAX_DESCRIPTORS) {
        errno = EINVAL;
        return NULL;
    }
    const char *path = getenv("PATH");
    if (path == NULL) {
        path = "/bin:/usr/bin";
    }
    int argc = 0, envc = 0;
    size_t size = room_for(sizeof(struct cshims_spawn_record));
    size += strings_size(request->argv, &argc);
    size += strings_size(request->envp, &envc);
    size += room_for(((size_t)argc + 2) * sizeof(char *));
    size += candidates_size(request->file, path);
    size += room_for((size_t)request->count * sizeof(int));
    size += room_for((size_t)request->limit_count * (sizeof(int) + sizeof(unsigned long long)));
    size += room_for((size_t)request->group_count * sizeof(gid_t));
    size += request->root != NULL ? room_for(strlen(request->root) + 1) : 0;
    size += request->directory != NULL ? room_for(strlen(request->directory) + 1) : 0;
    size += 64;   /* the pid's digits */
    char *block = aligned_alloc(16, room_for(size));
    if (block == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    struct cshims_spawn_record *r = (struct cshims_spawn_record *)block;
    struct arena arena = { block + room_for(sizeof(struct cshims_spawn_record)) };
    r->failure = 0;
    r->slot = -1;
    r->groups = request->groups;
    r->argv = copy_strings(&arena, request->argv, argc);
    r->envp = copy_strings(&arena, request->envp, envc);
    r->pid_digits = NULL;
    if (request->listen_pid_index >= 0 && request->listen_pid_index < envc) {
        /* The entry again, with room for the digits after its '='. */
        const char *entry = request->envp[request->listen_pid_index];
        const char *equals = strchr(entry, '=');
        size_t prefix = equals != NULL ? (size_t)(equals - entry) + 1 : strlen(entry);
        char *copy = take(&arena, prefix + 12);
        memcpy(copy, entry, prefix);
        copy[prefix] = '\0';
        r->envp[request->listen_pid_index] = copy;
        r->pid_digits = copy + prefix;
    }
    r->script_argv = take(&arena, ((size_t)argc + 2) * sizeof(char *));
    r->script_argv[0] = "/bin/sh";
    r->script_argv[1] = NULL;
    for (int i = 1; i <= argc; i++) {
        r->script_argv[i + 1] = r->argv[i];
    }
    r->candidates = copy_candidates(&arena, request->file, path);
    r->descriptors = take(&arena, (size_t)request->count * sizeof(int));
    memcpy(r->descriptors, request->descriptors, (size_t)request->count * sizeof(int));
    r->count = request->count;
    r->limit_count = request->limit_count;
    r->limit_resources = take(&arena, (size_t)request->limit_count * sizeof(int));
    r->limit_values = take(&arena, (size_t)request->limit_count * sizeof(unsigned long long));
    if (request->limit_count > 0) {
        memcpy(r->limit_resources, request->limit_resources, (size_t)request->limit_count * sizeof(int));
        memcpy(r->limit_values, request->limit_values, (size_t)request->limit_count * sizeof(unsigned long long));
    }
    r->root = copy_string(&arena, request->root);
    r->directory = copy_string(&arena, request->directory);
    r->set_ids = request->set_ids;
    r->set_uid = request->set_uid;
    r->uid = request->uid;
    r->gid = request->gid;
    r->group_count = request->group_count;
    r->groups_list = take(&arena, (size_t)request->group_count * sizeof(gid_t));
    if (request->group_count > 0) {
        memcpy(r->groups_list, request->groups_list, (size_t)request->group_count * sizeof(gid_t));
    }
    r->umask = request->umask;
    r->detach = request->detach;
    r->detached_pid = -1;
    r->report_fd = -1;

    /* Every signal blocked (raw: glibc would leave its own two open) so that the child starts
       with all of them blocked; the parent's mask comes back as soon as clone returns. */
    unsigned long mask = 0;
    (void)cshims_block_every_signal(&mask);
    unsigned long flags = CLONE_VM | SIGCHLD;
    long child = spawn_clone(flags | CLONE_PIDFD, r->stack + CHILD_STACK_SIZE, pidfd, child_main, r);
    if (child == -EINVAL) {
        /* A kernel before 5.2 has no CLONE_PIDFD: the caller falls back on waitpid. */
        *pidfd = -1;
        child = spawn_clone(flags, r->stack + CHILD_STACK_SIZE, NULL, child_main, r);
    }
    cshims_restore_signal_mask(&mask);
    if (child < 0) {
        *pidfd = -1;
        free(block);
        errno = (int)-child;
        return NULL;
    }
    *pid = (pid_t)child;
    return r;
}

int cshims_spawn_failure(const struct cshims_spawn_record *record) {
    return record->failure;
}

pid_t cshims_spawn_detached_pid(const struct cshims_spawn_record *record) {
    return record->detached_pid;
}

int cshims_spawn_group_slot(const struct cshims_spawn_record *record) {
    return record->slot;
}

void cshims_spawn_record_free(struct cshims_spawn_record *record) {
    free(record);
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
