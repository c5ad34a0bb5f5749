"""The Python API: sessions, state, errors on bad input, threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest
from fixture_util import load_golden

import qwen35cpu
from qwen35cpu import _core

NAME = "nv2"


@pytest.fixture(scope="module")
def model_path(converted: Callable[[str, str], Path]) -> Path:
    return converted(NAME, "f32")


def test_config_dataclass(model_path: Path) -> None:
    model = qwen35cpu.load(model_path, n_threads=1)
    c = model.config
    assert isinstance(c, qwen35cpu.ModelConfig)
    assert c.n_layer == len(c.is_attn)
    assert c.is_attn[3] and not c.is_attn[0]
    assert c.n_vocab == load_golden(NAME)[1].shape[1]
    assert model.n_threads == 1


def test_sessions_are_independent(model_path: Path) -> None:
    prompt, golden = load_golden(NAME)
    model = qwen35cpu.load(model_path, n_threads=2)
    a, b = model.session(n_ctx=128), model.session(n_ctx=128)
    other = np.array([7, 8, 9, 10, 11], dtype=np.int32)
    out_a = []
    for i, t in enumerate(prompt[:20]):
        out_a.append(a.eval([int(t)]))
        if i % 3 == 0:
            b.eval(other[: 1 + i % 4])  # interleaved work on another sequence
    assert np.max(np.abs(np.stack(out_a) - golden[:20])) < 1e-3
    assert a.n_past == 20


def test_reset_starts_over(model_path: Path) -> None:
    prompt, golden = load_golden(NAME)
    sess = qwen35cpu.load(model_path, n_threads=1).session(n_ctx=256)
    sess.eval(prompt[:30])
    sess.reset()
    assert sess.n_past == 0
    assert np.max(np.abs(sess.eval(prompt, all_logits=True) - golden)) < 1e-3


def test_context_full_is_a_clear_error_and_keeps_state(model_path: Path) -> None:
    prompt, golden = load_golden(NAME)
    sess = qwen35cpu.load(model_path, n_threads=1).session(n_ctx=10)
    sess.eval(prompt[:8])
    with pytest.raises(ValueError, match=r"context is full: 8 tokens evaluated \+ 3 new > n_ctx 10"):
        sess.eval(prompt[8:11])
    assert sess.n_past == 8
    last = sess.eval(prompt[8:10])  # still usable up to n_ctx
    assert np.max(np.abs(last - golden[9])) < 1e-3


@pytest.mark.parametrize(
    ("ids", "match"),
    [
        ([], "at least one token"),
        ([-1], "outside the vocabulary"),
        ([10**6], "outside the vocabulary"),
        ([2**40], "out of range"),
        ([[1, 2]], "1-D"),
        ([1.5], "integers"),
    ],
)
def test_bad_ids(model_path: Path, ids: list, match: str) -> None:
    sess = qwen35cpu.load(model_path, n_threads=1).session(n_ctx=16)
    with pytest.raises(ValueError, match=match):
        sess.eval(ids)
    assert sess.n_past == 0


def test_bad_arguments(model_path: Path) -> None:
    with pytest.raises(ValueError, match="n_ctx"):
        qwen35cpu.load(model_path, n_threads=1).session(n_ctx=0)
    with pytest.raises(ValueError, match="n_threads"):
        qwen35cpu.load(model_path, n_threads=0)
    with pytest.raises(FileNotFoundError, match="no such file"):
        qwen35cpu.load(model_path.parent / "missing.gguf")


def test_threads_run_concurrently_and_release_the_gil(model_path: Path) -> None:
    prompt, golden = load_golden(NAME)
    model = qwen35cpu.load(model_path, n_threads=1)
    results: dict[int, list[np.ndarray]] = {i: [] for i in range(3)}
    inside: list[tuple[float, float]] = []  # (start, end) of every eval call

    def work(i: int) -> None:
        for _ in range(4):
            sess = model.session(n_ctx=len(prompt))
            t0 = time.perf_counter()
            out = sess.eval(prompt, all_logits=True)
            inside.append((t0, time.perf_counter()))
            results[i].append(out)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    ticks: list[float] = []
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        ticks.append(time.perf_counter())  # the main thread keeps running Python while the evals run
        threads[0].join(0.0005)
    for t in threads:
        t.join()
    # Python ran in the main thread while an eval was inside the core: only possible if eval released
    # the GIL (holding it, the main thread could tick only between calls, never inside one).
    during = sum(any(a < x < b for a, b in inside) for x in ticks)
    assert during >= 3, (during, len(ticks))
    for i in range(3):
        for out in results[i]:
            assert np.max(np.abs(out - golden)) < 1e-3


def test_thread_count_does_not_change_logits(model_path: Path) -> None:
    prompt, _ = load_golden(NAME)
    one = qwen35cpu.load(model_path, n_threads=1).session(n_ctx=len(prompt)).eval(prompt, all_logits=True)
    two = qwen35cpu.load(model_path, n_threads=2).session(n_ctx=len(prompt)).eval(prompt, all_logits=True)
    np.testing.assert_array_equal(one, two)


# ---------------------------------------------------------------- files that must be refused


def rewrite(src: Path, dst: Path, *, drop: str | None = None, arch: str | None = None,
            retype: str | None = None) -> Path:
    """Copy a GGUF with one tensor dropped, the architecture renamed or one tensor's type changed."""
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, arch or "qwen35moe")
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        renamed = arch and f.name.startswith("qwen35moe.")
        name = arch + f.name[len("qwen35moe"):] if renamed else f.name
        val = f.contents()
        vtype = f.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(name, val, vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(name, val, vtype)
    for t in r.tensors:
        if t.name == drop:
            continue
        data = np.array(t.data)
        if t.name == retype:
            # A valid Q4_1 tensor: a type the forward pass does not compute.
            raw = np.zeros((int(t.shape[1]), int(t.shape[0]) // 32 * 20), dtype=np.uint8)
            w.add_tensor(t.name, raw, raw_dtype=gguf.GGMLQuantizationType.Q4_1)
            continue
        w.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def test_missing_tensor(model_path: Path, tmp_path: Path) -> None:
    bad = rewrite(model_path, tmp_path / "bad.gguf", drop="blk.1.ssm_a")
    with pytest.raises(ValueError, match=r"bad\.gguf: missing tensor blk\.1\.ssm_a"):
        qwen35cpu.load(bad)


def test_wrong_architecture(model_path: Path, tmp_path: Path) -> None:
    bad = rewrite(model_path, tmp_path / "llama.gguf", arch="llama")
    with pytest.raises(ValueError, match=r"llama\.gguf: architecture 'llama' is not supported"):
        qwen35cpu.load(bad)


def test_not_a_gguf(tmp_path: Path) -> None:
    p = tmp_path / "junk.gguf"
    p.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(_core.GgufError, match=r"junk\.gguf"):
        qwen35cpu.load(p)


def test_truncated_model(model_path: Path, tmp_path: Path) -> None:
    p = tmp_path / "cut.gguf"
    p.write_bytes(model_path.read_bytes()[: model_path.stat().st_size // 2])
    with pytest.raises(_core.GgufError, match=r"cut\.gguf"):
        qwen35cpu.load(p)


def test_unsupported_tensor_type(model_path: Path, tmp_path: Path) -> None:
    bad = rewrite(model_path, tmp_path / "q41.gguf", retype="blk.0.ffn_up_shexp.weight")
    msg = r"tensor blk\.0\.ffn_up_shexp\.weight has type Q4_1, which qwen35cpu cannot"
    with pytest.raises(ValueError, match=msg):
        qwen35cpu.load(bad)
