#define _GNU_SOURCE
#include "cshims_bind.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>

/// What the binding thread gets and gives back.
struct bind_job {
    int fd;
    const struct sockaddr *addr;
    socklen_t len;
    int result;
    int error;
};

static void *bind_with_umask0(void *argument) {
    struct bind_job *job = argument;
    // From here on this thread has an fs_struct (root, cwd, umask) of its own.
    if (unshare(CLONE_FS) != 0) {
        job->result = -1;
        job->error = errno;
        return NULL;
    }
    umask(0);
    job->result = bind(job->fd, job->addr, job->len);
    job->error = errno;
    return NULL;
}

int cshims_bind_umask0(int fd, const struct sockaddr *addr, socklen_t len) {
    struct bind_job job = { fd, addr, len, -1, 0 };
    pthread_t thread;
    int status = pthread_create(&thread, NULL, bind_with_umask0, &job);
    if (status != 0) {
        errno = status;
        return -1;
    }
    pthread_join(thread, NULL);
    if (job.result != 0) {
        errno = job.error;
        return -1;
    }
    return 0;
}
