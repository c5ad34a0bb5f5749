// quant/: the weight formats. What lives here: the ggml type ids and the traits table (one entry
// per type: block size, block bytes, reference dequantize / quantize / dot product; traits.cpp),
// the block layouts (blocks.h) and lookup grids (grids.h), the scalar reference kernels
// (ref.h, ref_*.cpp), the weight quantizers (quantize_*.cpp) and their least-squares fitting
// (fit.h, util.h), and the scalar half-precision conversions (half.cpp).
// Depends on: the C++ standard library only. Knows nothing of kernel sets, files or the model.
//
// A type that is only listed by size (compute functions null) can be read and validated in a
// GGUF but not computed with; the model loader refuses it with a clear error.
#pragma once

#include <cstddef>
#include <cstdint>

namespace q35 {

// ggml type ids as stored in GGUF tensor infos.
enum GgmlType : uint32_t {
  T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q5_1 = 7, T_Q8_0 = 8, T_Q8_1 = 9,
  T_Q2_K = 10, T_Q3_K = 11, T_Q4_K = 12, T_Q5_K = 13, T_Q6_K = 14, T_Q8_K = 15,
  T_IQ2_XXS = 16, T_IQ2_XS = 17, T_IQ3_XXS = 18, T_IQ1_S = 19, T_IQ4_NL = 20, T_IQ3_S = 21,
  T_IQ2_S = 22, T_IQ4_XS = 23, T_I8 = 24, T_I16 = 25, T_I32 = 26, T_I64 = 27, T_F64 = 28,
  T_IQ1_M = 29, T_BF16 = 30, T_TQ1_0 = 34, T_TQ2_0 = 35, T_MXFP4 = 39, T_NVFP4 = 40, T_Q1_0 = 41,
  T_COUNT = 42,
};

// n is always a multiple of the type's block size.
using to_float_fn = void (*)(const void* src, float* dst, int64_t n);
using from_float_fn = void (*)(const float* src, void* dst, int64_t n);
// Dot product of n values: x in this type, y in vec_dot_type.
using vec_dot_fn = float (*)(int64_t n, const void* x, const void* y);
// One weight row x against four activation rows (y, y + ystride, ...): out[j] has the bits that
// vec_dot(n, x, y + j * ystride) gives, the weights unpacked once for the four (prompt batches).
using vec_dot4_fn = void (*)(int64_t n, const void* x, const void* y, size_t ystride, float* out);

struct TypeTraits {
  const char* name = nullptr;  // nullptr: unknown id
  int64_t blck_size = 0;
  size_t type_size = 0;        // bytes per block
  to_float_fn to_float = nullptr;
  // The weight quantizer: the careful (slow) scalar one, bit-exact with the gguf package where
  // that package can quantize the type. Used by the converter.
  from_float_fn from_float = nullptr;
  // Row quantizer for activations (set for the vec_dot types Q8_0 and Q8_K). In the reference
  // table the scalar one; in kernels/'s type_traits() the active ISA's, which may round ties
  // differently from from_float.
  from_float_fn quantize_act = nullptr;
  vec_dot_fn vec_dot = nullptr;    // reference, or the active ISA's (kernels/kernels.h)
  vec_dot4_fn vec_dot4 = nullptr;  // only in kernels/'s table, where the active ISA has one
  uint32_t vec_dot_type = T_F32;
  bool computable() const { return to_float && vec_dot; }
};

// The reference traits of a ggml type id (scalar kernels); nullptr for ids ggml does not define.
// What computes with a type takes kernels/'s type_traits() instead: the same entries with the
// active ISA's kernels.
const TypeTraits* ref_type_traits(uint32_t type);
// Bytes of a row of ne0 elements (ne0 must be a multiple of the block size).
inline size_t row_size(const TypeTraits& t, int64_t ne0) {
  return static_cast<size_t>(ne0 / t.blck_size) * t.type_size;
}

// Scalar half-precision conversions (IEEE binary16 and bfloat16, round to nearest even).
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
inline float bf16_to_fp32(uint16_t h) {
  union { uint32_t u; float f; } v;
  v.u = static_cast<uint32_t>(h) << 16;
  return v.f;
}
uint16_t fp32_to_bf16(float f);

}  // namespace q35
