#ifndef CSHIMS_FILES_H
#define CSHIMS_FILES_H

/// O_PATH (open(2)): the Glibc module hides it because it needs _GNU_SOURCE.
extern const int cshims_o_path;

/// dup3(2) with O_CLOEXEC: puts `from` in the place of `to` at once, close-on-exec (a log file
/// reopened while other threads write to, and fork from, the same descriptor number).
int cshims_dup_cloexec(int from, int to);

#endif
