"""The forward pass against transformers' logits (goldens in tests/fixtures/tiny).

Every tiny config is converted with our converter, loaded, and evaluated three ways: the whole
prompt at once, token by token, and in uneven chunks; each must match the golden logits.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fixture_util import list_fixtures, load_golden

import qwen35cpu

FIXTURES = list_fixtures()

# Max |logit - golden| allowed per GGUF type. f32 is the brief's bound; the others were set
# from measurement (see test_quantized_bounds_are_tight for the numbers seen) with headroom.
BOUND = {"f32": 1e-3, "f16": 2e-2, "bf16": 1.5e-1, "q8_0": 1.5e-1}


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def chunks(n: int, sizes: list[int]) -> list[tuple[int, int]]:
    out, i, k = [], 0, 0
    while i < n:
        s = min(sizes[k % len(sizes)], n - i)
        out.append((i, i + s))
        i += s
        k += 1
    return out


@pytest.mark.parametrize("name", FIXTURES)
def test_prompt_at_once_f32(name: str, converted: Callable[[str, str], Path]) -> None:
    prompt, golden = load_golden(name)
    model = qwen35cpu.load(converted(name, "f32"), n_threads=2)
    logits = model.session(n_ctx=len(prompt)).eval(prompt, all_logits=True)
    assert logits.shape == golden.shape
    assert max_diff(logits, golden) < BOUND["f32"]


@pytest.mark.parametrize("name", FIXTURES)
def test_token_by_token_f32(name: str, converted: Callable[[str, str], Path]) -> None:
    prompt, golden = load_golden(name)
    sess = qwen35cpu.load(converted(name, "f32"), n_threads=2).session(n_ctx=len(prompt))
    rows = [sess.eval([int(t)]) for t in prompt]
    assert sess.n_past == len(prompt)
    assert max_diff(np.stack(rows), golden) < BOUND["f32"]


@pytest.mark.parametrize("name", FIXTURES)
def test_chunked_f32(name: str, converted: Callable[[str, str], Path]) -> None:
    prompt, golden = load_golden(name)
    sess = qwen35cpu.load(converted(name, "f32"), n_threads=1).session(n_ctx=len(prompt))
    # Uneven chunks: 1-token, shorter and longer than the conv window, and one crossing 64.
    parts = [sess.eval(prompt[a:b], all_logits=True) for a, b in chunks(len(prompt), [5, 1, 2, 67, 3])]
    assert max_diff(np.concatenate(parts), golden) < BOUND["f32"]


@pytest.mark.parametrize("out_type", ["f16", "bf16", "q8_0"])
@pytest.mark.parametrize("name", FIXTURES)
def test_converted_types(name: str, out_type: str, converted: Callable[[str, str], Path]) -> None:
    prompt, golden = load_golden(name)
    sess = qwen35cpu.load(converted(name, out_type), n_threads=2).session(n_ctx=len(prompt))
    diff = max_diff(sess.eval(prompt, all_logits=True), golden)
    print(f"{name} {out_type}: max |dlogit| = {diff:.2e}")
    assert diff < BOUND[out_type]
