// Weight quantizers of the k-quants Q2_K..Q6_K (method: fit.h). There is no byte-exact
// reference for these; the requirement is an RMSE no worse than ggml's reference quantizers
// (benchmarks/bench_quant_error.py measures both). ggml weights its fits (|x|, x^2 or
// mean|x|+|x|) and for Q2_K minimises absolute error; we minimise the plain squared error.
#include <cmath>
#include <cstring>

#include "quant/quant.h"
#include "quant/blocks.h"
#include "quant/fit.h"
#include "quant/ref.h"
#include "quant/util.h"

namespace q35 {

namespace {

// ---------------------------------------------------------------- affine fit (Q2_K, Q4_K, Q5_K)

struct Sums {
  double n = 0, l = 0, l2 = 0, x = 0, lx = 0, x2 = 0;
};

// Least squares x ~ a*L + c with c <= 0 (the formats store -c = dmin*m with m >= 0). Returns
// the squared error, or -1 when the assignment has no spread.
double solve_affine(const Sums& s, float* a, float* c) {
  const double det = s.n * s.l2 - s.l * s.l;
  if (!(det > 0.0)) return -1.0;
  double aa = (s.n * s.lx - s.x * s.l) / det;
  double cc = (s.l2 * s.x - s.l * s.lx) / det;
  if (cc > 0.0) {
    cc = 0.0;
    aa = s.lx / s.l2;
  }
  if (!(aa > 0.0)) return -1.0;
  *a = static_cast<float>(aa);
  *c = static_cast<float>(cc);
  return s.x2 - 2 * aa * s.lx - 2 * cc * s.x + aa * aa * s.l2 + 2 * aa * cc * s.l + s.n * cc * cc;
}

// Stage 1 for affine types: x[0..n) ~ a*L - b with L in [0, nmax], a >= 0, b >= 0.
void fit_affine(const float* x, int n, int nmax, int nsteps, float rlo, float rstep, float* a_out, float* b_out) {
  float lo = x[0], hi = x[0];
  double sx = 0, sx2 = 0;
  for (int i = 0; i < n; i++) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
    sx += x[i];
    sx2 += static_cast<double>(x[i]) * x[i];
  }
  if (lo > 0.0f) lo = 0.0f;
  if (hi == lo) {  // constant block (zero or negative): all quants 0, min = -lo
    *a_out = 0.0f;
    *b_out = -lo;
    return;
  }
  double best = -1.0;
  float ba = 0.0f, bc = lo;
  auto trial = [&](float iscale, float off) {
    Sums s;
    s.n = n;
    s.x = sx;
    s.x2 = sx2;
    for (int i = 0; i < n; i++) {
      const int l = clamp_round(iscale * (x[i] - off), 0, nmax);
      s.l += l;
      s.l2 += l * l;
      s.lx += l * static_cast<double>(x[i]);
    }
    float a, c;
    const double e = solve_affine(s, &a, &c);
    if (e >= 0.0 && (best < 0.0 || e < best)) {
      best = e;
      ba = a;
      bc = c;
      return true;
    }
    return false;
  };
  for (int is = 0; is <= nsteps; is++) trial((static_cast<float>(nmax) + rlo + rstep * static_cast<float>(is)) / (hi - lo), lo);
  for (int it = 0; it < 3 && best >= 0.0; it++)
    if (!trial(1.0f / ba, bc)) break;
  if (best < 0.0) {  // cannot happen for hi > lo; keep the plain min/max mapping
    ba = (hi - lo) / static_cast<float>(nmax);
    bc = lo;
  }
  *a_out = ba;
  *b_out = -bc;
}

// Squared error of one affine sub-block at scale dl and min ml (value = dl*L - ml); writes L.
double affine_error(const float* x, int n, int nmax, float dl, float ml, uint8_t* L) {
  double err = 0.0;
  if (dl == 0.0f) {
    for (int i = 0; i < n; i++) {
      L[i] = 0;
      const double e = static_cast<double>(x[i]) + ml;
      err += e * e;
    }
    return err;
  }
  const float idl = 1.0f / dl;
  for (int i = 0; i < n; i++) {
    const int l = clamp_round((x[i] + ml) * idl, 0, nmax);
    L[i] = static_cast<uint8_t>(l);
    const double e = static_cast<double>(x[i]) - (static_cast<double>(dl) * l - ml);
    err += e * e;
  }
  return err;
}

// One affine super-block: nsub sub-blocks of `sub` values, quants in [0, nmax], integer scales
// and mins in [0, smax]. Writes sc[], m[], L[] and the f16 d / dmin.
struct AffineParams {
  int nsub, sub, nmax, smax, nsteps;
  float rlo, rstep;
};

void quantize_affine(const float* x, const AffineParams& p, int* sc, int* m, uint8_t* L, uint16_t* d16,
                     uint16_t* dmin16) {
  const int nval = p.nsub * p.sub;
  const float amax = abs_max(x, nval);
  if (!(amax >= kTinyBlock) || !std::isfinite(amax)) {
    for (int j = 0; j < p.nsub; j++) sc[j] = m[j] = 0;
    std::memset(L, 0, nval);
    *d16 = *dmin16 = 0;
    return;
  }
  float xn[QK_K];
  for (int i = 0; i < nval; i++) xn[i] = x[i] / amax;
  float a[QK_K / 16], b[QK_K / 16];
  float amx = 0.0f, bmx = 0.0f;
  for (int j = 0; j < p.nsub; j++) {
    fit_affine(xn + j * p.sub, p.sub, p.nmax, p.nsteps, p.rlo, p.rstep, &a[j], &b[j]);
    amx = std::fmax(amx, a[j]);
    bmx = std::fmax(bmx, b[j]);
  }
  const float fs = static_cast<float>(p.smax);
  uint8_t tmp[32];
  // Integer scales/mins for given f16 super scales: the best of the 3x3 neighbours of the
  // rounded pair, each judged by the error of its re-quantized values.
  auto assign = [&](uint16_t dh, uint16_t mh, int* sco, int* mo, uint8_t* Lo) {
    const float dn = fp16_to_fp32(dh) / amax, mn = fp16_to_fp32(mh) / amax;
    double total = 0.0;
    for (int j = 0; j < p.nsub; j++) {
      const float* xj = xn + j * p.sub;
      const int s0 = dn > 0.0f ? clamp_round(a[j] / dn, 0, p.smax) : 0;
      const int m0 = mn > 0.0f ? clamp_round(b[j] / mn, 0, p.smax) : 0;
      double best = -1.0;
      for (int s = s0 - 1; s <= s0 + 1; s++) {
        if (s < 0 || s > p.smax || (dn <= 0.0f && s != 0)) continue;
        for (int mm = m0 - 1; mm <= m0 + 1; mm++) {
          if (mm < 0 || mm > p.smax || (mn <= 0.0f && mm != 0)) continue;
          const double e = affine_error(xj, p.sub, p.nmax, dn * static_cast<float>(s), mn * static_cast<float>(mm), tmp);
          if (best < 0.0 || e < best) {
            best = e;
            sco[j] = s;
            mo[j] = mm;
            std::memcpy(Lo + j * p.sub, tmp, p.sub);
          }
        }
      }
      total += best;
    }
    return total;
  };
  *d16 = fp16_saturate(amx / fs * amax);
  *dmin16 = fp16_saturate(bmx / fs * amax);
  double err = assign(*d16, *dmin16, sc, m, L);
  // Stage 3: least squares for (d, dmin) given the integers: x ~ d*u - dmin*v, u = sc*L, v = m.
  double suu = 0, suv = 0, svv = 0, sux = 0, svx = 0;
  for (int j = 0; j < p.nsub; j++) {
    for (int i = 0; i < p.sub; i++) {
      const double u = static_cast<double>(sc[j]) * L[j * p.sub + i], v = m[j], xv = xn[j * p.sub + i];
      suu += u * u;
      suv += u * v;
      svv += v * v;
      sux += u * xv;
      svx += v * xv;
    }
  }
  const double det = suu * svv - suv * suv;
  if (det > 0.0) {
    const double d = (sux * svv - svx * suv) / det;
    const double dm = (sux * suv - svx * suu) / det;  // x ~ d*u - dm*v
    if (d > 0.0 && dm >= 0.0) {
      const uint16_t d2 = fp16_saturate(static_cast<float>(d) * amax);
      const uint16_t m2 = fp16_saturate(static_cast<float>(dm) * amax);
      int sc2[QK_K / 16], mm2[QK_K / 16];
      uint8_t L2[QK_K];
      const double err2 = assign(d2, m2, sc2, mm2, L2);
      if (err2 < err) {
        *d16 = d2;
        *dmin16 = m2;
        for (int j = 0; j < p.nsub; j++) {
          sc[j] = sc2[j];
          m[j] = mm2[j];
        }
        std::memcpy(L, L2, nval);
      }
    }
  }
}

// The 12-byte 6-bit packing of 8 scales and 8 mins (inverse of get_scale_min_k4).
void pack_scales_k4(const int* sc, const int* m, uint8_t* s) {
  for (int j = 0; j < 4; j++) {
    s[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
}

}  // namespace

// ---------------------------------------------------------------- Q2_K

void q2_k_from_float(const float* src, void* dst, int64_t n) {
  BlockQ2_K* b = static_cast<BlockQ2_K*>(dst);
  // Sub-block fits as ggml's (nmax - 0.5 .. nmax + 1 in 0.1 steps), but squared error instead
  // of ggml's absolute error, the main reason for our 11-18% lower RMSE.
  const AffineParams p{16, 16, 3, 15, 15, -0.5f, 0.1f};
  for (int64_t i = 0; i < n / QK_K; i++) {
    int sc[16], m[16];
    uint8_t L[QK_K];
    quantize_affine(src + i * QK_K, p, sc, m, L, &b[i].d, &b[i].dmin);
    for (int j = 0; j < 16; j++) b[i].scales[j] = static_cast<uint8_t>(sc[j] | (m[j] << 4));
    // Value 128h + 32j + l (l < 32) sits in bits 2j of qs[32h + l].
    for (int h = 0; h < 2; h++)
      for (int l = 0; l < 32; l++)
        b[i].qs[32 * h + l] = static_cast<uint8_t>(L[128 * h + l] | (L[128 * h + 32 + l] << 2) |
                                                   (L[128 * h + 64 + l] << 4) | (L[128 * h + 96 + l] << 6));
  }
}

// ---------------------------------------------------------------- Q4_K / Q5_K

void q4_k_from_float(const float* src, void* dst, int64_t n) {
  BlockQ4_K* b = static_cast<BlockQ4_K*>(dst);
  // Scale sweep over nmax +- 2 levels in 0.4 steps: as good as ggml's 21 steps of 0.1 here.
  const AffineParams p{8, 32, 15, 63, 10, -2.0f, 0.4f};
  for (int64_t i = 0; i < n / QK_K; i++) {
    int sc[8], m[8];
    uint8_t L[QK_K];
    quantize_affine(src + i * QK_K, p, sc, m, L, &b[i].d, &b[i].dmin);
    pack_scales_k4(sc, m, b[i].scales);
    for (int k = 0; k < 4; k++)
      for (int l = 0; l < 32; l++) b[i].qs[32 * k + l] = static_cast<uint8_t>(L[64 * k + l] | (L[64 * k + 32 + l] << 4));
  }
}

void q5_k_from_float(const float* src, void* dst, int64_t n) {
  BlockQ5_K* b = static_cast<BlockQ5_K*>(dst);
  const AffineParams p{8, 32, 31, 63, 15, -0.5f, 0.1f};
  for (int64_t i = 0; i < n / QK_K; i++) {
    int sc[8], m[8];
    uint8_t L[QK_K];
    quantize_affine(src + i * QK_K, p, sc, m, L, &b[i].d, &b[i].dmin);
    pack_scales_k4(sc, m, b[i].scales);
    std::memset(b[i].qh, 0, sizeof b[i].qh);
    for (int k = 0; k < 4; k++) {
      for (int l = 0; l < 32; l++) {
        const int lo = L[64 * k + l], hi = L[64 * k + 32 + l];
        b[i].qs[32 * k + l] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
        b[i].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * k)) | ((hi >> 4) << (2 * k + 1)));
      }
    }
  }
}

// ---------------------------------------------------------------- Q3_K / Q6_K (symmetric)

void q3_k_from_float(const float* src, void* dst, int64_t n) {
  using G = UniformGrid<-4, 3>;
  BlockQ3_K* b = static_cast<BlockQ3_K*>(dst);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float* x = src + i * QK_K;
    std::memset(&b[i], 0, sizeof(BlockQ3_K));
    const float amax = abs_max(x, QK_K);
    int ls[16] = {};
    uint8_t L[QK_K];
    if (amax >= kTinyBlock && std::isfinite(amax)) {
      float xn[QK_K], s[16];
      for (int j = 0; j < QK_K; j++) xn[j] = x[j] / amax;
      // No nudged candidates for Q3_K (just both grid ends and the Lloyd steps): ggml's Q3_K
      // quantizer is so cheap that a sweep would exceed 3x its time, for under 0.5% RMSE.
      for (int j = 0; j < 16; j++) s[j] = fit_scale<G>(xn + 16 * j, 16, 0, 0.1f);
      quantize_scales_sym<G>(xn, 16, 16, s, -32, 31, amax, 4, ls, L, &b[i].d);
    } else {
      std::memset(L, 4, QK_K);  // quant 0
    }
    for (int j = 0; j < 16; j++) {
      const int l = ls[j] + 32;
      if (j < 8) b[i].scales[j] |= static_cast<uint8_t>(l & 15); else b[i].scales[j - 8] |= static_cast<uint8_t>((l & 15) << 4);
      b[i].scales[8 + j % 4] |= static_cast<uint8_t>((l >> 4) << (2 * (j / 4)));
    }
    // Value v = 128h + 32j + r (r < 32): low 2 bits in bits 2j of qs[32h + r], high bit in bit
    // 4h + j of hmask[r] (spec 6.2).
    for (int h = 0; h < 2; h++) {
      for (int r = 0; r < 32; r++) {
        const uint8_t* Lh = L + 128 * h + r;
        b[i].qs[32 * h + r] =
            static_cast<uint8_t>((Lh[0] & 3) | ((Lh[32] & 3) << 2) | ((Lh[64] & 3) << 4) | ((Lh[96] & 3) << 6));
        b[i].hmask[r] |= static_cast<uint8_t>(((Lh[0] >> 2) | ((Lh[32] >> 2) << 1) | ((Lh[64] >> 2) << 2) |
                                               ((Lh[96] >> 2) << 3)) << (4 * h));
      }
    }
  }
}

void q6_k_from_float(const float* src, void* dst, int64_t n) {
  using G = UniformGrid<-32, 31>;
  BlockQ6_K* b = static_cast<BlockQ6_K*>(dst);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float* x = src + i * QK_K;
    std::memset(&b[i], 0, sizeof(BlockQ6_K));
    const float amax = abs_max(x, QK_K);
    int ls[16] = {};
    uint8_t L[QK_K];
    if (amax >= kTinyBlock && std::isfinite(amax)) {
      float xn[QK_K], s[16];
      for (int j = 0; j < QK_K; j++) xn[j] = x[j] / amax;
      // A coarse, wide sweep (largest element at -32 +- 10 levels) then Lloyd steps: measured
      // 2-3% lower RMSE than ggml's fine +-0.9 level sweep, at about its cost.
      for (int j = 0; j < 16; j++) s[j] = fit_scale<G>(xn + 16 * j, 16, 5, 2.0f);
      quantize_scales_sym<G>(xn, 16, 16, s, -128, 127, amax, 32, ls, L, &b[i].d);
    } else {
      std::memset(L, 32, QK_K);
    }
    for (int j = 0; j < 16; j++) b[i].scales[j] = static_cast<int8_t>(ls[j]);
    for (int h = 0; h < 2; h++) {
      const uint8_t* Lh = L + 128 * h;
      for (int l = 0; l < 32; l++) {
        b[i].ql[64 * h + l] = static_cast<uint8_t>((Lh[l] & 15) | ((Lh[l + 64] & 15) << 4));
        b[i].ql[64 * h + l + 32] = static_cast<uint8_t>((Lh[l + 32] & 15) | ((Lh[l + 96] & 15) << 4));
        b[i].qh[32 * h + l] = static_cast<uint8_t>((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                                   ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

}  // namespace q35
