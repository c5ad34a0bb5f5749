// The AVX-512 integer dot products (Q8_0, Q4_0, IQ4_NL against Q8_0; Q2_K..Q6_K, IQ4_XS against
// Q8_K) as templates over the instruction that multiplies and accumulates, so one source gives two
// kernel sets: avx512.cpp instantiates them with AVX-512 BW (maddubs + madd + add) and
// avx512_vnni.cpp with AVX-512 VNNI (vpdpbusd / vpdpwssd), each file compiled with its own flags.
// Everything here has internal linkage, so the two copies never mix.
//
// Ops::dot4(o): 16 int32 sums of 4 products o.u (unsigned) * o.s (signed);
// Ops::dot4_minus(a, b, s): the same of a * s minus those of b * s (a, b unsigned, at most 15);
// Ops::madd_acc(acc, a, b): acc + the 16 int32 sums of 2 int16 products a * b.
//
// The k-quants follow avx2_kquants.cpp (the int32 bounds and how the offsets fold into bsums are
// explained there), 64 weights per instruction: a 512-bit register holds four 16-value or two
// 32-value sub-blocks, and their scales come from one in-lane shuffle.
#pragma once

#include <type_traits>

#include "kernels/rows.h"
#include "kernels/x86/x86.h"

namespace q35 {
namespace x86 {
namespace {

// An unsigned and a signed int8 operand whose products are the weights times the activations.
struct Operands {
  __m512i u, s;
};

// Signed int8 x (any value) and y (in [-127, 127]): |x| and y with the sign of x.
inline Operands operands_i8(__m512i x, __m512i y) {
  return {_mm512_abs_epi8(x), _mm512_mask_sub_epi8(y, _mm512_movepi8_mask(x), _mm512_setzero_si512(), y)};
}

// Nibble weights that are negative exactly when the nibble is below 8 (Q4_0's q - 8, the IQ4_NL
// grid): |w| from a 16-entry table and the sign moved onto y, one instruction fewer than
// operands_i8 on the signed weights.
inline Operands operands_nib(__m512i nib, __m512i abs_table, __m512i y) {
  const __mmask64 neg = _mm512_testn_epi8_mask(nib, _mm512_set1_epi8(8));
  return {_mm512_shuffle_epi8(abs_table, nib), _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y)};
}

// The int16 pair sums; no saturation: u <= 128 and |s| <= 127 bound a pair by 2 * 128 * 127 = 32512.
inline __m512i pairs(Operands o) { return _mm512_maddubs_epi16(o.u, o.s); }

// ---------------------------------------------------------------- 32-value blocks (Q8_0 activations)

// The f16 scales (first field) of 4 consecutive blocks of type B, picked out of the bytes that
// hold them with vpermw (word offsets 0, S/2, S, 3S/2 for an S-byte block): one or two loads and a
// permute instead of four scalar loads. Reads 4 * sizeof(B) bytes at most.
template <class B>
inline __m128 scales4_512(const B* b) {
  constexpr int w = sizeof(B) / 2;
  static_assert(sizeof(B) % 2 == 0, "the scales must sit on 16-bit boundaries");
  const __m512i idx = _mm512_setr_epi32(0 | w << 16, 2 * w | 3 * w << 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  __m512i h;
  if constexpr (4 * sizeof(B) >= 128) {  // two registers: the last scale sits beyond byte 64
    h = _mm512_permutex2var_epi16(load512(b), idx, load512(reinterpret_cast<const uint8_t*>(b) + 64));
  } else {
    h = _mm512_permutexvar_epi16(idx, load512(b));
  }
  return _mm_cvtph_ps(_mm512_castsi512_si128(h));
}


// dot2: the 16 int32 sums of 4 products of blocks a and b (64 weights) with their 64 activations
// (8 per block, in order); load1: the weights of one block as signed int8 (for the row's last
// odd block).
struct WQ8_0 {
  using Block = BlockQ8_0;
  template <class Ops>
  static __m512i dot2(const Block& a, const Block& b, __m512i y) {
    return Ops::dot4(operands_i8(load2x256(a.qs, b.qs), y));
  }
  static __m256i load1(const Block& a) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs)); }
};
struct WQ4_0 {
  using Block = BlockQ4_0;
  // (q - 8) * y as q * y - 8 * y: two unsigned-by-signed products instead of the sign trick.
  template <class Ops>
  static __m512i dot2(const Block& a, const Block& b, __m512i y) {
    return Ops::dot4_minus(nibbles_lo_hi_2x(a.qs, b.qs), _mm512_set1_epi8(8), y);
  }
  static __m256i load1(const Block& a) { return _mm256_sub_epi8(nibbles_lo_hi(a.qs), _mm256_set1_epi8(8)); }
};
struct WIQ4_NL {
  using Block = BlockIQ4_NL;
  template <class Ops>
  static __m512i dot2(const Block& a, const Block& b, __m512i y) {
    return Ops::dot4(operands_nib(nibbles_lo_hi_2x(a.qs, b.qs), abs_table_iq4(), y));
  }
  static __m256i load1(const Block& a) {
    const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues));
    return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(table), nibbles_lo_hi(a.qs));
  }
};

// Four blocks per step (two per register, their scales converted together) into two
// accumulators; one reduction per row.
template <class W, class Ops>
float dot_blocks32(int64_t n, const void* vx, const void* vy) {
  const typename W::Block* x = static_cast<const typename W::Block*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  const int64_t nb = n / QK8_0;
  // Lanes 0-7 take scale k, lanes 8-15 scale k+1.
  const __m512i idx01 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi32(1), 1);
  const __m512i idx23 = _mm512_add_epi32(idx01, _mm512_set1_epi32(2));
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    prefetch_ahead<4 * sizeof(typename W::Block)>(x + i);
    const __m512 d = _mm512_castps128_ps512(_mm_mul_ps(scales4_512(x + i), scales4_512(y + i)));
    const __m512i p0 = W::template dot2<Ops>(x[i], x[i + 1], load2x256(y[i].qs, y[i + 1].qs));
    const __m512i p1 = W::template dot2<Ops>(x[i + 2], x[i + 3], load2x256(y[i + 2].qs, y[i + 3].qs));
    acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx01, d), _mm512_cvtepi32_ps(p0), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx23, d), _mm512_cvtepi32_ps(p1), acc1);
  }
  __m256 acc2 = _mm256_setzero_ps();
  for (; i < nb; i++) {
    const __m256i yq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256 p = _mm256_cvtepi32_ps(dot_i8(W::load1(x[i]), yq));
    acc2 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), p, acc2);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + hsum(acc2);
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 8 unsigned 8-bit values -> int16 in every 128-bit lane.
inline __m512i u8x8_to_lanes(const uint8_t* s) {
  int64_t v;
  std::memcpy(&v, s, 8);
  return _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(v)));
}

// The 16 int32 sums of a super-block to float, times its scale (d * yd), into acc.
inline __m512 finish(__m512 acc, float d, __m512i sumi) {
  return _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
}
inline __m512 finish(__m512 acc, __m128 d, __m512i sumi) {
  return _mm512_fmadd_ps(_mm512_broadcastss_ps(d), _mm512_cvtepi32_ps(sumi), acc);
}

// The min term of Q4_K / Q5_K: sum_j m_j * (bsums[2j] + bsums[2j+1]) as 8 int32.
inline __m256i mins_k4(const uint8_t mn[8], const int16_t* bsums) {
  int64_t mv;
  std::memcpy(&mv, mn, 8);
  const __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mv));
  const __m256i mdup = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
  return _mm256_madd_epi16(load256(bsums), mdup);
}

// ---------------------------------------------------------------- Q4_K / Q5_K

// Sub-blocks 2k and 2k+1 of a Q4_K / Q5_K super-block are the low and high nibbles of qs[32k..];
// one register holds both, in value order. Q5_K adds bit 2k / 2k+1 of qh as bit 4.
// NY activation rows (ystride bytes apart) at once: the weights and their scales are unpacked once
// and every row takes exactly the operations of the one-row kernel (NY = 1), so the same bits.
template <bool kQ5, class Ops, int NY>
void dot_k4_rows(int64_t n, const void* vx, const void* vy, size_t ystride, float* out) {
  using Block = typename std::conditional<kQ5, BlockQ5_K, BlockQ4_K>::type;
  const Block* x = static_cast<const Block*>(vx);
  const BlockQ8_K* y[NY];
  act_rows(vy, ystride, y);
  __m512 acc[NY];
  __m256 accm[NY];
  for (int r = 0; r < NY; r++) {
    acc[r] = _mm512_setzero_ps();
    accm[r] = _mm256_setzero_ps();
  }
  for (int64_t i = 0; i < n / QK_K; i++) {
    prefetch_ahead<sizeof(*x)>(x + i);
    uint8_t sc[8], mn[8];
    unpack_scales_k4(x[i].scales, sc, mn);
    __m128 dd[NY];
    for (int r = 0; r < NY; r++) {
      dd[r] = d_dmin(x[i], y[r][i].d);
      accm[r] = _mm256_fnmadd_ps(bcast_elem1(dd[r]), _mm256_cvtepi32_ps(mins_k4(mn, y[r][i].bsums)), accm[r]);
    }
    const __m512i scales = u8x8_to_lanes(sc);
    __m512i qh2;
    if constexpr (kQ5) {
      // [qh, qh >> 1]: bit 2k of both halves is then the fifth bit of sub-blocks 2k and 2k+1.
      qh2 = _mm512_broadcast_i64x4(load256(x[i].qh));
      qh2 = _mm512_mask_srli_epi16(qh2, 0xFFFF0000u, qh2, 1);
    }
    __m512i sum0[NY], sum1[NY];
    for (int r = 0; r < NY; r++) sum0[r] = sum1[r] = _mm512_setzero_si512();
    for (int k = 0; k < 4; k += 2) {
      __m512i v0 = nibbles_lo_hi_32(x[i].qs + 32 * k);
      __m512i v1 = nibbles_lo_hi_32(x[i].qs + 32 * k + 32);
      if constexpr (kQ5) {
        const __m512i b16 = _mm512_set1_epi8(0x10);
        v0 = _mm512_mask_add_epi8(v0, _mm512_test_epi8_mask(qh2, _mm512_set1_epi8(static_cast<char>(1 << (2 * k)))), v0, b16);
        v1 = _mm512_mask_add_epi8(v1, _mm512_test_epi8_mask(qh2, _mm512_set1_epi8(static_cast<char>(1 << (2 * k + 2)))), v1,
                                  b16);
      }
      const __m512i s0 = _mm512_shuffle_epi8(scales, bcast16_pair_ctrl512(2 * k, 2 * k + 1));
      const __m512i s1 = _mm512_shuffle_epi8(scales, bcast16_pair_ctrl512(2 * k + 2, 2 * k + 3));
      for (int r = 0; r < NY; r++) {
        const __m512i p0 = _mm512_maddubs_epi16(v0, load512(y[r][i].qs + 64 * k));
        const __m512i p1 = _mm512_maddubs_epi16(v1, load512(y[r][i].qs + 64 * k + 64));
        sum0[r] = Ops::madd_acc(sum0[r], p0, s0);
        sum1[r] = Ops::madd_acc(sum1[r], p1, s1);
      }
    }
    for (int r = 0; r < NY; r++) acc[r] = finish(acc[r], dd[r], _mm512_add_epi32(sum0[r], sum1[r]));
  }
  for (int r = 0; r < NY; r++) out[r] = _mm512_reduce_add_ps(acc[r]) + hsum(accm[r]);
}



// ---------------------------------------------------------------- Q6_K

template <class Ops, int NY>
void q6_k_rows(int64_t n, const void* vx, const void* vy, size_t ystride, float* out) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(vx);
  const BlockQ8_K* y[NY];
  act_rows(vy, ystride, y);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i m2 = _mm512_set1_epi8(0x30);
  // Per 256-bit half: where the two high bits of ql's first / second 32 bytes sit in qh.
  const __m512i shl01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i shr23 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  __m512 acc[NY];
  for (int r = 0; r < NY; r++) acc[r] = _mm512_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; i++) {
    prefetch_ahead<sizeof(*x)>(x + i);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales)));
    const __m512i sc = lane_scale_table(_mm512_castsi256_si512(sc16));
    __m512i sumi[NY];
    for (int r = 0; r < NY; r++) {
      const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(load256(y[r][i].bsums), sc16), 5);
      sumi[r] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(off));
    }
    for (int h = 0; h < 2; h++) {
      const __m512i l = load512(x[i].ql + 64 * h);
      const __m512i hb = _mm512_broadcast_i64x4(load256(x[i].qh + 32 * h));
      const __m512i v01 = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_and_si512(_mm512_sllv_epi16(hb, shl01), m2));
      const __m512i v23 =
          _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4), _mm512_and_si512(_mm512_srlv_epi16(hb, shr23), m2));
      const __m512i s01 = lane_scales(sc, 2 * h), s23 = lane_scales(sc, 2 * h + 1);
      for (int r = 0; r < NY; r++) {
        const int8_t* a = y[r][i].qs + 128 * h;
        sumi[r] = Ops::madd_acc(sumi[r], _mm512_maddubs_epi16(v01, load512(a)), s01);
        sumi[r] = Ops::madd_acc(sumi[r], _mm512_maddubs_epi16(v23, load512(a + 64)), s23);
      }
    }
    const float dx = f16(x[i].d);
    for (int r = 0; r < NY; r++) acc[r] = finish(acc[r], y[r][i].d * dx, sumi[r]);
  }
  for (int r = 0; r < NY; r++) out[r] = _mm512_reduce_add_ps(acc[r]);
}


// ---------------------------------------------------------------- Q3_K / Q2_K

// Both store 2-bit fields: byte l of qs[32h..] holds, at bits 2j, value l of the 32 values
// 128h + 32j... (two 16-value sub-blocks 8h + 2j, 8h + 2j + 1). One register takes j and j+1.
template <class Ops, int NY>
void q3_k_rows(int64_t n, const void* vx, const void* vy, size_t ystride, float* out) {
  const BlockQ3_K* x = static_cast<const BlockQ3_K*>(vx);
  const BlockQ8_K* y[NY];
  act_rows(vy, ystride, y);
  const __m512i m2 = _mm512_set1_epi8(3);
  const __m512i b2 = _mm512_set1_epi8(4);
  __m512 acc[NY];
  for (int r = 0; r < NY; r++) acc[r] = _mm512_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; i++) {
    prefetch_ahead<sizeof(*x)>(x + i);
    const __m256i sc16 = _mm256_cvtepi8_epi16(scales_q3k(x[i].scales));
    const __m512i sc = lane_scale_table(_mm512_castsi256_si512(sc16));
    __m512i sumi[NY];
    for (int r = 0; r < NY; r++) {
      const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(load256(y[r][i].bsums), sc16), 2);
      sumi[r] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(off));
    }
    // [hmask, hmask >> 1]: bit 4h + j of both halves is the high bit of pair j / j+1 of half h.
    __m512i hm = _mm512_broadcast_i64x4(load256(x[i].hmask));
    hm = _mm512_mask_srli_epi16(hm, 0xFFFF0000u, hm, 1);
    for (int h = 0; h < 2; h++) {
      __m512i q = _mm512_broadcast_i64x4(load256(x[i].qs + 32 * h));
      q = _mm512_mask_srli_epi16(q, 0xFFFF0000u, q, 2);
      for (int j = 0; j < 4; j += 2) {
        __m512i v = _mm512_and_si512(_mm512_srli_epi16(q, 2 * j), m2);
        v = _mm512_mask_add_epi8(v, _mm512_test_epi8_mask(hm, _mm512_set1_epi8(static_cast<char>(1 << (4 * h + j)))), v, b2);
        const __m512i s = lane_scales(sc, 2 * h + j / 2);
        for (int r = 0; r < NY; r++)
          sumi[r] = Ops::madd_acc(sumi[r], _mm512_maddubs_epi16(v, load512(y[r][i].qs + 128 * h + 32 * j)), s);
      }
    }
    const float dx = f16(x[i].d);
    for (int r = 0; r < NY; r++) acc[r] = finish(acc[r], y[r][i].d * dx, sumi[r]);
  }
  for (int r = 0; r < NY; r++) out[r] = _mm512_reduce_add_ps(acc[r]);
}


template <class Ops>
float vec_dot_q2_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ2_K* x = static_cast<const BlockQ2_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const __m512i m2 = _mm512_set1_epi8(3);
  const __m128i m4 = _mm_set1_epi8(0x0F);
  __m512 acc = _mm512_setzero_ps();
  __m256 accm = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; i++) {
    prefetch_ahead<sizeof(*x)>(x + i);
    const __m128i sb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales));
    const __m512i sc = lane_scale_table(_mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(sb, m4))));
    const __m256i mins = _mm256_madd_epi16(load256(y[i].bsums), _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), m4)));
    const __m128 dd = d_dmin(x[i], y[i].d);
    accm = _mm256_fnmadd_ps(bcast_elem1(dd), _mm256_cvtepi32_ps(mins), accm);
    __m512i sum0 = _mm512_setzero_si512(), sum1 = sum0;
    for (int h = 0; h < 2; h++) {
      __m512i q = _mm512_broadcast_i64x4(load256(x[i].qs + 32 * h));
      q = _mm512_mask_srli_epi16(q, 0xFFFF0000u, q, 2);
      const int8_t* a = y[i].qs + 128 * h;
      const __m512i p0 = _mm512_maddubs_epi16(_mm512_and_si512(q, m2), load512(a));
      const __m512i p1 = _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(q, 4), m2), load512(a + 64));
      sum0 = Ops::madd_acc(sum0, p0, lane_scales(sc, 2 * h));
      sum1 = Ops::madd_acc(sum1, p1, lane_scales(sc, 2 * h + 1));
    }
    acc = finish(acc, dd, _mm512_add_epi32(sum0, sum1));
  }
  return _mm512_reduce_add_ps(acc) + hsum(accm);
}

// ---------------------------------------------------------------- IQ4_XS

template <class Ops>
float vec_dot_iq4_xs(int64_t n, const void* vx, const void* vy) {
  const BlockIQ4_XS* x = static_cast<const BlockIQ4_XS*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const __m512i table = abs_table_iq4();
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i lo_idx = _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13);
  const __m512i hi_idx = _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; i++) {
    prefetch_ahead<sizeof(*x)>(x + i);
    const __m512i sc = lane_scale_table(_mm512_zextsi128_si512(scales_iq4xs(x[i])));
    __m512i sum0 = _mm512_setzero_si512(), sum1 = sum0;
    for (int ib = 0; ib < 8; ib += 4) {
      // Lane l of one 64-byte load holds sub-block ib + l: its low nibbles are the sub-block's
      // first 16 values, its high nibbles the last 16. The activations are regrouped to match
      // (two qword permutes), and both halves take the same per-lane scales.
      const __m512i q = load512(x[i].qs + 16 * ib);
      const __m512i y0 = load512(y[i].qs + 32 * ib);
      const __m512i y1 = load512(y[i].qs + 32 * ib + 64);
      const __m512i s = lane_scales(sc, ib / 4);
      const __m512i p0 = pairs(operands_nib(_mm512_and_si512(q, m4), table, _mm512_permutex2var_epi64(y0, lo_idx, y1)));
      const __m512i p1 = pairs(operands_nib(_mm512_and_si512(_mm512_srli_epi16(q, 4), m4), table,
                                            _mm512_permutex2var_epi64(y0, hi_idx, y1)));
      sum0 = Ops::madd_acc(sum0, p0, s);
      sum1 = Ops::madd_acc(sum1, p1, s);
    }
    acc = finish(acc, y[i].d * f16(x[i].d), _mm512_add_epi32(sum0, sum1));
  }
  return _mm512_reduce_add_ps(acc);
}

template <class Ops>
void fill_avx512_quant(KernelSet& ks) {
  ks.vec_dot[T_Q8_0] = dot_blocks32<WQ8_0, Ops>;
  ks.vec_dot[T_Q4_0] = dot_blocks32<WQ4_0, Ops>;
  ks.vec_dot[T_IQ4_NL] = dot_blocks32<WIQ4_NL, Ops>;
  ks.vec_dot[T_Q2_K] = vec_dot_q2_k<Ops>;
  ks.vec_dot[T_Q3_K] = one_row<q3_k_rows<Ops, 1>>;
  ks.vec_dot[T_Q4_K] = one_row<dot_k4_rows<false, Ops, 1>>;
  ks.vec_dot[T_Q5_K] = one_row<dot_k4_rows<true, Ops, 1>>;
  ks.vec_dot4[T_Q3_K] = q3_k_rows<Ops, 4>;
  ks.vec_dot4[T_Q6_K] = q6_k_rows<Ops, 4>;
  ks.vec_dot4[T_Q4_K] = dot_k4_rows<false, Ops, 4>;
  ks.vec_dot4[T_Q5_K] = dot_k4_rows<true, Ops, 4>;
  ks.vec_dot[T_Q6_K] = one_row<q6_k_rows<Ops, 1>>;
  ks.vec_dot[T_IQ4_XS] = vec_dot_iq4_xs<Ops>;
}

}  // namespace
}  // namespace x86
}  // namespace q35
