// The DeltaNet recurrent step (kernels/kernels.h: delta_step_fn) over a vector type V, shared by the AVX2,
// AVX-512 and NEON files, which each instantiate it with their own V (and -m flags):
//   V::Reg; V::kW floats per register; V::kBlock registers per column block;
//   zero, set1, load, store, fmadd(a, b, c) = a * b + c, mul, sum (horizontal), prefetch.
// Each file's V has internal linkage, so the instantiations of the files never mix.
//
// The old state's S^T k and S^T q are accumulated in registers, a block of kBlock * kW columns at
// a time, row after row (S is row-major, [dk, dv]): one load of S feeds two FMAs and no
// accumulator goes through memory. With dv = 128 one block is the whole row on AVX-512 and NEON
// (16 accumulators); AVX2's 16 registers take 32 columns a block. The first block prefetches
// whole rows a few ahead, so the head's state (64 KiB in the 397B model, from DRAM) streams in
// while it is read, and the later blocks and the update find it in cache.
#pragma once

#include <cstdint>

namespace q35 {
namespace simd_delta {

constexpr int64_t kRowsAhead = 4;

template <class V, int NV>
inline void kq_columns(const float* S, const float* k, const float* q, int64_t dk, int64_t dv, float* kS, float* qS,
                       bool prefetch) {
  typename V::Reg a[NV], b[NV];
  for (int r = 0; r < NV; r++) a[r] = b[r] = V::zero();
  for (int64_t i = 0; i < dk; i++) {
    const float* row = S + i * dv;
    if (prefetch)
      for (int64_t c = 0; c < dv; c += 16) V::prefetch(row + kRowsAhead * dv + c);
    const typename V::Reg kb = V::set1(k[i]), qb = V::set1(q[i]);
    for (int r = 0; r < NV; r++) {
      const typename V::Reg x = V::load(row + r * V::kW);
      a[r] = V::fmadd(x, kb, a[r]);
      b[r] = V::fmadd(x, qb, b[r]);
    }
  }
  for (int r = 0; r < NV; r++) {
    V::store(kS + r * V::kW, a[r]);
    V::store(qS + r * V::kW, b[r]);
  }
}

template <class V>
void delta_step(float* S, const float* k, const float* q, const float* v, float decay, float beta, int64_t dk,
                int64_t dv, float* o, float* tmp) {
  constexpr int64_t W = V::kW, B = V::kBlock * V::kW;
  float* kS = tmp;
  int64_t c = 0;
  for (; c + B <= dv; c += B) kq_columns<V, V::kBlock>(S + c, k, q, dk, dv, kS + c, o + c, c == 0);
  for (; c + W <= dv; c += W) kq_columns<V, 1>(S + c, k, q, dk, dv, kS + c, o + c, c == 0);
  for (; c < dv; c++) {  // columns past the last full register (dv not a multiple of kW)
    float a = 0.0f, b = 0.0f;
    for (int64_t i = 0; i < dk; i++) {
      a += S[i * dv + c] * k[i];
      b += S[i * dv + c] * q[i];
    }
    kS[c] = a;
    o[c] = b;
  }

  typename V::Reg acc = V::zero();
  int64_t i = 0;
  for (; i + W <= dk; i += W) acc = V::fmadd(V::load(q + i), V::load(k + i), acc);
  float qk = V::sum(acc);
  for (; i < dk; i++) qk += q[i] * k[i];

  const typename V::Reg vd = V::set1(decay), vb = V::set1(beta), vqk = V::set1(qk);
  int64_t j = 0;
  for (; j + W <= dv; j += W) {
    const typename V::Reg delta = V::mul(vb, V::fmadd(V::set1(-decay), V::load(kS + j), V::load(v + j)));
    V::store(kS + j, delta);
    V::store(o + j, V::fmadd(vd, V::load(o + j), V::mul(vqk, delta)));
  }
  for (; j < dv; j++) {
    kS[j] = beta * (v[j] - decay * kS[j]);
    o[j] = decay * o[j] + qk * kS[j];
  }

  for (int64_t r = 0; r < dk; r++) {  // S <- decay S + k delta^T, from cache
    float* row = S + r * dv;
    const typename V::Reg kb = V::set1(k[r]);
    int64_t jj = 0;
    for (; jj + W <= dv; jj += W) V::store(row + jj, V::fmadd(vd, V::load(row + jj), V::mul(kb, V::load(kS + jj))));
    for (; jj < dv; jj++) row[jj] = decay * row[jj] + k[r] * kS[jj];
  }
}

}  // namespace simd_delta
}  // namespace q35
