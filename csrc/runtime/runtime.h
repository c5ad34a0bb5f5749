// runtime/: what the engine runs on, below every other folder. What lives here: the thread pool
// (threadpool.h; no OpenMP), the CPU feature probes the kernel sets ask before they run
// (cpu.h), and the memory the weights may be copied into (weight_memory.h: anonymous huge pages,
// and when a copy is possible).
// Depends on: the C++ standard library and the OS only.
#pragma once

#include "runtime/cpu.h"
#include "runtime/threadpool.h"
#include "runtime/weight_memory.h"
