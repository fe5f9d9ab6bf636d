// Nothing to compile: the module exists for FuzzDriver.h, whose one function the fuzzer runtime defines.
#include "FuzzDriver.h"
