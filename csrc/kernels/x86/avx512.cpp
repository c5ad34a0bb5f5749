// AVX-512 (F, BW, VL, DQ) kernels: the float types here, the integer ones from avx512_kernels.h
// with BW instructions; on a CPU with VNNI, avx512_vnni.cpp replaces the integer ones. The
// activation quantizers stay with AVX2 (they run once per row of activations, not per weight).
// Compiled with those -m flags on x86-64 only; nothing here runs unless the CPU reports them.
#include "kernels/kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__)
#include <cstdlib>

#include "kernels/x86/avx512_kernels.h"
#include "kernels/delta_step.h"
#include "runtime/cpu.h"

namespace q35 {

namespace {
using namespace x86;

// ---------------------------------------------------------------- F32 / F16 / BF16 (F32 activations)

// Loaders of 16 weights as floats; the masked form reads only the lanes of m (the row's tail).
// No masked head to align the loads (which streamed misaligned F32 rows a third faster): it would
// make the summation order, and so the last bits of the result, depend on where the tensor lies in
// its file, and the same weights must give the same logits in any file.
struct LoadF32 {
  static constexpr int kBytes = 4;
  static __m512 load(const void* p, int64_t i) { return _mm512_loadu_ps(static_cast<const float*>(p) + i); }
  static __m512 load(const void* p, int64_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + i);
  }
};
struct LoadF16 {
  static constexpr int kBytes = 2;
  static __m512 load(const void* p, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i)));
  }
  static __m512 load(const void* p, int64_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i));
  }
};
struct LoadBF16 {
  static constexpr int kBytes = 2;
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
    prefetch_ahead<64 * L::kBytes>(static_cast<const char*>(x) + i * L::kBytes);
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

// ---------------------------------------------------------------- integer kernels, AVX-512 BW

struct OpsBW {
  static __m512i dot4(Operands o) { return _mm512_madd_epi16(pairs(o), _mm512_set1_epi16(1)); }
  static __m512i dot4_minus(__m512i a, __m512i b, __m512i s) {
    const __m512i d = _mm512_sub_epi16(_mm512_maddubs_epi16(a, s), _mm512_maddubs_epi16(b, s));
    return _mm512_madd_epi16(d, _mm512_set1_epi16(1));
  }
  static __m512i madd_acc(__m512i acc, __m512i a, __m512i b) { return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b)); }
};

// ---------------------------------------------------------------- DeltaNet step

struct V512 {
  using Reg = __m512;
  static constexpr int kW = 16, kBlock = 8;  // 128 columns: 16 accumulators of 32
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float x) { return _mm512_set1_ps(x); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Reg x) { _mm512_storeu_ps(p, x); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static float sum(Reg a) { return _mm512_reduce_add_ps(a); }
  static void prefetch(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }
};

bool vnni_wanted() {
  // QWEN35CPU_NO_VNNI=1 keeps the BW-only kernels on a VNNI CPU, so tests can check both sets.
  const char* off = std::getenv("QWEN35CPU_NO_VNNI");
  return cpu_features().avx512vnni && !(off && *off && *off != '0');
}

}  // namespace

bool fill_kernels_avx512(KernelSet& ks) {
  const CpuFeatures& cpu = cpu_features();
  if (!(cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.avx512dq)) return false;
  ks.vec_dot[T_F32] = vec_dot_f32;
  ks.vec_dot[T_F16] = vec_dot_f16;
  ks.vec_dot[T_BF16] = vec_dot_bf16;
  ks.delta_step = simd_delta::delta_step<V512>;
  fill_avx512_quant<OpsBW>(ks);
  if (vnni_wanted()) fill_avx512_vnni(ks);
  return true;
}

}  // namespace q35
#else
namespace q35 {
bool fill_kernels_avx512(KernelSet&) { return false; }
}  // namespace q35
#endif
