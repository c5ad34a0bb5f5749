// The qwen35cpu._core extension module. Each part binds itself; this file only wires them.
#include "python/python.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "qwen35cpu C++ core: GGUF reader, quantized kernels and the qwen35moe forward pass";
  bind_gguf(m);
  bind_model(m);
  bind_quant(m);
  bind_bench(m);
}
