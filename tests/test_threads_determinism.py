"""The decode path gives the same bits whatever the thread count, and the same bits as the prompt path.

Every matrix row, attention head and DeltaNet head is computed by the same code whichever thread gets
it, and sums run in a fixed order, so greedy decoding on quantized models must give identical tokens
and bitwise identical logits with 1, 2 and 3 threads (3 splits rows unevenly). The one-token MoE path
(all experts' rows as one job, weighted sum at the end) sums in the batched path's order, so
re-evaluating the decoded sequence as one prompt reproduces every step's logits exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixture_util import CFG_256

from qwen35cpu import _core
from qwen35cpu.convert import convert
from qwen35cpu.random_checkpoint import text_tensor_shapes, write_checkpoint

# Matrix inputs of 256 so the k-quants of q4_k_m apply to every matrix; top-3 routing.
CFG = {**CFG_256, "num_experts_per_tok": 3}
PROMPT = np.random.default_rng(3).integers(0, CFG["vocab_size"], 9).astype(np.int32)
N_GEN = 12


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("threads")
    rng = np.random.default_rng(5)
    canon = {}
    for name, shape in text_tensor_shapes(CFG).items():
        if name.endswith("A_log"):
            canon[name] = rng.uniform(-1.0, 1.5, shape).astype(np.float32)
        elif "norm" in name or name.endswith("dt_bias"):
            canon[name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:  # std 1/sqrt(fan-in): logits neither flat nor saturated, so argmax is not a tie
            canon[name] = (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
    write_checkpoint(root / "hf", CFG, canon)
    return root / "hf"


def greedy(path: Path, n_threads: int) -> tuple[list[int], np.ndarray]:
    """Greedy tokens after PROMPT (one eval per token) and the logits of every step [N_GEN, V]."""
    s = _core.Session(_core.Model(str(path), n_threads), len(PROMPT) + N_GEN)
    lg = s.eval(PROMPT, False)
    toks, steps = [], []
    for _ in range(N_GEN):
        steps.append(lg.copy())
        toks.append(int(np.argmax(lg)))
        lg = s.eval(np.array([toks[-1]], dtype=np.int32), False)
    return toks, np.stack(steps)


@pytest.mark.parametrize("qtype", ["q8_0", "q4_k_m"])
def test_greedy_identical_across_thread_counts(hf_dir: Path, tmp_path: Path, qtype: str) -> None:
    path = convert(hf_dir, tmp_path / f"{qtype}.gguf", qtype, progress=False)
    toks1, lg1 = greedy(path, 1)
    assert len(set(toks1)) > 1, "degenerate model: greedy repeats one token"
    for n in (2, 3):
        toks, lg = greedy(path, n)
        assert toks == toks1, f"{qtype}: {n} threads decode {toks}, 1 thread {toks1}"
        assert np.array_equal(lg, lg1), f"{qtype}: logits with {n} threads differ from 1 thread"

    # The same sequence as one prompt (batched path): the logits at each decoded step's position.
    seq = np.concatenate([PROMPT, np.array(toks1[:-1], dtype=np.int32)])
    s = _core.Session(_core.Model(str(path), 2), len(seq))
    all_lg = np.asarray(s.eval(seq, True))
    assert np.array_equal(all_lg[len(PROMPT) - 1 :], lg1), f"{qtype}: decode and prompt paths differ"


def test_quantized_model_keeps_f16_kv_rows(hf_dir: Path, tmp_path: Path) -> None:
    """Quantized files get an F16 KV cache (2 bytes a value; float files keep F32, see
    Config::kv_value_bytes): snapshots and blobs hold F16 rows; a blob round trip continues
    bit-identically."""
    c = CFG
    # Per token: K and V of the one attention layer.
    kv_values = 2 * 1 * c["num_key_value_heads"] * c["head_dim"]
    n = len(PROMPT)
    sizes = {}
    for qtype in ("f32", "q8_0"):
        path = convert(hf_dir, tmp_path / f"{qtype}.gguf", qtype, progress=False)
        model = _core.Model(str(path), 2)
        s = _core.Session(model, n + 4)
        s.eval(PROMPT[:-1], False)
        st0 = s.snapshot()
        sizes[qtype] = _core.Session(model, n + 4).snapshot().nbytes  # recurrent parts only
        assert st0.nbytes - sizes[qtype] == kv_values * (n - 1) * (4 if qtype == "f32" else 2)
        want = s.eval(PROMPT[-1:], False)
        back = _core.SessionState.deserialize(model, st0.serialize(), None)
        s2 = _core.Session(model, n + 4)
        s2.restore(back)
        assert np.array_equal(s2.eval(PROMPT[-1:], False), want)
