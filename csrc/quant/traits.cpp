// The traits table: one entry per ggml type (block size, bytes per block, and the scalar
// reference kernels: dequantize, weight quantizer, activation quantizer, dot product). Adding a
// type means one entry here, its layout in blocks.h and its reference functions in ref.h; the
// kernel sets (kernels/) then override the dot products per instruction set.
#include "quant/quant.h"

#include "quant/ref.h"

namespace q35 {

namespace {

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

}  // namespace

const TypeTraits* ref_type_traits(uint32_t type) {
  if (type >= T_COUNT) return nullptr;
  const TypeTraits& t = table().t[type];
  return t.name ? &t : nullptr;
}

}  // namespace q35
