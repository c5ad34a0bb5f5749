#include "kernels/f16_rows.h"

#include "quant/quant.h"
#include "runtime/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define Q35_F16C 1
#endif

namespace q35 {

#ifdef Q35_F16C
namespace {

__attribute__((target("f16c,avx"))) void to_f32_f16c(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  for (; i < n; i++) y[i] = fp16_to_fp32(x[i]);
}

__attribute__((target("f16c,avx"))) void to_f16_f16c(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; i++) y[i] = fp32_to_fp16(x[i]);
}

const bool kHasF16c = cpu_features().f16c && cpu_features().avx;

}  // namespace
#endif

void f16_to_f32_row(const uint16_t* x, float* y, int64_t n) {
#ifdef Q35_F16C
  if (kHasF16c) return to_f32_f16c(x, y, n);
#endif
  for (int64_t i = 0; i < n; i++) y[i] = fp16_to_fp32(x[i]);
}

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
#ifdef Q35_F16C
  if (kHasF16c) return to_f16_f16c(x, y, n);
#endif
  for (int64_t i = 0; i < n; i++) y[i] = fp32_to_fp16(x[i]);
}

}  // namespace q35
