// Weight quantizers of the 32-value 4-bit types.
//
// Q4_0 reproduces gguf.quants (= ggml's quantize_row_q4_0_ref) byte for byte: the scale maps the
// signed element of largest magnitude to -8, and quants are truncations of x/d + 8.5.
//
// IQ4_NL has no byte reference. Its quantizer picks the block scale that minimises the squared
// error: for each candidate scale it assigns every value to its nearest grid point, solves the
// least-squares scale for that assignment, and keeps the best; the final assignment is redone
// with the chosen scale as rounded to f16, since that is the scale the reader will use.
#include <cmath>
#include <cstring>

#include "quant.h"
#include "quant_blocks.h"
#include "quant_ref.h"
#include "quant_util.h"

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

}  // namespace q35
