// Small helpers shared by the quantizers (not part of the kernel interface).
#pragma once

#include <cstdint>
#include <cstring>

namespace q35 {

// Round to the nearest integer, ties to even, for |v| < 2^22 (every caller passes values that a
// clamp to a few bits follows). Adding 1.5 * 2^23 pushes the fraction bits out of the mantissa, so
// the FPU's own round-to-nearest-even does the rounding; this is the rounding ggml's Q8_K and
// k-quant reference quantizers use, and it is far cheaper than lrintf. Callers must compile with
// -ffp-contract=off so that `a * b` fed in here is not fused into the addition.
inline int nearest_int(float v) {
  const float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  return (bits & 0x007fffff) - 0x00400000;
}

}  // namespace q35
