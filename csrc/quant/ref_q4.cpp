// Scalar reference kernels of the 32-value 4-bit types Q4_0 and IQ4_NL (see ref.h).
// Dequantization follows spec 6.2 with the same float operations as gguf.quants (one product
// per value), so the results are bit-identical. Dot products: integer sums inside a block, one
// float multiply-add per block, as ggml does.
#include "quant/quant.h"
#include "quant/blocks.h"
#include "quant/grids.h"
#include "quant/ref.h"

namespace q35 {

// ---------------------------------------------------------------- Q4_0: y = d * (q - 8)

void q4_0_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ4_0* b = static_cast<const BlockQ4_0*>(src);
  for (int64_t i = 0; i < n / QK8_0; i++) {
    const float d = fp16_to_fp32(b[i].d);
    float* y = dst + i * QK8_0;
    for (int j = 0; j < QK8_0 / 2; j++) {
      y[j] = d * static_cast<float>((b[i].qs[j] & 15) - 8);
      y[j + QK8_0 / 2] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
    }
  }
}

float q4_0_vec_dot(int64_t n, const void* x, const void* y) {
  const BlockQ4_0* a = static_cast<const BlockQ4_0*>(x);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(y);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK8_0; i++) {
    int32_t acc = 0;
    for (int j = 0; j < QK8_0 / 2; j++) {
      acc += ((a[i].qs[j] & 15) - 8) * b[i].qs[j];
      acc += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + QK8_0 / 2];
    }
    sum += static_cast<float>(acc) * fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d);
  }
  return sum;
}

// ---------------------------------------------------------------- IQ4_NL: y = d * K[q]

void iq4_nl_to_float(const void* src, float* dst, int64_t n) {
  const BlockIQ4_NL* b = static_cast<const BlockIQ4_NL*>(src);
  for (int64_t i = 0; i < n / QK8_0; i++) {
    const float d = fp16_to_fp32(b[i].d);
    float* y = dst + i * QK8_0;
    for (int j = 0; j < QK8_0 / 2; j++) {
      y[j] = d * static_cast<float>(kIQ4NLValues[b[i].qs[j] & 15]);
      y[j + QK8_0 / 2] = d * static_cast<float>(kIQ4NLValues[b[i].qs[j] >> 4]);
    }
  }
}

float iq4_nl_vec_dot(int64_t n, const void* x, const void* y) {
  const BlockIQ4_NL* a = static_cast<const BlockIQ4_NL*>(x);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(y);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK8_0; i++) {
    int32_t acc = 0;
    for (int j = 0; j < QK8_0 / 2; j++) {
      acc += kIQ4NLValues[a[i].qs[j] & 15] * b[i].qs[j];
      acc += kIQ4NLValues[a[i].qs[j] >> 4] * b[i].qs[j + QK8_0 / 2];
    }
    sum += static_cast<float>(acc) * fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d);
  }
  return sum;
}

}  // namespace q35
