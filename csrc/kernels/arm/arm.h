// kernels/arm/: the aarch64 kernel set, NEON with the dot-product extension (Apple silicon,
// Graviton, Linux arm64): float and 32-value block types and the activation quantizers
// (neon.cpp), k-quants and IQ4_XS (neon_kquants.cpp). Compiled with -march=armv8.2-a+dotprod
// (kernels/CMakeLists.txt) and used only where runtime/cpu.h finds sdot; tested on x86 under
// qemu (tools/neon_check.sh).
// Depends on: kernels/kernels.h, the shared templates beside it, quant/ (layouts, grids).
//
// This header: helpers shared by the NEON kernel files (neon.cpp, neon_kquants.cpp). Included only from files
// compiled with -march=armv8.2-a+dotprod on aarch64.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"

namespace q35 {
namespace neon {

// One f16 scale to f32. __fp16 is the ACLE storage type, understood by GCC and Apple clang alike.
inline float h2f(uint16_t h) {
  __fp16 v;
  std::memcpy(&v, &h, sizeof v);
  return static_cast<float>(v);
}

// Sum of 32 int8 products, as four int32 lanes.
inline int32x4_t dot32(int8x16_t a0, int8x16_t a1, const int8_t* b) {
  return vdotq_s32(vdotq_s32(vdupq_n_s32(0), a0, vld1q_s8(b)), a1, vld1q_s8(b + 16));
}

// The k-quant and IQ4_XS entries (Q8_K activations), defined in neon_kquants.cpp.
void fill_kquants(KernelSet& ks);

}  // namespace neon
}  // namespace q35
