"""Small random Qwen3.5-MoE Hugging Face checkpoints, for the tests and the demo (no transformers needed).

`make_random_checkpoint(folder, cfg, ...)` writes config.json, safetensors (one file or shards with
model.safetensors.index.json) and a tiny byte-level BPE tokenizer that uses the qwen35 split regex, in
one of two layouts:

* "hub": the released checkpoints' layout: multimodal config.json (`qwen3_5_moe` + text_config, rope
  fields in `rope_parameters`, explicit `layer_types`), prefix `model.language_model.`, fused 3-D
  experts `mlp.experts.gate_up_proj [E, 2I, H]` / `mlp.experts.down_proj [E, H, I]`;
* "save_pretrained": `Qwen3_5MoeForCausalLM.save_pretrained`: text config (`qwen3_5_moe_text`, older
  rope fields at the top level / in rope_scaling, layer kinds from full_attention_interval), prefix
  `model.`, per-expert 2-D `mlp.experts.{e}.{gate,up,down}_proj.weight`.

It returns the text tensors by their canonical names (relative to the text model, experts always in
per-expert form, plus "lm_head.weight") as float32 arrays holding exactly the stored values (BF16
rounding applied), so tests can re-derive the GGUF tensors independently. The same cfg and seed give
the same values in both layouts.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

QWEN35_REGEX = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
    r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Two small configurations (text_config fields). Both have nk != nv and dk == dv.
CFG_A: dict[
    str, Any
] = {  # 4 layers, nv = 2 nk, head_dim 32; Is = 48 so ffn_down_shexp rows are not q8_0-able
    "vocab_size": 320,
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 16,
    "linear_value_head_dim": 16,
    "linear_conv_kernel_dim": 4,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 48,
    "full_attention_interval": 4,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000000.0,
    "partial_rotary_factor": 0.25,
    "mrope_section": [2, 1, 1],
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
    "mtp_num_hidden_layers": 1,
}
CFG_B: dict[str, Any] = {  # 8 layers, nv = 4 nk, head_dim 64
    **CFG_A,
    "num_hidden_layers": 8,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 8,
    "linear_key_head_dim": 16,
    "linear_value_head_dim": 16,
    "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 64,
    "partial_rotary_factor": 0.25,
    "mrope_section": [3, 3, 2],
}

_ROPE_KEYS = ("rope_theta", "partial_rotary_factor", "mrope_section")


def layer_types(cfg: dict[str, Any]) -> list[str]:
    k = cfg.get("full_attention_interval", 4)
    return [
        "full_attention" if (i + 1) % k == 0 else "linear_attention" for i in range(cfg["num_hidden_layers"])
    ]


def text_tensor_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Canonical text tensor names -> HF shapes (per-expert form)."""
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    nh, nkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    nk, nv = cfg["linear_num_key_heads"], cfg["linear_num_value_heads"]
    dk, dv, Kc = cfg["linear_key_head_dim"], cfg["linear_value_head_dim"], cfg["linear_conv_kernel_dim"]
    E, Ie, Is = cfg["num_experts"], cfg["moe_intermediate_size"], cfg["shared_expert_intermediate_size"]
    conv = 2 * nk * dk + nv * dv
    out: dict[str, tuple[int, ...]] = {"embed_tokens.weight": (V, H), "norm.weight": (H,)}
    for i, kind in enumerate(layer_types(cfg)):
        p = f"layers.{i}."
        out[p + "input_layernorm.weight"] = (H,)
        out[p + "post_attention_layernorm.weight"] = (H,)
        if kind == "full_attention":
            out[p + "self_attn.q_proj.weight"] = (2 * nh * D, H)
            out[p + "self_attn.k_proj.weight"] = (nkv * D, H)
            out[p + "self_attn.v_proj.weight"] = (nkv * D, H)
            out[p + "self_attn.o_proj.weight"] = (H, nh * D)
            out[p + "self_attn.q_norm.weight"] = (D,)
            out[p + "self_attn.k_norm.weight"] = (D,)
        else:
            out[p + "linear_attn.in_proj_qkv.weight"] = (conv, H)
            out[p + "linear_attn.in_proj_z.weight"] = (nv * dv, H)
            out[p + "linear_attn.in_proj_b.weight"] = (nv, H)
            out[p + "linear_attn.in_proj_a.weight"] = (nv, H)
            out[p + "linear_attn.conv1d.weight"] = (conv, 1, Kc)
            out[p + "linear_attn.dt_bias"] = (nv,)
            out[p + "linear_attn.A_log"] = (nv,)
            out[p + "linear_attn.norm.weight"] = (dv,)
            out[p + "linear_attn.out_proj.weight"] = (H, nv * dv)
        out[p + "mlp.gate.weight"] = (E, H)
        for e in range(E):
            out[p + f"mlp.experts.{e}.gate_proj.weight"] = (Ie, H)
            out[p + f"mlp.experts.{e}.up_proj.weight"] = (Ie, H)
            out[p + f"mlp.experts.{e}.down_proj.weight"] = (H, Ie)
        out[p + "mlp.shared_expert.gate_proj.weight"] = (Is, H)
        out[p + "mlp.shared_expert.up_proj.weight"] = (Is, H)
        out[p + "mlp.shared_expert.down_proj.weight"] = (H, Is)
        out[p + "mlp.shared_expert_gate.weight"] = (1, H)
    out["lm_head.weight"] = (V, H)
    return out


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (round to nearest even), as uint16."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """Minimal safetensors writer: float32 -> F32, float16 -> F16, uint16 -> BF16 (raw bits)."""
    codes = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.uint16): "BF16"}
    header: dict[str, Any] = {}
    offset = 0
    blobs: list[bytes] = []
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": codes[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


def _values(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name.endswith("A_log"):
        return rng.uniform(-1.0, 1.5, shape).astype(np.float32)
    if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)
    return (0.5 * rng.standard_normal(shape)).astype(np.float32)


def _hub_tensors(canon: dict[str, np.ndarray], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """Canonical tensors -> hub names: model.language_model. prefix, fused 3-D experts."""
    out: dict[str, np.ndarray] = {}
    E = cfg["num_experts"]
    for name, arr in canon.items():
        if ".mlp.experts." in name:
            continue
        out[name if name == "lm_head.weight" else "model.language_model." + name] = arr
    for i in range(cfg["num_hidden_layers"]):
        p = f"layers.{i}.mlp.experts."
        gate_up = np.stack(
            [
                np.concatenate([canon[p + f"{e}.gate_proj.weight"], canon[p + f"{e}.up_proj.weight"]])
                for e in range(E)
            ]
        )
        down = np.stack([canon[p + f"{e}.down_proj.weight"] for e in range(E)])
        out["model.language_model." + p + "gate_up_proj"] = gate_up
        out["model.language_model." + p + "down_proj"] = down
    return out


def _extra_tensors(
    rng: np.random.Generator, cfg: dict[str, Any], mtp: bool, visual: bool
) -> dict[str, np.ndarray]:
    H, Ie = cfg["hidden_size"], cfg["moe_intermediate_size"]
    out: dict[str, np.ndarray] = {}
    if mtp:
        out["mtp.fc.weight"] = rng.standard_normal((H, 2 * H)).astype(np.float32)
        out["mtp.pre_fc_norm_embedding.weight"] = rng.standard_normal(H).astype(np.float32)
        out["mtp.pre_fc_norm_hidden.weight"] = rng.standard_normal(H).astype(np.float32)
        out["mtp.norm.weight"] = rng.standard_normal(H).astype(np.float32)
        out["mtp.layers.0.input_layernorm.weight"] = rng.standard_normal(H).astype(np.float32)
        for e in range(2):
            out[f"mtp.layers.0.mlp.experts.{e}.gate_proj.weight"] = rng.standard_normal((Ie, H)).astype(
                np.float32
            )
    if visual:
        out["model.visual.patch_embed.proj.weight"] = rng.standard_normal((16, 3, 2, 4, 4)).astype(np.float32)
        out["model.visual.blocks.0.attn.qkv.weight"] = rng.standard_normal((48, 16)).astype(np.float32)
        out["model.visual.merger.linear_fc1.weight"] = rng.standard_normal((16, 16)).astype(np.float32)
    return out


def _config_json(cfg: dict[str, Any], layout: str) -> dict[str, Any]:
    text = {k: v for k, v in cfg.items() if k not in _ROPE_KEYS}
    text.update(hidden_act="silu", attention_bias=False, dtype="bfloat16")
    if layout == "hub":
        text["model_type"] = "qwen3_5_moe_text"
        text["layer_types"] = layer_types(cfg)
        text["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": cfg["rope_theta"],
            "partial_rotary_factor": cfg["partial_rotary_factor"],
            "mrope_section": list(cfg["mrope_section"]),
            "mrope_interleaved": True,
        }
        tie = text.pop("tie_word_embeddings")
        return {
            "architectures": ["Qwen3_5MoeForConditionalGeneration"],
            "model_type": "qwen3_5_moe",
            "image_token_id": 7,
            "video_token_id": 8,
            "vision_start_token_id": 9,
            "vision_end_token_id": 10,
            "tie_word_embeddings": tie,
            "text_config": text,
            "vision_config": {
                "model_type": "qwen3_5_moe_vision",
                "depth": 1,
                "hidden_size": 16,
                "out_hidden_size": cfg["hidden_size"],
            },
        }
    text["architectures"] = ["Qwen3_5MoeForCausalLM"]
    text["model_type"] = "qwen3_5_moe_text"
    text["rope_theta"] = cfg["rope_theta"]
    text["partial_rotary_factor"] = cfg["partial_rotary_factor"]
    text["rope_scaling"] = {"rope_type": "default", "mrope_section": list(cfg["mrope_section"])}
    return text


def _split(names: list[str], sizes: dict[str, int], shards: int) -> list[list[str]]:
    total = sum(sizes.values())
    parts: list[list[str]] = [[] for _ in range(shards)]
    acc = 0
    for n in names:
        k = min(shards - 1, acc * shards // max(1, total))
        parts[k].append(n)
        acc += sizes[n]
    return [p for p in parts if p] or [[]]


@lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN35_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    corpus = [
        "Hello world! The quick brown fox jumps over the lazy dog.",
        "Qwen3.5 is a mixture of experts model with gated delta networks.",
        "def convert(src, out): return out  # 12345 67890",
        "Ünïcödé façade naïve café, résumé; 東京 and 北京.",
    ] * 20
    tok.train_from_iterator(corpus, trainer)
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok.to_str()


def write_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").write_text(_tokenizer_json(), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "bos_token": None,
                "add_bos_token": False,
                "chat_template": CHAT_TEMPLATE,
            }
        ),
        encoding="utf-8",
    )


def make_random_checkpoint(
    folder: Path,
    cfg: dict[str, Any],
    layout: str = "hub",
    dtype: str = "f32",
    shards: int = 1,
    extra_mtp: bool = False,
    extra_visual: bool = False,
    seed: int = 0,
    drop: Iterable[str] = (),
    add: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Write a random checkpoint to `folder` (created); return its canonical text tensors (see module doc).

    dtype: "f32" (written with safetensors.numpy.save_file) or "bf16" (raw uint16 bits through our
    own writer; A_log stays F32 as in the released checkpoints). drop / add: checkpoint tensor names to
    leave out / float32 tensors to add (to make broken checkpoints).
    """
    if layout not in ("hub", "save_pretrained") or dtype not in ("f32", "bf16"):
        raise ValueError(f"bad layout/dtype {layout!r}/{dtype!r}")
    rng = np.random.default_rng(seed)
    canon: dict[str, np.ndarray] = {}
    for name, shape in text_tensor_shapes(cfg).items():
        v = _values(rng, name, shape)
        if dtype == "bf16" and not name.endswith("A_log"):
            v = bf16_to_f32(bf16_bits(v))
        canon[name] = v
    extra = _extra_tensors(rng, cfg, extra_mtp, extra_visual)
    write_checkpoint(folder, cfg, canon, layout, dtype, shards, extra=extra, drop=drop, add=add)
    return canon


def write_checkpoint(
    folder: Path,
    cfg: dict[str, Any],
    canon: dict[str, np.ndarray],
    layout: str = "hub",
    dtype: str = "f32",
    shards: int = 1,
    extra: dict[str, np.ndarray] | None = None,
    drop: Iterable[str] = (),
    add: dict[str, np.ndarray] | None = None,
) -> None:
    """Write canonical text tensors (see the module doc) as a checkpoint folder in `layout`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "hub":
        stored = _hub_tensors(canon, cfg)
    else:
        stored = {(n if n == "lm_head.weight" else "model." + n): a for n, a in canon.items()}
    stored.update(extra or {})
    for name in drop:
        del stored[name]
    stored.update(add or {})

    if dtype == "bf16":
        data = {n: (a if n.endswith("A_log") else bf16_bits(a)) for n, a in stored.items()}
    else:
        data = dict(stored)

    (folder / "config.json").write_text(json.dumps(_config_json(cfg, layout), indent=2), encoding="utf-8")
    names = sorted(data)
    sizes = {n: data[n].nbytes for n in names}
    parts = _split(names, sizes, shards) if shards > 1 else [names]
    files = (
        ["model.safetensors"]
        if len(parts) == 1 and shards == 1
        else [f"model-{k + 1:05d}-of-{len(parts):05d}.safetensors" for k in range(len(parts))]
    )
    weight_map: dict[str, str] = {}
    for fname, part in zip(files, parts, strict=True):
        chunk = {n: data[n] for n in part}
        if dtype == "f32":
            from safetensors.numpy import save_file

            save_file(chunk, str(folder / fname))
        else:
            write_safetensors(folder / fname, chunk)
        weight_map.update(dict.fromkeys(part, fname))
    if files != ["model.safetensors"]:
        index = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    write_tokenizer(folder)

