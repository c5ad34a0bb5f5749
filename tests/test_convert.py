"""The HF -> GGUF converter on tiny random checkpoints (qwen35cpu.random_checkpoint), read back with gguf-py.

Every GGUF tensor is checked against an independent numpy re-derivation of spec 5.3 written here
(not the converter's mapping table), for both checkpoint layouts, all output types, and bad input.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from fixture_util import run_cli

from qwen35cpu.convert import convert
from qwen35cpu.convert import mapping as mp
from qwen35cpu.convert.checkpoint import read_text_config
from qwen35cpu.random_checkpoint import CFG_A, CFG_B, layer_types, make_random_checkpoint

Ckpt = Callable[[str], tuple[Path, dict[str, np.ndarray]]]  # fixture: name -> (folder, canonical tensors)
GgufOf = Callable[[str, str], Path]  # fixture: (checkpoint name, out type) -> converted file
QT = gguf.GGMLQuantizationType

# -- checkpoints, built once per module ------------------------------------------------------------

# name -> (cfg, layout, dtype, shards, mtp, visual, seed). Pairs with the same cfg/dtype/seed hold the
# same values in the two layouts.
CKPTS: dict[str, tuple[dict[str, Any], str, str, int, bool, bool, int]] = {
    "a_hub": (CFG_A, "hub", "bf16", 3, True, True, 1),
    "a_sp": (CFG_A, "save_pretrained", "bf16", 1, False, False, 1),
    "b_hub": (CFG_B, "hub", "f32", 1, True, False, 2),
    "b_sp": (CFG_B, "save_pretrained", "f32", 2, False, True, 2),
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Ckpt:
    root = tmp_path_factory.mktemp("hf")
    cache: dict[str, tuple[Path, dict[str, np.ndarray]]] = {}

    def get(name: str) -> tuple[Path, dict[str, np.ndarray]]:
        if name not in cache:
            cfg, layout, dtype, shards, mtp, vis, seed = CKPTS[name]
            folder = root / name
            canon = make_random_checkpoint(folder, cfg, layout, dtype, shards, mtp, vis, seed=seed)
            cache[name] = (folder, canon)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def gguf_of(ckpt: Ckpt, tmp_path_factory: pytest.TempPathFactory) -> GgufOf:
    root = tmp_path_factory.mktemp("gguf")
    cache: dict[tuple[str, str], Path] = {}

    def get(name: str, out_type: str) -> Path:
        if (name, out_type) not in cache:
            out = root / f"{name}-{out_type}.gguf"
            convert(ckpt(name)[0], out, out_type, progress=False)
            cache[(name, out_type)] = out
        return cache[(name, out_type)]

    return get


# -- the independent re-derivation (spec 5.2 / 5.3) ------------------------------------------------


def expected_tensors(canon: dict[str, np.ndarray], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """GGUF name -> float32 values in GGUF row-major layout (ne reversed)."""
    H = cfg["hidden_size"]
    nk, nv = cfg["linear_num_key_heads"], cfg["linear_num_value_heads"]
    dk, dv = cfg["linear_key_head_dim"], cfg["linear_value_head_dim"]
    E = cfg["num_experts"]
    r = nv // nk
    # new head j holds old head (j mod nk)*r + (j div nk)
    perm = [(j % nk) * r + (j // nk) for j in range(nv)]

    def heads(x: np.ndarray, block: int, axis: int = 0) -> np.ndarray:
        """Reorder nv blocks of `block` along axis by `perm`."""
        x = np.moveaxis(x, axis, 0)
        y = x.reshape(nv, block, *x.shape[1:])[perm].reshape(x.shape)
        return np.moveaxis(y, 0, axis)

    def one(x: np.ndarray) -> np.ndarray:
        return (x + np.float32(1)).astype(np.float32)

    out: dict[str, np.ndarray] = {
        "token_embd.weight": canon["embed_tokens.weight"],
        "output_norm.weight": one(canon["norm.weight"]),
        "output.weight": canon["lm_head.weight"],
    }
    for i, kind in enumerate(layer_types(cfg)):
        p, b = f"layers.{i}.", f"blk.{i}."
        out[b + "attn_norm.weight"] = one(canon[p + "input_layernorm.weight"])
        out[b + "post_attention_norm.weight"] = one(canon[p + "post_attention_layernorm.weight"])
        if kind == "full_attention":
            a = p + "self_attn."
            out[b + "attn_q.weight"] = canon[a + "q_proj.weight"]
            out[b + "attn_k.weight"] = canon[a + "k_proj.weight"]
            out[b + "attn_v.weight"] = canon[a + "v_proj.weight"]
            out[b + "attn_output.weight"] = canon[a + "o_proj.weight"]
            out[b + "attn_q_norm.weight"] = one(canon[a + "q_norm.weight"])
            out[b + "attn_k_norm.weight"] = one(canon[a + "k_norm.weight"])
        else:
            la = p + "linear_attn."
            qkv = canon[la + "in_proj_qkv.weight"]
            qk = 2 * nk * dk
            out[b + "attn_qkv.weight"] = np.concatenate([qkv[:qk], heads(qkv[qk:], dv)])
            out[b + "attn_gate.weight"] = heads(canon[la + "in_proj_z.weight"], dv)
            out[b + "ssm_beta.weight"] = heads(canon[la + "in_proj_b.weight"], 1)
            out[b + "ssm_alpha.weight"] = heads(canon[la + "in_proj_a.weight"], 1)
            conv = canon[la + "conv1d.weight"][:, 0, :]  # squeeze [C, 1, Kc] -> [C, Kc]
            out[b + "ssm_conv1d.weight"] = np.concatenate([conv[:qk], heads(conv[qk:], dv)])
            out[b + "ssm_dt.bias"] = heads(canon[la + "dt_bias"], 1)
            out[b + "ssm_a"] = (-np.exp(heads(canon[la + "A_log"], 1).astype(np.float64))).astype(np.float32)
            out[b + "ssm_norm.weight"] = canon[la + "norm.weight"]  # no +1
            out[b + "ssm_out.weight"] = heads(canon[la + "out_proj.weight"], dv, axis=1)
        m = p + "mlp."
        out[b + "ffn_gate_inp.weight"] = canon[m + "gate.weight"]
        for w, g in (("gate", "gate"), ("up", "up"), ("down", "down")):
            out[b + f"ffn_{g}_exps.weight"] = np.stack(
                [canon[m + f"experts.{e}.{w}_proj.weight"] for e in range(E)]
            )
        out[b + "ffn_gate_shexp.weight"] = canon[m + "shared_expert.gate_proj.weight"]
        out[b + "ffn_up_shexp.weight"] = canon[m + "shared_expert.up_proj.weight"]
        out[b + "ffn_down_shexp.weight"] = canon[m + "shared_expert.down_proj.weight"]
        out[b + "ffn_gate_inp_shexp.weight"] = canon[m + "shared_expert_gate.weight"]  # [1, H]
    assert all(v.dtype == np.float32 for v in out.values())
    del H
    return out


def expected_ne(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """GGUF ne of every tensor, written out from spec table 5.2."""
    H, V, D = cfg["hidden_size"], cfg["vocab_size"], cfg["head_dim"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    nk, nv, dk, dv = (
        cfg[k]
        for k in (
            "linear_num_key_heads",
            "linear_num_value_heads",
            "linear_key_head_dim",
            "linear_value_head_dim",
        )
    )
    E, Ie, Is, Kc = (
        cfg[k]
        for k in (
            "num_experts",
            "moe_intermediate_size",
            "shared_expert_intermediate_size",
            "linear_conv_kernel_dim",
        )
    )
    conv = 2 * nk * dk + nv * dv
    ne: dict[str, tuple[int, ...]] = {
        "token_embd.weight": (H, V),
        "output_norm.weight": (H,),
        "output.weight": (H, V),
    }
    for i, kind in enumerate(layer_types(cfg)):
        b = f"blk.{i}."
        ne |= {b + "attn_norm.weight": (H,), b + "post_attention_norm.weight": (H,)}
        if kind == "full_attention":
            ne |= {
                b + "attn_q.weight": (H, 2 * nh * D),
                b + "attn_k.weight": (H, nkv * D),
                b + "attn_v.weight": (H, nkv * D),
                b + "attn_output.weight": (nh * D, H),
                b + "attn_q_norm.weight": (D,),
                b + "attn_k_norm.weight": (D,),
            }
        else:
            ne |= {
                b + "attn_qkv.weight": (H, conv),
                b + "attn_gate.weight": (H, nv * dv),
                b + "ssm_beta.weight": (H, nv),
                b + "ssm_alpha.weight": (H, nv),
                b + "ssm_conv1d.weight": (Kc, conv),
                b + "ssm_dt.bias": (nv,),
                b + "ssm_a": (nv,),
                b + "ssm_norm.weight": (dv,),
                b + "ssm_out.weight": (nv * dv, H),
            }
        ne |= {
            b + "ffn_gate_inp.weight": (H, E),
            b + "ffn_gate_exps.weight": (H, Ie, E),
            b + "ffn_up_exps.weight": (H, Ie, E),
            b + "ffn_down_exps.weight": (Ie, H, E),
            b + "ffn_gate_shexp.weight": (H, Is),
            b + "ffn_up_shexp.weight": (H, Is),
            b + "ffn_down_shexp.weight": (Is, H),
            b + "ffn_gate_inp_shexp.weight": (H, 1),
        }
    return ne


def forced_f32(name: str) -> bool:
    """Spec 5.3 step 7."""
    return (
        name.endswith("_norm.weight")
        or name.endswith(("ffn_gate_inp.weight", "ffn_gate_inp_shexp.weight", "ssm_conv1d.weight"))
        or name.endswith(("ssm_a", "ssm_dt.bias"))
    )


def tensors_of(path: Path) -> dict[str, gguf.ReaderTensor]:
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def field(reader: gguf.GGUFReader, key: str) -> Any:
    return reader.fields[key].contents()


# -- f32 conversion: names, shapes, types, values --------------------------------------------------


@pytest.mark.parametrize("name", list(CKPTS))
def test_f32_tensors_match_rederivation(name: str, ckpt: Ckpt, gguf_of: GgufOf) -> None:
    cfg = CKPTS[name][0]
    _, canon = ckpt(name)
    want = expected_tensors(canon, cfg)
    ne = expected_ne(cfg)
    got = tensors_of(gguf_of(name, "f32"))
    assert set(got) == set(want) == set(ne)
    for tname, t in got.items():
        assert t.tensor_type == QT.F32, tname
        assert tuple(int(x) for x in t.shape) == ne[tname], tname
        assert tuple(reversed(ne[tname])) == want[tname].shape, tname
        data = np.asarray(t.data).reshape(want[tname].shape)
        np.testing.assert_array_equal(data, want[tname], err_msg=tname)


def test_transforms_really_change_values(ckpt: Ckpt) -> None:
    """Guard the re-derivation itself: the reorder is not the identity for these configs."""
    for name in ("a_hub", "b_hub"):
        cfg = CKPTS[name][0]
        _, canon = ckpt(name)
        want = expected_tensors(canon, cfg)
        assert not np.array_equal(
            want["blk.0.attn_gate.weight"], canon["layers.0.linear_attn.in_proj_z.weight"]
        )
        assert not np.array_equal(want["blk.0.ssm_out.weight"], canon["layers.0.linear_attn.out_proj.weight"])


@pytest.mark.parametrize("out_type", ["f16", "bf16", "q8_0"])
def test_output_types_bit_exact(out_type: str, ckpt: Ckpt, gguf_of: GgufOf) -> None:
    qtype = {"f16": QT.F16, "bf16": QT.BF16, "q8_0": QT.Q8_0}[out_type]
    for name in ("a_hub", "b_sp"):
        cfg = CKPTS[name][0]
        want = expected_tensors(ckpt(name)[1], cfg)
        got = tensors_of(gguf_of(name, out_type))
        assert set(got) == set(want)
        for tname, t in got.items():
            x = want[tname]
            if forced_f32(tname) or x.ndim == 1:
                assert t.tensor_type == QT.F32, tname
                np.testing.assert_array_equal(np.asarray(t.data).reshape(x.shape), x, err_msg=tname)
                continue
            expect_type = qtype
            if qtype == QT.Q8_0 and x.shape[-1] % 32 != 0:
                expect_type = QT.F16  # fallback, said on stderr
            assert t.tensor_type == expect_type, tname
            ref = x.astype(np.float16) if expect_type == QT.F16 else gguf.quants.quantize(x, expect_type)
            assert np.asarray(t.data).tobytes() == ref.tobytes(), tname


def test_q8_0_fallback_is_reported(ckpt: Ckpt, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    convert(ckpt("a_sp")[0], tmp_path / "x.gguf", "q8_0", progress=False)
    err = capsys.readouterr().err
    assert "not a multiple of 32" in err and "blk.0.ffn_down_shexp.weight" in err  # Is = 48
    assert tensors_of(tmp_path / "x.gguf")["blk.0.ffn_down_shexp.weight"].tensor_type == QT.F16


@pytest.mark.parametrize(("a", "b"), [("a_hub", "a_sp"), ("b_hub", "b_sp")])
@pytest.mark.parametrize("out_type", ["f32", "q8_0"])
def test_layouts_give_identical_tensor_data(a: str, b: str, out_type: str, gguf_of: GgufOf) -> None:
    ta, tb = tensors_of(gguf_of(a, out_type)), tensors_of(gguf_of(b, out_type))
    assert list(ta) == list(tb)
    for name in ta:
        assert ta[name].tensor_type == tb[name].tensor_type
        assert np.asarray(ta[name].data).tobytes() == np.asarray(tb[name].data).tobytes(), name


# -- metadata ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("out_type", "ftype"), [("f32", 0), ("f16", 1), ("q8_0", 7), ("bf16", 32)])
def test_metadata(out_type: str, ftype: int, ckpt: Ckpt, gguf_of: GgufOf) -> None:
    name = "a_hub"
    cfg = CKPTS[name][0]
    r = gguf.GGUFReader(gguf_of(name, out_type))
    a = "qwen35moe."
    assert field(r, "general.architecture") == "qwen35moe"
    assert field(r, "general.type") == "model"
    assert field(r, "general.name") == name
    assert field(r, "general.basename") == name
    assert field(r, "general.size_label")
    assert field(r, "general.file_type") == ftype
    assert field(r, "general.quantization_version") == 2
    assert "general.alignment" not in r.fields and r.alignment == 32
    want = {
        "block_count": cfg["num_hidden_layers"],
        "context_length": cfg["max_position_embeddings"],
        "embedding_length": cfg["hidden_size"],
        "attention.head_count": cfg["num_attention_heads"],
        "attention.head_count_kv": cfg["num_key_value_heads"],
        "attention.key_length": cfg["head_dim"],
        "attention.value_length": cfg["head_dim"],
        "rope.dimension_count": int(cfg["head_dim"] * cfg["partial_rotary_factor"]),
        "expert_count": cfg["num_experts"],
        "expert_used_count": cfg["num_experts_per_tok"],
        "expert_feed_forward_length": cfg["moe_intermediate_size"],
        "expert_shared_feed_forward_length": cfg["shared_expert_intermediate_size"],
        "ssm.conv_kernel": cfg["linear_conv_kernel_dim"],
        "ssm.state_size": cfg["linear_key_head_dim"],
        "ssm.group_count": cfg["linear_num_key_heads"],
        "ssm.time_step_rank": cfg["linear_num_value_heads"],
        "ssm.inner_size": cfg["linear_value_head_dim"] * cfg["linear_num_value_heads"],
        "full_attention_interval": cfg["full_attention_interval"],
    }
    for key, value in want.items():
        assert field(r, a + key) == value, key
        assert r.fields[a + key].types == [gguf.GGUFValueType.UINT32], key
    assert field(r, a + "rope.freq_base") == pytest.approx(cfg["rope_theta"])
    assert field(r, a + "attention.layer_norm_rms_epsilon") == pytest.approx(cfg["rms_norm_eps"])
    sections = r.fields[a + "rope.dimension_sections"]
    assert sections.types == [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT32]
    assert sections.contents() == [*cfg["mrope_section"], 0]
    # no MTP block is exported; no dense FFN length (the config has no intermediate_size)
    assert a + "nextn_predict_layers" not in r.fields
    assert a + "feed_forward_length" not in r.fields
    arch_keys = {k for k in r.fields if k.startswith(a)}
    assert arch_keys == {a + k for k in want} | {
        a + "rope.freq_base",
        a + "attention.layer_norm_rms_epsilon",
        a + "rope.dimension_sections",
    }
    # tokenizer metadata from vocab.py
    tokens = field(r, "tokenizer.ggml.tokens")
    assert field(r, "tokenizer.ggml.model") == "gpt2"
    assert field(r, "tokenizer.ggml.pre") == "qwen35"
    assert len(tokens) == cfg["vocab_size"]
    assert tokens[field(r, "tokenizer.ggml.eos_token_id")] == "<|im_end|>"
    assert tokens[field(r, "tokenizer.ggml.padding_token_id")] == "<|endoftext|>"
    assert "tokenizer.ggml.bos_token_id" not in r.fields
    assert "<|im_start|>" in field(r, "tokenizer.chat_template")


def test_both_layouts_give_same_metadata(gguf_of: GgufOf) -> None:
    ra, rb = gguf.GGUFReader(gguf_of("b_hub", "f32")), gguf.GGUFReader(gguf_of("b_sp", "f32"))
    skip = {"general.name", "general.basename"}
    keys = [k for k in ra.fields if k not in skip and not k.startswith("GGUF.")]
    assert keys == [k for k in rb.fields if k not in skip and not k.startswith("GGUF.")]
    for k in keys:
        assert ra.fields[k].contents() == rb.fields[k].contents(), k


def test_skipped_tensors_are_reported(ckpt: Ckpt, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    convert(ckpt("a_hub")[0], tmp_path / "a.gguf", "f32", progress=False)
    err = capsys.readouterr().err
    assert "skipping 7 MTP tensors" in err
    assert "skipping 3 vision tensors" in err
    names = set(tensors_of(tmp_path / "a.gguf"))
    assert not any("nextn" in n or n.startswith(("v.", "mm.")) for n in names)


def test_size_label_from_folder_name(ckpt: Ckpt, tmp_path: Path) -> None:
    src = tmp_path / "Qwen3.5-35B-A3B"
    shutil.copytree(ckpt("a_sp")[0], src)
    r = gguf.GGUFReader(convert(src, tmp_path / "m.gguf", "f32", progress=False))
    assert field(r, "general.name") == "Qwen3.5-35B-A3B"
    assert field(r, "general.basename") == "Qwen3.5"
    assert field(r, "general.size_label") == "35B-A3B"
    snap = tmp_path / "models--Qwen--Qwen3.5-122B-A10B" / "snapshots" / "0123abcd"
    shutil.copytree(ckpt("a_sp")[0], snap)
    r = gguf.GGUFReader(convert(snap, tmp_path / "s.gguf", "f32", progress=False))
    assert field(r, "general.name") == "Qwen3.5-122B-A10B"
    assert field(r, "general.size_label") == "122B-A10B"


# -- mapping table -----------------------------------------------------------------------------------


def test_v_head_order_formula() -> None:
    assert mp.v_head_order(2, 4).tolist() == [0, 2, 1, 3]
    assert mp.v_head_order(16, 64).tolist() == [(j % 16) * 4 + j // 16 for j in range(64)]
    assert mp.v_head_order(4, 4).tolist() == [0, 1, 2, 3]


def test_table_f32_flags_follow_spec_rule() -> None:
    for rule in mp.RULES:
        name = rule.gguf.format(i=0)
        assert rule.f32 == mp.forced_f32_by_name(name, len(rule.shape)), name
        assert rule.f32 == (forced_f32(name) or len(rule.shape) <= 1), name
        for step in rule.transforms + tuple(t for s in rule.sources for t in s.transforms):
            assert step in mp.TRANSFORMS, step
    # +1 on every norm except the DeltaNet gated norm
    plus = {r.gguf for r in mp.RULES if "plus_one" in r.transforms}
    assert plus == {r.gguf for r in mp.RULES if r.gguf.endswith("norm.weight")} - {"blk.{i}.ssm_norm.weight"}


def _shapes(
    cfg: dict[str, Any], prefix: str, lm_head: str | None = "lm_head.weight"
) -> dict[str, tuple[int, ...]]:
    from qwen35cpu.random_checkpoint import text_tensor_shapes

    out = {}
    for n, s in text_tensor_shapes(cfg).items():
        if n == "lm_head.weight":
            if lm_head:
                out[lm_head] = s
        else:
            out[prefix + n] = s
    return out


def _text_cfg(tmp_path: Path, cfg: dict[str, Any], **over: Any) -> Any:
    d = {
        **{k: v for k, v in cfg.items() if k not in ("rope_theta", "partial_rotary_factor", "mrope_section")},
        "model_type": "qwen3_5_moe_text",
        "rope_parameters": {
            "rope_theta": cfg["rope_theta"],
            "partial_rotary_factor": 0.25,
            "mrope_section": cfg["mrope_section"],
        },
    }
    d.update(over)
    (tmp_path / "config.json").write_text(json.dumps(d))
    return read_text_config(tmp_path)


@pytest.mark.parametrize("prefix", ["model.language_model.", "model.", "language_model.model."])
def test_prefixes_accepted(prefix: str, tmp_path: Path) -> None:
    c = _text_cfg(tmp_path, CFG_A)
    lm = "language_model.lm_head.weight" if prefix.startswith("language_model") else "lm_head.weight"
    plan = mp.plan_tensors(_shapes(CFG_A, prefix, lm), c)
    assert {p.name for p in plan.tensors} == set(expected_ne(CFG_A))
    assert plan.skipped == {}


def test_tied_embeddings_without_lm_head(tmp_path: Path) -> None:
    c = _text_cfg(tmp_path, CFG_A, tie_word_embeddings=True)
    plan = mp.plan_tensors(_shapes(CFG_A, "model.", None), c)
    assert "output.weight" not in {p.name for p in plan.tensors}
    c = _text_cfg(tmp_path, CFG_A)
    with pytest.raises(ValueError, match=r"missing tensor 'lm_head.weight'"):
        mp.plan_tensors(_shapes(CFG_A, "model.", None), c)


def test_plan_errors(tmp_path: Path) -> None:
    c = _text_cfg(tmp_path, CFG_A)
    shapes = _shapes(CFG_A, "model.")
    with pytest.raises(ValueError, match=r"unknown tensor 'model.layers.0.mlp.foo.weight'"):
        mp.plan_tensors({**shapes, "model.layers.0.mlp.foo.weight": (4,)}, c)
    with pytest.raises(ValueError, match=re.escape("unknown tensor 'encoder.x'")):
        mp.plan_tensors({**shapes, "encoder.x": (4,)}, c)
    with pytest.raises(ValueError, match="layer 9 but the config has 4 layers"):
        mp.plan_tensors({**shapes, "model.layers.9.input_layernorm.weight": (64,)}, c)
    with pytest.raises(ValueError, match="belongs to a full_attention layer"):
        mp.plan_tensors({**shapes, "model.layers.0.self_attn.q_norm.weight": (32,)}, c)
    with pytest.raises(ValueError, match="same tensor"):
        mp.plan_tensors({**shapes, "model.language_model.norm.weight": (64,)}, c)
    fused = "model.layers.1.mlp.experts.gate_up_proj"
    with pytest.raises(ValueError, match="has both"):
        mp.plan_tensors({**shapes, fused: (8, 64, 64)}, c)
    bad = dict(shapes)
    bad["model.layers.3.self_attn.k_proj.weight"] = (64, 64)
    with pytest.raises(
        ValueError, match=r"k_proj.weight' has shape \[64, 64\] but config.json implies \[32, 64\]"
    ):
        mp.plan_tensors(bad, c)


def test_config_variants(tmp_path: Path) -> None:
    # rope fields at the top level / rope_scaling, layer kinds from full_attention_interval
    d = {
        **CFG_B,
        "model_type": "qwen3_5_moe_text",
        "full_attention_interval": 2,
        "rope_scaling": {"type": "mrope", "mrope_section": [5, 5, 6]},
        "rope_theta": 5e6,
    }
    del d["mrope_section"]
    (tmp_path / "config.json").write_text(json.dumps(d))
    c = read_text_config(tmp_path)
    assert c.layer_types == tuple(["linear_attention", "full_attention"] * 4)
    assert (c.rope_theta, c.mrope_section, c.partial_rotary_factor) == (5e6, (5, 5, 6), 0.25)
    # explicit layer_types win over the interval, and give the interval written to the GGUF
    c = _text_cfg(
        tmp_path,
        CFG_B,
        layer_types=["linear_attention", "linear_attention", "full_attention"] * 2 + ["linear_attention"] * 2,
        num_hidden_layers=8,
    )
    assert c.full_attention_interval == 3
    with pytest.raises(ValueError, match="layer_types is not"):
        _text_cfg(
            tmp_path,
            CFG_A,
            layer_types=["full_attention", "linear_attention", "linear_attention", "full_attention"],
        )
    with pytest.raises(ValueError, match="rope type 'yarn' is not supported"):
        _text_cfg(tmp_path, CFG_A, rope_parameters={"rope_type": "yarn", "factor": 4.0})
    with pytest.raises(ValueError, match="linear_key_head_dim"):
        _text_cfg(tmp_path, CFG_A, linear_key_head_dim=32)
    # a multimodal config whose text_config is of another model
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "qwen3_5_moe", "text_config": {"model_type": "qwen3_next"}})
    )
    with pytest.raises(ValueError, match=re.escape("text_config.model_type is 'qwen3_next'")):
        read_text_config(tmp_path)


# -- bad input and failures leave nothing behind ---------------------------------------------------


def _assert_clean(out_dir: Path, keep: frozenset[str] | set[str] = frozenset()) -> None:
    assert {p.name for p in out_dir.iterdir()} == keep


def _copy(ckpt: Ckpt, name: str, dst: Path) -> Path:
    shutil.copytree(ckpt(name)[0], dst)
    return dst


def test_error_missing_src(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        convert(tmp_path / "nope", out_dir / "x.gguf", "f32", progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        convert(tmp_path / "file", out_dir / "x.gguf", "f32", progress=False)
    _assert_clean(out_dir)


def test_error_bad_out_type(ckpt: Ckpt, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported output type 'q4_0'"):
        convert(ckpt("a_sp")[0], tmp_path / "x.gguf", "q4_0", progress=False)
    _assert_clean(tmp_path)


@pytest.mark.parametrize(
    ("edit", "exc", "msg"),
    [
        ("no_config", FileNotFoundError, "config.json: missing"),
        ("bad_model_type", ValueError, "model_type 'qwen3_next' is not supported"),
        ("shape", ValueError, "has shape .* but config.json implies"),
        ("missing_shard", FileNotFoundError, "model-00002-of-00003.safetensors: shard listed"),
        ("bad_tokenizer", ValueError, "tokenizer.json"),
    ],
)
def test_error_bad_folder(edit: str, exc: type[Exception], msg: str, ckpt: Ckpt, tmp_path: Path) -> None:
    src = _copy(ckpt, "a_hub", tmp_path / "src")
    cfg_path = src / "config.json"
    if edit == "no_config":
        cfg_path.unlink()
    elif edit == "bad_model_type":
        cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "model_type": "qwen3_next"}))
    elif edit == "shape":
        d = json.loads(cfg_path.read_text())
        d["text_config"]["moe_intermediate_size"] = 16
        cfg_path.write_text(json.dumps(d))
    elif edit == "missing_shard":
        (src / "model-00002-of-00003.safetensors").unlink()
    elif edit == "bad_tokenizer":
        (src / "tokenizer.json").write_text("{}")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "old.gguf").write_bytes(b"previous")
    with pytest.raises(exc, match=msg):
        convert(src, out_dir / "old.gguf", "f32", progress=False)
    _assert_clean(out_dir, {"old.gguf"})
    assert (out_dir / "old.gguf").read_bytes() == b"previous"


@pytest.mark.parametrize(
    ("layout", "drop", "shown"),
    [
        (
            "hub",
            "model.language_model.layers.1.linear_attn.A_log",
            "model.language_model.layers.1.linear_attn.A_log",
        ),
        (
            "save_pretrained",
            "model.layers.2.mlp.experts.5.up_proj.weight",
            "model.layers.2.mlp.experts.5.up_proj.weight",
        ),
        ("save_pretrained", "lm_head.weight", "lm_head.weight"),
        (
            "hub",
            "model.language_model.layers.3.mlp.experts.down_proj",
            "model.language_model.layers.3.mlp.experts.down_proj",
        ),
    ],
)
def test_error_missing_tensor(layout: str, drop: str, shown: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_random_checkpoint(src, CFG_A, layout, "f32", drop=[drop])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ValueError, match=f"missing tensor '{shown}'"):
        convert(src, out_dir / "x.gguf", "f32", progress=False)
    _assert_clean(out_dir)


def test_error_unknown_tensor(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_random_checkpoint(
        src, CFG_A, "hub", "f32", add={"model.language_model.layers.0.mlp.bias": np.zeros(4, np.float32)}
    )
    with pytest.raises(
        ValueError, match=re.escape("unknown tensor 'model.language_model.layers.0.mlp.bias'")
    ):
        convert(src, tmp_path / "x.gguf", "f32", progress=False)
    assert not (tmp_path / "x.gguf").exists()


def test_refuses_to_overwrite_input(ckpt: Ckpt, tmp_path: Path) -> None:
    src = _copy(ckpt, "a_sp", tmp_path / "src")
    before = (src / "model.safetensors").read_bytes()
    for target in ("model.safetensors", "config.json", "tokenizer.json"):
        with pytest.raises(ValueError, match="refusing to overwrite an input"):
            convert(src, src / target, "f32", progress=False)
    with pytest.raises(ValueError, match="is a directory"):
        convert(src, tmp_path, "f32", progress=False)
    assert (src / "model.safetensors").read_bytes() == before
    assert not [p for p in src.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_mid_write_leaves_nothing(
    error: type[BaseException], monkeypatch: pytest.MonkeyPatch, ckpt: Ckpt, tmp_path: Path
) -> None:
    out = tmp_path / "model.gguf"
    out.write_bytes(b"previous model")
    calls = []
    original = mp.TRANSFORMS["plus_one"]

    def failing(x: np.ndarray, d: Any) -> np.ndarray:
        calls.append(1)
        if len(calls) == 5:
            # the data goes to a temporary file next to OUT; OUT is untouched so far
            temps = [p for p in tmp_path.iterdir() if p.name.startswith("model.gguf.tmp-")]
            assert len(temps) == 1 and temps[0].stat().st_size > 0
            assert out.read_bytes() == b"previous model"
            raise error("simulated failure")
        return original(x, d)

    monkeypatch.setitem(mp.TRANSFORMS, "plus_one", failing)
    with pytest.raises(error, match="simulated failure"):
        convert(ckpt("b_hub")[0], out, "q8_0", progress=False)
    assert len(calls) == 5
    _assert_clean(tmp_path, {"model.gguf"})
    assert out.read_bytes() == b"previous model"


def test_success_replaces_existing_output(ckpt: Ckpt, tmp_path: Path, gguf_of: GgufOf) -> None:
    out = tmp_path / "model.gguf"
    out.write_bytes(b"previous model")
    convert(ckpt("b_hub")[0], out, "f32", progress=False)
    assert out.read_bytes()[:4] == b"GGUF"
    _assert_clean(tmp_path, {"model.gguf"})


# -- streaming -----------------------------------------------------------------------------------------

CFG_MEM: dict[str, Any] = {
    **CFG_A,
    "vocab_size": 2048,
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 32,
    "linear_value_head_dim": 32,
    "num_experts": 16,
    "moe_intermediate_size": 128,
    "shared_expert_intermediate_size": 128,
}


@pytest.mark.parametrize(
    ("layout", "dtype", "out_type"),
    [("hub", "bf16", "f32"), ("save_pretrained", "f32", "q8_0"), ("hub", "f32", "bf16")],
)
def test_streaming_peak_memory(layout: str, dtype: str, out_type: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    canon = make_random_checkpoint(src, CFG_MEM, layout, dtype)
    want = expected_tensors(canon, CFG_MEM)
    largest = max(x.nbytes for x in want.values())  # f32 bytes of the largest output tensor
    total = sum(x.nbytes for x in want.values())
    assert total >= 8 * largest
    convert(src, tmp_path / "warm.gguf", out_type, progress=False)  # imports and caches out of the way
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        convert(src, tmp_path / "m.gguf", out_type, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * largest + (1 << 20), (peak, largest, total)


# -- CLI -----------------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("convert", *args)


def test_cli_convert(ckpt: Ckpt, tmp_path: Path, gguf_of: GgufOf) -> None:
    out = tmp_path / "cli.gguf"
    res = _cli(str(ckpt("b_sp")[0]), "-o", str(out), "--type", "q8_0", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert f"wrote {out}" in res.stdout
    a, b = tensors_of(out), tensors_of(gguf_of("b_sp", "q8_0"))
    assert all(np.asarray(a[n].data).tobytes() == np.asarray(b[n].data).tobytes() for n in a)
    # default type is bf16
    res = _cli(str(ckpt("b_sp")[0]), "-o", str(tmp_path / "d.gguf"), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert field(gguf.GGUFReader(tmp_path / "d.gguf"), "general.file_type") == 32


@pytest.mark.parametrize("case", ["missing_src", "bad_type", "bad_model_type"])
def test_cli_errors(case: str, ckpt: Ckpt, tmp_path: Path) -> None:
    src = ckpt("a_sp")[0]
    out = tmp_path / "out.gguf"
    if case == "missing_src":
        res = _cli(str(tmp_path / "nope"), "-o", str(out))
    elif case == "bad_type":
        res = _cli(str(src), "-o", str(out), "--type", "q4_k")
    else:
        bad = _copy(ckpt, "a_sp", tmp_path / "bad")
        (bad / "config.json").write_text(json.dumps({"model_type": "llama"}))
        res = _cli(str(bad), "-o", str(out))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("qwen35cpu convert: error: ")
    assert "Traceback" not in res.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
