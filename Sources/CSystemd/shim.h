#ifndef CSYSTEMD_SHIM_H
#define CSYSTEMD_SHIM_H

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <systemd/sd-daemon.h>

/// libsystemd's sd-daemon calls that FamilyServer makes, bound on first use with dlopen: a process
/// that systemd does not start (no LISTEN_PID, NOTIFY_SOCKET or WATCHDOG_USEC, which the callers
/// check first) never loads libsystemd and the six libraries it pulls in, half a millisecond of
/// every start. Each call returns -ENOSYS when libsystemd.so.0 cannot be loaded.
struct csystemd_api {
    int (*listen_fds_with_names)(int, char ***);
    int (*notify)(int, const char *);
    int (*pid_notify_with_fds)(pid_t, int, const char *, const int *, unsigned);
    int (*notify_barrier)(int, uint64_t);
    int (*watchdog_enabled)(int, uint64_t *);
};

/// The bound functions, one set per process (a local static: Swift emits no header-level static).
static inline struct csystemd_api *csystemd_storage(void) {
    static struct csystemd_api api;
    return &api;
}

static inline void csystemd_bind(void) {
    struct csystemd_api *bound = csystemd_storage();
    void *library = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!library) return;
    bound->listen_fds_with_names = (int (*)(int, char ***))dlsym(library, "sd_listen_fds_with_names");
    bound->notify = (int (*)(int, const char *))dlsym(library, "sd_notify");
    bound->pid_notify_with_fds =
        (int (*)(pid_t, int, const char *, const int *, unsigned))dlsym(library, "sd_pid_notify_with_fds");
    bound->notify_barrier = (int (*)(int, uint64_t))dlsym(library, "sd_notify_barrier");
    bound->watchdog_enabled = (int (*)(int, uint64_t *))dlsym(library, "sd_watchdog_enabled");
}

static inline const struct csystemd_api *csystemd(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, csystemd_bind);
    return csystemd_storage();
}

/// sd_listen_fds_with_names(3).
static inline int csystemd_listen_fds_with_names(int unset_environment, char ***names) {
    const struct csystemd_api *api = csystemd();
    return api->listen_fds_with_names ? api->listen_fds_with_names(unset_environment, names) : -ENOSYS;
}

/// sd_notify(3).
static inline int csystemd_notify(int unset_environment, const char *state) {
    const struct csystemd_api *api = csystemd();
    return api->notify ? api->notify(unset_environment, state) : -ENOSYS;
}

/// sd_pid_notify_with_fds(3).
static inline int csystemd_pid_notify_with_fds(
    pid_t pid, int unset_environment, const char *state, const int *fds, unsigned n_fds) {
    const struct csystemd_api *api = csystemd();
    return api->pid_notify_with_fds ? api->pid_notify_with_fds(pid, unset_environment, state, fds, n_fds) : -ENOSYS;
}

/// sd_notify_barrier(3).
static inline int csystemd_notify_barrier(int unset_environment, uint64_t timeout) {
    const struct csystemd_api *api = csystemd();
    return api->notify_barrier ? api->notify_barrier(unset_environment, timeout) : -ENOSYS;
}

/// sd_watchdog_enabled(3).
static inline int csystemd_watchdog_enabled(int unset_environment, uint64_t *usec) {
    const struct csystemd_api *api = csystemd();
    return api->watchdog_enabled ? api->watchdog_enabled(unset_environment, usec) : -ENOSYS;
}

#endif
