"""`qwen35cpu synth`: synthetic slices of the released shapes, laid out as the converter lays out a real
checkpoint, filled from pools of quantized random rows, loadable by qwen35cpu (and llama.cpp when
llama_cpp is importable)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import gguf
import numpy as np
import pytest

import qwen35cpu
from qwen35cpu import _core, cli
from qwen35cpu.convert.recipes import RECIPES
from qwen35cpu.convert.sizes import config_plan
from qwen35cpu.synth import POOL_ROWS, PRESETS, SYNTH_KEY, _PoolCache, synth_plan, write_synth

QT = gguf.GGMLQuantizationType
REQUIRE_LLAMA = os.environ.get("QWEN35CPU_REQUIRE_INTEROP") == "1"

# The loaded slice: the smallest preset, 4 layers (3 DeltaNet + 1 attention), 4 experts, mac192 (three
# k-quant types and F32: four pools). About 0.9 GB, mostly the two 248320-row vocabulary matrices.
LAYERS, EXPERTS, TYPE, PRESET, SEED = 4, 4, "mac192", "35b", 7


@pytest.fixture(scope="module")
def slice_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "slice.gguf"
    write_synth(out, LAYERS, EXPERTS, TYPE, PRESET, SEED, n_threads=2)
    return out


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_plan_has_the_preset_shapes(preset: str) -> None:
    p = PRESETS[preset]
    cfg, choices = synth_plan(8, 16, "q4_k_m", preset)
    assert [c.planned.name for c in choices] == [t.name for t in config_plan(cfg)]
    shapes = {c.planned.name: c.planned.shape for c in choices}
    h = p.hidden
    assert shapes["token_embd.weight"] == (248320, h)
    assert shapes["output.weight"] == (248320, h)
    assert shapes["blk.0.ffn_gate_exps.weight"] == (16, p.expert_width, h)
    assert shapes["blk.0.ffn_down_exps.weight"] == (16, h, p.expert_width)
    assert shapes["blk.0.ffn_up_shexp.weight"] == (p.shared_width, h)
    # 3:1 pattern: layers 3 and 7 attention (q_proj rows 2*heads*256), the rest DeltaNet.
    assert [i for i in range(8) if f"blk.{i}.attn_q.weight" in shapes] == [3, 7]
    assert [i for i in range(8) if f"blk.{i}.ssm_out.weight" in shapes] == [0, 1, 2, 4, 5, 6]
    assert shapes["blk.3.attn_q.weight"] == (2 * p.heads * 256, h)
    assert shapes["blk.3.attn_k.weight"] == (p.kv_heads * 256, h)
    conv = 2 * p.linear_key_heads * 128 + p.linear_value_heads * 128
    assert shapes["blk.0.attn_qkv.weight"] == (conv, h)
    assert shapes["blk.0.ssm_out.weight"] == (h, p.linear_value_heads * 128)
    assert cfg.num_experts_per_tok == min(p.top_k, 16)


def test_plan_types_follow_the_recipe() -> None:
    _, choices = synth_plan(4, 64, "mac192")
    by_name = {c.planned.name: c.qtype for c in choices}
    assert by_name["blk.0.ffn_gate_exps.weight"] == QT.Q3_K  # mac192: experts q3_k
    assert by_name["blk.0.attn_qkv.weight"] == QT.Q5_K  # attention / DeltaNet q5_k
    assert by_name["output.weight"] == QT.Q6_K
    assert by_name["blk.0.ssm_a"] == QT.F32
    cfg, _ = synth_plan(1, 3, "q4_k_m")
    assert cfg.num_experts_per_tok == 3  # top-k capped at the experts there are


def test_pool_is_seeded_and_independent_of_threads() -> None:
    a = _PoolCache(3, 1).get(QT.Q4_K, 512)
    b = _PoolCache(3, 2).get(QT.Q4_K, 512)
    c = _PoolCache(4, 1).get(QT.Q4_K, 512)
    assert a.shape == (POOL_ROWS, 2 * 144)  # two Q4_K blocks of 144 bytes per 512-weight row
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_slice_metadata_and_layout(slice_path: Path) -> None:
    f = _core.GgufFile(slice_path)  # the core's reader: gguf-py's takes ~20 s over the vocabulary
    assert f.get_str(f"{SYNTH_KEY}.preset") == PRESET
    assert f.get_str(f"{SYNTH_KEY}.type") == TYPE
    assert f.get_int(f"{SYNTH_KEY}.layers") == LAYERS
    assert f.get_int(f"{SYNTH_KEY}.experts") == EXPERTS
    assert f.get_int(f"{SYNTH_KEY}.seed") == SEED
    assert f.get_int(f"{SYNTH_KEY}.full_layers") == PRESETS[PRESET].layers
    assert f.get_int(f"{SYNTH_KEY}.full_experts") == PRESETS[PRESET].experts
    assert f.get_int("qwen35moe.expert_count") == EXPERTS
    assert f.get_int("qwen35moe.block_count") == LAYERS
    assert f.get_int("general.file_type") == int(RECIPES[TYPE].file_type)
    assert f.get_str("tokenizer.ggml.pre") == "qwen35"
    assert len(f.get_str_array("tokenizer.ggml.tokens")) == 248320
    _, choices = synth_plan(LAYERS, EXPERTS, TYPE, PRESET)
    assert [(t.name, t.type, t.nbytes) for t in f.tensors] == [
        (c.planned.name, int(c.qtype), c.nbytes) for c in choices
    ]
    # Every row of a quantized tensor is one of its pool's rows (and they are not all the same row).
    pools = _PoolCache(SEED, 1)
    for name in ("blk.0.ffn_down_exps.weight", "blk.3.attn_q.weight", "output.weight"):
        t = f.tensor_info(name)
        pool = pools.get(QT(t.type), int(t.ne[0]))
        rows = np.asarray(f.tensor_bytes(name)).reshape(-1, pool.shape[1])
        known = {bytes(row) for row in pool}
        assert all(bytes(row) in known for row in rows[:: max(1, len(rows) // 200)])
        assert len({bytes(row) for row in rows[:200]}) > 100
    ssm_a = np.frombuffer(f.tensor_bytes("blk.0.ssm_a"), dtype=np.float32)
    assert len(ssm_a) == PRESETS[PRESET].linear_value_heads and (ssm_a < 0).all()


def test_slice_runs_in_qwen35cpu(slice_path: Path) -> None:
    m = qwen35cpu.load(slice_path, n_threads=2)
    s = m.session(32)
    logits = s.eval(m.tokenize("The quick brown fox"))
    assert logits.shape == (248320,)
    assert np.isfinite(logits).all()
    # Unit-scale weights keep the logits at unit scale: not collapsed to a constant, not blown up.
    assert 0.1 < float(logits.std()) < 10.0
    nxt = s.eval([int(np.argmax(logits))])
    assert np.isfinite(nxt).all()


def test_slice_loads_in_llama_cpp(slice_path: Path) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        if REQUIRE_LLAMA:
            pytest.fail("llama_cpp is not importable and QWEN35CPU_REQUIRE_INTEROP=1")
        pytest.skip("llama_cpp not installed (pip install qwen35cpu[bench])")
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(slice_path), n_ctx=64, n_threads=2, verbose=False, logits_all=False)
    toks = llm.tokenize(b"The quick brown fox", add_bos=False)
    assert toks == qwen35cpu.load(slice_path).tokenize("The quick brown fox")
    llm.eval(toks)
    logits = np.asarray(llm.scores[llm.n_tokens - 1])
    assert np.isfinite(logits).all()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--layers", "0", "--experts", "4"], "layers must be a positive integer"),
        (["--layers", "1", "--experts", "0"], "experts must be a positive integer"),
        (["--layers", "1", "--experts", "4", "--type", "q9"], "unsupported --type"),
        (["--layers", "1", "--experts", "4", "--seed", "-1"], "seed must be a non-negative"),
        (["--layers", "1", "--experts", "4", "--threads", "0"], "threads must be at least 1"),
    ],
)
def test_bad_arguments_give_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    rc = cli.main(["synth", "-o", str(tmp_path / "x.gguf"), *argv])
    err = capsys.readouterr().err
    assert rc == 1
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_missing_output_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_synth(tmp_path / "no" / "x.gguf", 1, 4, "q2_k", "35b")
    with pytest.raises(ValueError, match="unknown preset"):
        write_synth(tmp_path / "x.gguf", 1, 4, "q2_k", "1t")
