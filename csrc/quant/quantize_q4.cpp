// Weight quantizers of the 32-value 4-bit types.
//
// Q4_0 reproduces gguf.quants (= ggml's quantize_row_q4_0_ref) byte for byte: the scale maps the
// signed element of largest magnitude to -8, and quants are truncations of x/d + 8.5.
//
// IQ4_NL and IQ4_XS have no byte reference; they minimise the squared error (fit.h):
// candidate scales with nearest-level assignment and a least-squares solve, Lloyd steps, and
// the final assignment redone with the scale as rounded to f16, the one the reader will use.
#include <cmath>
#include <cstring>

#include "quant/quant.h"
#include "quant/blocks.h"
#include "quant/fit.h"
#include "quant/ref.h"
#include "quant/util.h"

namespace q35 {

void q4_0_from_float(const float* src, void* dst, int64_t n) {
  BlockQ4_0* b = static_cast<BlockQ4_0*>(dst);
  for (int64_t i = 0; i < n / QK8_0; i++) {
    const float* x = src + i * QK8_0;
    float amax = 0.0f, mx = 0.0f;
    for (int j = 0; j < QK8_0; j++) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        mx = x[j];
      }
    }
    const float d = mx / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    uint8_t q[QK8_0];
    for (int j = 0; j < QK8_0; j++) {
      float t = x[j] * id + 8.5f;
      // Clamp before the integer conversion: NaN or inf (a subnormal d) must not reach the cast.
      if (!(t >= 0.0f)) t = 0.0f;
      if (t > 15.0f) t = 15.0f;
      q[j] = static_cast<uint8_t>(t);  // truncation, as gguf's np.trunc
    }
    for (int j = 0; j < QK8_0 / 2; j++) b[i].qs[j] = static_cast<uint8_t>(q[j] | (q[j + QK8_0 / 2] << 4));
  }
}

// Candidate scales of the IQ4 fits: the largest element on either end of the grid, nudged by
// up to +-40 levels in steps of 2. Measured on the benchmark data: +-7 whole levels (ggml's range)
// leaves 0.5% RMSE on the table, finer steps gain nothing; the table lookup of IQ4Grid keeps
// this sweep faster than ggml's 15 candidates.
constexpr int kIQ4Steps = 20;
constexpr float kIQ4Step = 2.0f;

void iq4_nl_from_float(const float* src, void* dst, int64_t n) {
  BlockIQ4_NL* b = static_cast<BlockIQ4_NL*>(dst);
  for (int64_t i = 0; i < n / QK8_0; i++) {
    const float* x = src + i * QK8_0;
    const float amax = abs_max(x, QK8_0);
    float xn[QK8_0];
    uint8_t q[QK8_0];
    if (amax >= kTinyBlock && std::isfinite(amax)) {
      for (int j = 0; j < QK8_0; j++) xn[j] = x[j] / amax;
      b[i].d = fp16_saturate(fit_scale<IQ4Grid>(xn, QK8_0, kIQ4Steps, kIQ4Step) * amax);
      grid_error<IQ4Grid>(xn, QK8_0, fp16_to_fp32(b[i].d) / amax, q, 0);
    } else {
      b[i].d = 0;
      std::memset(q, IQ4Grid::index(0.0f), QK8_0);
    }
    for (int j = 0; j < QK8_0 / 2; j++) b[i].qs[j] = static_cast<uint8_t>(q[j] | (q[j + QK8_0 / 2] << 4));
  }
}

void iq4_xs_from_float(const float* src, void* dst, int64_t n) {
  BlockIQ4_XS* b = static_cast<BlockIQ4_XS*>(dst);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float* x = src + i * QK_K;
    const float amax = abs_max(x, QK_K);
    int ls[8] = {};
    uint8_t q[QK_K];
    b[i].d = 0;
    if (amax >= kTinyBlock && std::isfinite(amax)) {
      float xn[QK_K], s[8];
      for (int j = 0; j < QK_K; j++) xn[j] = x[j] / amax;
      for (int j = 0; j < 8; j++) s[j] = fit_scale<IQ4Grid>(xn + 32 * j, 32, kIQ4Steps, kIQ4Step);
      quantize_scales_sym<IQ4Grid>(xn, 8, 32, s, -32, 31, amax, 0, ls, q, &b[i].d);
    } else {
      std::memset(q, IQ4Grid::index(0.0f), QK_K);
    }
    b[i].scales_h = 0;
    for (int j = 0; j < 4; j++) b[i].scales_l[j] = 0;
    for (int j = 0; j < 8; j++) {
      const int l = ls[j] + 32;
      b[i].scales_l[j / 2] |= static_cast<uint8_t>((l & 15) << (4 * (j % 2)));
      b[i].scales_h |= static_cast<uint16_t>((l >> 4) << (2 * j));
    }
    for (int ib = 0; ib < 8; ib++)
      for (int j = 0; j < 16; j++)
        b[i].qs[16 * ib + j] = static_cast<uint8_t>(q[32 * ib + j] | (q[32 * ib + 16 + j] << 4));
  }
}

}  // namespace q35
