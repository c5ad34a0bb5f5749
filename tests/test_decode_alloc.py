"""Decode allocates nothing in its token loop (tests/cpp/decode_alloc.cpp counts every operator new)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def counter(cpp_build: Callable[[str], Path]) -> Path:
    return cpp_build("q35_decode_alloc")


@pytest.mark.parametrize(
    ("name", "typ", "threads"), [("nv2", "q8_0", 2), ("deep", "q8_0", 3), ("nv2", "f32", 1)]
)
def test_no_allocation_in_the_token_loop(
    counter: Path, converted: Callable[[str, str], Path], name: str, typ: str, threads: int
) -> None:
    # 200 steps: a KV cache grown by doubling would reallocate several times over them.
    run = subprocess.run([str(counter), str(converted(name, typ)), str(threads), "512", "200"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    loading, loop = run.stdout.strip().splitlines()
    assert int(loading.split(":")[1]) > 0  # the counter sees the library's allocations
    assert loop == "allocations in 200 decode steps: 0"
