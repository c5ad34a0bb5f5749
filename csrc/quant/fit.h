// Least-squares fitting shared by the weight quantizers (quantize_q4.cpp, quantize_kquants.cpp).
//
// Every quantizer here minimises the plain squared error of the dequantized values (the RMSE),
// in three stages per super-block:
//  1. each sub-block gets its best real-valued scale (and min, for the affine types): a sweep of
//     candidate scales, each with nearest-level assignment and a closed-form least-squares
//     solve, then a few Lloyd steps (re-assign with the solved scale, solve again);
//  2. the sub-block scales are quantized to the format's few-bit integers against the f16
//     super-block scale, trying the neighbours of the rounded integer and keeping the one whose
//     re-quantized values have the least error;
//  3. (affine types) the super-block scale and min are refitted by least squares given the
//     integer scales and quants, and kept if the re-quantized block is better.
// Fitting runs on the super-block divided by its largest magnitude, so huge and tiny weights
// neither overflow the sums nor lose them to underflow.
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "quant/quant.h"
#include "quant/blocks.h"
#include "quant/grids.h"
#include "quant/util.h"

namespace q35 {

// Round v to an integer in [lo, hi]; clamps first so nearest_int's range holds (NaN -> lo).
// Written as selects so the compiler emits max/min instructions, not branches.
inline int clamp_round(float v, int lo, int hi) {
  const float flo = static_cast<float>(lo), fhi = static_cast<float>(hi);
  v = v > flo ? v : flo;
  v = v < fhi ? v : fhi;
  return nearest_int(v);
}

// f32 -> f16 bits with the magnitude capped at the largest finite half, so a scale never
// becomes inf (weights beyond 65504 * max-level saturate instead).
inline uint16_t fp16_saturate(float f) {
  const float cap = 65504.0f;
  if (f > cap) f = cap;
  if (f < -cap) f = -cap;
  return fp32_to_fp16(f);
}

// Quant grids: index(v) is the level nearest to v, value(i) that level.
template <int Lo, int Hi>
struct UniformGrid {
  static constexpr float lo = Lo, hi = Hi;
  static int index(float v) { return clamp_round(v, Lo, Hi); }
  static float value(int i) { return static_cast<float>(i); }
};

// Nearest IQ4_NL level of v for the 512 half-unit cells of [-128, 128): every midpoint between
// neighbouring levels is a multiple of 0.5, so one lookup per cell is exact (ties go up).
struct IQ4Table {
  uint8_t idx[512];
};
constexpr IQ4Table make_iq4_table() {
  IQ4Table t{};
  for (int c = 0; c < 512; c++) {
    const double v = (c - 256) * 0.5 + 0.25;  // cell centre
    int best = 0;
    for (int k = 1; k < 16; k++) {
      const double e = v - kIQ4NLValues[k], eb = v - kIQ4NLValues[best];
      if (e * e < eb * eb) best = k;
    }
    t.idx[c] = static_cast<uint8_t>(best);
  }
  return t;
}
inline constexpr IQ4Table kIQ4Table = make_iq4_table();

struct IQ4Grid {
  static constexpr float lo = -127.0f, hi = 113.0f;
  static int index(float v) {
    v = v > -128.0f ? v : -128.0f;  // also maps NaN to the bottom cell
    v = v < 127.75f ? v : 127.75f;
    return kIQ4Table.idx[static_cast<int>(2.0f * v + 256.0f)];
  }
  static float value(int i) { return static_cast<float>(kIQ4NLValues[i]); }
};

// Best signed scale s for x[0..n) on grid G: x ~ s * G::value(q). Candidates map the element
// of largest magnitude onto either end of the grid, nudged by `step` levels over +-nsteps.
template <class G>
float fit_scale(const float* x, int n, int nsteps, float step) {
  float amax = 0.0f, mx = 0.0f;
  for (int i = 0; i < n; i++) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      mx = x[i];
    }
  }
  if (amax == 0.0f) return 0.0f;
  // Float sums: n <= 32 values of magnitude <= 1 times levels <= 127 lose nothing that matters
  // for ranking candidates.
  float best_num = 0.0f, best_den = 1.0f;
  auto trial = [&](float iscale) {
    float sqx = 0.0f, sq2 = 0.0f;
    for (int i = 0; i < n; i++) {
      const float q = G::value(G::index(iscale * x[i]));
      sqx += q * x[i];
      sq2 += q * q;
    }
    // Error = sum x^2 - sqx^2 / sq2: maximise the second term.
    if (sq2 > 0.0f && sqx * sqx * best_den > best_num * best_num * sq2) {
      best_num = sqx;
      best_den = sq2;
      return true;
    }
    return false;
  };
  for (const float anchor : {G::lo, G::hi}) {
    const float dir = anchor < 0 ? -1.0f : 1.0f;
    for (int is = -nsteps; is <= nsteps; is++) trial((anchor + dir * step * static_cast<float>(is)) / mx);
  }
  for (int it = 0; it < 3; it++) {
    const float s = best_num / best_den;
    if (s == 0.0f || !trial(1.0f / s)) break;
  }
  return best_num / best_den;
}

// Squared error of x[0..n) quantized on G with scale dl (assignment written to q).
template <class G>
double grid_error(const float* x, int n, float dl, uint8_t* q, int offset) {
  float err = 0.0f;
  if (dl == 0.0f) {
    for (int i = 0; i < n; i++) {
      q[i] = static_cast<uint8_t>(G::index(0.0f) + offset);
      err += x[i] * x[i];
    }
    return err;
  }
  const float idl = 1.0f / dl;
  for (int i = 0; i < n; i++) {
    const int k = G::index(x[i] * idl);
    const float e = x[i] - dl * G::value(k);
    err += e * e;
    q[i] = static_cast<uint8_t>(k + offset);
  }
  return err;
}

// Stage 2 for symmetric types (stage 3 gained under 0.1% RMSE here for a third more time, so
// these types skip it): xn[nsub*sub] (normalised), real-valued sub-block scales
// s[], integer scales in [lmin, lmax], super scale d = amax_real * dn stored as f16.
// Outputs the integer scales ls[], the quants q[] (grid index + offset) and the f16 scale.
// Returns the squared error in normalised units.
template <class G>
double quantize_scales_sym(const float* xn, int nsub, int sub, const float* s, int lmin, int lmax, float amax,
                           int offset, int* ls, uint8_t* q, uint16_t* d16) {
  float smax = 0.0f, sabs = 0.0f;
  for (int j = 0; j < nsub; j++) {
    if (std::fabs(s[j]) > sabs) {
      sabs = std::fabs(s[j]);
      smax = s[j];
    }
  }
  uint8_t tmp[QK_K];
  // For one f16 super scale: the best integer scale of each sub-block among the neighbours of
  // the rounded one.
  auto assign = [&](uint16_t dh, int* lout, uint8_t* qout) {
    const float dn = fp16_to_fp32(dh) / amax;
    double total = 0.0;
    for (int j = 0; j < nsub; j++) {
      const float* xj = xn + j * sub;
      const int l0 = dn != 0.0f ? clamp_round(s[j] / dn, lmin, lmax) : 0;
      double best = -1.0;
      for (int l = l0 - 1; l <= l0 + 1; l++) {
        if (l < lmin || l > lmax || (dn == 0.0f && l != 0)) continue;
        const double e = grid_error<G>(xj, sub, dn * static_cast<float>(l), tmp, offset);
        if (best < 0.0 || e < best) {
          best = e;
          lout[j] = l;
          for (int i = 0; i < sub; i++) qout[j * sub + i] = tmp[i];
        }
      }
      total += best;
    }
    return total;
  };
  // The sub-block scale of largest magnitude maps to lmin, the end with more room (as ggml).
  *d16 = fp16_saturate(smax / static_cast<float>(lmin) * amax);
  return assign(*d16, ls, q);
}

// Largest magnitude of x[0..n); blocks below kTinyBlock are stored as zeros (their f16 scales
// would round to zero anyway: the smallest f16 is 6e-8).
constexpr float kTinyBlock = 1e-30f;
inline float abs_max(const float* x, int n) {
  float m = 0.0f;
  for (int i = 0; i < n; i++) {
    const float a = std::fabs(x[i]);
    m = a > m ? a : m;  // a select, not a call to fmaxf; NaN is skipped
  }
  return m;
}

}  // namespace q35
