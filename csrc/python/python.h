// python/: the pybind11 bindings, the extension module qwen35cpu._core. What lives here: the
// module (module.cpp) and one file per part it exposes: GGUF files (bind_gguf.cpp), the model
// and its sessions (bind_model.cpp), quantization and the kernels (bind_quant.cpp), and the
// benchmarks timed in C++ (bind_bench.cpp). Exposing a function to Python: bind it in the part's
// file (or a new bind_*.cpp, declared in this header and called from module.cpp).
// Depends on: every other folder of csrc/ and pybind11. Nothing else in csrc/ includes it.
#pragma once

#include <pybind11/pybind11.h>

void bind_gguf(pybind11::module_& m);
void bind_model(pybind11::module_& m);
void bind_quant(pybind11::module_& m);
void bind_bench(pybind11::module_& m);
