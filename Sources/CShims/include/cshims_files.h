#ifndef CSHIMS_FILES_H
#define CSHIMS_FILES_H

/// O_PATH (open(2)): the Glibc module hides it because it needs _GNU_SOURCE.
extern const int cshims_o_path;

#endif
