// Digests of the scalar quantizers and dequantizers on fixed data, one line per type. They are
// meant to be bit-exact (gguf-identical bytes), so the output must be the same on every
// architecture: tools/neon_check.sh runs it natively on x86-64 and under qemu-aarch64 and
// compares. The data is made from integers and power-of-two scales only, so it is itself
// identical everywhere (no libm, no distribution objects, no fused multiply-add in sight).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/kernels.h"
#include "quant/quant.h"
#include "quant/blocks.h"

using namespace q35;

namespace {

uint64_t fnv1a(const void* p, size_t n, uint64_t h) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

uint64_t g_state = 0x9E3779B97F4A7C15ull;
uint64_t next() {  // splitmix64
  uint64_t z = (g_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Bell-shaped integers (sum of four uniforms) times 2^e, with an outlier and a run of zeros.
std::vector<float> make_row(int64_t n, int e) {
  std::vector<float> x(n);
  float scale = 1.0f;
  for (int i = 0; i < (e < 0 ? -e : e); i++) scale = e < 0 ? scale * 0.5f : scale * 2.0f;
  for (int64_t i = 0; i < n; i++) {
    int32_t s = 0;
    for (int k = 0; k < 4; k++) s += static_cast<int32_t>(next() & 0xFFFF);
    x[i] = static_cast<float>(s - 2 * 65536) * scale;
  }
  x[next() % n] *= 16.0f;
  for (int64_t i = 0; i < n / 16; i++) x[i] = 0.0f;
  return x;
}

}  // namespace

int main() {
  const KernelSet& ref = *kernels(ISA_SCALAR);
  int lines = 0;
  for (uint32_t type = 0; type < T_COUNT; type++) {
    const TypeTraits* t = type_traits(type);
    if (!t || !t->from_float || !t->to_float) continue;
    const int64_t n = 8 * (t->blck_size > QK_K ? t->blck_size : QK_K);
    uint64_t hq = 0xcbf29ce484222325ull, hd = hq, ha = hq;
    for (int e : {-40, -16, -4, 0, 6}) {
      const std::vector<float> x = make_row(n, e);
      std::vector<uint8_t> q(row_size(*t, n));
      std::vector<float> y(n);
      t->from_float(x.data(), q.data(), n);
      t->to_float(q.data(), y.data(), n);
      hq = fnv1a(q.data(), q.size(), hq);
      // A scale that overflowed f16 to inf gives inf * 0 = NaN, whose sign bit differs between
      // x86 (negative default NaN) and Arm (positive): hash every NaN as one pattern.
      for (float& v : y)
        if (v != v) v = std::numeric_limits<float>::quiet_NaN();
      hd = fnv1a(y.data(), y.size() * sizeof(float), hd);
      if (ref.quantize_act[type]) {
        ref.quantize_act[type](x.data(), q.data(), n);
        ha = fnv1a(q.data(), q.size(), ha);
      }
    }
    std::printf("%-7s quantize %016llx dequantize %016llx", t->name, static_cast<unsigned long long>(hq),
                static_cast<unsigned long long>(hd));
    if (ref.quantize_act[type]) std::printf(" quantize_act %016llx", static_cast<unsigned long long>(ha));
    std::printf("\n");
    lines++;
  }
  std::printf("%d types\n", lines);
  return lines > 0 ? 0 : 1;
}
