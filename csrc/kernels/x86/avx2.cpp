// AVX2 + FMA + F16C kernels: the float types, the 32-value block types (Q8_0, Q4_0, IQ4_NL) and
// the activation quantizers. The k-quants and IQ4_XS are in avx2_kquants.cpp. Compiled with
// -mavx2 -mfma -mf16c on x86-64 only; nothing here runs unless the CPU reports those features.
//
// Every dot product walks the whole row with vector accumulators and reduces them once at the end:
// a decode matvec is bound by the bytes of weights it streams, so the per-block work must stay
// below the memory time of a block.
#include "kernels/kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include "kernels/delta_step.h"
#include "kernels/x86/x86.h"
#include "runtime/cpu.h"

namespace q35 {

namespace {
using namespace x86;

// ---------------------------------------------------------------- F32 / F16 / BF16 (F32 activations)

// Loaders of 8 weights as floats.
struct LoadF32 {
  static constexpr int kBytes = 4;
  static __m256 load(const void* p, int64_t i) { return _mm256_loadu_ps(static_cast<const float*>(p) + i); }
  static float one(const void* p, int64_t i) { return static_cast<const float*>(p)[i]; }
};
struct LoadF16 {
  static constexpr int kBytes = 2;
  static __m256 load(const void* p, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
  }
  static float one(const void* p, int64_t i) { return f16(static_cast<const uint16_t*>(p)[i]); }
};
struct LoadBF16 {
  static constexpr int kBytes = 2;
  static __m256 load(const void* p, int64_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float one(const void* p, int64_t i) {
    const uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(p)[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// Four independent accumulators hide the FMA latency.
template <class L>
float dot_float(int64_t n, const void* x, const void* vy) {
  const float* y = static_cast<const float*>(vy);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    prefetch_ahead<32 * L::kBytes>(static_cast<const char*>(x) + i * L::kBytes);
    a0 = _mm256_fmadd_ps(L::load(x, i), _mm256_loadu_ps(y + i), a0);
    a1 = _mm256_fmadd_ps(L::load(x, i + 8), _mm256_loadu_ps(y + i + 8), a1);
    a2 = _mm256_fmadd_ps(L::load(x, i + 16), _mm256_loadu_ps(y + i + 16), a2);
    a3 = _mm256_fmadd_ps(L::load(x, i + 24), _mm256_loadu_ps(y + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(L::load(x, i), _mm256_loadu_ps(y + i), a0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; i++) s += L::one(x, i) * y[i];
  return s;
}

float vec_dot_f32(int64_t n, const void* x, const void* y) { return dot_float<LoadF32>(n, x, y); }
float vec_dot_f16(int64_t n, const void* x, const void* y) { return dot_float<LoadF16>(n, x, y); }
float vec_dot_bf16(int64_t n, const void* x, const void* y) { return dot_float<LoadBF16>(n, x, y); }

// ---------------------------------------------------------------- 32-value blocks (Q8_0 activations)

// The int16 pair sums of a block's 32 weights with its 32 activations y.
struct WQ8_0 {
  using Block = BlockQ8_0;
  static __m256i pairs(const Block& b, __m256i y) {
    return dot_i8_pairs(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)), y);
  }
};
struct WQ4_0 {
  using Block = BlockQ4_0;
  // (q - 8) * y as q * y - 8 * y: two unsigned-by-signed products instead of the sign trick.
  static __m256i pairs(const Block& b, __m256i y) {
    return _mm256_sub_epi16(_mm256_maddubs_epi16(nibbles_lo_hi(b.qs), y), _mm256_maddubs_epi16(_mm256_set1_epi8(8), y));
  }
};
struct WIQ4_NL {
  using Block = BlockIQ4_NL;
  static __m256i pairs(const Block& b, __m256i y) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues)));
    return dot_i8_pairs(_mm256_shuffle_epi8(table, nibbles_lo_hi(b.qs)), y);
  }
};

// Four blocks per step (their scales converted together) into two accumulators; one reduction
// per row.
template <class W>
float dot_blocks32(int64_t n, const void* vx, const void* vy) {
  const typename W::Block* x = static_cast<const typename W::Block*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  const int64_t nb = n / QK8_0;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  auto dot = [&](int64_t i) {
    const __m256i yq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(W::pairs(x[i], yq), _mm256_set1_epi16(1)));
  };
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    prefetch_ahead<4 * sizeof(typename W::Block)>(x + i);
    const __m256 d = _mm256_castps128_ps256(scale4(x + i, y + i));
    acc0 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(d, _mm256_set1_epi32(0)), dot(i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(d, _mm256_set1_epi32(1)), dot(i + 1), acc1);
    acc0 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(d, _mm256_set1_epi32(2)), dot(i + 2), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(d, _mm256_set1_epi32(3)), dot(i + 3), acc1);
  }
  for (; i < nb; i++) acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), dot(i), acc0);
  return hsum(_mm256_add_ps(acc0, acc1));
}

// The nibble types, two blocks per register: lane 0 holds block i, lane 1 block i+1, the low
// nibbles (values 0..15) in one register and the high ones (16..31) in another, with the
// activations regrouped to match. This unpacks two blocks with one shift and two ands, and
// needs one int32 conversion and one FMA per two blocks. pairs2 returns 8 int32: 4 per block.
struct NQ4_0 {
  using Block = BlockQ4_0;
  // (q - 8) * y as q * y - 8 * y; the int16 sums stay below 2 * 2 * 15 * 127 = 7620.
  static __m256i pairs2(__m256i lo, __m256i hi, __m256i ylo, __m256i yhi) {
    const __m256i e8 = _mm256_set1_epi8(8);
    const __m256i t = _mm256_add_epi16(_mm256_maddubs_epi16(lo, ylo), _mm256_maddubs_epi16(hi, yhi));
    const __m256i o = _mm256_add_epi16(_mm256_maddubs_epi16(e8, ylo), _mm256_maddubs_epi16(e8, yhi));
    return _mm256_madd_epi16(_mm256_sub_epi16(t, o), _mm256_set1_epi16(1));
  }
};
struct NIQ4_NL {
  using Block = BlockIQ4_NL;
  // Grid values up to 127: the two halves' int16 pair sums are widened before they are added.
  static __m256i pairs2(__m256i lo, __m256i hi, __m256i ylo, __m256i yhi) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues)));
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i a = _mm256_madd_epi16(dot_i8_pairs(_mm256_shuffle_epi8(table, lo), ylo), ones);
    return _mm256_add_epi32(a, _mm256_madd_epi16(dot_i8_pairs(_mm256_shuffle_epi8(table, hi), yhi), ones));
  }
};

inline __m256i load2x128(const void* a, const void* b) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(static_cast<const __m128i*>(a))),
                                 _mm_loadu_si128(static_cast<const __m128i*>(b)), 1);
}

template <class N, class W>
float dot_nibbles32(int64_t n, const void* vx, const void* vy) {
  const typename N::Block* x = static_cast<const typename N::Block*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  const int64_t nb = n / QK8_0;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  auto two = [&](int64_t i) {
    const __m256i q = load2x128(x[i].qs, x[i + 1].qs);
    const __m256i ylo = load2x128(y[i].qs, y[i + 1].qs);
    const __m256i yhi = load2x128(y[i].qs + 16, y[i + 1].qs + 16);
    return _mm256_cvtepi32_ps(N::pairs2(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), ylo, yhi));
  };
  const __m256i idx01 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  const __m256i idx23 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    prefetch_ahead<4 * sizeof(typename N::Block)>(x + i);
    const __m256 d = _mm256_castps128_ps256(scale4(x + i, y + i));
    acc0 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(d, idx01), two(i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(d, idx23), two(i + 2), acc1);
  }
  for (; i < nb; i++) {
    const __m256i yq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(W::pairs(x[i], yq), _mm256_set1_epi16(1)));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), p, acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

float vec_dot_q8_0(int64_t n, const void* x, const void* y) { return dot_blocks32<WQ8_0>(n, x, y); }
float vec_dot_q4_0(int64_t n, const void* x, const void* y) { return dot_nibbles32<NQ4_0, WQ4_0>(n, x, y); }
float vec_dot_iq4_nl(int64_t n, const void* x, const void* y) { return dot_nibbles32<NIQ4_NL, WIQ4_NL>(n, x, y); }

// ---------------------------------------------------------------- activation quantizers

// 32 floats times s, rounded (ties to even) and saturated to int8, in order.
inline __m256i round_pack32(const float* x, __m256 s) {
  const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), s));
  const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), s));
  const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), s));
  const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), s));
  // The packs work per 128-bit lane: the dwords come out as i0a i1a i2a i3a i0b i1b i2b i3b.
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// As the reference: d = amax / 127 (stored as f16), q = x * (1/d) rounded.
void quantize_q8_0(const float* x, void* vy, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(vy);
  for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
    const __m256 m = _mm256_max_ps(_mm256_max_ps(absf(_mm256_loadu_ps(x)), absf(_mm256_loadu_ps(x + 8))),
                                   _mm256_max_ps(absf(_mm256_loadu_ps(x + 16)), absf(_mm256_loadu_ps(x + 24))));
    const float amax = hmax(m);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), round_pack32(x, _mm256_set1_ps(id)));
  }
}

// As the reference: mx = the first element of largest |x|, iscale = -127 / mx, q = min(127,
// round(iscale * x)) (the int8 saturation of the packs is that min), d = 1 / iscale; bsums are the
// sums of each 16 q.
void quantize_q8_k(const float* x, void* vy, int64_t n) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(vy);
  const __m256i ones8 = _mm256_set1_epi8(1);
  const __m256i ones16 = _mm256_set1_epi16(1);
  for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < QK_K; k += 8) m = _mm256_max_ps(m, absf(_mm256_loadu_ps(x + k)));
    const float amax = hmax(m);
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    int first = 0;
    const __m256 vmax = _mm256_set1_ps(amax);
    for (int k = 0; k < QK_K; k += 8) {
      const int mask = _mm256_movemask_ps(_mm256_cmp_ps(absf(_mm256_loadu_ps(x + k)), vmax, _CMP_EQ_OQ));
      if (mask) {
        first = k + __builtin_ctz(static_cast<unsigned>(mask));
        break;
      }
    }
    const float iscale = -127.0f / x[first];
    if (!__builtin_isfinite(iscale)) {  // subnormal max: as the reference, an all-zero block
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    y[i].d = 1.0f / iscale;
    const __m256 s = _mm256_set1_ps(iscale);
    for (int g = 0; g < QK_K / 32; g++) {
      const __m256i q = round_pack32(x + 32 * g, s);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + 32 * g), q);
      // Sums of 4 per dword, then two pairwise adds leave each lane's sum of 16 in its dword 0.
      __m256i t = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
      t = _mm256_hadd_epi32(t, t);
      t = _mm256_hadd_epi32(t, t);
      y[i].bsums[2 * g] = static_cast<int16_t>(_mm256_extract_epi32(t, 0));
      y[i].bsums[2 * g + 1] = static_cast<int16_t>(_mm256_extract_epi32(t, 4));
    }
  }
}

// ---------------------------------------------------------------- DeltaNet step

struct V256 {
  using Reg = __m256;
  static constexpr int kW = 8, kBlock = 4;  // 32 columns: 8 accumulators of the 16 registers
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float x) { return _mm256_set1_ps(x); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, Reg x) { _mm256_storeu_ps(p, x); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static float sum(Reg a) { return hsum(a); }
  static void prefetch(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }
};

}  // namespace

bool fill_kernels_avx2(KernelSet& ks) {
  const CpuFeatures& cpu = cpu_features();
  if (!(cpu.avx2 && cpu.fma && cpu.f16c)) return false;
  ks.vec_dot[T_F32] = vec_dot_f32;
  ks.vec_dot[T_F16] = vec_dot_f16;
  ks.vec_dot[T_BF16] = vec_dot_bf16;
  ks.delta_step = simd_delta::delta_step<V256>;
  ks.vec_dot[T_Q8_0] = vec_dot_q8_0;
  ks.vec_dot[T_Q4_0] = vec_dot_q4_0;
  ks.vec_dot[T_IQ4_NL] = vec_dot_iq4_nl;
  ks.quantize_act[T_Q8_0] = quantize_q8_0;
  ks.quantize_act[T_Q8_K] = quantize_q8_k;
  fill_avx2_kquants(ks);
  return true;
}

}  // namespace q35
#else
namespace q35 {
bool fill_kernels_avx2(KernelSet&) { return false; }
}  // namespace q35
#endif
