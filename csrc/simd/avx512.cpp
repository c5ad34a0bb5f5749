// AVX-512 (F, BW, VL, DQ) kernels. Compiled with those -m flags on x86-64 only; nothing here runs
// unless the CPU reports them.
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

namespace q35 {

bool fill_kernels_avx512(KernelSet& ks) {
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
    return false;
  (void)ks;
  return true;
}

}  // namespace q35
#else
namespace q35 {
bool fill_kernels_avx512(KernelSet&) { return false; }
}  // namespace q35
#endif
