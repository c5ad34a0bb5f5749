// AVX2 dot products of the 256-value super-block types (Q2_K..Q6_K, IQ4_XS) against Q8_K
// activations. Compiled with -mavx2 -mfma -mf16c; fill_kernels_avx2 calls fill_avx2_kquants only
// after checking the CPU.
//
// Shape of every kernel: the weights are unpacked to unsigned (or, for IQ4_XS, signed) int8 32 at a
// time and multiplied with the activations by maddubs; the int16 pair sums are weighted with the
// sub-block scale by madd, and the int32 sums of one super-block are converted to float once. The
// offsets/mins (Q2_K, Q4_K, Q5_K min terms, Q3_K's -4, Q6_K's -32) are folded in with the Q8_K
// bsums instead of being subtracted from every weight.
//
// int32 bounds per super-block (|y| <= 127): Q4_K 256*15*127*63 = 31M, Q5_K 63M, Q6_K per lane
// 32*63*127*128 = 33M, Q3_K 7.3M, Q2_K 1.9M, IQ4_XS 256*127*127*32 = 132M; all far below 2^31.
#include "kernels/kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include "kernels/rows.h"
#include "kernels/x86/x86.h"

namespace q35 {

namespace {
using namespace x86;

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 8 scales as int16 in both 128-bit lanes.
inline __m256i scales8_both_lanes(const uint8_t s[8]) {
  int64_t v;
  std::memcpy(&v, s, 8);
  return _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(v)));
}

// ---------------------------------------------------------------- Q4_K

// NY activation rows (ystride bytes apart) per call: the weights are unpacked once and each row
// takes exactly the one-row kernel's operations (NY = 1), so the same bits (KernelSet::vec_dot4).
template <int NY>
void q4_k_rows(int64_t n, const void* vx, const void* vy, size_t ystride, float* out) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(vx);
  const BlockQ8_K* y[NY];
  act_rows(vy, ystride, y);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[NY], accm[NY];
  for (int r = 0; r < NY; r++) acc[r] = accm[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; i++) {
    prefetch_ahead<sizeof(*x)>(x + i);
    uint8_t sc[8], mn[8];
    unpack_scales_k4(x[i].scales, sc, mn);
    // Min term: sum_j m_j * (bsums[2j] + bsums[2j+1]), the mins duplicated to pair with bsums.
    int64_t mv;
    std::memcpy(&mv, mn, 8);
    const __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mv));
    const __m256i mdup = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
    __m128 dd[NY];
    for (int r = 0; r < NY; r++) {
      const __m256i mins = _mm256_madd_epi16(load256(y[r][i].bsums), mdup);
      dd[r] = d_dmin(x[i], y[r][i].d);
      accm[r] = _mm256_fnmadd_ps(bcast_elem1(dd[r]), _mm256_cvtepi32_ps(mins), accm[r]);
    }
    const __m256i scales = scales8_both_lanes(sc);
    const uint8_t* q = x[i].qs;
    __m256i sumi[NY];
    for (int r = 0; r < NY; r++) sumi[r] = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
      const __m256i qb = load256(q + 32 * k);
      const __m256i vlo = _mm256_and_si256(qb, m4), vhi = _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4);
      const __m256i slo = _mm256_shuffle_epi8(scales, _mm256_set1_epi16(bcast16_ctrl(2 * k)));
      const __m256i shi = _mm256_shuffle_epi8(scales, _mm256_set1_epi16(bcast16_ctrl(2 * k + 1)));
      for (int r = 0; r < NY; r++) {
        const int8_t* a = y[r][i].qs;
        const __m256i lo = _mm256_maddubs_epi16(vlo, load256(a + 64 * k));
        const __m256i hi = _mm256_maddubs_epi16(vhi, load256(a + 64 * k + 32));
        sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(_mm256_madd_epi16(lo, slo), _mm256_madd_epi16(hi, shi)));
      }
    }
    for (int r = 0; r < NY; r++)
      acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd[r]), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
  }
  for (int r = 0; r < NY; r++) out[r] = hsum(_mm256_add_ps(acc[r], accm[r]));
}


// ---------------------------------------------------------------- Q5_K

float vec_dot_q5_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ5_K* x = static_cast<const BlockQ5_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  __m256 acc = _mm256_setzero_ps();
  __m256 accm = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; i++) {
    prefetch_ahead<sizeof(*x)>(x + i);
    uint8_t sc[8], mn[8];
    unpack_scales_k4(x[i].scales, sc, mn);
    int64_t mv;
    std::memcpy(&mv, mn, 8);
    const __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mv));
    const __m256i mdup = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
    const __m256i mins = _mm256_madd_epi16(load256(y[i].bsums), mdup);
    const __m128 dd = d_dmin(x[i], y[i].d);
    accm = _mm256_fnmadd_ps(bcast_elem1(dd), _mm256_cvtepi32_ps(mins), accm);

    const __m256i scales = scales8_both_lanes(sc);
    const uint8_t* q = x[i].qs;
    const int8_t* a = y[i].qs;
    // Bit 2k of qh[l] is the fifth bit of value l of sub-block 2k; shifting qh right by one per
    // sub-block brings the needed bit to bit 0, then to bit 4.
    __m256i qh = load256(x[i].qh);
    __m256i sumi = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
      const __m256i qb = load256(q + 32 * k);
      const __m256i hlo = _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4);
      const __m256i hhi = _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4);
      qh = _mm256_srli_epi16(qh, 2);
      const __m256i vlo = _mm256_or_si256(_mm256_and_si256(qb, m4), hlo);
      const __m256i vhi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4), hhi);
      const __m256i lo = _mm256_maddubs_epi16(vlo, load256(a + 64 * k));
      const __m256i hi = _mm256_maddubs_epi16(vhi, load256(a + 64 * k + 32));
      const __m256i slo = _mm256_shuffle_epi8(scales, _mm256_set1_epi16(bcast16_ctrl(2 * k)));
      const __m256i shi = _mm256_shuffle_epi8(scales, _mm256_set1_epi16(bcast16_ctrl(2 * k + 1)));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_madd_epi16(lo, slo), _mm256_madd_epi16(hi, shi)));
    }
    acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum(_mm256_add_ps(acc, accm));
}

// ---------------------------------------------------------------- Q6_K

float vec_dot_q6_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m2 = _mm256_set1_epi8(0x30);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; i++) {
    prefetch_ahead<sizeof(*x)>(x + i);
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales));
    // The -32 offset: 32 * sum_i S_i * bsums_i, subtracted from the int32 sums.
    const __m256i off = _mm256_madd_epi16(load256(y[i].bsums), _mm256_cvtepi8_epi16(sc8));
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
    for (int h = 0; h < 2; h++) {
      // The 8 scales of this half in both lanes; lane 0 takes S[2j], lane 1 S[2j+1].
      const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_unpackhi_epi64(sc8, sc8) : sc8));
      const __m256i l0 = load256(x[i].ql + 64 * h);
      const __m256i l1 = load256(x[i].ql + 64 * h + 32);
      const __m256i hb = load256(x[i].qh + 32 * h);
      const int8_t* a = y[i].qs + 128 * h;
      const __m256i v0 = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m2));
      const __m256i v1 = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m2));
      const __m256i v2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m2));
      const __m256i v3 =
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hb, 2), m2));
      const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(v0, load256(a)), _mm256_shuffle_epi8(sc, bcast16_pair_ctrl(0, 1)));
      const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(v1, load256(a + 32)), _mm256_shuffle_epi8(sc, bcast16_pair_ctrl(2, 3)));
      const __m256i p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(v2, load256(a + 64)), _mm256_shuffle_epi8(sc, bcast16_pair_ctrl(4, 5)));
      const __m256i p3 = _mm256_madd_epi16(_mm256_maddubs_epi16(v3, load256(a + 96)), _mm256_shuffle_epi8(sc, bcast16_pair_ctrl(6, 7)));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum(acc);
}

// ---------------------------------------------------------------- Q3_K

float vec_dot_q3_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ3_K* x = static_cast<const BlockQ3_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const __m256i m2 = _mm256_set1_epi8(3);
  const __m256i bit2 = _mm256_set1_epi8(4);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; i++) {
    prefetch_ahead<sizeof(*x)>(x + i);
    const __m128i sc8 = scales_q3k(x[i].scales);
    // The -4 of a clear high bit: value = (q | h << 2) - 4, the -4 folded in with bsums.
    const __m256i off = _mm256_madd_epi16(load256(y[i].bsums), _mm256_cvtepi8_epi16(sc8));
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 2));
    // Bit k = 4h + j of hmask[l] is the high bit of value l of sub-block pair j of half h; one
    // 16-bit shift by k - 2 puts it at bit 2 of both bytes (no bit crosses into the mask).
    const __m256i hm = load256(x[i].hmask);
    for (int h = 0; h < 2; h++) {
      const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_unpackhi_epi64(sc8, sc8) : sc8));
      const __m256i q = load256(x[i].qs + 32 * h);
      const int8_t* a = y[i].qs + 128 * h;
      for (int j = 0; j < 4; j++) {
        const int k = 4 * h + j;
        const __m256i hs = k < 2 ? _mm256_slli_epi16(hm, 2 - k) : _mm256_srli_epi16(hm, k - 2);
        const __m256i v = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m2), _mm256_and_si256(hs, bit2));
        const __m256i p = _mm256_maddubs_epi16(v, load256(a + 32 * j));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc, bcast16_pair_ctrl(2 * j, 2 * j + 1))));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum(acc);
}

// ---------------------------------------------------------------- Q2_K

float vec_dot_q2_k(int64_t n, const void* vx, const void* vy) {
  const BlockQ2_K* x = static_cast<const BlockQ2_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const __m256i m2 = _mm256_set1_epi8(3);
  const __m128i m4 = _mm_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  __m256 accm = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; i++) {
    prefetch_ahead<sizeof(*x)>(x + i);
    const __m128i sb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales));
    const __m128i sc8 = _mm_and_si128(sb, m4);
    const __m256i mins = _mm256_madd_epi16(load256(y[i].bsums), _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), m4)));
    const __m128 dd = d_dmin(x[i], y[i].d);
    accm = _mm256_fnmadd_ps(bcast_elem1(dd), _mm256_cvtepi32_ps(mins), accm);
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
      const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(h ? _mm_unpackhi_epi64(sc8, sc8) : sc8));
      __m256i q = load256(x[i].qs + 32 * h);
      const int8_t* a = y[i].qs + 128 * h;
      for (int j = 0; j < 4; j++) {
        const __m256i p = _mm256_maddubs_epi16(_mm256_and_si256(q, m2), load256(a + 32 * j));
        q = _mm256_srli_epi16(q, 2);
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc, bcast16_pair_ctrl(2 * j, 2 * j + 1))));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum(_mm256_add_ps(acc, accm));
}

// ---------------------------------------------------------------- IQ4_XS

float vec_dot_iq4_xs(int64_t n, const void* vx, const void* vy) {
  const BlockIQ4_XS* x = static_cast<const BlockIQ4_XS*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues)));
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; i++) {
    prefetch_ahead<sizeof(*x)>(x + i);
    const __m256i scales = _mm256_broadcastsi128_si256(scales_iq4xs(x[i]));
    __m256i sum0 = _mm256_setzero_si256(), sum1 = sum0;
    for (int ib = 0; ib < 8; ib += 2) {
      // Lane l of one 32-byte load holds sub-block ib + l: low nibbles its first 16 values, high
      // nibbles the last 16; the activations are regrouped to match and both take one scale pair.
      const __m256i q = load256(x[i].qs + 16 * ib);
      const __m256i y0 = load256(y[i].qs + 32 * ib);
      const __m256i y1 = load256(y[i].qs + 32 * ib + 32);
      const __m256i w0 = _mm256_shuffle_epi8(table, _mm256_and_si256(q, m4));
      const __m256i w1 = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
      const __m256i p0 = dot_i8_pairs(w0, _mm256_permute2x128_si256(y0, y1, 0x20));
      const __m256i p1 = dot_i8_pairs(w1, _mm256_permute2x128_si256(y0, y1, 0x31));
      const __m256i s = _mm256_shuffle_epi8(scales, bcast16_pair_ctrl(ib, ib + 1));
      sum0 = _mm256_add_epi32(sum0, _mm256_madd_epi16(p0, s));
      sum1 = _mm256_add_epi32(sum1, _mm256_madd_epi16(p1, s));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(_mm256_add_epi32(sum0, sum1)), acc);
  }
  return hsum(acc);
}

}  // namespace

void fill_avx2_kquants(KernelSet& ks) {
  ks.vec_dot[T_Q2_K] = vec_dot_q2_k;
  ks.vec_dot[T_Q3_K] = vec_dot_q3_k;
  ks.vec_dot[T_Q4_K] = one_row<q4_k_rows<1>>;
  ks.vec_dot4[T_Q4_K] = q4_k_rows<4>;
  ks.vec_dot[T_Q5_K] = vec_dot_q5_k;
  ks.vec_dot[T_Q6_K] = vec_dot_q6_k;
  ks.vec_dot[T_IQ4_XS] = vec_dot_iq4_xs;
}

}  // namespace q35
#else
namespace q35 {
void fill_avx2_kquants(KernelSet&) {}
}  // namespace q35
#endif
