"""Reading a Hugging Face Qwen3.5-MoE folder: config.json and the safetensors shards.

* `read_text_config(folder)` -> `TextConfig`, the hyper-parameters the converter needs. Accepts the
  multimodal config (`model_type` "qwen3_5_moe" with a nested `text_config`) of hub checkpoints and
  `Qwen3_5MoeForConditionalGeneration.save_pretrained`, and the text-only config ("qwen3_5_moe_text")
  of `Qwen3_5MoeForCausalLM.save_pretrained`. Absent fields take the transformers defaults (spec 1.2).
* `Checkpoint(folder)` indexes `model.safetensors` or the shards named by
  `model.safetensors.index.json` without reading any tensor data (gguf.utility.SafetensorsLocal);
  `raw(name)` is a memory-mapped view in the stored dtype and `to_f32` converts (a slice of) it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf.utility import LocalTensor, SafetensorsLocal

__all__ = [
    "MULTIMODAL_MODEL_TYPE",
    "TEXT_MODEL_TYPE",
    "Checkpoint",
    "TextConfig",
    "read_text_config",
    "to_f32",
]

MULTIMODAL_MODEL_TYPE = "qwen3_5_moe"
TEXT_MODEL_TYPE = "qwen3_5_moe_text"

FULL_ATTENTION = "full_attention"
LINEAR_ATTENTION = "linear_attention"

# transformers 5.23 Qwen3_5MoeTextConfig defaults (spec 1.2), used for fields a config leaves out.
_DEFAULTS: dict[str, Any] = {
    "vocab_size": 248320,
    "hidden_size": 2048,
    "num_hidden_layers": 40,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 32768,
    "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 32,
    "num_experts": 256,
    "num_experts_per_tok": 8,
    "moe_intermediate_size": 512,
    "shared_expert_intermediate_size": 512,
    "full_attention_interval": 4,
    "tie_word_embeddings": False,
    "mtp_num_hidden_layers": 0,
}
_DEFAULT_ROPE_THETA = 10000.0
_DEFAULT_PARTIAL_ROTARY_FACTOR = 0.25
_DEFAULT_MROPE_SECTION = (11, 11, 10)


@dataclass(frozen=True)
class TextConfig:
    """Hyper-parameters of the text tower, as read from config.json (names follow HF)."""

    model_type: str  # the top-level model_type of config.json
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    layer_types: tuple[str, ...]  # "full_attention" / "linear_attention" per layer
    full_attention_interval: int  # the interval that reproduces layer_types (written to the GGUF)
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    partial_rotary_factor: float
    mrope_section: tuple[int, ...]
    max_position_embeddings: int
    linear_conv_kernel_dim: int
    linear_key_head_dim: int
    linear_value_head_dim: int
    linear_num_key_heads: int
    linear_num_value_heads: int
    num_experts: int
    num_experts_per_tok: int
    moe_intermediate_size: int
    shared_expert_intermediate_size: int
    tie_word_embeddings: bool
    mtp_num_hidden_layers: int
    intermediate_size: int | None  # only written (feed_forward_length) when the config has it

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)

    def is_full_attention(self, layer: int) -> bool:
        return self.layer_types[layer] == FULL_ATTENTION


def load_json(path: Path) -> Any:
    """A JSON file; a clear ValueError naming it when it is not valid JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def _int(cfg: Mapping[str, Any], key: str, where: Path, *, minimum: int = 1) -> int:
    value = cfg.get(key)
    if value is None:
        value = _DEFAULTS[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _float(value: Any, key: str, where: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _layer_types(text: Mapping[str, Any], n_layers: int, where: Path) -> tuple[tuple[str, ...], int]:
    """(layer_types, full_attention_interval) from layer_types or, when absent, the interval."""
    interval = _int(text, "full_attention_interval", where)
    given = text.get("layer_types")
    if given is None:
        types = tuple(
            FULL_ATTENTION if (i + 1) % interval == 0 else LINEAR_ATTENTION for i in range(n_layers)
        )
        return types, interval
    if not isinstance(given, list) or len(given) != n_layers:
        raise ValueError(f"{where}: layer_types must be a list of num_hidden_layers ({n_layers}) entries")
    for i, t in enumerate(given):
        if t not in (FULL_ATTENTION, LINEAR_ATTENTION):
            raise ValueError(
                f"{where}: layer_types[{i}] is {t!r}; expected 'full_attention' or 'linear_attention'"
            )
    types = tuple(given)
    # A qwen35moe GGUF only records full_attention_interval (llama.cpp derives the layer kinds from
    # it), so layer_types must be that periodic pattern for some interval.
    for k in (interval, *range(1, n_layers + 2)):
        if all((t == FULL_ATTENTION) == ((i + 1) % k == 0) for i, t in enumerate(types)):
            return types, k
    raise ValueError(
        f"{where}: layer_types is not 'every k-th layer is full_attention' for any k; a qwen35moe GGUF "
        "can only express that pattern (full_attention_interval)"
    )


def _rope(text: Mapping[str, Any], where: Path) -> tuple[float, float, tuple[int, ...]]:
    """(rope_theta, partial_rotary_factor, mrope_section) from rope_parameters (transformers 5) or
    rope_scaling / rope_theta / partial_rotary_factor at the top level (older configs)."""
    params: dict[str, Any] = {}
    for key in ("rope_scaling", "rope_parameters"):  # rope_parameters wins
        block = text.get(key)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise ValueError(f"{where}: {key} must be an object, got {block!r}")
        params.update(block)
    rope_type = params.get("rope_type", params.get("type"))
    if rope_type not in (None, "default", "mrope"):
        raise ValueError(
            f"{where}: rope type {rope_type!r} is not supported; Qwen3.5 uses plain (default) RoPE"
        )
    theta = params.get("rope_theta", text.get("rope_theta", _DEFAULT_ROPE_THETA))
    factor = params.get(
        "partial_rotary_factor", text.get("partial_rotary_factor", _DEFAULT_PARTIAL_ROTARY_FACTOR)
    )
    section = params.get("mrope_section", text.get("mrope_section", _DEFAULT_MROPE_SECTION))
    theta_f = _float(theta, "rope_theta", where)
    factor_f = _float(factor, "partial_rotary_factor", where)
    if theta_f <= 0 or not 0 < factor_f <= 1:
        raise ValueError(f"{where}: rope_theta must be > 0 and partial_rotary_factor in (0, 1]")
    if (
        not isinstance(section, (list, tuple))
        or not 1 <= len(section) <= 4
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in section)
    ):
        raise ValueError(
            f"{where}: mrope_section must be a list of up to 4 non-negative integers, got {section!r}"
        )
    return theta_f, factor_f, tuple(section)


def read_text_config(folder: Path) -> TextConfig:
    """Parse `folder/config.json`; ValueError (one line, naming the file) for anything unsupported."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; a Hugging Face model folder with config.json is required")
    cfg = load_json(path)
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: must be a JSON object")
    model_type = cfg.get("model_type")
    if model_type == MULTIMODAL_MODEL_TYPE:
        text = cfg.get("text_config")
        if not isinstance(text, dict):
            raise ValueError(f"{path}: model_type {model_type!r} needs a text_config object")
        nested = text.get("model_type", TEXT_MODEL_TYPE)
        if nested != TEXT_MODEL_TYPE:
            raise ValueError(f"{path}: text_config.model_type is {nested!r}, expected {TEXT_MODEL_TYPE!r}")
        # Fields the text config leaves out may sit at the top level (tie_word_embeddings does).
        text = {**{k: v for k, v in cfg.items() if k not in ("text_config", "vision_config")}, **text}
    elif model_type == TEXT_MODEL_TYPE:
        text = cfg
    else:
        raise ValueError(
            f"{path}: model_type {model_type!r} is not supported; expected {MULTIMODAL_MODEL_TYPE!r} "
            f"(Qwen3.5-MoE) or {TEXT_MODEL_TYPE!r}"
        )

    n_layers = _int(text, "num_hidden_layers", path)
    layer_types, interval = _layer_types(text, n_layers, path)
    theta, factor, section = _rope(text, path)
    eps = _float(text.get("rms_norm_eps", _DEFAULTS["rms_norm_eps"]), "rms_norm_eps", path)
    if not 0 < eps < 1:
        raise ValueError(f"{path}: rms_norm_eps must be in (0, 1), got {eps}")
    inter = text.get("intermediate_size")
    if inter is not None and (isinstance(inter, bool) or not isinstance(inter, int) or inter < 1):
        raise ValueError(f"{path}: intermediate_size must be a positive integer, got {inter!r}")
    tie = text.get("tie_word_embeddings", False)
    if not isinstance(tie, bool):
        raise ValueError(f"{path}: tie_word_embeddings must be true or false, got {tie!r}")
    act = text.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"{path}: hidden_act {act!r} is not supported (Qwen3.5 uses silu)")
    if text.get("attention_bias", False):
        raise ValueError(f"{path}: attention_bias true is not supported (Qwen3.5 has no biases)")

    c = TextConfig(
        model_type=model_type,
        vocab_size=_int(text, "vocab_size", path),
        hidden_size=_int(text, "hidden_size", path),
        num_hidden_layers=n_layers,
        layer_types=layer_types,
        full_attention_interval=interval,
        num_attention_heads=_int(text, "num_attention_heads", path),
        num_key_value_heads=_int(text, "num_key_value_heads", path),
        head_dim=_int(text, "head_dim", path),
        rms_norm_eps=eps,
        rope_theta=theta,
        partial_rotary_factor=factor,
        mrope_section=section,
        max_position_embeddings=_int(text, "max_position_embeddings", path),
        linear_conv_kernel_dim=_int(text, "linear_conv_kernel_dim", path),
        linear_key_head_dim=_int(text, "linear_key_head_dim", path),
        linear_value_head_dim=_int(text, "linear_value_head_dim", path),
        linear_num_key_heads=_int(text, "linear_num_key_heads", path),
        linear_num_value_heads=_int(text, "linear_num_value_heads", path),
        num_experts=_int(text, "num_experts", path),
        num_experts_per_tok=_int(text, "num_experts_per_tok", path),
        moe_intermediate_size=_int(text, "moe_intermediate_size", path),
        shared_expert_intermediate_size=_int(text, "shared_expert_intermediate_size", path),
        tie_word_embeddings=tie,
        mtp_num_hidden_layers=_int(text, "mtp_num_hidden_layers", path, minimum=0),
        intermediate_size=inter,
    )
    _check_consistency(c, path)
    return c


def _check_consistency(c: TextConfig, path: Path) -> None:
    def require(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"{path}: {what}")

    require(
        c.num_attention_heads % c.num_key_value_heads == 0,
        f"num_attention_heads ({c.num_attention_heads}) must be a multiple of num_key_value_heads "
        f"({c.num_key_value_heads})",
    )
    require(
        c.linear_num_value_heads % c.linear_num_key_heads == 0,
        f"linear_num_value_heads ({c.linear_num_value_heads}) must be a multiple of linear_num_key_heads "
        f"({c.linear_num_key_heads})",
    )
    # GGUF has one ssm.state_size for both (llama.cpp: dk = dv = state_size).
    require(
        c.linear_key_head_dim == c.linear_value_head_dim,
        f"linear_key_head_dim ({c.linear_key_head_dim}) != linear_value_head_dim "
        f"({c.linear_value_head_dim}) cannot be written as a qwen35moe GGUF",
    )
    require(
        c.num_experts_per_tok <= c.num_experts,
        f"num_experts_per_tok ({c.num_experts_per_tok}) exceeds num_experts ({c.num_experts})",
    )
    require(
        c.rotary_dim >= 2 and c.rotary_dim % 2 == 0,
        f"head_dim * partial_rotary_factor = {c.head_dim * c.partial_rotary_factor} must be an even "
        "number of rotary dimensions",
    )


# -- safetensors -----------------------------------------------------------------------------------

# safetensors dtype -> (numpy storage dtype, how to reach float32). BF16 is read as uint16 bits.
_STORAGE: dict[str, np.dtype[Any]] = {
    "BF16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
}


def to_f32(raw: np.ndarray) -> np.ndarray:
    """A new float32 array from a stored-dtype array (uint16 = BF16 bits, float16, float32)."""
    if raw.dtype == np.uint16:
        bits = raw.astype(np.uint32)  # one f32-sized allocation; shift in place
        bits <<= 16
        return bits.view(np.float32)
    return np.array(raw, dtype=np.float32, copy=True)


def to_f32_into(raw: np.ndarray, out: np.ndarray) -> None:
    """Convert `raw` into the preallocated float32 array `out` (same number of elements)."""
    raw = raw.reshape(out.shape)
    if raw.dtype == np.uint16:
        bits = out.view(np.uint32)
        bits[...] = raw
        bits <<= 16
    else:
        out[...] = raw


class Checkpoint:
    """Lazy view of the safetensors tensors of a Hugging Face folder (nothing is read up front)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.files: list[Path] = []  # every file this checkpoint reads (shards and the index)
        self._tensors: dict[str, LocalTensor] = {}
        single = self.folder / "model.safetensors"
        index = self.folder / "model.safetensors.index.json"
        if index.is_file():
            self._read_index(index)
        elif single.is_file():
            self._add_shard(single, None)
        else:
            raise FileNotFoundError(
                f"{self.folder}: no model.safetensors or model.safetensors.index.json "
                "(only safetensors checkpoints are supported)"
            )

    def _read_index(self, index: Path) -> None:
        data = load_json(index)
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError(f"{index}: no weight_map")
        self.files.append(index)
        by_shard: dict[str, list[str]] = {}
        for name, shard in weight_map.items():
            if not isinstance(shard, str) or os.path.basename(shard) != shard:
                raise ValueError(f"{index}: bad shard file name {shard!r} for {name}")
            by_shard.setdefault(shard, []).append(name)
        for shard, names in sorted(by_shard.items()):
            path = self.folder / shard
            if not path.is_file():
                raise FileNotFoundError(f"{path}: shard listed in {index.name} is missing")
            self._add_shard(path, names)

    def _add_shard(self, path: Path, wanted: list[str] | None) -> None:
        try:
            shard = SafetensorsLocal(path)
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a valid safetensors file ({e})") from e
        self.files.append(path)
        size = path.stat().st_size
        names = list(shard.tensors) if wanted is None else wanted
        for name in names:
            t = shard.tensors.get(name)
            if t is None:
                raise ValueError(f"{path}: tensor {name} listed in the index is not in this shard")
            if t.dtype not in _STORAGE:
                raise ValueError(
                    f"{path}: tensor {name} has dtype {t.dtype}; only BF16, F16 and F32 are supported"
                )
            want = math.prod(t.shape) * _STORAGE[t.dtype].itemsize
            r = t.data_range
            if r.size != want or r.offset + r.size > size:
                raise ValueError(f"{path}: tensor {name} data is truncated or inconsistent with its shape")
            if name in self._tensors:
                raise ValueError(f"{path}: tensor {name} appears in more than one shard")
            self._tensors[name] = t

    def __contains__(self, name: object) -> bool:
        return name in self._tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(t.shape) for name, t in self._tensors.items()}

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensors[name].shape)

    def dtype(self, name: str) -> str:
        return self._tensors[name].dtype

    def raw(self, name: str) -> np.ndarray:
        """Memory-mapped, read-only-in-effect view of tensor `name` in its stored dtype (BF16 as uint16).
        Nothing is read from disk until the view (or a slice of it) is converted."""
        t = self._tensors[name]
        dtype = _STORAGE[t.dtype]
        if t.data_range.size == 0:
            return np.zeros(t.shape, dtype=dtype)
        return t.mmap_bytes().view(dtype).reshape(t.shape)

    def load(self, name: str) -> np.ndarray:
        """Tensor `name` as a new float32 array."""
        return to_f32(self.raw(name))
