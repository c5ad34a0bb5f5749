#!/usr/bin/env bash
# The NEON kernels on an x86-64 machine: cross-compile the C++ kernel tests (tests/cpp, CMake
# target q35_kernel_tests: the core library + the harness, no Python) for aarch64 Linux, statically,
# and run them under qemu-aarch64. Exits non-zero on any failure.
#
#   1. -cpu max (has the dot-product extension): the NEON set must be supported, active, cover
#      every computable type and both activation quantizers, and match the scalar reference.
#   2. the same with QWEN35CPU_ISA=scalar: the scalar path is what runs on aarch64.
#   3. -cpu cortex-a72 (ARMv8.0, no sdot): run-time detection must refuse the NEON set and fall
#      back to scalar instead of executing instructions the CPU lacks.
#   4. the scalar quantizers and dequantizers (q35_quant_digest) give the same bytes under qemu
#      as natively on this machine: bit-exactness does not depend on the architecture.
#   5. if a clang++ is installed: steps 1, 2 and 4 again built with clang (Apple's compiler family), unless
#      NEON_CHECK_CLANG=0.
#
# Missing tools (g++-aarch64-linux-gnu, qemu-user, cmake) are installed with apt-get when run as
# root, as in CI. Build folders: build/aarch64-host (native), build/aarch64-gcc, build/aarch64-clang
# (NEON_BUILD_DIR overrides the prefix build/aarch64).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PREFIX=${NEON_BUILD_DIR:-$ROOT/build/aarch64}
JOBS=${JOBS:-2}

fail() {
  echo "neon_check: $*" >&2
  exit 1
}

# ------------------------------------------------------------------ tools
qemu_bin() { command -v qemu-aarch64 || command -v qemu-aarch64-static || true; }
missing=()
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
[ -n "$(qemu_bin)" ] || missing+=(qemu-user)
command -v cmake >/dev/null || missing+=(cmake)
command -v make >/dev/null || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null ||
    fail "missing ${missing[*]}: install them (Debian/Ubuntu: apt-get install ${missing[*]})"
  echo "neon_check: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
QEMU=$(qemu_bin)
[ -n "$QEMU" ] || fail "qemu-aarch64 not found after installing qemu-user"

# ------------------------------------------------------------------ build
build() {  # build DIR [cmake args...]: configures and builds q35_kernel_tests and q35_quant_digest
  local dir=$1
  shift
  mkdir -p "$dir"
  cmake -S "$ROOT" -B "$dir" -G "Unix Makefiles" -DQ35_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_DISABLE_FIND_PACKAGE_Python=ON -DCMAKE_DISABLE_FIND_PACKAGE_pybind11=ON "$@" >"$dir/configure.log" 2>&1 ||
    { cat "$dir/configure.log" >&2; fail "configure failed ($dir)"; }
  cmake --build "$dir" --target q35_kernel_tests q35_quant_digest -j "$JOBS" >"$dir/build.log" 2>&1 ||
    { tail -40 "$dir/build.log" >&2; fail "build failed ($dir)"; }
}

is_aarch64() {  # ELF e_machine == EM_AARCH64 (183)
  [ "$(od -An -j18 -N2 -tu2 "$1" | tr -d ' ')" = 183 ] || fail "$1 is not an aarch64 executable"
}

# ------------------------------------------------------------------ runs
# run NAME EXPECT_ACTIVE QEMU_CPU BINARY [harness args...]: runs the harness under qemu and checks
# its exit code, the active ISA and the final "N passed, 0 failed" line.
run() {
  local name=$1 active=$2 cpu=$3 bin=$4
  shift 4
  local out rc=0
  echo "== $name"
  out=$("$QEMU" -cpu "$cpu" "$bin" "$@" 2>&1) || rc=$?
  echo "$out"
  [ "$rc" = 0 ] || fail "$name: harness exited with $rc"
  echo "$out" | grep -qx "active ISA: $active" || fail "$name: active ISA is not $active"
  LAST=$(echo "$out" | tail -1)
  echo "$LAST" | grep -Eq '^[0-9]+ passed, 0 failed$' || fail "$name: last line is '$LAST'"
  OUT=$out
}

check_neon_build() {  # check_neon_build LABEL BUILD_DIR
  local label=$1 bin=$2/q35_kernel_tests
  is_aarch64 "$bin"
  run "$label: NEON under qemu -cpu max" neon max "$bin" --require neon --require-coverage
  echo "$OUT" | grep -q '^neon: own kernels:' || fail "$label: the NEON set was not exercised"
  echo "$OUT" | grep -qx 'neon: scalar fallback: (none)' || fail "$label: NEON leaves types to the scalar fallback"
  [ "${LAST%% *}" -gt 0 ] || fail "$label: nothing was tested"
  QWEN35CPU_ISA=scalar run "$label: QWEN35CPU_ISA=scalar under qemu -cpu max" scalar max "$bin" --require neon
  echo "== $label: scalar quantizer digests, qemu-aarch64 vs native"
  "$QEMU" -cpu max "$2/q35_quant_digest" >"$2/digest.txt" || fail "$label: q35_quant_digest failed"
  diff "$HOST/digest.txt" "$2/digest.txt" || fail "$label: quantizer bytes differ between x86-64 and aarch64"
  tail -1 "$2/digest.txt"
}

# The native digests, to compare the aarch64 ones with.
HOST=$PREFIX-host
build "$HOST"
"$HOST/q35_quant_digest" >"$HOST/digest.txt" || fail "native q35_quant_digest failed"

CROSS=(-DCMAKE_TOOLCHAIN_FILE="$ROOT/tools/aarch64-toolchain.cmake")
build "$PREFIX-gcc" "${CROSS[@]}"
check_neon_build gcc "$PREFIX-gcc"

run "gcc: no dot product (qemu -cpu cortex-a72)" scalar cortex-a72 "$PREFIX-gcc/q35_kernel_tests"
echo "$OUT" | grep -qx 'neon: not supported here, skipped' || fail "NEON was not refused on a CPU without sdot"

if [ "${NEON_CHECK_CLANG:-1}" != 0 ]; then
  CLANG=$(compgen -c clang++ | grep -E '^clang\+\+(-[0-9]+)?$' | sort -V | tail -1 || true)
  if [ -n "$CLANG" ]; then
    build "$PREFIX-clang" "${CROSS[@]}" -DCMAKE_CXX_COMPILER="$CLANG"
    check_neon_build "$CLANG" "$PREFIX-clang"
  else
    echo "== clang++ not installed: clang build skipped"
  fi
fi
echo "neon_check: all passed"
