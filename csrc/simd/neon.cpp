// NEON kernels with the dot-product extension (ARMv8.2 sdot), for aarch64: Apple silicon and Linux.
#include "kernels.h"

#if defined(__aarch64__) && defined(__ARM_NEON) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>
#if defined(__APPLE__)
#include <sys/sysctl.h>
#elif defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace q35 {

namespace {
bool cpu_has_dotprod() {
#if defined(__APPLE__)
  int v = 0;
  size_t len = sizeof(v);
  return sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &len, nullptr, 0) == 0 && v != 0;
#elif defined(__linux__)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
  return false;
#endif
}
}  // namespace

bool fill_kernels_neon(KernelSet& ks) {
  if (!cpu_has_dotprod()) return false;
  (void)ks;
  return true;
}

}  // namespace q35
#else
namespace q35 {
bool fill_kernels_neon(KernelSet&) { return false; }
}  // namespace q35
#endif
