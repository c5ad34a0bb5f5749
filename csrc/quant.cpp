// Scalar reference kernels and the traits table. SIMD variants (later) replace the function
// pointers at start-up; these stay the reference the SIMD tests compare against.
#include "quant.h"

#include <cmath>
#include <cstring>

namespace q35 {

// ---------------------------------------------------------------- half-precision conversions

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 1;
      while ((man & 0x400) == 0) {
        man <<= 1;
        exp--;
      }
      man &= 0x3ff;
      bits = sign | ((exp + 112) << 23) | (man << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000 | (man << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffff;
  if (ax >= 0x7f800000) return sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0);  // inf / nan
  if (ax >= 0x477ff000) return sign | 0x7c00;                                    // overflow
  if (ax < 0x38800000) {                                                         // subnormal / zero
    if (ax < 0x33000000) return sign;
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t half = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return sign | static_cast<uint16_t>(half);
  }
  uint32_t half = ((ax >> 13) - (112 << 10));
  const uint32_t rem = ax & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
  return sign | static_cast<uint16_t>(half);
}

uint16_t fp32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

namespace {

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

constexpr int QK8_0 = 32;
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[QK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 34 bytes");

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

// ---------------------------------------------------------------- the table

struct Table {
  TypeTraits t[T_COUNT];
  Table() {
    auto size_only = [&](uint32_t id, const char* name, int64_t blck, size_t bytes) {
      t[id].name = name;
      t[id].blck_size = blck;
      t[id].type_size = bytes;
    };
    size_only(T_F32, "F32", 1, 4);
    size_only(T_F16, "F16", 1, 2);
    size_only(T_Q4_0, "Q4_0", 32, 18);
    size_only(T_Q4_1, "Q4_1", 32, 20);
    size_only(T_Q5_0, "Q5_0", 32, 22);
    size_only(T_Q5_1, "Q5_1", 32, 24);
    size_only(T_Q8_0, "Q8_0", 32, 34);
    size_only(T_Q8_1, "Q8_1", 32, 40);
    size_only(T_Q2_K, "Q2_K", 256, 84);
    size_only(T_Q3_K, "Q3_K", 256, 110);
    size_only(T_Q4_K, "Q4_K", 256, 144);
    size_only(T_Q5_K, "Q5_K", 256, 176);
    size_only(T_Q6_K, "Q6_K", 256, 210);
    size_only(T_Q8_K, "Q8_K", 256, 292);
    size_only(T_IQ2_XXS, "IQ2_XXS", 256, 66);
    size_only(T_IQ2_XS, "IQ2_XS", 256, 74);
    size_only(T_IQ3_XXS, "IQ3_XXS", 256, 98);
    size_only(T_IQ1_S, "IQ1_S", 256, 50);
    size_only(T_IQ4_NL, "IQ4_NL", 32, 18);
    size_only(T_IQ3_S, "IQ3_S", 256, 110);
    size_only(T_IQ2_S, "IQ2_S", 256, 82);
    size_only(T_IQ4_XS, "IQ4_XS", 256, 136);
    size_only(T_I8, "I8", 1, 1);
    size_only(T_I16, "I16", 1, 2);
    size_only(T_I32, "I32", 1, 4);
    size_only(T_I64, "I64", 1, 8);
    size_only(T_F64, "F64", 1, 8);
    size_only(T_IQ1_M, "IQ1_M", 256, 56);
    size_only(T_BF16, "BF16", 1, 2);
    size_only(T_TQ1_0, "TQ1_0", 256, 54);
    size_only(T_TQ2_0, "TQ2_0", 256, 66);
    size_only(T_MXFP4, "MXFP4", 32, 17);
    size_only(T_NVFP4, "NVFP4", 64, 36);
    size_only(T_Q1_0, "Q1_0", 128, 18);

    auto compute = [&](uint32_t id, to_float_fn tf, from_float_fn ff, vec_dot_fn vd, uint32_t vdt) {
      t[id].to_float = tf;
      t[id].from_float = ff;
      t[id].vec_dot = vd;
      t[id].vec_dot_type = vdt;
    };
    compute(T_F32, f32_to_float, f32_from_float, f32_vec_dot, T_F32);
    // F16/BF16 weights meet F32 activations: more accurate than ggml's F16 activations and
    // no slower, since a decode matvec is bound by reading the weights.
    compute(T_F16, f16_to_float, f16_from_float, f16_vec_dot, T_F32);
    compute(T_BF16, bf16_to_float, bf16_from_float, bf16_vec_dot, T_F32);
    compute(T_Q8_0, q8_0_to_float, q8_0_from_float, q8_0_vec_dot, T_Q8_0);
  }
};

const Table& table() {
  static const Table tbl;
  return tbl;
}

}  // namespace

const TypeTraits* type_traits(uint32_t type) {
  if (type >= T_COUNT) return nullptr;
  const TypeTraits& t = table().t[type];
  return t.name ? &t : nullptr;
}

}  // namespace q35
