"""The C++ kernel tests (tests/cpp/test_kernels.cpp): every SIMD kernel set this CPU supports against
the scalar reference, for every computable type. Built with CMake into a temporary folder."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def required_isas() -> list[str]:
    """The sets this CPU must run: a test that finds none of them supported must fail, not pass empty."""
    flags = cpu_flags()
    need = []
    if platform.machine() in ("x86_64", "AMD64"):
        if {"avx2", "fma", "f16c"} <= flags:
            need.append("avx2")
        if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
            need.append("avx512")
    elif platform.machine() in ("aarch64", "arm64") and ("asimddp" in flags or platform.system() == "Darwin"):
        need.append("neon")
    return need


@pytest.fixture(scope="module")
def harness(cpp_build: Callable[[str], Path]) -> Path:
    return cpp_build("q35_kernel_tests")


def test_simd_kernels_match_the_scalar_reference(harness: Path) -> None:
    args = [str(harness), "--require-coverage"]
    for isa in required_isas():
        args += ["--require", isa]
    run = subprocess.run(args, capture_output=True, text=True)
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert last.endswith("0 failed") and not last.startswith("0 passed"), last


def test_harness_rejects_an_unsupported_requirement(harness: Path) -> None:
    # The --require guard is what keeps CI from passing on a machine that tests no SIMD set.
    run = subprocess.run([str(harness), "--require", "no-such-isa"], capture_output=True, text=True)
    assert run.returncode == 1
    assert "FAIL required ISA no-such-isa" in run.stdout


def test_avx512_bw_kernels_without_vnni(harness: Path) -> None:
    # On a VNNI CPU the avx512 set uses vpdpbusd / vpdpwssd; QWEN35CPU_NO_VNNI=1 keeps the BW-only
    # kernels that CPUs without VNNI run, so both variants are checked here. Without VNNI (or
    # without AVX-512) the variable changes nothing and this repeats the run above.
    env = {**os.environ, "QWEN35CPU_NO_VNNI": "1"}
    args = [str(harness)]
    for isa in required_isas():
        args += ["--require", isa]
    run = subprocess.run(args, capture_output=True, text=True, env=env)
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert last.endswith("0 failed") and not last.startswith("0 passed"), last
