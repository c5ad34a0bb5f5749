// The traits table and the run-time choice of kernels. The scalar kernels (quant_ref.h) are
// declared here once per type; SIMD sets (kernels.h) override their entries at start-up.
#include "quant.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels.h"
#include "quant_ref.h"

namespace q35 {

// ---------------------------------------------------------------- half-precision conversions

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 1;
      while ((man & 0x400) == 0) {
        man <<= 1;
        exp--;
      }
      man &= 0x3ff;
      bits = sign | ((exp + 112) << 23) | (man << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000 | (man << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffff;
  if (ax >= 0x7f800000) return sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0);  // inf / nan
  if (ax >= 0x477ff000) return sign | 0x7c00;                                    // overflow
  if (ax < 0x38800000) {                                                         // subnormal / zero
    if (ax < 0x33000000) return sign;
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t half = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return sign | static_cast<uint16_t>(half);
  }
  uint32_t half = ((ax >> 13) - (112 << 10));
  const uint32_t rem = ax & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
  return sign | static_cast<uint16_t>(half);
}

uint16_t fp32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

namespace {

// ---------------------------------------------------------------- the table

struct Table {
  TypeTraits t[T_COUNT];
  Table() {
    auto size_only = [&](uint32_t id, const char* name, int64_t blck, size_t bytes) {
      t[id].name = name;
      t[id].blck_size = blck;
      t[id].type_size = bytes;
    };
    size_only(T_F32, "F32", 1, 4);
    size_only(T_F16, "F16", 1, 2);
    size_only(T_Q4_0, "Q4_0", 32, 18);
    size_only(T_Q4_1, "Q4_1", 32, 20);
    size_only(T_Q5_0, "Q5_0", 32, 22);
    size_only(T_Q5_1, "Q5_1", 32, 24);
    size_only(T_Q8_0, "Q8_0", 32, 34);
    size_only(T_Q8_1, "Q8_1", 32, 40);
    size_only(T_Q2_K, "Q2_K", 256, 84);
    size_only(T_Q3_K, "Q3_K", 256, 110);
    size_only(T_Q4_K, "Q4_K", 256, 144);
    size_only(T_Q5_K, "Q5_K", 256, 176);
    size_only(T_Q6_K, "Q6_K", 256, 210);
    size_only(T_Q8_K, "Q8_K", 256, 292);
    size_only(T_IQ2_XXS, "IQ2_XXS", 256, 66);
    size_only(T_IQ2_XS, "IQ2_XS", 256, 74);
    size_only(T_IQ3_XXS, "IQ3_XXS", 256, 98);
    size_only(T_IQ1_S, "IQ1_S", 256, 50);
    size_only(T_IQ4_NL, "IQ4_NL", 32, 18);
    size_only(T_IQ3_S, "IQ3_S", 256, 110);
    size_only(T_IQ2_S, "IQ2_S", 256, 82);
    size_only(T_IQ4_XS, "IQ4_XS", 256, 136);
    size_only(T_I8, "I8", 1, 1);
    size_only(T_I16, "I16", 1, 2);
    size_only(T_I32, "I32", 1, 4);
    size_only(T_I64, "I64", 1, 8);
    size_only(T_F64, "F64", 1, 8);
    size_only(T_IQ1_M, "IQ1_M", 256, 56);
    size_only(T_BF16, "BF16", 1, 2);
    size_only(T_TQ1_0, "TQ1_0", 256, 54);
    size_only(T_TQ2_0, "TQ2_0", 256, 66);
    size_only(T_MXFP4, "MXFP4", 32, 17);
    size_only(T_NVFP4, "NVFP4", 64, 36);
    size_only(T_Q1_0, "Q1_0", 128, 18);

    auto compute = [&](uint32_t id, to_float_fn tf, from_float_fn ff, vec_dot_fn vd, uint32_t vdt) {
      t[id].to_float = tf;
      t[id].from_float = ff;
      t[id].vec_dot = vd;
      t[id].vec_dot_type = vdt;
    };
    // Activation formats: quantize_act starts as the reference quantizer.
    auto activation = [&](uint32_t id, to_float_fn tf, from_float_fn ff) {
      t[id].to_float = tf;
      t[id].from_float = ff;
      t[id].quantize_act = ff;
    };
    compute(T_F32, f32_to_float, f32_from_float, f32_vec_dot, T_F32);
    // F16/BF16 weights meet F32 activations: more accurate than ggml's F16 activations and
    // no slower, since a decode matvec is bound by reading the weights.
    compute(T_F16, f16_to_float, f16_from_float, f16_vec_dot, T_F32);
    compute(T_BF16, bf16_to_float, bf16_from_float, bf16_vec_dot, T_F32);
    compute(T_Q8_0, q8_0_to_float, q8_0_from_float, q8_0_vec_dot, T_Q8_0);
    activation(T_Q8_0, q8_0_to_float, q8_0_from_float);
    compute(T_Q4_0, q4_0_to_float, q4_0_from_float, q4_0_vec_dot, T_Q8_0);
    compute(T_IQ4_NL, iq4_nl_to_float, iq4_nl_from_float, iq4_nl_vec_dot, T_Q8_0);
    compute(T_Q2_K, q2_k_to_float, q2_k_from_float, q2_k_vec_dot, T_Q8_K);
    compute(T_Q3_K, q3_k_to_float, q3_k_from_float, q3_k_vec_dot, T_Q8_K);
    compute(T_Q4_K, q4_k_to_float, q4_k_from_float, q4_k_vec_dot, T_Q8_K);
    compute(T_Q5_K, q5_k_to_float, q5_k_from_float, q5_k_vec_dot, T_Q8_K);
    compute(T_Q6_K, q6_k_to_float, q6_k_from_float, q6_k_vec_dot, T_Q8_K);
    compute(T_IQ4_XS, iq4_xs_to_float, iq4_xs_from_float, iq4_xs_vec_dot, T_Q8_K);
    // Q8_K is only an activation format: no vec_dot, so it is never computable as a weight.
    activation(T_Q8_K, q8_k_to_float, q8_k_from_float);
  }
};

const Table& table() {
  static const Table tbl;
  return tbl;
}

const char* const kIsaNames[ISA_COUNT] = {"scalar", "avx2", "avx512", "neon"};

// Scalar entries of the table as a kernel set, then each supported ISA layered on the one below.
struct Kernels {
  KernelSet set[ISA_COUNT];
  bool ok[ISA_COUNT] = {};
  Isa active = ISA_SCALAR;
  Kernels() {
    const Table& tb = table();
    for (int t = 0; t < int{T_COUNT}; t++) {
      set[ISA_SCALAR].vec_dot[t] = tb.t[t].vec_dot;
      set[ISA_SCALAR].quantize_act[t] = tb.t[t].quantize_act;
    }
    set[ISA_SCALAR].delta_step = delta_step_ref;
    ok[ISA_SCALAR] = true;
    auto layer = [&](Isa isa, Isa base, bool (*fill)(KernelSet&)) {
      if (!ok[base]) return;
      KernelSet ks;
      if (!fill(ks)) return;
      set[isa] = set[base];
      for (int t = 0; t < int{T_COUNT}; t++) {
        if (ks.vec_dot[t]) set[isa].vec_dot[t] = ks.vec_dot[t];
        if (ks.quantize_act[t]) set[isa].quantize_act[t] = ks.quantize_act[t];
        // A four-row kernel only beside its own set's vec_dot: it must give the same bits.
        if (ks.vec_dot[t]) set[isa].vec_dot4[t] = ks.vec_dot4[t];
      }
      if (ks.delta_step) set[isa].delta_step = ks.delta_step;
      ok[isa] = true;
    };
    layer(ISA_AVX2, ISA_SCALAR, fill_kernels_avx2);
    layer(ISA_AVX512, ISA_AVX2, fill_kernels_avx512);
    layer(ISA_NEON, ISA_SCALAR, fill_kernels_neon);

    const char* cap = std::getenv("QWEN35CPU_ISA");
    int limit = ISA_COUNT - 1;
    if (cap && *cap) {
      limit = -1;
      for (int i = 0; i < ISA_COUNT; i++)
        if (std::string(cap) == kIsaNames[i]) limit = i;
      // An unknown name must not silently pick a path: fall back to the reference.
      if (limit < 0) limit = ISA_SCALAR;
    }
    for (int i = ISA_COUNT - 1; i >= 0; i--) {
      // NEON and the x86 sets never coexist, so "highest supported id under the cap" is the best.
      if (i <= limit && ok[i]) {
        active = static_cast<Isa>(i);
        break;
      }
    }
  }
};

const Kernels& all_kernels() {
  static const Kernels k;
  return k;
}

// The table handed out: scalar traits with the active ISA's kernels.
struct ActiveTable {
  TypeTraits t[T_COUNT];
  ActiveTable() {
    const Kernels& k = all_kernels();
    const KernelSet& ks = k.set[k.active];
    for (int i = 0; i < int{T_COUNT}; i++) {
      t[i] = table().t[i];
      if (t[i].vec_dot) t[i].vec_dot = ks.vec_dot[i];
      if (t[i].vec_dot) t[i].vec_dot4 = ks.vec_dot4[i];
      if (t[i].quantize_act) t[i].quantize_act = ks.quantize_act[i];
    }
  }
};

}  // namespace

const TypeTraits* type_traits(uint32_t type) {
  if (type >= T_COUNT) return nullptr;
  static const ActiveTable active;
  const TypeTraits& t = active.t[type];
  return t.name ? &t : nullptr;
}

const char* isa_name(Isa isa) { return isa >= 0 && isa < ISA_COUNT ? kIsaNames[isa] : "?"; }

bool isa_supported(Isa isa) { return isa >= 0 && isa < ISA_COUNT && all_kernels().ok[isa]; }

const KernelSet* kernels(Isa isa) { return isa_supported(isa) ? &all_kernels().set[isa] : nullptr; }

Isa active_isa() { return all_kernels().active; }

const KernelSet& active_kernels() { return all_kernels().set[all_kernels().active]; }

}  // namespace q35
