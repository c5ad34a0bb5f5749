// NEON (sdot) dot products of the k-quants and IQ4_XS against Q8_K activations (layouts: spec
// section 6, quant/blocks.h). Common shape: per super-block of 256, integer sums of weight x
// activation per sub-block, times the sub-block's integer scale, accumulated in int32; then one
// float multiply by the two super-block scales. Offsets (the -32 of Q6_K, the -4 of Q3_K, the
// mins of Q2_K/Q4_K/Q5_K) are folded out with the activation block sums (bsums) instead of being
// subtracted from every weight.
//
// int32 cannot overflow: the largest per-super-block sum is Q6_K's 256 * 63 * 127 * 128 < 2^31.
#include "kernels/kernels.h"

#if defined(__aarch64__) && defined(__ARM_NEON) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>

#include <type_traits>

#include "quant/blocks.h"
#include "quant/grids.h"
#include "kernels/arm/arm.h"
#include "kernels/rows.h"

namespace q35 {
namespace neon {

namespace {

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// 16 int8 products as four int32 lanes.
inline int32x4_t dot16(int8x16_t a, const int8_t* b) { return vdotq_s32(vdupq_n_s32(0), a, vld1q_s8(b)); }

inline int8x16_t as_s8(uint8x16_t v) { return vreinterpretq_s8_u8(v); }

// Sum over 16 sub-blocks of s[j] * bsums[j].
inline int32_t scaled_bsums16(const int8_t* s, const int16_t* bsums) {
  const int8x16_t sv = vld1q_s8(s);
  const int16x8_t s0 = vmovl_s8(vget_low_s8(sv)), s1 = vmovl_high_s8(sv);
  const int16x8_t b0 = vld1q_s16(bsums), b1 = vld1q_s16(bsums + 8);
  int32x4_t acc = vmull_s16(vget_low_s16(s0), vget_low_s16(b0));
  acc = vmlal_high_s16(acc, s0, b0);
  acc = vmlal_s16(acc, vget_low_s16(s1), vget_low_s16(b1));
  acc = vmlal_high_s16(acc, s1, b1);
  return vaddvq_s32(acc);
}

// The 8 scales and 8 mins of a Q4_K / Q5_K block (6 bits each, packed as spec 6.2 describes),
// unpacked four at a time from 32-bit words: bytes 0..3 hold sc0..3 (+ high bits of sc4..7),
// bytes 4..7 m0..3 (+ high bits of m4..7), bytes 8..11 the low nibbles of sc4..7 and m4..7.
inline void unpack_k4_scales(const uint8_t* s, uint8_t sc[8], uint8_t m[8]) {
  const uint32_t a = load_u32(s), b = load_u32(s + 4), c = load_u32(s + 8);
  const uint32_t w[4] = {a & 0x3f3f3f3f, (c & 0x0f0f0f0f) | (((a >> 6) & 0x03030303) << 4),
                         b & 0x3f3f3f3f, ((c >> 4) & 0x0f0f0f0f) | (((b >> 6) & 0x03030303) << 4)};
  std::memcpy(sc, &w[0], 8);
  std::memcpy(m, &w[2], 8);
}

// Sum over the 8 sub-blocks of 32 of m[j] * (activation sum of sub-block j).
inline int32_t mins_dot_bsums(const uint8_t m[8], const int16_t* bsums) {
  const int16x8_t bs = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));  // sums of 32
  const int16x8_t mv = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
  int32x4_t acc = vmull_s16(vget_low_s16(mv), vget_low_s16(bs));
  acc = vmlal_high_s16(acc, mv, bs);
  return vaddvq_s32(acc);
}

// ---------------------------------------------------------------- Q4_K / Q5_K

// Sub-blocks 2k and 2k+1 are the low and high nibbles of qs[32k..]; Q5_K adds qh bit 2k / 2k+1
// of byte l as the fifth bit of value l of each. NY activation rows (ystride bytes apart) per
// call: the weights are unpacked once and each row takes exactly the one-row kernel's operations
// (NY = 1), so the same bits (KernelSet::vec_dot4).
template <bool kQ5, int NY>
void k4_rows(int64_t n, const void* vx, const void* vy, size_t ystride, float* out) {
  using Block = typename std::conditional<kQ5, BlockQ5_K, BlockQ4_K>::type;
  const Block* x = static_cast<const Block*>(vx);
  const BlockQ8_K* y[NY];
  act_rows(vy, ystride, y);
  float sum[NY];
  for (int r = 0; r < NY; r++) sum[r] = 0.0f;
  const uint8x16_t m4 = vdupq_n_u8(0x0F), b1 = vdupq_n_u8(1), b2 = vdupq_n_u8(2);
  for (int64_t i = 0; i < n / QK_K; i++) {
    uint8_t sc[8], m[8];
    unpack_k4_scales(x[i].scales, sc, m);
    uint8x16_t h0, h1;  // Q5_K: qh, consumed two bits per group k by shifting right
    if constexpr (kQ5) {
      h0 = vld1q_u8(x[i].qh);
      h1 = vld1q_u8(x[i].qh + 16);
    }
    int32x4_t acc[NY];
    for (int r = 0; r < NY; r++) acc[r] = vdupq_n_s32(0);
    for (int k = 0; k < 4; k++) {
      const uint8x16_t q0 = vld1q_u8(x[i].qs + 32 * k), q1 = vld1q_u8(x[i].qs + 32 * k + 16);
      uint8x16_t l0 = vandq_u8(q0, m4), l1 = vandq_u8(q1, m4), u0 = vshrq_n_u8(q0, 4), u1 = vshrq_n_u8(q1, 4);
      if constexpr (kQ5) {
        l0 = vorrq_u8(l0, vshlq_n_u8(vandq_u8(h0, b1), 4));
        l1 = vorrq_u8(l1, vshlq_n_u8(vandq_u8(h1, b1), 4));
        u0 = vorrq_u8(u0, vshlq_n_u8(vandq_u8(h0, b2), 3));
        u1 = vorrq_u8(u1, vshlq_n_u8(vandq_u8(h1, b2), 3));
        h0 = vshrq_n_u8(h0, 2);
        h1 = vshrq_n_u8(h1, 2);
      }
      for (int r = 0; r < NY; r++) {
        const int8_t* a = y[r][i].qs + 64 * k;
        acc[r] = vmlaq_n_s32(acc[r], dot32(as_s8(l0), as_s8(l1), a), sc[2 * k]);
        acc[r] = vmlaq_n_s32(acc[r], dot32(as_s8(u0), as_s8(u1), a + 32), sc[2 * k + 1]);
      }
    }
    const float xd = h2f(x[i].d), xdmin = h2f(x[i].dmin);
    for (int r = 0; r < NY; r++) {
      const float d = y[r][i].d * xd, dmin = y[r][i].d * xdmin;
      sum[r] += d * static_cast<float>(vaddvq_s32(acc[r])) - dmin * static_cast<float>(mins_dot_bsums(m, y[r][i].bsums));
    }
  }
  for (int r = 0; r < NY; r++) out[r] = sum[r];
}

// ---------------------------------------------------------------- Q6_K

// Weights are used as unsigned 0..63; the -32 comes back as -32 * sum(scale * bsum).
template <int NY>
void q6_k_rows(int64_t n, const void* vx, const void* vy, size_t ystride, float* out) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(vx);
  const BlockQ8_K* y[NY];
  act_rows(vy, ystride, y);
  float sum[NY];
  for (int r = 0; r < NY; r++) sum[r] = 0.0f;
  const uint8x16_t m4 = vdupq_n_u8(0x0F), m2 = vdupq_n_u8(0x03);
  for (int64_t i = 0; i < n / QK_K; i++) {
    int32x4_t acc[NY];
    for (int r = 0; r < NY; r++) acc[r] = vdupq_n_s32(0);
    for (int h = 0; h < 2; h++) {
      const uint8_t* L = x[i].ql + 64 * h;
      const uint8_t* H = x[i].qh + 32 * h;
      const int8_t* S = x[i].scales + 8 * h;
      const uint8x16_t l0 = vld1q_u8(L), l1 = vld1q_u8(L + 16), l2 = vld1q_u8(L + 32), l3 = vld1q_u8(L + 48);
      const uint8x16_t h0 = vld1q_u8(H), h1 = vld1q_u8(H + 16);
      // Quarter q (values 32q..32q+31 of this half): low nibbles of L[0..32) for q = 0, of
      // L[32..64) for q = 1, high nibbles for q = 2, 3; high bits from qh bits 2q, 2q+1.
      const uint8x16_t lo[4][2] = {{vandq_u8(l0, m4), vandq_u8(l1, m4)},
                                   {vandq_u8(l2, m4), vandq_u8(l3, m4)},
                                   {vshrq_n_u8(l0, 4), vshrq_n_u8(l1, 4)},
                                   {vshrq_n_u8(l2, 4), vshrq_n_u8(l3, 4)}};
      uint8x16_t g0 = h0, g1 = h1;
      for (int q = 0; q < 4; q++) {
        const uint8x16_t q0 = vorrq_u8(lo[q][0], vshlq_n_u8(vandq_u8(g0, m2), 4));
        const uint8x16_t q1 = vorrq_u8(lo[q][1], vshlq_n_u8(vandq_u8(g1, m2), 4));
        g0 = vshrq_n_u8(g0, 2);
        g1 = vshrq_n_u8(g1, 2);
        for (int r = 0; r < NY; r++) {
          const int8_t* a = y[r][i].qs + 128 * h;
          acc[r] = vmlaq_n_s32(acc[r], dot16(as_s8(q0), a + 32 * q), S[2 * q]);
          acc[r] = vmlaq_n_s32(acc[r], dot16(as_s8(q1), a + 32 * q + 16), S[2 * q + 1]);
        }
      }
    }
    const float xd = h2f(x[i].d);
    for (int r = 0; r < NY; r++) {
      const int32_t offset = 32 * scaled_bsums16(x[i].scales, y[r][i].bsums);
      sum[r] += y[r][i].d * xd * static_cast<float>(vaddvq_s32(acc[r]) - offset);
    }
  }
  for (int r = 0; r < NY; r++) out[r] = sum[r];
}

// ---------------------------------------------------------------- Q3_K

// The 16 signed 6-bit scales: low 4 bits from bytes 0..7 (nibble by nibble), high 2 bits from
// bytes 8..11, two bits per group of four scales.
inline void unpack_q3_scales(const uint8_t* s, int8_t out[16]) {
  const uint32_t a = load_u32(s), b = load_u32(s + 4), c = load_u32(s + 8);
  const uint32_t w[4] = {(a & 0x0f0f0f0f) | ((c & 0x03030303) << 4),
                         (b & 0x0f0f0f0f) | (((c >> 2) & 0x03030303) << 4),
                         ((a >> 4) & 0x0f0f0f0f) | (((c >> 4) & 0x03030303) << 4),
                         ((b >> 4) & 0x0f0f0f0f) | (((c >> 6) & 0x03030303) << 4)};
  int8x16_t v;
  std::memcpy(&v, w, 16);
  vst1q_s8(out, vsubq_s8(v, vdupq_n_s8(32)));
}

// Weights used as unsigned 0..7 (two low bits + 4 * hmask bit); the -4 comes back through bsums.
template <int NY>
void q3_k_rows(int64_t n, const void* vx, const void* vy, size_t ystride, float* out) {
  const BlockQ3_K* x = static_cast<const BlockQ3_K*>(vx);
  const BlockQ8_K* y[NY];
  act_rows(vy, ystride, y);
  float sum[NY];
  for (int r = 0; r < NY; r++) sum[r] = 0.0f;
  const uint8x16_t m3 = vdupq_n_u8(3), k4 = vdupq_n_u8(4);
  for (int64_t i = 0; i < n / QK_K; i++) {
    int8_t sc[16];
    unpack_q3_scales(x[i].scales, sc);
    const uint8x16_t hm0 = vld1q_u8(x[i].hmask), hm1 = vld1q_u8(x[i].hmask + 16);
    int32x4_t acc[NY];
    for (int r = 0; r < NY; r++) acc[r] = vdupq_n_s32(0);
    for (int h = 0; h < 2; h++) {
      uint8x16_t q0 = vld1q_u8(x[i].qs + 32 * h), q1 = vld1q_u8(x[i].qs + 32 * h + 16);
      for (int j = 0; j < 4; j++) {
        const uint8x16_t bit = vdupq_n_u8(static_cast<uint8_t>(1u << (4 * h + j)));
        const uint8x16_t v0 = vorrq_u8(vandq_u8(q0, m3), vandq_u8(vtstq_u8(hm0, bit), k4));
        const uint8x16_t v1 = vorrq_u8(vandq_u8(q1, m3), vandq_u8(vtstq_u8(hm1, bit), k4));
        q0 = vshrq_n_u8(q0, 2);
        q1 = vshrq_n_u8(q1, 2);
        const int sb = 8 * h + 2 * j;
        for (int r = 0; r < NY; r++) {
          const int8_t* a = y[r][i].qs + 128 * h + 32 * j;
          acc[r] = vmlaq_n_s32(acc[r], dot16(as_s8(v0), a), sc[sb]);
          acc[r] = vmlaq_n_s32(acc[r], dot16(as_s8(v1), a + 16), sc[sb + 1]);
        }
      }
    }
    const float xd = h2f(x[i].d);
    for (int r = 0; r < NY; r++) {
      const int32_t offset = 4 * scaled_bsums16(sc, y[r][i].bsums);
      sum[r] += y[r][i].d * xd * static_cast<float>(vaddvq_s32(acc[r]) - offset);
    }
  }
  for (int r = 0; r < NY; r++) out[r] = sum[r];
}

// ---------------------------------------------------------------- Q2_K

float q2_k_dot(int64_t n, const void* vx, const void* vy) {
  const BlockQ2_K* x = static_cast<const BlockQ2_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const uint8x16_t m3 = vdupq_n_u8(3);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; i++) {
    const uint8x16_t packed = vld1q_u8(x[i].scales);
    int8_t sc[16], mn[16];
    vst1q_s8(sc, as_s8(vandq_u8(packed, vdupq_n_u8(0x0F))));
    vst1q_s8(mn, as_s8(vshrq_n_u8(packed, 4)));
    const int32_t summ = scaled_bsums16(mn, y[i].bsums);
    int32x4_t acc = vdupq_n_s32(0);
    for (int h = 0; h < 2; h++) {
      uint8x16_t q0 = vld1q_u8(x[i].qs + 32 * h), q1 = vld1q_u8(x[i].qs + 32 * h + 16);
      for (int j = 0; j < 4; j++) {
        const int8_t* a = y[i].qs + 128 * h + 32 * j;
        const int sb = 8 * h + 2 * j;
        acc = vmlaq_n_s32(acc, dot16(as_s8(vandq_u8(q0, m3)), a), sc[sb]);
        acc = vmlaq_n_s32(acc, dot16(as_s8(vandq_u8(q1, m3)), a + 16), sc[sb + 1]);
        q0 = vshrq_n_u8(q0, 2);
        q1 = vshrq_n_u8(q1, 2);
      }
    }
    const float d = y[i].d * h2f(x[i].d), dmin = y[i].d * h2f(x[i].dmin);
    sum += d * static_cast<float>(vaddvq_s32(acc)) - dmin * static_cast<float>(summ);
  }
  return sum;
}

// ---------------------------------------------------------------- IQ4_XS

float iq4_xs_dot(int64_t n, const void* vx, const void* vy) {
  const BlockIQ4_XS* x = static_cast<const BlockIQ4_XS*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  const int8x16_t grid = vld1q_s8(kIQ4NLValues);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; i++) {
    const uint32_t sh = x[i].scales_h;
    int32x4_t acc = vdupq_n_s32(0);
    for (int ib = 0; ib < 8; ib++) {
      const int ls = ((x[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 15) | (((sh >> (2 * ib)) & 3) << 4);
      const uint8x16_t q = vld1q_u8(x[i].qs + 16 * ib);
      const int32x4_t p =
          dot32(vqtbl1q_s8(grid, vandq_u8(q, m4)), vqtbl1q_s8(grid, vshrq_n_u8(q, 4)), y[i].qs + 32 * ib);
      acc = vmlaq_n_s32(acc, p, ls - 32);
    }
    sum += y[i].d * h2f(x[i].d) * static_cast<float>(vaddvq_s32(acc));
  }
  return sum;
}

}  // namespace

void fill_kquants(KernelSet& ks) {
  ks.vec_dot[T_Q2_K] = q2_k_dot;
  ks.vec_dot[T_Q3_K] = one_row<q3_k_rows<1>>;
  ks.vec_dot[T_Q4_K] = one_row<k4_rows<false, 1>>;
  ks.vec_dot[T_Q5_K] = one_row<k4_rows<true, 1>>;
  ks.vec_dot[T_Q6_K] = one_row<q6_k_rows<1>>;
  ks.vec_dot4[T_Q3_K] = q3_k_rows<4>;
  ks.vec_dot4[T_Q4_K] = k4_rows<false, 4>;
  ks.vec_dot4[T_Q5_K] = k4_rows<true, 4>;
  ks.vec_dot4[T_Q6_K] = q6_k_rows<4>;
  ks.vec_dot[T_IQ4_XS] = iq4_xs_dot;
}

}  // namespace neon
}  // namespace q35
#endif
