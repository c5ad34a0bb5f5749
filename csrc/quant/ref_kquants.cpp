// Scalar reference kernels of the 256-value super-block types: the k-quants Q2_K..Q6_K, IQ4_XS,
// and their activation format Q8_K (see ref.h, layouts in blocks.h, spec 6.2/6.3).
//
// Dequantization does, per value, exactly the float operations of gguf.quants (a sub-block factor
// d*sc, one product with the quant, one subtraction of dmin*m), so results are bit-identical.
// Dot products sum integers inside a super-block (quant * Q8_K quant, weighted by the integer
// sub-block scales) and convert to float once per block; the min terms of Q2_K/Q4_K/Q5_K come
// from the Q8_K bsums. Worst-case integer sums stay far below 2^31 (largest: Q6_K,
// 16 * 32 * 127 * 128 * 16 < 2^28).
#include <cmath>
#include <cstring>

#include "quant/quant.h"
#include "quant/blocks.h"
#include "quant/grids.h"
#include "quant/ref.h"
#include "quant/util.h"

namespace q35 {

namespace {

// The 16 signed 6-bit sub-block scales of a Q3_K block.
void q3_k_scales(const uint8_t* s, int* out) {
  for (int i = 0; i < 16; i++) {
    const int low = i < 8 ? (s[i] & 15) : (s[i - 8] >> 4);
    const int high = (s[8 + (i % 4)] >> (2 * (i / 4))) & 3;
    out[i] = (low | (high << 4)) - 32;
  }
}

// The 8 signed 6-bit sub-block scales of an IQ4_XS block.
int iq4_xs_scale(const BlockIQ4_XS& b, int ib) {
  const int low = (b.scales_l[ib / 2] >> (4 * (ib % 2))) & 15;
  const int high = (b.scales_h >> (2 * ib)) & 3;
  return (low | (high << 4)) - 32;
}

}  // namespace

// ---------------------------------------------------------------- Q2_K

void q2_k_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ2_K* b = static_cast<const BlockQ2_K*>(src);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float d = fp16_to_fp32(b[i].d);
    const float dmin = fp16_to_fp32(b[i].dmin);
    float* y = dst + i * QK_K;
    for (int h = 0; h < 2; h++) {
      for (int j = 0; j < 4; j++) {
        for (int u = 0; u < 2; u++) {
          const uint8_t sb = b[i].scales[8 * h + 2 * j + u];
          const float dl = d * static_cast<float>(sb & 15);
          const float ml = dmin * static_cast<float>(sb >> 4);
          for (int l = 0; l < 16; l++) {
            const int q = (b[i].qs[32 * h + 16 * u + l] >> (2 * j)) & 3;
            y[128 * h + 32 * j + 16 * u + l] = dl * static_cast<float>(q) - ml;
          }
        }
      }
    }
  }
}

float q2_k_vec_dot(int64_t n, const void* x, const void* y) {
  const BlockQ2_K* a = static_cast<const BlockQ2_K*>(x);
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(y);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; i++) {
    int32_t isum = 0;
    int32_t summs = 0;
    for (int h = 0; h < 2; h++) {
      for (int j = 0; j < 4; j++) {
        for (int u = 0; u < 2; u++) {
          const int sb = 8 * h + 2 * j + u;
          const int8_t* q8 = b[i].qs + 16 * sb;
          int32_t s = 0;
          for (int l = 0; l < 16; l++) s += ((a[i].qs[32 * h + 16 * u + l] >> (2 * j)) & 3) * q8[l];
          isum += (a[i].scales[sb] & 15) * s;
          summs += (a[i].scales[sb] >> 4) * b[i].bsums[sb];
        }
      }
    }
    const float dall = b[i].d * fp16_to_fp32(a[i].d);
    const float dmin = b[i].d * fp16_to_fp32(a[i].dmin);
    sum += dall * static_cast<float>(isum) - dmin * static_cast<float>(summs);
  }
  return sum;
}

// ---------------------------------------------------------------- Q3_K

void q3_k_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ3_K* b = static_cast<const BlockQ3_K*>(src);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float d = fp16_to_fp32(b[i].d);
    int sc[16];
    q3_k_scales(b[i].scales, sc);
    float* y = dst + i * QK_K;
    for (int h = 0; h < 2; h++) {
      for (int j = 0; j < 4; j++) {
        for (int u = 0; u < 2; u++) {
          const float dl = d * static_cast<float>(sc[8 * h + 2 * j + u]);
          for (int l = 0; l < 16; l++) {
            const int lo = (b[i].qs[32 * h + 16 * u + l] >> (2 * j)) & 3;
            const int hi = (b[i].hmask[16 * u + l] >> (4 * h + j)) & 1;
            y[128 * h + 32 * j + 16 * u + l] = dl * static_cast<float>(lo - (hi ? 0 : 4));
          }
        }
      }
    }
  }
}

float q3_k_vec_dot(int64_t n, const void* x, const void* y) {
  const BlockQ3_K* a = static_cast<const BlockQ3_K*>(x);
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(y);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; i++) {
    int sc[16];
    q3_k_scales(a[i].scales, sc);
    int32_t isum = 0;
    for (int h = 0; h < 2; h++) {
      for (int j = 0; j < 4; j++) {
        for (int u = 0; u < 2; u++) {
          const int sb = 8 * h + 2 * j + u;
          const int8_t* q8 = b[i].qs + 16 * sb;
          int32_t s = 0;
          for (int l = 0; l < 16; l++) {
            const int lo = (a[i].qs[32 * h + 16 * u + l] >> (2 * j)) & 3;
            const int hi = (a[i].hmask[16 * u + l] >> (4 * h + j)) & 1;
            s += (lo - (hi ? 0 : 4)) * q8[l];
          }
          isum += sc[sb] * s;
        }
      }
    }
    sum += fp16_to_fp32(a[i].d) * b[i].d * static_cast<float>(isum);
  }
  return sum;
}

// ---------------------------------------------------------------- Q4_K / Q5_K

void q4_k_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ4_K* b = static_cast<const BlockQ4_K*>(src);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float d = fp16_to_fp32(b[i].d);
    const float dmin = fp16_to_fp32(b[i].dmin);
    float* y = dst + i * QK_K;
    for (int s = 0; s < 8; s++) {
      uint8_t sc, m;
      get_scale_min_k4(s, b[i].scales, &sc, &m);
      const float dl = d * static_cast<float>(sc);
      const float ml = dmin * static_cast<float>(m);
      const uint8_t* q = b[i].qs + 32 * (s / 2);
      const int shift = 4 * (s % 2);
      for (int l = 0; l < 32; l++) y[32 * s + l] = dl * static_cast<float>((q[l] >> shift) & 15) - ml;
    }
  }
}

float q4_k_vec_dot(int64_t n, const void* x, const void* y) {
  const BlockQ4_K* a = static_cast<const BlockQ4_K*>(x);
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(y);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; i++) {
    int32_t isum = 0;
    int32_t summs = 0;
    for (int s = 0; s < 8; s++) {
      uint8_t sc, m;
      get_scale_min_k4(s, a[i].scales, &sc, &m);
      const uint8_t* q = a[i].qs + 32 * (s / 2);
      const int shift = 4 * (s % 2);
      const int8_t* q8 = b[i].qs + 32 * s;
      int32_t acc = 0;
      for (int l = 0; l < 32; l++) acc += ((q[l] >> shift) & 15) * q8[l];
      isum += sc * acc;
      summs += m * (b[i].bsums[2 * s] + b[i].bsums[2 * s + 1]);
    }
    const float dall = b[i].d * fp16_to_fp32(a[i].d);
    const float dmin = b[i].d * fp16_to_fp32(a[i].dmin);
    sum += dall * static_cast<float>(isum) - dmin * static_cast<float>(summs);
  }
  return sum;
}

void q5_k_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ5_K* b = static_cast<const BlockQ5_K*>(src);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float d = fp16_to_fp32(b[i].d);
    const float dmin = fp16_to_fp32(b[i].dmin);
    float* y = dst + i * QK_K;
    for (int s = 0; s < 8; s++) {
      uint8_t sc, m;
      get_scale_min_k4(s, b[i].scales, &sc, &m);
      const float dl = d * static_cast<float>(sc);
      const float ml = dmin * static_cast<float>(m);
      const uint8_t* q = b[i].qs + 32 * (s / 2);
      const int shift = 4 * (s % 2);
      for (int l = 0; l < 32; l++) {
        const int v = ((q[l] >> shift) & 15) | (((b[i].qh[l] >> s) & 1) << 4);
        y[32 * s + l] = dl * static_cast<float>(v) - ml;
      }
    }
  }
}

float q5_k_vec_dot(int64_t n, const void* x, const void* y) {
  const BlockQ5_K* a = static_cast<const BlockQ5_K*>(x);
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(y);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; i++) {
    int32_t isum = 0;
    int32_t summs = 0;
    for (int s = 0; s < 8; s++) {
      uint8_t sc, m;
      get_scale_min_k4(s, a[i].scales, &sc, &m);
      const uint8_t* q = a[i].qs + 32 * (s / 2);
      const int shift = 4 * (s % 2);
      const int8_t* q8 = b[i].qs + 32 * s;
      int32_t acc = 0;
      for (int l = 0; l < 32; l++) {
        const int v = ((q[l] >> shift) & 15) | (((a[i].qh[l] >> s) & 1) << 4);
        acc += v * q8[l];
      }
      isum += sc * acc;
      summs += m * (b[i].bsums[2 * s] + b[i].bsums[2 * s + 1]);
    }
    const float dall = b[i].d * fp16_to_fp32(a[i].d);
    const float dmin = b[i].d * fp16_to_fp32(a[i].dmin);
    sum += dall * static_cast<float>(isum) - dmin * static_cast<float>(summs);
  }
  return sum;
}

// ---------------------------------------------------------------- Q6_K

namespace {
// Value v (0..255) of a Q6_K block as a signed 6-bit quant (-32..31), spec 6.2.
inline int q6_k_quant(const BlockQ6_K& b, int v) {
  const int h = v / 128, r = v % 128;
  const int quarter = r / 32, l = r % 32;
  const uint8_t lbyte = b.ql[64 * h + l + 32 * (quarter % 2)];
  const int low = quarter < 2 ? (lbyte & 15) : (lbyte >> 4);
  const int high = (b.qh[32 * h + l] >> (2 * quarter)) & 3;
  return (low | (high << 4)) - 32;
}
}  // namespace

void q6_k_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ6_K* b = static_cast<const BlockQ6_K*>(src);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float d = fp16_to_fp32(b[i].d);
    float* y = dst + i * QK_K;
    for (int s = 0; s < 16; s++) {
      const float dl = d * static_cast<float>(b[i].scales[s]);
      for (int l = 0; l < 16; l++) y[16 * s + l] = dl * static_cast<float>(q6_k_quant(b[i], 16 * s + l));
    }
  }
}

float q6_k_vec_dot(int64_t n, const void* x, const void* y) {
  const BlockQ6_K* a = static_cast<const BlockQ6_K*>(x);
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(y);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; i++) {
    int32_t isum = 0;
    for (int s = 0; s < 16; s++) {
      int32_t acc = 0;
      for (int l = 0; l < 16; l++) acc += q6_k_quant(a[i], 16 * s + l) * b[i].qs[16 * s + l];
      isum += a[i].scales[s] * acc;
    }
    sum += fp16_to_fp32(a[i].d) * b[i].d * static_cast<float>(isum);
  }
  return sum;
}

// ---------------------------------------------------------------- IQ4_XS

void iq4_xs_to_float(const void* src, float* dst, int64_t n) {
  const BlockIQ4_XS* b = static_cast<const BlockIQ4_XS*>(src);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float d = fp16_to_fp32(b[i].d);
    float* y = dst + i * QK_K;
    for (int ib = 0; ib < 8; ib++) {
      const float dl = d * static_cast<float>(iq4_xs_scale(b[i], ib));
      const uint8_t* q = b[i].qs + 16 * ib;
      for (int j = 0; j < 16; j++) {
        y[32 * ib + j] = dl * static_cast<float>(kIQ4NLValues[q[j] & 15]);
        y[32 * ib + 16 + j] = dl * static_cast<float>(kIQ4NLValues[q[j] >> 4]);
      }
    }
  }
}

float iq4_xs_vec_dot(int64_t n, const void* x, const void* y) {
  const BlockIQ4_XS* a = static_cast<const BlockIQ4_XS*>(x);
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(y);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; i++) {
    int32_t isum = 0;
    for (int ib = 0; ib < 8; ib++) {
      const uint8_t* q = a[i].qs + 16 * ib;
      const int8_t* q8 = b[i].qs + 32 * ib;
      int32_t acc = 0;
      for (int j = 0; j < 16; j++) {
        acc += kIQ4NLValues[q[j] & 15] * q8[j];
        acc += kIQ4NLValues[q[j] >> 4] * q8[j + 16];
      }
      isum += iq4_xs_scale(a[i], ib) * acc;
    }
    sum += fp16_to_fp32(a[i].d) * b[i].d * static_cast<float>(isum);
  }
  return sum;
}

// ---------------------------------------------------------------- Q8_K (activations)

void q8_k_to_float(const void* src, float* dst, int64_t n) {
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(src);
  for (int64_t i = 0; i < n / QK_K; i++)
    for (int j = 0; j < QK_K; j++) dst[i * QK_K + j] = b[i].d * static_cast<float>(b[i].qs[j]);
}

// Spec 6.3: scale by the signed element of largest magnitude so that it maps to -127; the first
// such element wins a tie of magnitudes (strict >), as in ggml.
void q8_k_from_float(const float* src, void* dst, int64_t n) {
  BlockQ8_K* b = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float* x = src + i * QK_K;
    float amax = 0.0f, mx = 0.0f;
    for (int j = 0; j < QK_K; j++) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        mx = x[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&b[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.0f / mx;
    if (!std::isfinite(iscale)) {  // |mx| < 127 / FLT_MAX: ggml would store garbage; all round to 0
      std::memset(&b[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    for (int j = 0; j < QK_K; j++) {
      const int v = nearest_int(iscale * x[j]);
      b[i].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    for (int k = 0; k < QK_K / 16; k++) {
      int s = 0;
      for (int l = 0; l < 16; l++) s += b[i].qs[16 * k + l];
      b[i].bsums[k] = static_cast<int16_t>(s);
    }
    b[i].d = 1.0f / iscale;
  }
}

}  // namespace q35
