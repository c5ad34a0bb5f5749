// kernels/x86/: the x86-64 kernel sets. AVX2 + FMA + F16C (avx2.cpp: float and 32-value block
// types, activation quantizers; avx2_kquants.cpp: k-quants and IQ4_XS), AVX-512 BW
// (avx512.cpp) and AVX-512 VNNI (avx512_vnni.cpp), the integer AVX-512 kernels written once as
// templates over the multiply-accumulate instruction (avx512_kernels.h). Each .cpp is compiled
// with its own -m flags (kernels/CMakeLists.txt) and runs only after runtime/cpu.h says the CPU
// has them. Adding a kernel for one ISA: its file here, one line in that set's fill function.
// Depends on: kernels/kernels.h, the shared templates beside it, quant/ (layouts, grids).
//
// This header: helpers shared by the x86 kernel files (avx2*.cpp, avx512*.cpp). Every function here has
// internal linkage (anonymous namespace): each file compiles its own copy with its own -m flags,
// so the linker can never hand an AVX-512-compiled copy to the AVX2 path.
//
// Precondition of every integer dot product in these files: activations (Q8_0 / Q8_K qs) lie in
// [-127, 127], which both activation quantizers guarantee; the weights may hold any byte. Signed
// weights are multiplied as |w| (unsigned) by sign(w)*y (signed), and -(-128) does not exist in
// int8. With |y| <= 127 no int16 pair sum of maddubs can saturate (2 * 128 * 127 < 32768).
#pragma once

// GCC 12's AVX-512 headers trip its own -Wuninitialized (the "undefined" registers of the casts
// and inserts, GCC bug 105593); the warnings point into the header, so they are silenced there.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"
#include "quant/blocks.h"
#include "quant/grids.h"

namespace q35 {
namespace x86 {
namespace {

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

// Software prefetch of the weights ahead of a kernel's reads. Decode reads each weight once, from
// DRAM, and one core keeps only so many cache misses in flight: with the unpacking arithmetic
// between the loads, the hardware prefetchers alone let it read a Q4_K matrix at about half the
// rate of a plain read loop (8 against 15 GB/s on the 2-core Xeon of benchmarks/results/). Two
// prefetches per cache line consumed: one ~3 KiB ahead into L2 (prefetcht2), which keeps DRAM busy,
// and one 512 bytes ahead into L1, by when the line is usually in L2; measured (1 thread, huge
// pages) Q6_K 13 -> 16, Q4_K 14.5 -> 15 GB/s against a single L1 prefetch 2 KiB ahead. kBytes: the
// weight bytes one step of the kernel consumes. Past a matrix's end the prefetches touch the next
// tensor's lines or none (a prefetch never faults).
constexpr int kPrefetchL1 = 512;
constexpr int kPrefetchL2 = 3072;
template <int kBytes>
inline void prefetch_ahead(const void* p) {
  const char* near = static_cast<const char*>(p) + kPrefetchL1;
  const char* far = static_cast<const char*>(p) + kPrefetchL2;
  for (int o = 0; o < kBytes; o += 64) {
    _mm_prefetch(far + o, _MM_HINT_T2);
    _mm_prefetch(near + o, _MM_HINT_T0);
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The f16 scales (first field) of 4 consecutive blocks as words 0..3: four 16-byte loads at the
// block starts and three unpacks (fewer instructions than scalar loads packed in integer
// registers). Reads 3 * sizeof(B) + 16 bytes.
template <class B>
inline __m128i halves4(const B* b) {
  static_assert(sizeof(B) >= 16, "reads 16 bytes from the start of the last block");
  auto at = [b](int k) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + k)); };
  return _mm_unpacklo_epi32(_mm_unpacklo_epi16(at(0), at(1)), _mm_unpacklo_epi16(at(2), at(3)));
}

// Products of the scales of 4 consecutive x and y blocks, as 4 floats.
template <class BX, class BY>
inline __m128 scale4(const BX* x, const BY* y) {
  const __m256 f = _mm256_cvtph_ps(_mm_unpacklo_epi64(halves4(x), halves4(y)));
  return _mm_mul_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
}

// The super-block scale d and min scale dmin of a Q2_K / Q4_K / Q5_K block (adjacent f16 fields)
// times the activation scale yd, converted together: [d * yd, dmin * yd] in elements 0 and 1.
template <class B>
inline __m128 d_dmin(const B& b, float yd) {
  static_assert(offsetof(B, dmin) == offsetof(B, d) + 2, "d and dmin must be adjacent");
  uint32_t u;
  std::memcpy(&u, reinterpret_cast<const uint8_t*>(&b) + offsetof(B, d), 4);
  return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int32_t>(u))), _mm_set1_ps(yd));
}
inline __m256 bcast_elem1(__m128 v) { return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v), _mm256_set1_epi32(1)); }

inline __m256 absf(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// 16 bytes of packed nibbles -> 32 bytes: the 16 low nibbles, then the 16 high ones. This is the
// value order of Q4_0 / IQ4_NL blocks and of each IQ4_XS sub-block.
inline __m256i nibbles_lo_hi(const uint8_t* p) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

// Signed int8 x (any value) times signed int8 y (in [-127, 127]): 8 int32 sums of 4 products.
inline __m256i dot_i8(__m256i x, __m256i y) {
  const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// Same, but the 16 int16 pair sums, for callers that weight them with a scale via madd.
inline __m256i dot_i8_pairs(__m256i x, __m256i y) {
  return _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

// Shuffle controls that broadcast int16 element e of each 128-bit lane to the whole lane
// (the two bytes 2e, 2e+1 repeated).
constexpr int16_t bcast16_ctrl(int e) { return static_cast<int16_t>(0x0100 + 0x0202 * e); }

// Control for a 256-bit shuffle: element e0 of lane 0 fills lane 0, element e1 of lane 1 fills
// lane 1 (used with both lanes holding the same 8 scales: e0 = 2j, e1 = 2j + 1).
inline __m256i bcast16_pair_ctrl(int e0, int e1) {
  return _mm256_set_m128i(_mm_set1_epi16(bcast16_ctrl(e1)), _mm_set1_epi16(bcast16_ctrl(e0)));
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
// ---------------------------------------------------------------- AVX-512 helpers

inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }

// Two 32-byte rows side by side.
inline __m512i load2x256(const void* a, const void* b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(a))),
                            _mm256_loadu_si256(static_cast<const __m256i*>(b)), 1);
}

// Two 16-byte nibble rows -> 64 bytes: low nibbles of a, high nibbles of a, then the same of b.
inline __m512i nibbles_lo_hi_2x(const uint8_t* a, const uint8_t* b) {
  const __m256i ba = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a)));
  const __m256i bb = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
  __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(ba), bb, 1);
  z = _mm512_mask_srli_epi16(z, 0xFF00FF00u, z, 4);  // 128-bit lanes 1 and 3
  return _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
}

// One 32-byte nibble row -> 64 bytes: its 32 low nibbles, then its 32 high nibbles.
inline __m512i nibbles_lo_hi_32(const uint8_t* p) {
  __m512i z = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  z = _mm512_mask_srli_epi16(z, 0xFFFF0000u, z, 4);
  return _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
}

// |kIQ4NLValues[q]| for q = 0..15, in every 128-bit lane.
inline __m512i abs_table_iq4() {
  return _mm512_broadcast_i32x4(
      _mm_setr_epi8(127, 104, 83, 65, 49, 35, 22, 10, 1, 13, 25, 38, 53, 69, 89, 113));
}

// Shuffle control: int16 element e0 fills 128-bit lanes 0 and 1, element e1 lanes 2 and 3.
inline __m512i bcast16_pair_ctrl512(int e0, int e1) {
  const __m256i c0 = _mm256_set1_epi16(bcast16_ctrl(e0));
  const __m256i c1 = _mm256_set1_epi16(bcast16_ctrl(e1));
  return _mm512_inserti64x4(_mm512_castsi256_si512(c0), c1, 1);
}

// Scales of 16-value sub-blocks, four per register: lane l of the register for group e must hold
// scale 4e + l. One vpermw per super-block puts scale 4e + l at int16 element e of lane l, and
// each group's scales are then an in-lane shuffle (cheaper than a vpermw per group).
inline __m512i lane_scale_table(__m512i sc16) {
  const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 15, 11, 7, 3, 0, 0, 0, 0, 14, 10, 6, 2,  //
                                       0, 0, 0, 0, 13, 9, 5, 1, 0, 0, 0, 0, 12, 8, 4, 0);
  return _mm512_permutexvar_epi16(idx, sc16);
}
inline __m512i lane_scales(__m512i table, int e) {
  return _mm512_shuffle_epi8(table, _mm512_set1_epi16(bcast16_ctrl(e)));
}
#endif

// ---------------------------------------------------------------- k-quant scale unpacking (scalar)

// Q4_K / Q5_K: the 12 packed bytes -> 8 scales (sc[0..7]) and 8 mins (m[0..7]), 6 bits each
// (spec 6.2; the same as get_scale_min_k4 for every j, four bytes at a time).
inline void unpack_scales_k4(const uint8_t* s, uint8_t sc[8], uint8_t m[8]) {
  uint32_t u[3];
  std::memcpy(u, s, 12);
  const uint32_t sc_lo = u[0] & 0x3f3f3f3f;
  const uint32_t m_lo = u[1] & 0x3f3f3f3f;
  // j >= 4: low four bits from bytes 8..11, top two bits from bits 6..7 of bytes 0..3 / 4..7.
  const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | ((u[0] >> 2) & 0x30303030);
  const uint32_t m_hi = ((u[2] >> 4) & 0x0f0f0f0f) | ((u[1] >> 2) & 0x30303030);
  std::memcpy(sc, &sc_lo, 4);
  std::memcpy(sc + 4, &sc_hi, 4);
  std::memcpy(m, &m_lo, 4);
  std::memcpy(m + 4, &m_hi, 4);
}

// Q3_K: the 12 packed bytes -> 16 signed scales in [-32, 31] as int8 (spec 6.2). Built in
// registers: a byte array reloaded as a vector would stall on store forwarding.
inline __m128i scales_q3k(const uint8_t* s) {
  uint32_t a2;
  std::memcpy(&a2, s + 8, 4);
  const __m128i a01 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(s));   // dwords a0 a1
  // Low four bits: a0, a1, a0 >> 4, a1 >> 4; high two: bits 0-1, 2-3, 4-5, 6-7 of a2's bytes.
  const __m128i lo = _mm_and_si128(_mm_unpacklo_epi64(a01, _mm_srli_epi32(a01, 4)), _mm_set1_epi8(0x0F));
  const __m128i a2v = _mm_set1_epi32(static_cast<int32_t>(a2));
  const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_sllv_epi32(a2v, _mm_setr_epi32(4, 2, 0, 0)), _mm_setr_epi32(0, 0, 0, 2)),
                                   _mm_set1_epi8(0x30));
  return _mm_sub_epi8(_mm_or_si128(lo, hi), _mm_set1_epi8(32));
}

// IQ4_XS: the 8 sub-block scales in [-32, 31] as int16.
inline __m128i scales_iq4xs(const BlockIQ4_XS& b) {
  uint32_t l;
  std::memcpy(&l, b.scales_l, 4);
  const __m128i lv = _mm_cvtsi32_si128(static_cast<int32_t>(l));
  // Sub-block ib takes nibble ib % 2 of byte ib / 2: interleave the low and high nibbles.
  const __m128i lo = _mm_and_si128(_mm_unpacklo_epi8(lv, _mm_srli_epi32(lv, 4)), _mm_set1_epi8(0x0F));
  const __m256i h = _mm256_srlv_epi32(_mm256_set1_epi32(b.scales_h), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
  const __m256i hb = _mm256_slli_epi32(_mm256_and_si256(h, _mm256_set1_epi32(3)), 4);
  const __m128i hi = _mm_packs_epi32(_mm256_castsi256_si128(hb), _mm256_extracti128_si256(hb, 1));
  return _mm_sub_epi16(_mm_or_si128(_mm_cvtepu8_epi16(lo), hi), _mm_set1_epi16(32));
}

}  // namespace
}  // namespace x86

// Fill functions of the files a set is split into (the CPU checks are done by fill_kernels_avx2 /
// fill_kernels_avx512 before calling them).
void fill_avx2_kquants(KernelSet& ks);
void fill_avx512_vnni(KernelSet& ks);

}  // namespace q35
