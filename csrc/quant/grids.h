// The lookup grids of the non-linear and lattice types, written once as data: the scalar
// reference, the quantizers and every SIMD kernel read them from here.
#pragma once

#include <cstdint>

namespace q35 {

// The IQ4_NL / IQ4_XS non-linear 4-bit grid.
constexpr int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

}  // namespace q35
