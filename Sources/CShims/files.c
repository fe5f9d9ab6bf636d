#define _GNU_SOURCE
#include "cshims_files.h"

#include <fcntl.h>
#include <unistd.h>

const int cshims_o_path = O_PATH;

int cshims_dup_cloexec(int from, int to) {
    return dup3(from, to, O_CLOEXEC);
}
