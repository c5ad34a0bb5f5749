"""Opt-in per-op timing of the core (for `qwen35cpu bench`): off by default, and when on, every op of
the forward pass is counted and the counted time fits inside the measured wall time."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qwen35cpu import _core

OPS = {"embed", "norm_residual", "attention", "deltanet", "moe_router", "moe_experts", "lm_head"}


def test_op_times(converted: Callable[[str, str], Path]) -> None:
    s = _core.Session(_core.Model(str(converted("deep", "q8_0")), 2), 64)
    ids = np.arange(1, 9, dtype=np.int32)
    s.eval(ids, False)
    t = s.op_times()
    assert set(t) == OPS and all(v == 0.0 for v in t.values())  # off: nothing counted

    s.set_profiling(True)
    t0 = time.perf_counter()
    s.eval(ids, False)  # prompt path
    for i in range(4):  # decode path
        s.eval(np.array([i + 1], dtype=np.int32), False)
    wall = time.perf_counter() - t0
    t = s.op_times()
    # Every layer kind of the fixture runs, so each op took some time (embed, a row copy, may read as 0
    # at the clock's resolution); the ops do not overlap.
    assert all(t[op] > 0.0 for op in OPS - {"embed"}), t
    assert sum(t.values()) <= wall

    s.reset_op_times()
    assert all(v == 0.0 for v in s.op_times().values())
