// AVX-512 (F, BW, VL, DQ) kernels: the float types and the 32-value block types; the k-quants and
// IQ4_XS are in avx512_kquants.cpp. The activation quantizers stay with AVX2 (they run once per
// row of activations, not per weight). Compiled with those -m flags on x86-64 only; nothing here
// runs unless the CPU reports them.
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__)
#include "simd/x86_util.h"

namespace q35 {

namespace {
using namespace x86;

// ---------------------------------------------------------------- F32 / F16 / BF16 (F32 activations)

// Loaders of 16 weights as floats; the masked form reads only the lanes of m (the row's tail).
struct LoadF32 {
  static __m512 load(const void* p, int64_t i) { return _mm512_loadu_ps(static_cast<const float*>(p) + i); }
  static __m512 load(const void* p, int64_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + i);
  }
};
struct LoadF16 {
  static __m512 load(const void* p, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i)));
  }
  static __m512 load(const void* p, int64_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i));
  }
};
struct LoadBF16 {
  static __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static __m512 load(const void* p, int64_t i) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i)));
  }
  static __m512 load(const void* p, int64_t i, __mmask16 m) {
    return widen(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i));
  }
};

template <class L>
float dot_float(int64_t n, const void* x, const void* vy) {
  const float* y = static_cast<const float*>(vy);
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a0 = _mm512_fmadd_ps(L::load(x, i), _mm512_loadu_ps(y + i), a0);
    a1 = _mm512_fmadd_ps(L::load(x, i + 16), _mm512_loadu_ps(y + i + 16), a1);
    a2 = _mm512_fmadd_ps(L::load(x, i + 32), _mm512_loadu_ps(y + i + 32), a2);
    a3 = _mm512_fmadd_ps(L::load(x, i + 48), _mm512_loadu_ps(y + i + 48), a3);
  }
  for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(L::load(x, i), _mm512_loadu_ps(y + i), a0);
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    a1 = _mm512_fmadd_ps(L::load(x, i, m), _mm512_maskz_loadu_ps(m, y + i), a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

float vec_dot_f32(int64_t n, const void* x, const void* y) { return dot_float<LoadF32>(n, x, y); }
float vec_dot_f16(int64_t n, const void* x, const void* y) { return dot_float<LoadF16>(n, x, y); }
float vec_dot_bf16(int64_t n, const void* x, const void* y) { return dot_float<LoadBF16>(n, x, y); }

// ---------------------------------------------------------------- 32-value blocks (Q8_0 activations)

// pairs2: the int16 pair sums of blocks a and b (64 weights) with their 64 activations; load1:
// the weights of one block as signed int8 (for the row's last odd blocks).
struct WQ8_0 {
  using Block = BlockQ8_0;
  static __m512i pairs2(const Block& a, const Block& b, __m512i y) { return dot_i8_pairs512(load2x256(a.qs, b.qs), y); }
  static __m256i load1(const Block& a) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs)); }
};
struct WQ4_0 {
  using Block = BlockQ4_0;
  static __m512i pairs2(const Block& a, const Block& b, __m512i y) {
    return dot_nib_pairs512(nibbles_lo_hi_2x(a.qs, b.qs), abs_table_q4_0(), y);
  }
  static __m256i load1(const Block& a) { return _mm256_sub_epi8(nibbles_lo_hi(a.qs), _mm256_set1_epi8(8)); }
};
struct WIQ4_NL {
  using Block = BlockIQ4_NL;
  static __m512i pairs2(const Block& a, const Block& b, __m512i y) {
    return dot_nib_pairs512(nibbles_lo_hi_2x(a.qs, b.qs), abs_table_iq4(), y);
  }
  static __m256i load1(const Block& a) {
    const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues));
    return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(table), nibbles_lo_hi(a.qs));
  }
};

// Four blocks per step (two per register, their scales converted together) into two
// accumulators; one reduction per row.
template <class W>
float dot_blocks32(int64_t n, const void* vx, const void* vy) {
  const typename W::Block* x = static_cast<const typename W::Block*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  const int64_t nb = n / QK8_0;
  const __m512i ones = _mm512_set1_epi16(1);
  // Lanes 0-7 take scale k, lanes 8-15 scale k+1.
  const __m512i idx01 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi32(1), 1);
  const __m512i idx23 = _mm512_add_epi32(idx01, _mm512_set1_epi32(2));
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    const __m512 d = _mm512_castps128_ps512(scale4(x + i, y + i));
    const __m512i p0 = _mm512_madd_epi16(W::pairs2(x[i], x[i + 1], load2x256(y[i].qs, y[i + 1].qs)), ones);
    const __m512i p1 =
        _mm512_madd_epi16(W::pairs2(x[i + 2], x[i + 3], load2x256(y[i + 2].qs, y[i + 3].qs)), ones);
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

float vec_dot_q8_0(int64_t n, const void* x, const void* y) { return dot_blocks32<WQ8_0>(n, x, y); }
float vec_dot_q4_0(int64_t n, const void* x, const void* y) { return dot_blocks32<WQ4_0>(n, x, y); }
float vec_dot_iq4_nl(int64_t n, const void* x, const void* y) { return dot_blocks32<WIQ4_NL>(n, x, y); }

}  // namespace

bool fill_kernels_avx512(KernelSet& ks) {
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
    return false;
  ks.vec_dot[T_F32] = vec_dot_f32;
  ks.vec_dot[T_F16] = vec_dot_f16;
  ks.vec_dot[T_BF16] = vec_dot_bf16;
  ks.vec_dot[T_Q8_0] = vec_dot_q8_0;
  ks.vec_dot[T_Q4_0] = vec_dot_q4_0;
  ks.vec_dot[T_IQ4_NL] = vec_dot_iq4_nl;
  fill_avx512_kquants(ks, __builtin_cpu_supports("avx512vnni"));
  return true;
}

}  // namespace q35
#else
namespace q35 {
bool fill_kernels_avx512(KernelSet&) { return false; }
}  // namespace q35
#endif
