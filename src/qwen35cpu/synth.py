"""Synthetic qwen35moe GGUF files: the real layer shapes of a Qwen3.5 model, random weights.

`write_synth(path, layers, experts, type, preset, seed)` writes a GGUF with the dimensions of one of the
released models (`PRESETS`: 397b, 122b, 35b; spec 1.1) cut to `layers` layers in the 3:1 DeltaNet /
attention pattern and `experts` routed experts, the real Qwen3.5 tokenizer metadata, and the tensor types
the converter's recipe `type` gives (any `qwen35cpu convert --type`, `mac192` included). Everything the
converter decides is reused, not redone: the config is parsed by `convert.checkpoint.read_text_config`
from a config.json written for the preset, the tensor list and the types come from
`convert.sizes.config_plan` / `planned_choices`, the metadata from the converter's writer, the tokenizer
from `qwen_vocab` read through `convert.vocab.read_hf_vocab`. So a slice is laid out exactly as a
conversion of a real checkpoint of that shape would be, and loads wherever a converted file loads
(qwen35cpu, llama.cpp).

Speed: a 4-layer 64-expert 397B slice holds about 5 billion weights, and the careful quantizers (the
k-quants' least-squares fits) would take many minutes for that. Instead, for every (type, row length)
pair a *pool* of `POOL_ROWS` random rows is drawn and quantized once, and each tensor is filled row by
row with pool rows chosen at random (seeded per tensor), written straight into the file in chunks. The
file has exactly the size and the memory traffic of a real one; its rows are just drawn from a small set.
Matrix values are normal with standard deviation 1/sqrt(row length), so every matrix-vector product keeps
unit scale and the forward pass stays finite at any depth. Norms, router, conv kernel, ssm_a and
ssm_dt (always F32) are drawn per tensor.

General metadata marks the file: `qwen35cpu.synth.preset` (397b|122b|35b), `.layers`, `.experts`,
`.type`, `.seed`, and the preset's full depth and expert count (`.full_layers`, `.full_experts`), which a
benchmark needs to extrapolate a slice to the whole model.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import gguf
import numpy as np

__all__ = ["POOL_ROWS", "PRESETS", "SYNTH_KEY", "Preset", "synth_plan", "write_synth"]

SYNTH_KEY = "qwen35cpu.synth"  # prefix of the general metadata that marks a synthetic file

# Distinct rows per (type, row length). 512 rows of 4096 weights quantize in well under a second with
# the slowest quantizer, and are enough that neighbouring rows of a tensor are almost never equal.
POOL_ROWS = 512

# Bytes produced per write: bounds the memory of the largest tensor (a 248320-row embedding is 4 GB in
# f32) to one chunk.
_CHUNK_BYTES = 64 << 20

QT = gguf.GGMLQuantizationType


@dataclass(frozen=True)
class Preset:
    """A released model's text tower (spec 1.1); `layers`/`experts` are its full depth and width."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    linear_key_heads: int
    linear_value_heads: int
    experts: int
    top_k: int
    expert_width: int
    shared_width: int

    def text_config(self, layers: int, experts: int) -> dict[str, Any]:
        """config.json (text-only form) of a slice of this model with `layers` layers, `experts` experts."""
        return {
            "model_type": "qwen3_5_moe_text",
            "vocab_size": 248320,
            "hidden_size": self.hidden,
            "num_hidden_layers": layers,
            "full_attention_interval": 4,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "head_dim": 256,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10_000_000.0,
                "partial_rotary_factor": 0.25,
                "mrope_section": [11, 11, 10],
                "mrope_interleaved": True,
            },
            "max_position_embeddings": 262144,
            "linear_conv_kernel_dim": 4,
            "linear_key_head_dim": 128,
            "linear_value_head_dim": 128,
            "linear_num_key_heads": self.linear_key_heads,
            "linear_num_value_heads": self.linear_value_heads,
            "num_experts": experts,
            # A slice with fewer experts than the model routes to uses them all.
            "num_experts_per_tok": min(self.top_k, experts),
            "moe_intermediate_size": self.expert_width,
            "shared_expert_intermediate_size": self.shared_width,
            "tie_word_embeddings": False,
            "hidden_act": "silu",
            "attention_bias": False,
        }


PRESETS: dict[str, Preset] = {
    "397b": Preset("397b", 4096, 60, 32, 2, 16, 64, 512, 10, 1024, 1024),
    "122b": Preset("122b", 3072, 48, 32, 2, 16, 64, 256, 8, 1024, 1024),
    "35b": Preset("35b", 2048, 40, 16, 2, 16, 32, 256, 8, 512, 512),
}


@functools.lru_cache(maxsize=1)
def _qwen35_vocab() -> Any:
    """The Qwen3.5 tokenizer as the converter writes it (GgufVocab); built once per process (~10 s)."""
    from .convert.vocab import read_hf_vocab
    from .qwen_vocab import QWEN35_VOCAB_SIZE, write_qwen35_tokenizer_files

    with tempfile.TemporaryDirectory(prefix="qwen35cpu-synth-tok-") as tmp:
        write_qwen35_tokenizer_files(Path(tmp))
        return read_hf_vocab(Path(tmp), QWEN35_VOCAB_SIZE)


def _check_args(layers: int, experts: int, type: str, preset: str, seed: int) -> None:
    from .convert.recipes import RECIPES

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if type not in RECIPES:
        raise ValueError(f"unsupported type {type!r}; choose one of {', '.join(RECIPES)}")
    for what, v in (("layers", layers), ("experts", experts)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{what} must be a positive integer, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _model_name(preset: str, layers: int, experts: int) -> str:
    return f"qwen35-synth-{preset}-{layers}L-{experts}E"


def synth_plan(layers: int, experts: int, type: str, preset: str = "397b") -> tuple[Any, list[Any]]:
    """(TextConfig, converter Choices in file order) of a slice, from the converter's own planning."""
    from .convert.checkpoint import read_text_config
    from .convert.recipes import RECIPES
    from .convert.sizes import config_plan, planned_choices

    _check_args(layers, experts, type, preset, 0)
    with tempfile.TemporaryDirectory(prefix="qwen35cpu-synth-") as tmp:
        folder = Path(tmp)
        (folder / "config.json").write_text(json.dumps(PRESETS[preset].text_config(layers, experts)))
        cfg = read_text_config(folder)
    choices, _notes, _ = planned_choices(cfg, config_plan(cfg), RECIPES[type], None)
    return cfg, choices


# -- values ----------------------------------------------------------------------------------------


def _f32_values(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Plausible values for the always-F32 tensors, in the GGUF convention (norms already +1)."""
    if name.endswith(".ssm_a"):  # -exp(A_log), A_log as transformers initialises it: log U(1, 16)
        return -rng.uniform(1.0, 16.0, shape).astype(np.float32)
    if name.endswith(".ssm_dt.bias"):
        return rng.uniform(0.0, 1.0, shape).astype(np.float32)
    if name.endswith("norm.weight"):
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    return (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)


class _PoolCache:
    """Quantized random rows per (type, row length), built on first use."""

    def __init__(self, seed: int, n_threads: int) -> None:
        self.seed = seed
        self.n_threads = n_threads
        self.pools: dict[tuple[int, int], np.ndarray] = {}

    def get(self, qtype: QT, ne0: int) -> np.ndarray:
        key = (int(qtype), ne0)
        pool = self.pools.get(key)
        if pool is None:
            from .convert.writer import encode

            rng = np.random.default_rng([self.seed, int(qtype), ne0])
            x = (rng.standard_normal((POOL_ROWS, ne0)) / np.sqrt(ne0)).astype(np.float32)
            data = np.ascontiguousarray(encode(x, qtype, self.n_threads))
            pool = data.view(np.uint8).reshape(POOL_ROWS, -1)
            self.pools[key] = pool
        return pool


class _RowStream:
    """What gguf.GGUFWriter.write_tensor_data needs of an array (nbytes, tofile), produced in chunks so
    that no tensor is ever whole in memory."""

    def __init__(self, pool: np.ndarray, rows: int, rng: np.random.Generator) -> None:
        self.pool = pool
        self.rows = rows
        self.rng = rng
        self.nbytes = rows * pool.shape[1]

    def tofile(self, f: IO[bytes]) -> None:
        step = max(1, _CHUNK_BYTES // self.pool.shape[1])
        for start in range(0, self.rows, step):
            n = min(step, self.rows - start)
            f.write(self.pool[self.rng.integers(0, self.pool.shape[0], n)].data)


def _tensor_data(index: int, choice: Any, seed: int, pools: _PoolCache) -> np.ndarray | _RowStream:
    p = choice.planned
    rng = np.random.default_rng([seed, index])  # per tensor: independent of the order of production
    if choice.qtype == QT.F32 and (p.rule.f32 or len(p.shape) <= 1):
        return _f32_values(p.name, p.shape, rng)
    ne0 = p.shape[-1]
    rows = int(np.prod(p.shape[:-1]))
    return _RowStream(pools.get(choice.qtype, ne0), rows, rng)


# -- writing ---------------------------------------------------------------------------------------


def write_synth(
    path: str | os.PathLike[str],
    layers: int,
    experts: int,
    type: str = "q4_k_m",
    preset: str = "397b",
    seed: int = 0,
    *,
    n_threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a synthetic qwen35moe GGUF (see the module docstring) to `path` and return it.

    layers: decoder layers (layer i is full attention iff (i+1) % 4 == 0); experts: routed experts per
    layer (top-k is the preset's, capped at `experts`); type: a converter recipe (`qwen35cpu convert
    --type`); preset: 397b, 122b or 35b; seed: the same seed gives the same file, whatever n_threads
    (pool quantizer threads, default all cores). progress(done_bytes, total_bytes) is called after each
    tensor. The file is written under a temporary name and renamed onto `path` when complete; bad
    arguments raise ValueError with one line.
    """
    from .convert.recipes import RECIPES
    from .convert.vocab import add_vocab_to_writer
    from .convert.writer import ARCH, _add_metadata, default_threads

    _check_args(layers, experts, type, preset, seed)
    threads = default_threads() if n_threads is None else n_threads
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{out}: is a directory; give the path of the .gguf file to write")
    if not out.resolve().parent.is_dir():
        raise FileNotFoundError(f"{out.parent}: output directory does not exist")

    cfg, choices = synth_plan(layers, experts, type, preset)
    full = PRESETS[preset]
    w = gguf.GGUFWriter(path=None, arch=ARCH)
    # The converter's metadata, named as if converted from a folder called like the slice.
    _add_metadata(w, cfg, Path(_model_name(preset, layers, experts)), choices, int(RECIPES[type].file_type))
    w.add_string(f"{SYNTH_KEY}.preset", preset)
    w.add_string(f"{SYNTH_KEY}.type", type)
    w.add_uint32(f"{SYNTH_KEY}.layers", layers)
    w.add_uint32(f"{SYNTH_KEY}.experts", experts)
    w.add_uint64(f"{SYNTH_KEY}.seed", seed)
    w.add_uint32(f"{SYNTH_KEY}.full_layers", full.layers)
    w.add_uint32(f"{SYNTH_KEY}.full_experts", full.experts)
    add_vocab_to_writer(w, _qwen35_vocab())
    for c in choices:
        if c.qtype == QT.F32:
            w.add_tensor_info(c.planned.name, c.planned.shape, np.dtype(np.float32), c.nbytes)
        else:
            byte_shape = gguf.quant_shape_to_byte_shape(c.planned.shape, c.qtype)
            w.add_tensor_info(c.planned.name, byte_shape, np.dtype(np.uint8), c.nbytes, raw_dtype=c.qtype)

    tmp = out.parent / f"{out.name}.tmp-{os.getpid()}"
    pools = _PoolCache(seed, threads)
    total = sum(c.nbytes for c in choices)
    done = 0
    try:
        w.write_header_to_file(tmp)
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for i, c in enumerate(choices):
            data = _tensor_data(i, c, seed, pools)
            if data.nbytes != c.nbytes:
                raise RuntimeError(f"{c.planned.name}: produced {data.nbytes} bytes, expected {c.nbytes}")
            w.write_tensor_data(data)  # type: ignore[arg-type]  # _RowStream: nbytes + tofile suffice
            done += c.nbytes
            if progress is not None:
                progress(done, total)
        assert w.fout is not None
        for f in w.fout:
            f.flush()
        w.close()
        os.replace(tmp, out)
    except BaseException:
        w.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return out
