// The scalar reference kernels, one group per type: to_float (dequantize), from_float (the weight
// quantizer, or the activation quantizer for Q8_K) and vec_dot against the type's activation
// format. These are what the SIMD kernels are tested against, and what runs where no SIMD path
// exists. Layouts: quant_blocks.h.
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

}  // namespace q35
