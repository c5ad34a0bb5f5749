// The scalar reference kernels, one group per type: to_float (dequantize), from_float (the weight
// quantizer, or the activation quantizer for Q8_K) and vec_dot against the type's activation
// format. These are what the SIMD kernels are tested against, and what runs where no SIMD path
// exists. Layouts: blocks.h.
#pragma once

#include <cstdint>

namespace q35 {

void f32_to_float(const void* src, float* dst, int64_t n);
void f32_from_float(const float* src, void* dst, int64_t n);
float f32_vec_dot(int64_t n, const void* x, const void* y);

void f16_to_float(const void* src, float* dst, int64_t n);
void f16_from_float(const float* src, void* dst, int64_t n);
float f16_vec_dot(int64_t n, const void* x, const void* y);  // y: f32

void bf16_to_float(const void* src, float* dst, int64_t n);
void bf16_from_float(const float* src, void* dst, int64_t n);
float bf16_vec_dot(int64_t n, const void* x, const void* y);  // y: f32

void q8_0_to_float(const void* src, float* dst, int64_t n);
void q8_0_from_float(const float* src, void* dst, int64_t n);
float q8_0_vec_dot(int64_t n, const void* x, const void* y);  // y: Q8_0

// Q4_0 and IQ4_NL meet Q8_0 activations (ref_q4.cpp; quantizers in quantize_q4.cpp).
void q4_0_to_float(const void* src, float* dst, int64_t n);
void q4_0_from_float(const float* src, void* dst, int64_t n);  // bytes identical to gguf's
float q4_0_vec_dot(int64_t n, const void* x, const void* y);   // y: Q8_0

void iq4_nl_to_float(const void* src, float* dst, int64_t n);
void iq4_nl_from_float(const float* src, void* dst, int64_t n);
float iq4_nl_vec_dot(int64_t n, const void* x, const void* y);  // y: Q8_0

// The k-quants and IQ4_XS meet Q8_K activations (ref_kquants.cpp; quantizers in
// quantize_kquants.cpp).
void q2_k_to_float(const void* src, float* dst, int64_t n);
void q2_k_from_float(const float* src, void* dst, int64_t n);
float q2_k_vec_dot(int64_t n, const void* x, const void* y);  // y: Q8_K

void q3_k_to_float(const void* src, float* dst, int64_t n);
void q3_k_from_float(const float* src, void* dst, int64_t n);
float q3_k_vec_dot(int64_t n, const void* x, const void* y);  // y: Q8_K

void q4_k_to_float(const void* src, float* dst, int64_t n);
void q4_k_from_float(const float* src, void* dst, int64_t n);
float q4_k_vec_dot(int64_t n, const void* x, const void* y);  // y: Q8_K

void q5_k_to_float(const void* src, float* dst, int64_t n);
void q5_k_from_float(const float* src, void* dst, int64_t n);
float q5_k_vec_dot(int64_t n, const void* x, const void* y);  // y: Q8_K

void q6_k_to_float(const void* src, float* dst, int64_t n);
void q6_k_from_float(const float* src, void* dst, int64_t n);
float q6_k_vec_dot(int64_t n, const void* x, const void* y);  // y: Q8_K

void iq4_xs_to_float(const void* src, float* dst, int64_t n);
void iq4_xs_from_float(const float* src, void* dst, int64_t n);
float iq4_xs_vec_dot(int64_t n, const void* x, const void* y);  // y: Q8_K

// Q8_K: activation format only (spec 6.3); from_float is ggml's quantize_row_q8_K_ref.
void q8_k_to_float(const void* src, float* dst, int64_t n);
void q8_k_from_float(const float* src, void* dst, int64_t n);

}  // namespace q35
