"""Converter output types: the recipes (k-quant mixes, mac192), the block-size fallback, --max-size,
--dry-run sizes (from config.json alone, equal to what a conversion writes) and the C++ quantization.

Expected types are written out here from the issue text and llama.cpp's rules for these ftypes (not
read from the converter's tables); expected sizes come from ggml's block sizes (gguf.GGML_QUANT_SIZES).
"""

from __future__ import annotations

import json
import re
import subprocess
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from fixture_util import run_cli
from test_convert import expected_ne, expected_tensors, forced_f32

from qwen35cpu import _core
from qwen35cpu.convert import convert, dry_run
from qwen35cpu.convert import sizes as sz
from qwen35cpu.convert.checkpoint import read_text_config
from qwen35cpu.convert.recipes import RECIPES, UPGRADE, padded_nbytes, plan_types
from qwen35cpu.random_checkpoint import CFG_A, layer_types, make_random_checkpoint

QT = gguf.GGMLQuantizationType
FT = gguf.LlamaFileType

# -- the real configurations (spec 1.1), as text_config dicts --------------------------------------

_COMMON: dict[str, Any] = {
    "num_key_value_heads": 2,
    "head_dim": 256,
    "linear_num_key_heads": 16,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4,
    "vocab_size": 248320,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1e7,
    "partial_rotary_factor": 0.25,
    "mrope_section": [11, 11, 10],
    "max_position_embeddings": 262144,
    "tie_word_embeddings": False,
    "full_attention_interval": 4,
    "mtp_num_hidden_layers": 1,
}
REAL: dict[str, dict[str, Any]] = {
    "397B-A17B": {
        **_COMMON, "hidden_size": 4096, "num_hidden_layers": 60, "num_attention_heads": 32,
        "linear_num_value_heads": 64, "num_experts": 512, "num_experts_per_tok": 10,
        "moe_intermediate_size": 1024, "shared_expert_intermediate_size": 1024,
    },
    "122B-A10B": {
        **_COMMON, "hidden_size": 3072, "num_hidden_layers": 48, "num_attention_heads": 32,
        "linear_num_value_heads": 64, "num_experts": 256, "num_experts_per_tok": 8,
        "moe_intermediate_size": 1024, "shared_expert_intermediate_size": 1024,
    },
    "35B-A3B": {
        **_COMMON, "hidden_size": 2048, "num_hidden_layers": 40, "num_attention_heads": 16,
        "linear_num_value_heads": 32, "num_experts": 256, "num_experts_per_tok": 8,
        "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512,
    },
}  # fmt: skip


def write_config(folder: Path, text: dict[str, Any]) -> Path:
    """A folder holding only a hub-style config.json (multimodal wrapper, rope_parameters)."""
    folder.mkdir(parents=True, exist_ok=True)
    t = {k: v for k, v in text.items() if k not in ("rope_theta", "partial_rotary_factor", "mrope_section")}
    t["model_type"] = "qwen3_5_moe_text"
    t["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": text["rope_theta"],
        "partial_rotary_factor": text["partial_rotary_factor"],
        "mrope_section": text["mrope_section"],
    }
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3_5_moe", "text_config": t}))
    return folder


def nbytes(ne: tuple[int, ...], t: QT) -> int:
    """Bytes in the data section: whole blocks along ne0, padded to the 32-byte alignment."""
    block, size = gguf.GGML_QUANT_SIZES[t]
    assert ne[0] % block == 0
    n = int(np.prod(ne)) // block * size
    return n + (-n) % 32


def mac192_type(name: str, ne: tuple[int, ...]) -> QT:
    """The issue's mac192: router gates, norms, conv and small ssm tensors F32; attention, DeltaNet
    projections, ssm_out and the shared expert Q5_K; embeddings and output Q6_K; routed experts Q3_K."""
    if forced_f32(name) or len(ne) == 1 or name.endswith(("ssm_alpha.weight", "ssm_beta.weight")):
        return QT.F32
    if name in ("token_embd.weight", "output.weight"):
        return QT.Q6_K
    if "_exps." in name:
        return QT.Q3_K
    return QT.Q5_K


def _layer(name: str) -> int:
    return int(name.split(".")[1])


def plan_of(tmp_path: Path, text: dict[str, Any], out_type: str, budget: int | None = None) -> dict[str, QT]:
    c = read_text_config(write_config(tmp_path, text))
    choices, _ = plan_types(sz.config_plan(c), c.num_hidden_layers, RECIPES[out_type], budget)
    return {ch.planned.name: ch.qtype for ch in choices}


def total_line(lines: list[str]) -> int:
    m = re.fullmatch(r"total: (\d+) bytes \((\d+\.\d\d) GB\)", lines[-2])
    assert m, lines[-2]
    assert float(m.group(2)) == pytest.approx(int(m.group(1)) / 1e9, abs=0.005)
    return int(m.group(1))


# -- recipes on the real configurations (no checkpoint needed) ---------------------------------------


@pytest.mark.parametrize("model", list(REAL))
def test_mac192_types_and_size(model: str, tmp_path: Path) -> None:
    text = REAL[model]
    ne = expected_ne(text)
    got = plan_of(tmp_path, text, "mac192")
    assert set(got) == set(ne)
    want = {name: mac192_type(name, shape) for name, shape in ne.items()}
    assert got == want
    lines = dry_run(tmp_path, "mac192")
    total = total_line(lines)
    assert total == sum(nbytes(ne[n], t) for n, t in want.items())
    if model == "397B-A17B":
        assert total <= 175e9, total  # the bound; measured: 173,606,431,744 bytes
        assert total == 173_606_431_744


def test_dry_run_tied_embeddings(tmp_path: Path) -> None:
    text = REAL["35B-A3B"]
    untied = total_line(dry_run(write_config(tmp_path / "a", text), "mac192"))
    lines = dry_run(write_config(tmp_path / "b", {**text, "tie_word_embeddings": True}), "mac192")
    assert not any(ln.startswith("output ") for ln in lines)
    assert total_line(lines) == untied - nbytes(expected_ne(text)["output.weight"], QT.Q6_K)


def _more_bits(n: int) -> set[int]:
    """llama.cpp's use_more_bits for n = 40 written out: layers < 5, >= 35, and 7, 10, ..., 34."""
    assert n == 40
    return set(range(5)) | set(range(35, 40)) | set(range(7, 35, 3))


@pytest.mark.parametrize("out_type", ["q4_k_m", "q5_k_m"])
def test_k_m_mixes(out_type: str, tmp_path: Path) -> None:
    text = REAL["35B-A3B"]
    base = {"q4_k_m": QT.Q4_K, "q5_k_m": QT.Q5_K}[out_type]
    got = plan_of(tmp_path, text, out_type)
    more = _more_bits(40)
    for name, t in got.items():
        ne = expected_ne(text)[name]
        if forced_f32(name) or len(ne) == 1:
            want = QT.F32
        elif name == "output.weight":
            want = QT.Q6_K
        elif name.endswith(
            ("attn_v.weight", "attn_qkv.weight", "ffn_down_exps.weight", "ffn_down_shexp.weight")
        ):
            want = QT.Q6_K if _layer(name) in more else base
        else:
            want = base
        assert t == want, name


def test_q3_k_m_mix(tmp_path: Path) -> None:
    text = REAL["35B-A3B"]  # 40 layers: n/16 = 2
    got = plan_of(tmp_path, text, "q3_k_m")
    for name, t in got.items():
        ne = expected_ne(text)[name]
        if forced_f32(name) or len(ne) == 1:
            want = QT.F32
        elif name == "output.weight":
            want = QT.Q6_K
        elif name.endswith(
            ("attn_v.weight", "attn_qkv.weight", "ffn_down_exps.weight", "ffn_down_shexp.weight")
        ):
            want = QT.Q5_K if _layer(name) < 2 else QT.Q4_K
        elif name.endswith(("attn_output.weight", "ssm_out.weight")):
            want = QT.Q4_K
        else:
            want = QT.Q3_K
        assert t == want, name


@pytest.mark.parametrize(
    ("out_type", "qtype"),
    [("f32", QT.F32), ("f16", QT.F16), ("bf16", QT.BF16), ("q8_0", QT.Q8_0), ("q6_k", QT.Q6_K),
     ("q2_k", QT.Q2_K), ("iq4_xs", QT.IQ4_XS)],
)  # fmt: skip
def test_uniform_types(out_type: str, qtype: QT, tmp_path: Path) -> None:
    text = REAL["122B-A10B"]
    ne = expected_ne(text)
    got = plan_of(tmp_path, text, out_type)
    for name, t in got.items():
        assert t == (QT.F32 if forced_f32(name) or len(ne[name]) == 1 else qtype), name


# -- --max-size -------------------------------------------------------------------------------------


def test_max_size_397b(tmp_path: Path) -> None:
    text = REAL["397B-A17B"]
    c = read_text_config(write_config(tmp_path, text))
    plan = sz.config_plan(c)
    base, _, _ = sz.planned_choices(c, plan, RECIPES["mac192"], None)
    for gb in (175, 192, 230):
        choices, _, budget = sz.planned_choices(c, plan, RECIPES["mac192"], int(gb * 1e9))
        assert budget == gb * 10**9 - sz.header_reserve(c, len(plan))
        total = sum(ch.padded for ch in choices)
        assert total <= budget  # never exceeds
        # every tensor at least its recipe type, only ever upgraded along UPGRADE
        for b, ch in zip(base, choices, strict=True):
            t = b.qtype
            while t != ch.qtype:
                t = UPGRADE[t]
        # the room left cannot buy any further single step
        room = budget - total
        for ch in choices:
            up = UPGRADE.get(ch.qtype)
            if up is not None:
                assert padded_nbytes(ch.planned.shape, up) - ch.padded > room, ch.planned.name
        # the text of the dry-run agrees, and the plan is deterministic
        lines = dry_run(tmp_path, "mac192", gb)
        assert total_line(lines) == total
        assert [ch.qtype for ch in sz.planned_choices(c, plan, RECIPES["mac192"], int(gb * 1e9))[0]] == [
            ch.qtype for ch in choices
        ]
    # 192 GB: the 3-bit down projections are all upgraded before any other expert matrix
    types = {
        ch.planned.name: ch.qtype for ch in sz.planned_choices(c, plan, RECIPES["mac192"], 192 * 10**9)[0]
    }
    assert all(types[f"blk.{i}.ffn_down_exps.weight"] == QT.Q4_K for i in range(60))
    gate_up = [n for n, t in types.items() if "exps" in n and "down" not in n and t != QT.Q3_K]
    assert gate_up and all(_layer(n) in (0, 59, 1, 58) for n in gate_up), gate_up


def test_max_size_priority_edges_first(tmp_path: Path) -> None:
    """A budget with room for exactly two down-projection upgrades gives them to layers 0 and 59."""
    text = REAL["397B-A17B"]
    c = read_text_config(write_config(tmp_path, text))
    plan = sz.config_plan(c)
    base, _, _ = sz.planned_choices(c, plan, RECIPES["mac192"], None)
    down = next(ch for ch in base if ch.planned.name == "blk.0.ffn_down_exps.weight")
    step = padded_nbytes(down.planned.shape, QT.Q4_K) - down.padded
    data = sum(ch.padded for ch in base) + 2 * step
    max_size = data + sz.header_reserve(c, len(plan))
    choices, _, _ = sz.planned_choices(c, plan, RECIPES["mac192"], max_size)
    changed = {b.planned.name: ch.qtype for b, ch in zip(base, choices, strict=True) if b.qtype != ch.qtype}
    assert changed == {"blk.0.ffn_down_exps.weight": QT.Q4_K, "blk.59.ffn_down_exps.weight": QT.Q4_K}


def test_max_size_too_small(tmp_path: Path) -> None:
    write_config(tmp_path, REAL["35B-A3B"])
    with pytest.raises(ValueError, match=r"the recipe alone needs \d+ bytes .* over the budget"):
        dry_run(tmp_path, "mac192", 10)
    with pytest.raises(ValueError, match="positive number of GB"):
        dry_run(tmp_path, "mac192", -1)


# -- dry-run from the command line, on a folder holding only config.json ------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("convert", *args)


def test_cli_dry_run(tmp_path: Path) -> None:
    src = write_config(tmp_path / "Qwen3.5-397B-A17B", REAL["397B-A17B"])
    assert [p.name for p in src.iterdir()] == ["config.json"]
    res = _cli("--dry-run", str(src), "--type", "mac192")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert total_line(lines) == 173_606_431_744
    groups = {ln.split("  ")[0].strip() for ln in lines[2:-2]}
    assert {"embeddings", "output", "attention", "deltanet", "shared expert", "experts gate", "experts up",
            "experts down", "router", "norms/small"} <= groups  # fmt: skip
    res = _cli("--dry-run", str(src), "--type", "mac192", "--max-size", "180")
    assert res.returncode == 0, res.stderr
    assert 173_606_431_744 < total_line(res.stdout.strip().splitlines()) <= 180e9
    for bad in (["--max-size", "100"], ["-o", str(tmp_path / "x.gguf")], ["--type", "q4_k"]):
        res = _cli("--dry-run", str(src), *(bad if bad[0] == "--type" else ["--type", "mac192", *bad]))
        assert res.returncode == 1 and res.stderr.startswith("qwen35cpu convert: error: "), res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


# -- real conversions of a small checkpoint -----------------------------------------------------------

# ne0 of the matrices: H = I = nh*... = 256 (whole 256-blocks), attn_output ne0 = nh*D = 96 (32-blocks
# only: 256-block types fall back), ffn_down_shexp ne0 = Is = 80 (not even 32-blocks: F16).
CFG_Q: dict[str, Any] = {
    **CFG_A,
    "vocab_size": 512,
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 48,
    "mrope_section": [2, 2, 2],
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 64,
    "linear_value_head_dim": 64,
    "num_experts": 2,
    "moe_intermediate_size": 256,
    "shared_expert_intermediate_size": 80,
}
Conv = Callable[..., Path]


@pytest.fixture(scope="module")
def q_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("hf") / "q"
    return folder, make_random_checkpoint(folder, CFG_Q, "hub", "bf16", seed=5)


@pytest.fixture(scope="module")
def conv(q_ckpt: tuple[Path, dict[str, np.ndarray]], tmp_path_factory: pytest.TempPathFactory) -> Conv:
    root = tmp_path_factory.mktemp("out")
    cache: dict[tuple[str, float | None], Path] = {}

    def get(out_type: str, max_size_gb: float | None = None) -> Path:
        if (out_type, max_size_gb) not in cache:
            out = root / f"{out_type}-{max_size_gb}.gguf"
            convert(q_ckpt[0], out, out_type, max_size_gb=max_size_gb, progress=False)
            cache[(out_type, max_size_gb)] = out
        return cache[(out_type, max_size_gb)]

    return get


FILE_TYPES = {
    "f32": FT.ALL_F32, "f16": FT.MOSTLY_F16, "bf16": FT.MOSTLY_BF16, "q8_0": FT.MOSTLY_Q8_0,
    "q6_k": FT.MOSTLY_Q6_K, "q5_k_m": FT.MOSTLY_Q5_K_M, "q4_k_m": FT.MOSTLY_Q4_K_M,
    "q3_k_m": FT.MOSTLY_Q3_K_M, "q2_k": FT.MOSTLY_Q2_K, "iq4_xs": FT.MOSTLY_IQ4_XS,
    "mac192": FT.MOSTLY_Q3_K_M,
}  # fmt: skip


def test_every_type_is_offered() -> None:
    from qwen35cpu.commands.convert import TYPES

    assert set(TYPES) == set(RECIPES) == set(FILE_TYPES)


@pytest.mark.parametrize("out_type", list(FILE_TYPES))
def test_conversion_matches_dry_run_and_core(
    out_type: str, conv: Conv, q_ckpt: tuple[Path, dict[str, np.ndarray]]
) -> None:
    path = conv(out_type)
    r = gguf.GGUFReader(path)
    assert r.fields["general.file_type"].contents() == int(FILE_TYPES[out_type])
    # dry-run: per-tensor types and the total equal the file's data section
    c = read_text_config(q_ckpt[0])
    plan, _, _ = sz.planned_choices(c, sz.config_plan(c), RECIPES[out_type], None)
    assert [(ch.planned.name, ch.qtype) for ch in plan] == [(t.name, t.tensor_type) for t in r.tensors]
    assert total_line(dry_run(q_ckpt[0], out_type)) == path.stat().st_size - r.data_offset
    # data: the core's quantizer applied to the independently re-derived tensor
    want = expected_tensors(q_ckpt[1], CFG_Q)
    for t in r.tensors:
        x = want[t.name]
        data = np.asarray(t.data)
        if t.tensor_type == QT.F32:
            np.testing.assert_array_equal(data.reshape(x.shape), x, err_msg=t.name)
            continue
        ref = _core.quantize(int(t.tensor_type), x.reshape(-1, x.shape[-1]), 1)
        assert data.tobytes() == ref.tobytes(), t.name
        # and gguf-py reads back what the core dequantizes
        back = gguf.quants.dequantize(data, t.tensor_type).reshape(x.shape)
        core = _core.dequantize(int(t.tensor_type), ref, x.shape[-1]).reshape(x.shape)
        np.testing.assert_array_equal(back, core, err_msg=t.name)


@pytest.mark.parametrize("out_type", ["mac192", "q4_k_m", "q3_k_m", "q2_k", "iq4_xs", "q6_k"])
def test_written_files_run(out_type: str, conv: Conv) -> None:
    """Every type a recipe writes (fallbacks included) is one the core computes: the file loads and a
    prompt gives finite logits that still follow the f32 model's (correlation > 0: these random tiny
    models amplify weight error chaotically, so nothing tighter is claimed here)."""
    import qwen35cpu

    ids = list(range(1, 9))
    logits = {}
    for t in ("f32", out_type):
        model = qwen35cpu.load(conv(t), n_threads=2)
        logits[t] = np.asarray(model.session(n_ctx=16).eval(ids))
    assert np.isfinite(logits[out_type]).all()
    assert np.corrcoef(logits["f32"], logits[out_type])[0, 1] > 0


def test_fallback_types_and_note(
    q_ckpt: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    convert(q_ckpt[0], tmp_path / "m.gguf", "mac192", progress=False)
    err = capsys.readouterr().err
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors}
    # Q5_K with ne0 = 96 -> Q8_0; ne0 = 80 -> F16; both said on stderr
    assert types["blk.3.attn_output.weight"] == QT.Q8_0
    assert types["blk.0.ffn_down_shexp.weight"] == QT.F16
    assert "written as Q8_0 instead of Q5_K: blk.3.attn_output.weight" in err
    assert "written as F16 instead of Q5_K" in err and "blk.0.ffn_down_shexp.weight" in err
    # Q3_K / Q4_K rows of 96 -> IQ4_NL
    for out_type in ("q3_k_m", "q2_k", "iq4_xs"):
        c = read_text_config(q_ckpt[0])
        plan, _, _ = sz.planned_choices(c, sz.config_plan(c), RECIPES[out_type], None)
        assert {ch.planned.name: ch.qtype for ch in plan}["blk.3.attn_output.weight"] == QT.IQ4_NL


def test_max_size_real_file(conv: Conv, q_ckpt: tuple[Path, dict[str, np.ndarray]]) -> None:
    base = conv("mac192")
    gb = (base.stat().st_size + 200_000) / 1e9
    c = read_text_config(q_ckpt[0])
    reserve = sz.header_reserve(c, len(sz.config_plan(c)))
    gb += reserve / 1e9  # the budget keeps room for the header: beyond it, 200 kB to spend
    path = conv("mac192", gb)
    assert path.stat().st_size <= gb * 1e9
    r = gguf.GGUFReader(path)
    total = path.stat().st_size - r.data_offset
    assert total == total_line(dry_run(q_ckpt[0], "mac192", gb))
    rb = {t.name: t.tensor_type for t in gguf.GGUFReader(base).tensors}
    up = {t.name: t.tensor_type for t in r.tensors if t.tensor_type != rb[t.name]}
    assert up, "the extra room bought nothing"
    assert total > base.stat().st_size - gguf.GGUFReader(base).data_offset
    # the expert down projections move first: one step of all four costs 4 * 17408 bytes < 200 kB
    assert all(up.get(f"blk.{i}.ffn_down_exps.weight") in (QT.Q4_K, QT.Q5_K) for i in range(4)), up


def test_threads_give_identical_bytes(
    q_ckpt: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qwen35cpu.convert import writer

    a = convert(q_ckpt[0], tmp_path / "a.gguf", "q4_k_m", n_threads=1, progress=False)
    # every tensor through the threaded float32 conversion (fused hub experts, and per-expert tensors)
    monkeypatch.setattr(writer, "_PARALLEL_MIN", 1)
    b = convert(q_ckpt[0], tmp_path / "b.gguf", "q4_k_m", n_threads=3, progress=False)
    assert a.read_bytes() == b.read_bytes()
    sp = tmp_path / "q"  # same values (same cfg and seed), save_pretrained layout, same folder name
    make_random_checkpoint(sp, CFG_Q, "save_pretrained", "bf16", seed=5)
    c = convert(sp, tmp_path / "c.gguf", "q4_k_m", n_threads=3, progress=False)
    ta, tc = gguf.GGUFReader(a).tensors, gguf.GGUFReader(c).tensors
    assert [t.name for t in ta] == [t.name for t in tc]
    for x, y in zip(ta, tc, strict=True):
        assert np.asarray(x.data).tobytes() == np.asarray(y.data).tobytes(), x.name
    with pytest.raises(ValueError, match="--threads must be at least 1"):
        convert(q_ckpt[0], tmp_path / "d.gguf", "q4_k_m", n_threads=0, progress=False)


def test_failures_leave_nothing(
    q_ckpt: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "m.gguf"
    out.write_bytes(b"previous")
    with pytest.raises(ValueError, match="over the budget"):
        convert(q_ckpt[0], out, "q4_k_m", max_size_gb=0.001, progress=False)
    # a header larger than the room kept for it is refused before any tensor is written
    monkeypatch.setattr(sz, "RESERVE_PER_TOKEN", 0)
    monkeypatch.setattr(sz, "RESERVE_PER_TENSOR", 0)
    monkeypatch.setattr(sz, "RESERVE_FIXED", 1000)
    with pytest.raises(ValueError, match="the header and metadata take"):
        convert(q_ckpt[0], out, "q4_k_m", max_size_gb=1.0, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"]
    assert out.read_bytes() == b"previous"


def test_streaming_peak_memory_quantized(tmp_path: Path) -> None:
    src = tmp_path / "src"
    canon = make_random_checkpoint(src, {**CFG_Q, "num_experts": 8}, "hub", "bf16")
    want = expected_tensors(canon, {**CFG_Q, "num_experts": 8})
    largest = max(x.nbytes for x in want.values())
    assert sum(x.nbytes for x in want.values()) >= 8 * largest
    convert(src, tmp_path / "warm.gguf", "q4_k_m", progress=False)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        convert(src, tmp_path / "m.gguf", "q4_k_m", progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the same bound as tests/test_convert.py: the f32 tensor being built (twice during a transform)
    # plus its quantized bytes (< its f32 size) and 1 MiB of bookkeeping
    assert peak < 3 * largest + (1 << 20), (peak, largest)


def test_cli_convert_mac192(q_ckpt: tuple[Path, dict[str, np.ndarray]], conv: Conv, tmp_path: Path) -> None:
    out = tmp_path / "cli.gguf"
    res = _cli(str(q_ckpt[0]), "-o", str(out), "--type", "mac192", "--threads", "2", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == conv("mac192").read_bytes()
    res = _cli(str(q_ckpt[0]), "--type", "mac192")
    assert res.returncode == 1 and "-o OUT" in res.stderr


def test_layer_kinds_of_cfg_q() -> None:
    assert layer_types(CFG_Q) == ["linear_attention"] * 3 + ["full_attention"]
