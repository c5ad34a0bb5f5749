// Scalar reference kernels of the float types and Q8_0 (see ref.h).
#include <cmath>
#include <cstring>

#include "quant/blocks.h"
#include "quant/quant.h"
#include "quant/ref.h"

namespace q35 {
// ---------------------------------------------------------------- F32

void f32_to_float(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}
void f32_from_float(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}
float f32_vec_dot(int64_t n, const void* x, const void* y) {
  const float* a = static_cast<const float*>(x);
  const float* b = static_cast<const float*>(y);
  // Four partial sums: keeps the reference close to what SIMD code accumulates.
  float s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; k++) s[k] += a[i + k] * b[i + k];
  for (; i < n; i++) s[0] += a[i] * b[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// ---------------------------------------------------------------- F16 / BF16 (F32 activations)

void f16_to_float(const void* src, float* dst, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; i++) dst[i] = fp16_to_fp32(h[i]);
}
void f16_from_float(const float* src, void* dst, int64_t n) {
  uint16_t* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; i++) h[i] = fp32_to_fp16(src[i]);
}
float f16_vec_dot(int64_t n, const void* x, const void* y) {
  const uint16_t* a = static_cast<const uint16_t*>(x);
  const float* b = static_cast<const float*>(y);
  float s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; k++) s[k] += fp16_to_fp32(a[i + k]) * b[i + k];
  for (; i < n; i++) s[0] += fp16_to_fp32(a[i]) * b[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

void bf16_to_float(const void* src, float* dst, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_fp32(h[i]);
}
void bf16_from_float(const float* src, void* dst, int64_t n) {
  uint16_t* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; i++) h[i] = fp32_to_bf16(src[i]);
}
float bf16_vec_dot(int64_t n, const void* x, const void* y) {
  const uint16_t* a = static_cast<const uint16_t*>(x);
  const float* b = static_cast<const float*>(y);
  float s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; k++) s[k] += bf16_to_fp32(a[i + k]) * b[i + k];
  for (; i < n; i++) s[0] += bf16_to_fp32(a[i]) * b[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// ---------------------------------------------------------------- Q8_0: d f16, qs int8[32]

void q8_0_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / QK8_0; i++) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < QK8_0; j++) dst[i * QK8_0 + j] = d * b[i].qs[j];
  }
}

// ggml's reference quantizer: d = amax / 127, q = roundf(x / d) (ties away from zero).
void q8_0_from_float(const float* src, void* dst, int64_t n) {
  BlockQ8_0* b = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / QK8_0; i++) {
    const float* x = src + i * QK8_0;
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; j++) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK8_0; j++) b[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

float q8_0_vec_dot(int64_t n, const void* x, const void* y) {
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(x);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(y);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK8_0; i++) {
    int32_t acc = 0;
    for (int j = 0; j < QK8_0; j++) acc += static_cast<int32_t>(a[i].qs[j]) * b[i].qs[j];
    sum += static_cast<float>(acc) * fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d);
  }
  return sum;
}

}  // namespace q35
