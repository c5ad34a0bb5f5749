// NEON kernels with the dot-product extension (ARMv8.2 sdot), for aarch64: Apple silicon and Linux.
// This file: the float types (F32 activations), the Q8_0-activation types (Q8_0, Q4_0, IQ4_NL) and
// the two activation quantizers. The k-quants and IQ4_XS are in neon_kquants.cpp.
//
// No i8mm (vmmlaq_s32) path: it multiplies two rows by two columns at once, and the kernel
// interface (KernelSet::vec_dot) is one row by one column, where sdot is already the best fit.
#include "kernels/kernels.h"

#if defined(__aarch64__) && defined(__ARM_NEON) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>

#include <cmath>

#include "quant/blocks.h"
#include "quant/grids.h"
#include "kernels/delta_step.h"
#include "kernels/arm/arm.h"
#include "runtime/cpu.h"

namespace q35 {

namespace {

using neon::dot32;
using neon::h2f;

// ---------------------------------------------------------------- float weights, F32 activations

// Load8: eight weights from element i as two f32 vectors; One: weight i as f32 (the tail).
// Four independent accumulators hide the FMA latency.
template <typename Load8, typename One>
inline float dot_f32_acts(int64_t n, const float* y, Load8 load8, One one) {
  float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  float32x4_t x0, x1, x2, x3;
  for (; i + 16 <= n; i += 16) {
    load8(i, x0, x1);
    load8(i + 8, x2, x3);
    a0 = vfmaq_f32(a0, x0, vld1q_f32(y + i));
    a1 = vfmaq_f32(a1, x1, vld1q_f32(y + i + 4));
    a2 = vfmaq_f32(a2, x2, vld1q_f32(y + i + 8));
    a3 = vfmaq_f32(a3, x3, vld1q_f32(y + i + 12));
  }
  for (; i + 8 <= n; i += 8) {
    load8(i, x0, x1);
    a0 = vfmaq_f32(a0, x0, vld1q_f32(y + i));
    a1 = vfmaq_f32(a1, x1, vld1q_f32(y + i + 4));
  }
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
  for (; i < n; i++) s += one(i) * y[i];
  return s;
}

float f32_dot(int64_t n, const void* vx, const void* vy) {
  const float* x = static_cast<const float*>(vx);
  return dot_f32_acts(
      n, static_cast<const float*>(vy),
      [x](int64_t i, float32x4_t& lo, float32x4_t& hi) {
        lo = vld1q_f32(x + i);
        hi = vld1q_f32(x + i + 4);
      },
      [x](int64_t i) { return x[i]; });
}

float f16_dot(int64_t n, const void* vx, const void* vy) {
  const uint16_t* x = static_cast<const uint16_t*>(vx);
  return dot_f32_acts(
      n, static_cast<const float*>(vy),
      [x](int64_t i, float32x4_t& lo, float32x4_t& hi) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(x + i));
        lo = vcvt_f32_f16(vget_low_f16(h));
        hi = vcvt_high_f32_f16(h);
      },
      [x](int64_t i) { return h2f(x[i]); });
}

float bf16_dot(int64_t n, const void* vx, const void* vy) {
  const uint16_t* x = static_cast<const uint16_t*>(vx);
  return dot_f32_acts(
      n, static_cast<const float*>(vy),
      [x](int64_t i, float32x4_t& lo, float32x4_t& hi) {
        // bf16 is the top half of an f32: widen with a 16-bit left shift.
        const uint16x8_t h = vld1q_u16(x + i);
        lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
        hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
      },
      [x](int64_t i) { return bf16_to_fp32(x[i]); });
}

// ---------------------------------------------------------------- Q8_0 activations

// Two blocks per iteration into two float accumulators. Dec: block -> its 32 weights as two int8
// vectors (values 0..15 first, 16..31 second).
template <typename Block, typename Dec>
inline float dot_q8_0_acts(int64_t n, const Block* x, const BlockQ8_0* y, Dec dec) {
  const int64_t nb = n / QK8_0;
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
  int64_t i = 0;
  int8x16_t a0, a1, b0, b1;
  for (; i + 2 <= nb; i += 2) {
    dec(x[i], a0, a1);
    dec(x[i + 1], b0, b1);
    const int32x4_t p0 = dot32(a0, a1, y[i].qs);
    const int32x4_t p1 = dot32(b0, b1, y[i + 1].qs);
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(p0), h2f(x[i].d) * h2f(y[i].d));
    acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(p1), h2f(x[i + 1].d) * h2f(y[i + 1].d));
  }
  float s = vaddvq_f32(vaddq_f32(acc0, acc1));
  for (; i < nb; i++) {
    dec(x[i], a0, a1);
    s += static_cast<float>(vaddvq_s32(dot32(a0, a1, y[i].qs))) * (h2f(x[i].d) * h2f(y[i].d));
  }
  return s;
}

float q8_0_dot(int64_t n, const void* vx, const void* vy) {
  return dot_q8_0_acts(n, static_cast<const BlockQ8_0*>(vx), static_cast<const BlockQ8_0*>(vy),
                       [](const BlockQ8_0& b, int8x16_t& lo, int8x16_t& hi) {
                         lo = vld1q_s8(b.qs);
                         hi = vld1q_s8(b.qs + 16);
                       });
}

float q4_0_dot(int64_t n, const void* vx, const void* vy) {
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  const int8x16_t k8 = vdupq_n_s8(8);
  return dot_q8_0_acts(n, static_cast<const BlockQ4_0*>(vx), static_cast<const BlockQ8_0*>(vy),
                       [&](const BlockQ4_0& b, int8x16_t& lo, int8x16_t& hi) {
                         const uint8x16_t q = vld1q_u8(b.qs);
                         lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), k8);
                         hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), k8);
                       });
}

float iq4_nl_dot(int64_t n, const void* vx, const void* vy) {
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  const int8x16_t grid = vld1q_s8(kIQ4NLValues);
  return dot_q8_0_acts(n, static_cast<const BlockIQ4_NL*>(vx), static_cast<const BlockQ8_0*>(vy),
                       [&](const BlockIQ4_NL& b, int8x16_t& lo, int8x16_t& hi) {
                         const uint8x16_t q = vld1q_u8(b.qs);
                         lo = vqtbl1q_s8(grid, vandq_u8(q, m4));
                         hi = vqtbl1q_s8(grid, vshrq_n_u8(q, 4));
                       });
}

// Narrow 16 int32 (already within int8 range) to int8 and store them.
inline void store_i8x16(int8_t* dst, int32x4_t q0, int32x4_t q1, int32x4_t q2, int32x4_t q3) {
  const int16x8_t lo = vcombine_s16(vmovn_s32(q0), vmovn_s32(q1));
  const int16x8_t hi = vcombine_s16(vmovn_s32(q2), vmovn_s32(q3));
  vst1q_s8(dst, vcombine_s8(vmovn_s16(lo), vmovn_s16(hi)));
}

// Same arithmetic as the scalar reference: d = amax/127 (amax as fmax: NaN-ignoring, hence
// vmaxnm), q = round(x * (1/d)) with ties away from zero (vcvta); so the result is bit-identical.
void quantize_q8_0(const float* src, void* dst, int64_t n) {
  BlockQ8_0* b = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / QK8_0; i++) {
    const float* x = src + i * QK8_0;
    float32x4_t v[8];
    float32x4_t amax = vdupq_n_f32(0.0f);
    for (int j = 0; j < 8; j++) {
      v[j] = vld1q_f32(x + 4 * j);
      amax = vmaxnmq_f32(amax, vabsq_f32(v[j]));
    }
    const float d = vmaxnmvq_f32(amax) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    int32x4_t q[8];
    for (int j = 0; j < 8; j++) q[j] = vcvtaq_s32_f32(vmulq_n_f32(v[j], id));
    store_i8x16(b[i].qs, q[0], q[1], q[2], q[3]);
    store_i8x16(b[i].qs + 16, q[4], q[5], q[6], q[7]);
  }
}

// ggml's Q8_K quantizer (spec 6.3): the scale comes from the signed value of largest magnitude,
// the first one in order when +a and -a tie (which fixes the sign of d and of every q);
// q = min(127, round-half-even(x * -127/max)).
void quantize_q8_k(const float* src, void* dst, int64_t n) {
  BlockQ8_K* b = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float* x = src + i * QK_K;
    float32x4_t vmax = vdupq_n_f32(0.0f), vmin = vmax;
    for (int j = 0; j < QK_K; j += 4) {
      const float32x4_t v = vld1q_f32(x + j);
      vmax = vmaxq_f32(vmax, v);
      vmin = vminq_f32(vmin, v);
    }
    const float hi = vmaxvq_f32(vmax), lo = vminvq_f32(vmin);
    float mx = hi > -lo ? hi : lo;
    if (hi == -lo) {
      for (int j = 0; j < QK_K; j++)
        if (std::fabs(x[j]) == hi) {
          mx = x[j];
          break;
        }
    }
    const float iscale = -127.0f / mx;
    // All zero, or |mx| so small that -127/mx overflows: every quant would round to 0 (as the
    // scalar reference decides too).
    if (mx == 0.0f || !std::isfinite(iscale)) {
      std::memset(&b[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    const int32x4_t k127 = vdupq_n_s32(127);
    for (int j = 0; j < QK_K; j += 16) {
      int32x4_t q[4];
      for (int k = 0; k < 4; k++)
        q[k] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + j + 4 * k), iscale)), k127);
      store_i8x16(b[i].qs + j, q[0], q[1], q[2], q[3]);
      b[i].bsums[j / 16] = static_cast<int16_t>(vaddlvq_s8(vld1q_s8(b[i].qs + j)));
    }
    b[i].d = 1.0f / iscale;
  }
}

// ---------------------------------------------------------------- DeltaNet step

struct VNeon {
  using Reg = float32x4_t;
  static constexpr int kW = 4, kBlock = 8;  // 32 columns: 16 accumulators of the 32 registers
  static Reg zero() { return vdupq_n_f32(0.0f); }
  static Reg set1(float x) { return vdupq_n_f32(x); }
  static Reg load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, Reg x) { vst1q_f32(p, x); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return vfmaq_f32(c, a, b); }
  static Reg mul(Reg a, Reg b) { return vmulq_f32(a, b); }
  static float sum(Reg a) { return vaddvq_f32(a); }
  static void prefetch(const float* p) { __builtin_prefetch(p); }
};

}  // namespace

bool fill_kernels_neon(KernelSet& ks) {
  if (!cpu_features().dotprod) return false;
  ks.vec_dot[T_F32] = f32_dot;
  ks.vec_dot[T_F16] = f16_dot;
  ks.vec_dot[T_BF16] = bf16_dot;
  ks.delta_step = simd_delta::delta_step<VNeon>;
  ks.vec_dot[T_Q8_0] = q8_0_dot;
  ks.vec_dot[T_Q4_0] = q4_0_dot;
  ks.vec_dot[T_IQ4_NL] = iq4_nl_dot;
  ks.quantize_act[T_Q8_0] = quantize_q8_0;
  ks.quantize_act[T_Q8_K] = quantize_q8_k;
  neon::fill_kquants(ks);
  return true;
}

}  // namespace q35
#else
namespace q35 {
bool fill_kernels_neon(KernelSet&) { return false; }
}  // namespace q35
#endif
