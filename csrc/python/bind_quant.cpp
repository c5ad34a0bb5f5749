// Python bindings of the quantized types: quantize / dequantize rows, the dot-product kernels of
// every supported ISA (for tests and benchmarks), and the multi-threaded quantizer the converter uses.
#include "python/python.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/threadpool.h"

namespace py = pybind11;
using namespace q35;

namespace {

using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;
using U8Array = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

const TypeTraits& traits_or_throw(uint32_t type) {
  const TypeTraits* tt = type_traits(type);
  if (!tt) throw py::value_error("unknown ggml type id " + std::to_string(type));
  return *tt;
}

Isa isa_or_throw(const std::string& name) {
  for (int i = 0; i < ISA_COUNT; i++) {
    if (name == isa_name(static_cast<Isa>(i))) {
      if (!isa_supported(static_cast<Isa>(i))) throw py::value_error("ISA " + name + " is not supported on this CPU");
      return static_cast<Isa>(i);
    }
  }
  throw py::value_error("unknown ISA " + name);
}

// Rows of the last axis must be whole blocks.
int64_t check_row(const TypeTraits& t, int64_t n) {
  if (n <= 0 || n % t.blck_size != 0) {
    throw py::value_error(std::string(t.name) + " rows need a positive multiple of " + std::to_string(t.blck_size) +
                          " values, got " + std::to_string(n));
  }
  return n;
}

// x: [..., n] float32 -> [..., row_bytes] uint8, rows quantized in parallel on n_threads.
py::array_t<uint8_t> quantize(uint32_t type, const F32Array& x, int n_threads) {
  const TypeTraits& t = traits_or_throw(type);
  if (!t.from_float) throw py::value_error(std::string("cannot quantize to ") + t.name);
  if (x.ndim() < 1) throw py::value_error("quantize needs at least one dimension");
  const int64_t n = check_row(t, x.shape(x.ndim() - 1));
  const int64_t rows = n ? x.size() / n : 0;
  const size_t rb = row_size(t, n);
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  shape.back() = static_cast<py::ssize_t>(rb);
  py::array_t<uint8_t> out(shape);
  const float* src = x.data();
  uint8_t* dst = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    auto work = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) t.from_float(src + r * n, dst + r * rb, n);
    };
    if (n_threads <= 1 || rows < 2) {
      work(0, rows);
    } else {
      ThreadPool pool(n_threads);
      pool.parallel_for(rows, work);
    }
  }
  return out;
}

// data: [..., row_bytes] uint8 -> [..., n] float32.
py::array_t<float> dequantize(uint32_t type, const U8Array& data, int64_t n) {
  const TypeTraits& t = traits_or_throw(type);
  if (!t.to_float) throw py::value_error(std::string("cannot dequantize ") + t.name);
  check_row(t, n);
  const size_t rb = row_size(t, n);
  if (data.ndim() < 1 || static_cast<size_t>(data.shape(data.ndim() - 1)) != rb)
    throw py::value_error("the last axis must hold " + std::to_string(rb) + " bytes for a row of " + std::to_string(n));
  const int64_t rows = data.size() / static_cast<int64_t>(rb);
  std::vector<py::ssize_t> shape(data.shape(), data.shape() + data.ndim());
  shape.back() = static_cast<py::ssize_t>(n);
  py::array_t<float> out(shape);
  const uint8_t* src = data.data();
  float* dst = out.mutable_data();
  for (int64_t r = 0; r < rows; r++) t.to_float(src + r * rb, dst + r * n, n);
  return out;
}

// One row of activations in the weight type's dot-product format, with an ISA's quantizer.
py::array_t<uint8_t> quantize_act(uint32_t weight_type, const std::string& isa, const F32Array& x) {
  const TypeTraits& w = traits_or_throw(weight_type);
  const KernelSet* ks = kernels(isa_or_throw(isa));
  const TypeTraits& a = traits_or_throw(w.vec_dot_type);
  const int64_t n = check_row(w, x.size());
  check_row(a, n);
  py::array_t<uint8_t> out(static_cast<py::ssize_t>(row_size(a, n)));
  if (w.vec_dot_type == T_F32) {
    std::memcpy(out.mutable_data(), x.data(), n * sizeof(float));
  } else {
    ks->quantize_act[w.vec_dot_type](x.data(), out.mutable_data(), n);
  }
  return out;
}

// Dot product of one weight row with one activation row (already in the dot-product format).
float vec_dot(uint32_t weight_type, const std::string& isa, const U8Array& w, const U8Array& y, int64_t n) {
  const TypeTraits& t = traits_or_throw(weight_type);
  const KernelSet* ks = kernels(isa_or_throw(isa));
  if (!ks->vec_dot[weight_type]) throw py::value_error(std::string("no dot product for ") + t.name);
  check_row(t, n);
  const TypeTraits& a = traits_or_throw(t.vec_dot_type);
  if (static_cast<size_t>(w.size()) != row_size(t, n) || static_cast<size_t>(y.size()) != row_size(a, n))
    throw py::value_error("row sizes do not match n");
  return ks->vec_dot[weight_type](n, w.data(), y.data());
}

}  // namespace

void bind_quant(py::module_& m) {
  m.def("isas", [] {
    std::vector<std::string> v;
    for (int i = 0; i < ISA_COUNT; i++)
      if (isa_supported(static_cast<Isa>(i))) v.emplace_back(isa_name(static_cast<Isa>(i)));
    return v;
  }, "Names of the kernel sets this CPU supports, reference (scalar) first.");
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); },
        "The kernel set in use (the best supported, capped by QWEN35CPU_ISA).");
  m.def("type_info", [](uint32_t type) {
    const TypeTraits& t = traits_or_throw(type);
    py::dict d;
    d["name"] = t.name;
    d["block_size"] = t.blck_size;
    d["type_size"] = t.type_size;
    d["can_quantize"] = t.from_float != nullptr;
    d["computable"] = t.computable();
    d["vec_dot_type"] = t.vec_dot_type;
    return d;
  }, py::arg("type"));
  m.def("quantize", &quantize, py::arg("type"), py::arg("x"), py::arg("n_threads") = 1,
        "Quantize float32 rows (last axis) with the weight quantizer; rows run in parallel on n_threads.");
  m.def("dequantize", &dequantize, py::arg("type"), py::arg("data"), py::arg("n"),
        "Dequantize rows of n values (last axis holds each row's bytes) to float32.");
  m.def("quantize_act", &quantize_act, py::arg("weight_type"), py::arg("isa"), py::arg("x"),
        "Quantize one activation row to the weight type's dot-product format with an ISA's kernel.");
  m.def("vec_dot", &vec_dot, py::arg("weight_type"), py::arg("isa"), py::arg("w"), py::arg("y"), py::arg("n"),
        "Dot product of a weight row and an activation row with an ISA's kernel.");
}
