// Row conversions between float and IEEE half (round to nearest even), for the F16 KV cache.
// x86 CPUs with F16C convert 8 values per instruction; other CPUs use the scalar conversions.
#pragma once

#include <cstdint>

namespace q35 {

void f16_to_f32_row(const uint16_t* x, float* y, int64_t n);
void f32_to_f16_row(const float* x, uint16_t* y, int64_t n);

}  // namespace q35
