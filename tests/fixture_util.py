"""Where the committed goldens live and how to read them."""

from __future__ import annotations

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
