// Block layouts of the quantized ggml types, byte for byte as GGUF stores them
// (../shared/docs/qwen35moe-spec.md section 6). Every field is little-endian; f16 fields are
// IEEE binary16 bits. These structs are the one place the layouts are written down: the scalar
// reference, the quantizers and every SIMD kernel include this header.
#pragma once

#include <cstdint>

namespace q35 {

constexpr int QK8_0 = 32;  // Q8_0, Q4_0, IQ4_NL
constexpr int QK_K = 256;  // k-quants, IQ4_XS, Q8_K
constexpr int K_SCALE_SIZE = 12;

struct BlockQ8_0 {
  uint16_t d;         // f16 scale
  int8_t qs[QK8_0];   // y = d * qs
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 34 bytes");

struct BlockQ4_0 {
  uint16_t d;              // f16 scale
  uint8_t qs[QK8_0 / 2];   // low nibbles: values 0..15, high nibbles: 16..31; y = d * (q - 8)
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block is 18 bytes");

struct BlockIQ4_NL {
  uint16_t d;              // f16 scale
  uint8_t qs[QK8_0 / 2];   // nibbles as Q4_0, indexing kIQ4NLValues
};
static_assert(sizeof(BlockIQ4_NL) == 18, "IQ4_NL block is 18 bytes");

struct BlockQ2_K {
  uint8_t scales[QK_K / 16];  // low nibble: scale, high nibble: min, of each 16 values
  uint8_t qs[QK_K / 4];       // 2-bit quants
  uint16_t d;                 // f16 super-block scale of the scales
  uint16_t dmin;              // f16 super-block scale of the mins
};
static_assert(sizeof(BlockQ2_K) == 84, "Q2_K block is 84 bytes");

struct BlockQ3_K {
  uint8_t hmask[QK_K / 8];  // high bit of each quant
  uint8_t qs[QK_K / 4];     // low 2 bits
  uint8_t scales[12];       // 16 signed 6-bit scales, packed
  uint16_t d;               // f16 super-block scale
};
static_assert(sizeof(BlockQ3_K) == 110, "Q3_K block is 110 bytes");

struct BlockQ4_K {
  uint16_t d;                    // f16 super-block scale of the scales
  uint16_t dmin;                 // f16 super-block scale of the mins
  uint8_t scales[K_SCALE_SIZE];  // 8 scales and 8 mins, 6 bits each
  uint8_t qs[QK_K / 2];          // 4-bit quants
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block is 144 bytes");

struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[K_SCALE_SIZE];  // as Q4_K
  uint8_t qh[QK_K / 8];          // 5th bit of each quant
  uint8_t qs[QK_K / 2];          // low 4 bits
};
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block is 176 bytes");

struct BlockQ6_K {
  uint8_t ql[QK_K / 2];      // low 4 bits
  uint8_t qh[QK_K / 4];      // high 2 bits
  int8_t scales[QK_K / 16];  // 8-bit signed scales of each 16 values
  uint16_t d;                // f16 super-block scale
};
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block is 210 bytes");

struct BlockIQ4_XS {
  uint16_t d;                // f16 super-block scale
  uint16_t scales_h;         // high 2 bits of the 8 sub-block scales
  uint8_t scales_l[QK_K / 64];  // low 4 bits of the 8 sub-block scales
  uint8_t qs[QK_K / 2];      // nibbles indexing kIQ4NLValues
};
static_assert(sizeof(BlockIQ4_XS) == 136, "IQ4_XS block is 136 bytes");

// Activations for the k-quant and IQ4_XS dot products.
struct BlockQ8_K {
  float d;                    // scale (f32)
  int8_t qs[QK_K];            // y = d * qs
  int16_t bsums[QK_K / 16];   // sums of each 16 consecutive qs
};
static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block is 292 bytes");

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block (spec 6.2).
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

}  // namespace q35
