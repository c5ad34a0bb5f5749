// Benchmark bindings timed in C++, so the numbers measure the kernels and the memory system, not
// Python call overhead: a single-thread matvec (benchmarks/bench_kernels.py) and the machine's
// multi-thread memory read bandwidth, the roofline decode is compared with (qwen35cpu bench).
#include "python/python.h"

#include <pybind11/pybind11.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kernels/kernels.h"

namespace py = pybind11;
using namespace q35;

namespace {

// Page-aligned anonymous memory: 4 KiB pages, as a mapped file's, or transparent huge pages (on
// request, Linux), as the weight copy's (weight_memory.h).
struct AnonBuffer {
  uint8_t* p = nullptr;
  size_t n = 0;
  AnonBuffer(size_t bytes, bool huge) : n(bytes) {
    void* m = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::runtime_error("cannot allocate " + std::to_string(n) + " bytes");
    p = static_cast<uint8_t*>(m);
#if defined(MADV_HUGEPAGE)
    madvise(m, n, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#endif
  }
  ~AnonBuffer() { munmap(p, n); }
  AnonBuffer(const AnonBuffer&) = delete;
  AnonBuffer& operator=(const AnonBuffer&) = delete;
};

// rows x n weights of `type` (distinct rows quantized from Gaussian floats, tiled over the matrix),
// one activation row quantized with the ISA's own quantizer; every pass computes all rows' dot
// products. Returns the weight bytes of one pass divided by the fastest pass, in GB/s (1e9 B/s):
// the best pass is the one least disturbed by other processes on a shared machine.
double matvec_bench(uint32_t type, const std::string& isa_name_arg, int64_t rows, int64_t n, int iters, int64_t offset,
                    bool huge_pages) {
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
  // Page-aligned, as a memory-mapped GGUF file or the weight copy is; `offset` bytes past the page
  // start (tests the kernels' behaviour on tensor data that is only 32-byte aligned).
  AnonBuffer mem(rb * static_cast<size_t>(rows) + offset, huge_pages);
  uint8_t* wp = mem.p + offset;
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

// Sums a buffer's 64-bit words with eight independent accumulators: enough loads in flight that
// one core is bound by memory, not by the adds (the compiler vectorises the loop at -O2/-O3).
uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) a[k] += p[i + k];
  for (; i < n; i++) a[0] += p[i];
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

// Read bandwidth of `n_threads` threads, each summing its own part of one `bytes`-sized buffer
// (each thread first writes its part, so pages are local to the thread that reads them, as the
// decode's workers read their own rows). A pass is timed from before the threads start to the last one's
// end; the fastest of `iters` passes counts, in GB/s (1e9 B/s). The buffer must be much larger than
// the last-level cache, or the number measures the cache. With huge_pages the buffer asks for
// transparent huge pages (Linux), as the weight copy does (weight_memory.h); without, it is
// made of 4 KiB pages, as a mapped file is.
double read_bandwidth(int n_threads, int64_t bytes, int iters, bool huge_pages) {
  if (n_threads < 1 || n_threads > 1024) throw py::value_error("n_threads must be in [1, 1024]");
  if (bytes < (1 << 20)) throw py::value_error("bytes must be at least 1 MiB");
  if (iters < 1) throw py::value_error("iters must be positive");
  const size_t words = static_cast<size_t>(bytes) / sizeof(uint64_t);
  AnonBuffer mem(words * sizeof(uint64_t), huge_pages);
  uint64_t* const buf = reinterpret_cast<uint64_t*>(mem.p);
  std::vector<uint64_t> sums(n_threads);
  auto part = [&](int t, size_t* b, size_t* e) {
    const size_t per = (words / n_threads) & ~size_t{7};
    *b = per * t;
    *e = t == n_threads - 1 ? words : *b + per;
  };
  double best = 1e300;
  {
    py::gil_scoped_release nogil;
    for (int it = -1; it < iters; it++) {  // pass -1 (after the first touch) warms up
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::thread> th;
      for (int t = 0; t < n_threads; t++)
        th.emplace_back([&, t, it] {
          size_t b, e;
          part(t, &b, &e);
          if (it == -1)
            for (size_t i = b; i < e; i++) buf[i] = i * 0x9E3779B97F4A7C15ull;
          sums[t] += sum_words(buf + b, e - b);
        });
      for (auto& x : th) x.join();
      // Thread start-up (tens of microseconds) is counted: small beside a pass over >= 256 MiB.
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (it >= 0) best = std::min(best, s);
    }
  }
  volatile uint64_t sink = 0;
  for (uint64_t v : sums) sink = sink + v;
  (void)sink;
  return static_cast<double>(words * sizeof(uint64_t)) / best / 1e9;
}

}  // namespace

void bind_bench(py::module_& m) {
  m.def("matvec_bench", &matvec_bench, py::arg("type"), py::arg("isa"), py::arg("rows"), py::arg("n"),
        py::arg("iters"), py::arg("offset") = 0, py::arg("huge_pages") = false,
        "Time a single-thread matvec (rows x n weights of `type`, one activation row) with an ISA's kernels; "
        "returns GB/s of weights read in the fastest of `iters` passes. The matrix starts `offset` bytes "
        "after a page boundary; huge_pages backs it with transparent huge pages (Linux), as the weight copy is.");
  m.def("read_bandwidth", &read_bandwidth, py::arg("n_threads"), py::arg("bytes") = int64_t{1} << 30,
        py::arg("iters") = 5, py::arg("huge_pages") = false,
        "Memory read bandwidth in GB/s of n_threads threads each summing its part of a `bytes` buffer "
        "(fastest of `iters` passes); huge_pages: back the buffer with transparent huge pages (Linux).");
}
