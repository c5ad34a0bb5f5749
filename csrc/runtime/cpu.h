// What the CPU (and OS) supports, probed once: the kernel sets (kernels/) and the F16 row
// conversions ask here before they run an instruction the CPU may lack.
#pragma once

namespace q35 {

struct CpuFeatures {
  // x86-64 (the AVX and AVX-512 bits also mean the OS saves those registers)
  bool avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
  // aarch64: the dot-product extension (ARMv8.2 sdot / udot)
  bool dotprod = false;
};

const CpuFeatures& cpu_features();

}  // namespace q35
