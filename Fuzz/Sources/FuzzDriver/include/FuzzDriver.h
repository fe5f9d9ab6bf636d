#ifndef FUZZ_DRIVER_H
#define FUZZ_DRIVER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's documented entry for programs that have a `main` of their own (LLVM >= 11): parses
/// the libFuzzer flags in argv and runs `callback` on every input. Provided by the fuzzer runtime
/// that `-sanitize=fuzzer` links in.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
