// The qwen35cpu._core extension module. Each part binds itself; this file only wires them.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_gguf(py::module_& m);
void bind_model(py::module_& m);
void bind_quant(py::module_& m);
void bind_bench(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "qwen35cpu C++ core: GGUF reader, quantized kernels and the qwen35moe forward pass";
  bind_gguf(m);
  bind_model(m);
  bind_quant(m);
  bind_bench(m);
}
