// Kernel benchmark binding: a single-thread matvec timed in C++, so the number measures the kernel
// and the memory system, not Python call overhead (benchmarks/bench_kernels.py).
#include <pybind11/pybind11.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"

namespace py = pybind11;
using namespace q35;

namespace {

// rows x n weights of `type` (distinct rows quantized from Gaussian floats, tiled over the matrix),
// one activation row quantized with the ISA's own quantizer; every pass computes all rows' dot
// products. Returns the weight bytes of one pass divided by the fastest pass, in GB/s (1e9 B/s):
// the best pass is the one least disturbed by other processes on a shared machine.
double matvec_bench(uint32_t type, const std::string& isa_name_arg, int64_t rows, int64_t n, int iters, int64_t offset) {
  Isa isa = ISA_COUNT;
  for (int i = 0; i < ISA_COUNT; i++)
    if (isa_name_arg == isa_name(static_cast<Isa>(i))) isa = static_cast<Isa>(i);
  if (isa == ISA_COUNT) throw py::value_error("unknown ISA " + isa_name_arg);
  const KernelSet* ks = kernels(isa);
  if (!ks) throw py::value_error("ISA " + isa_name_arg + " is not supported on this CPU");
  const TypeTraits* tp = type_traits(type);
  if (!tp || !tp->computable() || !tp->from_float || !ks->vec_dot[type])
    throw py::value_error("type " + std::to_string(type) + " has no dot-product kernel");
  const TypeTraits& t = *tp;
  const TypeTraits& at = *type_traits(t.vec_dot_type);
  if (rows < 1 || iters < 1) throw py::value_error("rows and iters must be positive");
  if (offset < 0 || offset >= 4096) throw py::value_error("offset must be in [0, 4096)");
  if (n <= 0 || n % t.blck_size != 0 || n % at.blck_size != 0)
    throw py::value_error(std::string(t.name) + " rows need a positive multiple of " +
                          std::to_string(std::max(t.blck_size, at.blck_size)) + " values");

  const size_t rb = row_size(t, n);
  // Page-aligned, as a memory-mapped GGUF file is; `offset` bytes past the page start (tests the
  // kernels' behaviour on tensor data that is only 32-byte aligned).
  std::vector<uint8_t> buf(rb * static_cast<size_t>(rows) + 4096 + offset);
  uint8_t* wp = buf.data() + (4096 - reinterpret_cast<uintptr_t>(buf.data()) % 4096) % 4096 + offset;
  std::vector<uint8_t> y(row_size(at, n));
  std::mt19937_64 rng(42);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(n);
  const int64_t distinct = std::min<int64_t>(rows, 16);
  for (int64_t r = 0; r < distinct; r++) {
    for (auto& v : x) v = g(rng);
    t.from_float(x.data(), wp + r * rb, n);
  }
  for (int64_t r = distinct; r < rows; r++) std::memcpy(wp + r * rb, wp + (r % distinct) * rb, rb);
  for (auto& v : x) v = g(rng);
  if (t.vec_dot_type == T_F32) std::memcpy(y.data(), x.data(), n * sizeof(float));
  else ks->quantize_act[t.vec_dot_type](x.data(), y.data(), n);

  const vec_dot_fn dot = ks->vec_dot[type];
  std::vector<float> out(rows);
  double best = 1e300;
  {
    py::gil_scoped_release nogil;
    for (int it = -1; it < iters; it++) {  // pass -1 warms up (page faults, caches)
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t r = 0; r < rows; r++) out[r] = dot(n, wp + r * rb, y.data());
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (it >= 0) best = std::min(best, s);
    }
  }
  // Keep the results observable so the passes cannot be optimised away.
  volatile float sink = 0.0f;
  for (float v : out) sink = sink + v;
  (void)sink;
  return static_cast<double>(rb) * static_cast<double>(rows) / best / 1e9;
}

}  // namespace

void bind_bench(py::module_& m) {
  m.def("matvec_bench", &matvec_bench, py::arg("type"), py::arg("isa"), py::arg("rows"), py::arg("n"),
        py::arg("iters"), py::arg("offset") = 0,
        "Time a single-thread matvec (rows x n weights of `type`, one activation row) with an ISA's kernels; "
        "returns GB/s of weights read in the fastest of `iters` passes. The matrix starts `offset` bytes "
        "after a page boundary.");
}
