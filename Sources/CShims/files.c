#define _GNU_SOURCE
#include "cshims_files.h"

#include <fcntl.h>

const int cshims_o_path = O_PATH;
