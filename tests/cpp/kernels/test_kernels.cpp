// Kernel tests: every SIMD kernel set the CPU supports against the scalar reference set, for
// every computable type, on random data, odd sizes and extreme scales.
//
//   q35_kernel_tests [--require ISA]... [--require-coverage] [--seed N]
//
// --require ISA fails the run when that set is not supported here (so a CI job cannot pass by
// testing nothing); --require-coverage fails when the AVX2 or NEON set leaves a computable type
// (or the Q8_0 / Q8_K activation quantizer) to the scalar fallback. The last line is
// "N passed, N failed"; the exit code is non-zero on any failure.
//
// Bound: any summation order of m terms is within gamma_m * sum|terms| of the exact sum
// (gamma_m = m*u / (1 - m*u), u = 2^-24), so two correct kernels differ by at most
// 2 * gamma_m * sum|terms|, with m = n + 8 to cover the per-block scale products. A wrong
// kernel (a swapped nibble, a lost block, a wrong scale) misses by a good fraction of the sum.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "quant/quant.h"

using namespace q35;

namespace {

int g_pass = 0, g_fail = 0;

void report(bool ok, const std::string& what) {
  if (ok) {
    g_pass++;
  } else {
    g_fail++;
    if (g_fail <= 40) std::printf("FAIL %s\n", what.c_str());
  }
}

// Byte offsets of the f16 scale fields of each quantized block: random blocks get finite
// scales there, so the data exercises every quant bit pattern but no NaN or inf.
std::vector<int> f16_fields(uint32_t type) {
  switch (type) {
    case T_Q8_0: case T_Q4_0: case T_IQ4_NL: case T_IQ4_XS: return {0};
    case T_Q4_K: case T_Q5_K: return {0, 2};
    case T_Q2_K: return {80, 82};
    case T_Q3_K: return {108};
    case T_Q6_K: return {208};
    default: return {};
  }
}

// A random finite f16 of magnitude about `scale` (scale may be subnormal or near the max).
uint16_t random_f16(std::mt19937_64& rng, float scale) {
  std::uniform_real_distribution<float> u(0.5f, 1.0f);
  float v = scale * u(rng);
  if (rng() & 1) v = -v;
  uint16_t h = fp32_to_fp16(v);
  if ((h & 0x7c00) == 0x7c00) h = static_cast<uint16_t>((h & 0x8000) | 0x7bff);  // clamp inf to max
  return h;
}

// Weight rows: either random bytes with sane scales, or random floats through the type's own
// quantizer; floats for the float types.
std::vector<uint8_t> make_weights(const TypeTraits& t, uint32_t type, int64_t n, float scale, bool raw,
                                  std::mt19937_64& rng) {
  std::vector<uint8_t> w(row_size(t, n));
  if (t.blck_size == 1 || !raw) {
    // Keep Gaussian values (up to ~6 sigma) inside the f16 range for the float types.
    if (t.blck_size == 1) scale = std::min(scale, 1e4f);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> x(n);
    for (auto& v : x) v = g(rng) * scale;
    if (type == T_F32) std::memcpy(w.data(), x.data(), n * sizeof(float));
    else t.from_float(x.data(), w.data(), n);
    return w;
  }
  for (auto& b : w) b = static_cast<uint8_t>(rng());
  const std::vector<int> fields = f16_fields(type);
  for (size_t off = 0; off < w.size(); off += t.type_size)
    for (int f : fields) {
      const uint16_t h = random_f16(rng, scale);
      std::memcpy(w.data() + off + f, &h, 2);
    }
  return w;
}

std::vector<float> make_acts(int64_t n, float scale, std::mt19937_64& rng) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = g(rng) * scale;
  // A few outliers, as real activations have.
  if (n > 8) x[rng() % n] = scale * 40.0f;
  return x;
}

bool close(float a, float b, double bound) {
  if (std::isnan(a) || std::isnan(b)) return false;
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::fabs(static_cast<double>(a) - b) <= bound;
}

void test_vec_dot(Isa isa, const KernelSet& ks, const KernelSet& ref, uint32_t type, std::mt19937_64& rng) {
  const TypeTraits& t = *type_traits(type);
  const TypeTraits& at = *type_traits(t.vec_dot_type);
  std::vector<int64_t> sizes;
  if (t.blck_size == 1) {
    sizes = {1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 129, 255, 256, 257, 1000, 4097};
  } else {
    for (int64_t nb : {1, 2, 3, 5, 7, 8, 16, 33}) sizes.push_back(nb * std::max<int64_t>(t.blck_size, at.blck_size));
  }
  const float wscales[] = {1.0f, 6e-6f, 6e4f, 1e-7f};  // 1e-7: f16 subnormal scales
  // Q8_0 keeps its scale in f16 (max 65504 = amax/127): its activations stay below ~1e5.
  const std::vector<float> ascales = t.vec_dot_type == T_Q8_0 ? std::vector<float>{1.0f, 1e-4f, 1e3f}
                                                              : std::vector<float>{1.0f, 1e-20f, 1e20f};
  for (int64_t n : sizes) {
    for (float ws : wscales) {
      for (float as : ascales) {
        for (int raw = 0; raw < 2; raw++) {
          if (raw && t.blck_size == 1) continue;
          if (!raw && t.blck_size > 1 && !t.from_float) continue;
          std::vector<uint8_t> w = make_weights(t, type, n, ws, raw != 0, rng);
          std::vector<float> x = make_acts(n, as, rng);
          std::vector<uint8_t> y(row_size(at, n));
          if (t.vec_dot_type == T_F32) std::memcpy(y.data(), x.data(), n * sizeof(float));
          else ref.quantize_act[t.vec_dot_type](x.data(), y.data(), n);
          // sum |w_i y_i| from the dequantized rows, in double.
          std::vector<float> wf(n), yf(n);
          t.to_float(w.data(), wf.data(), n);
          at.to_float(y.data(), yf.data(), n);
          double mag = 0.0;
          for (int64_t i = 0; i < n; i++) mag += std::fabs(static_cast<double>(wf[i]) * yf[i]);
          const double m = static_cast<double>(n + 8), u = std::ldexp(1.0, -24);
          const double bound = 2.0 * (m * u / (1.0 - m * u)) * mag + 1e-37;
          const float r = ref.vec_dot[type](n, w.data(), y.data());
          const float s = ks.vec_dot[type](n, w.data(), y.data());
          char what[200];
          std::snprintf(what, sizeof what, "%s vec_dot %s n=%lld wscale=%g ascale=%g %s: simd %.9g scalar %.9g bound %.3g",
                        isa_name(isa), t.name, static_cast<long long>(n), ws, as, raw ? "raw" : "quantized", s, r,
                        bound);
          report(close(s, r, bound), what);
          if (ks.vec_dot4[type]) {  // four rows at once: each the bits of its own vec_dot
            const size_t stride = y.size() + 64;
            std::vector<uint8_t> y4(4 * stride);
            float want[4], got[4];
            for (int j = 0; j < 4; j++) {
              std::vector<float> xj = make_acts(n, as, rng);
              if (t.vec_dot_type == T_F32) std::memcpy(y4.data() + j * stride, xj.data(), n * sizeof(float));
              else ref.quantize_act[t.vec_dot_type](xj.data(), y4.data() + j * stride, n);
              want[j] = ks.vec_dot[type](n, w.data(), y4.data() + j * stride);
            }
            ks.vec_dot4[type](n, w.data(), y4.data(), stride, got);
            char four[240];
            std::snprintf(four, sizeof four, "%s vec_dot4 equals vec_dot row by row", what);
            report(std::memcmp(want, got, sizeof want) == 0, four);
          }
          // The result must not depend on where the row lies: the same weights at another address
          // (GGUF aligns tensors to 32 bytes, rows fall anywhere after that) give the same bits.
          for (size_t off : {4, 32, 36, 48}) {
            std::vector<uint8_t> moved(w.size() + 64);
            std::memcpy(moved.data() + off, w.data(), w.size());
            const float s2 = ks.vec_dot[type](n, moved.data() + off, y.data());
            char where[240];
            std::snprintf(where, sizeof where, "%s at address offset %zu: %.9g vs %.9g", what, off, s2, s);
            report(std::memcmp(&s2, &s, sizeof s) == 0 || (std::isnan(s) && std::isnan(s2)), where);
          }
        }
      }
    }
  }
}

// The activation quantizers: same scale, quants within one step (ties may round either way),
// and Q8_K block sums that add up the block's own quants.
void test_quantize_act(Isa isa, const KernelSet& ks, const KernelSet& ref, uint32_t type, std::mt19937_64& rng) {
  const TypeTraits& t = *type_traits(type);
  for (int64_t nb : {1, 2, 3, 7, 16}) {
    const std::vector<float> scales = type == T_Q8_0 ? std::vector<float>{1.0f, 1e-4f, 1e3f, 0.0f}
                                                     : std::vector<float>{1.0f, 1e-20f, 1e20f, 0.0f, 1e-40f};
    // 1e-40 (subnormal): -127 / max overflows, and the reference stores an all-zero block.
    for (float scale : scales) {
      for (int ties = 0; ties < 2; ties++) {
        const int64_t n = nb * t.blck_size;
        std::vector<float> x = make_acts(n, scale, rng);
        if (ties) {  // values at exact half steps: x = (k + 0.5) * amax / 127
          for (int64_t i = 0; i < n; i++) x[i] = static_cast<float>(static_cast<int>(rng() % 254) - 127) + 0.5f;
          for (int64_t b = 0; b < nb; b++) x[b * t.blck_size] = 127.0f;
        }
        std::vector<uint8_t> a(row_size(t, n)), b(row_size(t, n));
        ref.quantize_act[type](x.data(), a.data(), n);
        ks.quantize_act[type](x.data(), b.data(), n);
        bool ok = true;
        for (int64_t blk = 0; blk < nb && ok; blk++) {
          const uint8_t* pa = a.data() + blk * t.type_size;
          const uint8_t* pb = b.data() + blk * t.type_size;
          const int d_bytes = type == T_Q8_K ? 4 : 2;
          const int qs_off = type == T_Q8_K ? 4 : 2;
          ok = std::memcmp(pa, pb, d_bytes) == 0;  // d
          for (int i = 0; i < t.blck_size && ok; i++) {
            const int qa = static_cast<int8_t>(pa[qs_off + i]), qb = static_cast<int8_t>(pb[qs_off + i]);
            ok = std::abs(qa - qb) <= 1;
          }
          if (type == T_Q8_K) {
            for (int g = 0; g < 16 && ok; g++) {
              int16_t bs;
              std::memcpy(&bs, pb + 4 + 256 + 2 * g, 2);
              int sum = 0;
              for (int i = 0; i < 16; i++) sum += static_cast<int8_t>(pb[qs_off + 16 * g + i]);
              ok = bs == sum;
            }
          }
        }
        char what[160];
        std::snprintf(what, sizeof what, "%s quantize_act %s n=%lld scale=%g%s", isa_name(isa), t.name,
                      static_cast<long long>(n), scale, ties ? " ties" : "");
        report(ok, what);
      }
    }
  }
}

// The DeltaNet step against the reference. Each output is a short formula over sums of dk
// products, so both kernels lie within 2 gamma_m (m = dk + 8) of the exact value, relative to
// the magnitudes (sums of |terms|) that enter it, computed here in double. A wrong row, column or
// gate misses by a good part of the magnitude; the state is checked element by element.
void test_delta_step(Isa isa, const KernelSet& ks, const KernelSet& ref, std::mt19937_64& rng) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const int64_t shapes[][2] = {{1, 1}, {3, 5}, {4, 8}, {16, 16}, {17, 33}, {32, 64}, {64, 72}, {128, 128}, {128, 136},
                               {256, 128}, {128, 256}, {7, 250}};
  for (const auto& sh : shapes) {
    const int64_t dk = sh[0], dv = sh[1];
    for (float scale : {1.0f, 1e-3f, 1e3f}) {
      std::vector<float> S(dk * dv), k(dk), q(dk), v(dv);
      for (float& x : S) x = scale * g(rng);
      for (float& x : k) x = g(rng) / std::sqrt(static_cast<float>(dk));  // l2-normalised scale
      for (float& x : q) x = g(rng) / static_cast<float>(dk);
      for (float& x : v) x = scale * g(rng);
      const float decay = u(rng), beta = u(rng);
      std::vector<float> S1 = S, S2 = S, o1(dv), o2(dv), t1(dv), t2(dv);
      ref.delta_step(S1.data(), k.data(), q.data(), v.data(), decay, beta, dk, dv, o1.data(), t1.data());
      ks.delta_step(S2.data(), k.data(), q.data(), v.data(), decay, beta, dk, dv, o2.data(), t2.data());
      const double m = static_cast<double>(dk + 8), eps = std::ldexp(1.0, -24);
      const double gam = 2.0 * (m * eps / (1.0 - m * eps));
      double qk_mag = 0.0;
      for (int64_t i = 0; i < dk; i++) qk_mag += std::fabs(static_cast<double>(q[i]) * k[i]);
      bool ok = true;
      std::string where;
      for (int64_t j = 0; j < dv && ok; j++) {
        double ks_mag = 0.0, qs_mag = 0.0;
        for (int64_t i = 0; i < dk; i++) {
          ks_mag += std::fabs(static_cast<double>(S[i * dv + j]) * k[i]);
          qs_mag += std::fabs(static_cast<double>(S[i * dv + j]) * q[i]);
        }
        const double delta_mag = beta * (std::fabs(v[j]) + decay * ks_mag);
        const double o_mag = decay * qs_mag + qk_mag * delta_mag;
        if (!close(o2[j], o1[j], gam * o_mag + 1e-30)) {
          ok = false;
          where = "o[" + std::to_string(j) + "] " + std::to_string(o2[j]) + " vs " + std::to_string(o1[j]);
        }
        for (int64_t i = 0; i < dk && ok; i++) {
          const double s_mag = decay * std::fabs(S[i * dv + j]) + std::fabs(k[i]) * delta_mag;
          if (!close(S2[i * dv + j], S1[i * dv + j], gam * s_mag + 1e-30)) {
            ok = false;
            where = "S[" + std::to_string(i) + "," + std::to_string(j) + "]";
          }
        }
      }
      char what[200];
      std::snprintf(what, sizeof what, "%s delta_step dk=%lld dv=%lld scale=%g %s", isa_name(isa),
                    static_cast<long long>(dk), static_cast<long long>(dv), scale, where.c_str());
      report(ok, what);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> required;
  bool require_coverage = false;
  uint64_t seed = 1234;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--require" && i + 1 < argc) required.emplace_back(argv[++i]);
    else if (a == "--require-coverage") require_coverage = true;
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: %s [--require ISA]... [--require-coverage] [--seed N]\n", argv[0]);
      return 2;
    }
  }
  const KernelSet& ref = *kernels(ISA_SCALAR);
  std::printf("active ISA: %s\n", isa_name(active_isa()));
  for (const std::string& r : required) {
    bool ok = false;
    for (int i = 0; i < ISA_COUNT; i++) ok |= r == isa_name(static_cast<Isa>(i)) && isa_supported(static_cast<Isa>(i));
    report(ok, "required ISA " + r + " is supported");
  }
  std::mt19937_64 rng(seed);
  for (int i = ISA_SCALAR + 1; i < ISA_COUNT; i++) {
    const Isa isa = static_cast<Isa>(i);
    if (!isa_supported(isa)) {
      std::printf("%s: not supported here, skipped\n", isa_name(isa));
      continue;
    }
    const KernelSet& ks = *kernels(isa);
    std::string own, fallback;
    for (uint32_t type = 0; type < T_COUNT; type++) {
      const TypeTraits* t = type_traits(type);
      if (!t || !t->computable()) continue;
      (ks.vec_dot[type] != ref.vec_dot[type] ? own : fallback) += std::string(" ") + t->name;
      if (require_coverage && (isa == ISA_AVX2 || isa == ISA_NEON))
        report(ks.vec_dot[type] != ref.vec_dot[type], std::string(isa_name(isa)) + " has its own vec_dot for " + t->name);
      test_vec_dot(isa, ks, ref, type, rng);
    }
    for (uint32_t type : {uint32_t{T_Q8_0}, uint32_t{T_Q8_K}}) {
      if (!ref.quantize_act[type]) continue;
      const bool has = ks.quantize_act[type] != ref.quantize_act[type];
      (has ? own : fallback) += std::string(" quantize_act:") + type_traits(type)->name;
      if (require_coverage && (isa == ISA_AVX2 || isa == ISA_NEON))
        report(has, std::string(isa_name(isa)) + " has its own quantize_act for " + type_traits(type)->name);
      test_quantize_act(isa, ks, ref, type, rng);
    }
    const bool own_step = ks.delta_step != ref.delta_step;
    (own_step ? own : fallback) += " delta_step";
    if (require_coverage && (isa == ISA_AVX2 || isa == ISA_NEON))
      report(own_step, std::string(isa_name(isa)) + " has its own delta_step");
    test_delta_step(isa, ks, ref, rng);
    std::printf("%s: own kernels:%s\n%s: scalar fallback:%s\n", isa_name(isa), own.c_str(), isa_name(isa),
                fallback.empty() ? " (none)" : fallback.c_str());
  }
  std::printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
