#!/usr/bin/env bash
# Developer build: compiles qwen35cpu._core into src/qwen35cpu/ so `PYTHONPATH=src pytest` works
# without reinstalling. Users and CI use `pip install .` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build/dev}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" >/dev/null
cmake --build "$BUILD"
