// Helpers of the kernels that take several activation rows at once (KernelSet::vec_dot4), shared
// by the x86 and NEON files. Internal linkage, as in x86/x86.h: each file compiles its own copy
// with its own flags, so no copy built for one ISA can serve another.
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/quant.h"

namespace q35 {
namespace {

// The NY activation rows of a multi-row kernel: blocks of type B, ystride bytes apart.
template <class B, int NY>
inline void act_rows(const void* vy, size_t ystride, const B* (&y)[NY]) {
  for (int r = 0; r < NY; r++) y[r] = reinterpret_cast<const B*>(static_cast<const char*>(vy) + r * ystride);
}

// vec_dot from a multi-row kernel's one-row instantiation: the four-row one runs the same
// operations per row, so vec_dot4 gives vec_dot's bits.
template <vec_dot4_fn F>
float one_row(int64_t n, const void* x, const void* y) {
  float r;
  F(n, x, y, 0, &r);
  return r;
}

}  // namespace
}  // namespace q35
