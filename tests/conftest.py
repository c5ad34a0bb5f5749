"""Shared test fixtures: tiny checkpoints converted to GGUF once per test session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """converted(name, type) -> path of tests/fixtures/tiny/<name> converted to <type>, cached."""
    from fixture_util import fixture_dir

    from qwen35cpu.convert import convert

    root = tmp_path_factory.mktemp("gguf")
    cache: dict[tuple[str, str], Path] = {}

    def get(name: str, out_type: str) -> Path:
        if (name, out_type) not in cache:
            out = root / f"{name}-{out_type}.gguf"
            convert(fixture_dir(name), out, out_type, progress=False)
            cache[(name, out_type)] = out
        return cache[(name, out_type)]

    return get


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reference tests need torch + transformers; without them they skip, except in CI."""
    import importlib.util
    import os

    have = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
    if have:
        return
    if os.environ.get("QWEN35CPU_REQUIRE_REFERENCE"):
        raise pytest.UsageError("reference tests need torch and transformers: pip install '.[reference]'")
    skip = pytest.mark.skip(reason="needs the [reference] extra (torch, transformers)")
    for item in items:
        if "reference" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cpp_build(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """cpp_build(target) -> path of a C++ test program (tests/cpp), all built in one folder, so the
    core library compiles once per test session."""
    from fixture_util import build_cpp_target

    build = tmp_path_factory.mktemp("cpp-tests")
    return lambda target: build_cpp_target(build, target)
