"""Where the committed goldens live and how to read them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures" / "tiny"


def list_fixtures() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "golden.npz").exists())


def fixture_dir(name: str) -> Path:
    return FIXTURES / name


def load_golden(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(prompt ids [n] int32, transformers' logits [n, vocab] float32)."""
    with np.load(fixture_dir(name) / "golden.npz") as z:
        return z["prompt"], z["logits"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`qwen35cpu ARGS` in a subprocess, with the environment as it is: the subprocess imports the same
    qwen35cpu as the tests (installed, or the developer build through PYTHONPATH=src)."""
    return subprocess.run(
        [sys.executable, "-m", "qwen35cpu.cli", *args], capture_output=True, text=True, timeout=timeout
    )
