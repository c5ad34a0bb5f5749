"""Hugging Face Qwen3.5-MoE folder -> qwen35moe GGUF file (llama.cpp compatible), streamed.

The header, metadata and every tensor info are written first; then the tensors are produced one at a
time (read the source from the memory-mapped shards, transform, convert, write, drop), so the memory
needed is about the largest single output tensor in float32, never the model. The file is written
next to OUT under a temporary name and renamed onto OUT only once complete and synced.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from .checkpoint import Checkpoint, TextConfig, read_text_config, to_f32_into
from .mapping import RAW_TRANSFORMS, TRANSFORMS, PlannedTensor, dims, plan_tensors
from .recipes import RECIPES, Choice, Recipe
from .sizes import config_plan, planned_choices, size_table
from .vocab import add_vocab_to_writer, read_hf_vocab

__all__ = ["OUT_TYPES", "convert", "dry_run"]

ARCH = "qwen35moe"
QT = gguf.GGMLQuantizationType

# --type values: the recipes (recipes.py), f32/f16/bf16/q8_0 and the k-quant mixes.
OUT_TYPES: tuple[str, ...] = tuple(RECIPES)

GB = 1e9  # --max-size unit


def _note(msg: str) -> None:
    print(f"convert: {msg}", file=sys.stderr)


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on every platform
        return os.cpu_count() or 1


def _recipe(out_type: str) -> Recipe:
    if out_type not in RECIPES:
        raise ValueError(f"unsupported output type {out_type!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[out_type]


def _max_size_bytes(max_size_gb: float | None) -> int | None:
    if max_size_gb is None:
        return None
    if not math.isfinite(max_size_gb) or max_size_gb <= 0:
        raise ValueError(f"--max-size must be a positive number of GB, got {max_size_gb}")
    return int(max_size_gb * GB)


def dry_run(src: Path, out_type: str, max_size_gb: float | None = None) -> list[str]:
    """The lines `convert --dry-run` prints: output bytes per tensor group and the total, computed from
    SRC/config.json alone. They equal the tensor data (with alignment padding) a conversion writes."""
    recipe = _recipe(out_type)
    max_size = _max_size_bytes(max_size_gb)
    cfg = read_text_config(Path(src))
    plan = config_plan(cfg)
    choices, notes, budget = planned_choices(cfg, plan, recipe, max_size)
    for n in notes:
        _note(n)
    head = f"{model_name(Path(src))}: --type {out_type}"
    lines = [head + (f" --max-size {max_size_gb:g}" if budget else "")]
    lines += size_table(choices)
    lines.append(
        "(tensor data and alignment padding; the header and metadata, mostly the vocabulary, come on top"
        + (f"; --max-size keeps {max_size - budget} bytes for them)" if max_size and budget else ")")
    )
    return lines


# -- tensor production -----------------------------------------------------------------------------


# Conversion to float32 is split over threads along the first axis (numpy releases the GIL in the
# copies); below this many elements one thread is faster than handing out the work.
_PARALLEL_MIN = 1 << 20


def _to_f32(raw: np.ndarray, pool: ThreadPoolExecutor | None, parts: int) -> np.ndarray:
    """A new float32 array from a stored-dtype array, converted in `parts` slices of the first axis."""
    out = np.empty(raw.shape, dtype=np.float32)
    n = raw.shape[0] if raw.ndim else 0
    parts = min(parts, n)
    if pool is None or parts < 2 or raw.size < _PARALLEL_MIN:
        to_f32_into(raw, out)
        return out
    bounds = [n * k // parts for k in range(parts + 1)]
    list(pool.map(lambda a, b: to_f32_into(raw[a:b], out[a:b]), bounds[:-1], bounds[1:]))
    return out


def _produce_f32(
    ckpt: Checkpoint,
    p: PlannedTensor,
    d: dict[str, int],
    pool: ThreadPoolExecutor | None = None,
    parts: int = 1,
) -> np.ndarray:
    """The output tensor in float32, GGUF row-major shape. Peak: about twice its size."""
    names = p.transforms
    raw_steps = [n for n in names if n in RAW_TRANSFORMS]
    value_steps = [n for n in names if n not in RAW_TRANSFORMS]
    if p.source.stacked:
        x = np.empty((len(p.hf_names), *p.hf_shape), dtype=np.float32)

        def one(e: int) -> None:
            to_f32_into(ckpt.raw(p.hf_names[e]), x[e])

        if pool is None:
            for e in range(len(p.hf_names)):
                one(e)
        else:
            list(pool.map(one, range(len(p.hf_names))))
    else:
        raw = ckpt.raw(p.hf_names[0]).reshape(p.hf_shape)
        for step in raw_steps:
            raw = TRANSFORMS[step](raw, d)
        x = _to_f32(raw, pool, parts)
    for step in value_steps:
        x = TRANSFORMS[step](x, d)
    if x.size != int(np.prod(p.shape)):
        raise ValueError(f"{p.name}: produced {x.shape}, expected {p.shape}")
    return np.ascontiguousarray(x.reshape(p.shape), dtype=np.float32)


def encode(x: np.ndarray, qtype: gguf.GGMLQuantizationType, n_threads: int = 1) -> np.ndarray:
    """float32 tensor -> the array GGUF stores for `qtype`: `x` itself for F32, else the bytes of the
    core's weight quantizer for that type (rows along the last axis, in parallel on n_threads; the
    result does not depend on n_threads). F16, BF16, Q8_0 and Q4_0 are bit-identical to gguf-py /
    ggml; the k-quants and IQ4 types are the core's own least-squares fits in ggml's block formats."""
    if qtype == QT.F32:
        return x
    from .. import _core

    rows = x.reshape(-1, x.shape[-1]) if x.ndim > 1 else x.reshape(1, -1)
    return _core.quantize(int(qtype), rows, n_threads)


def _check_core_quantizes(types: set[gguf.GGMLQuantizationType]) -> None:
    from .. import _core

    missing = sorted(t.name for t in types if t != QT.F32 and not _core.type_info(int(t))["can_quantize"])
    if missing:
        raise ValueError(f"this build of qwen35cpu cannot quantize to {', '.join(missing)}")


# -- metadata --------------------------------------------------------------------------------------

_SIZE_IN_NAME = re.compile(r"[-_](\d+(?:\.\d+)?[BbMmKkTt])(?:[-_][Aa]\d+(?:\.\d+)?[BbMm])?$")


def _param_counts(outs: list[Choice], n_experts: int) -> tuple[int, int, int]:
    total = shared = expert = 0
    for o in outs:
        n = int(np.prod(o.planned.shape))
        total += n
        if "_exps." in o.planned.name and len(o.planned.shape) == 3:
            expert += n // n_experts
        else:
            shared += n
    return total, shared, expert


def model_name(src: Path) -> str:
    """The folder name; for a Hugging Face cache snapshot (models--Org--Name/snapshots/<hash>), Name."""
    path = src.resolve()
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.parent.parent.name.split("--")[-1]
    return path.name or "model"


def _add_metadata(w: gguf.GGUFWriter, c: TextConfig, src: Path, outs: list[Choice], file_type: int) -> None:
    name = model_name(src)
    m = _SIZE_IN_NAME.search(name)
    total, shared, expert = _param_counts(outs, c.num_experts)
    w.add_type("model")
    w.add_name(name)
    w.add_basename(name[: m.start()] if m and m.start() > 0 else name)
    w.add_size_label(m.group(0)[1:] if m else gguf.size_label(total, shared, expert, c.num_experts))
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    w.add_block_count(c.num_hidden_layers)  # no MTP block is exported, so no nextn_predict_layers
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    if c.intermediate_size is not None:
        w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_key_length(c.head_dim)
    w.add_value_length(c.head_dim)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_freq_base(c.rope_theta)
    w.add_rope_dimension_count(c.rotary_dim)
    sections = [*c.mrope_section, 0, 0, 0, 0][:4]
    w.add_key_value(
        gguf.Keys.Rope.DIMENSION_SECTIONS.format(arch=ARCH),
        sections,
        gguf.GGUFValueType.ARRAY,
        sub_type=gguf.GGUFValueType.UINT32,
    )
    w.add_expert_count(c.num_experts)
    w.add_expert_used_count(c.num_experts_per_tok)
    w.add_expert_feed_forward_length(c.moe_intermediate_size)
    w.add_expert_shared_feed_forward_length(c.shared_expert_intermediate_size)
    w.add_ssm_conv_kernel(c.linear_conv_kernel_dim)
    w.add_ssm_state_size(c.linear_key_head_dim)
    w.add_ssm_group_count(c.linear_num_key_heads)
    w.add_ssm_time_step_rank(c.linear_num_value_heads)
    w.add_ssm_inner_size(c.linear_value_head_dim * c.linear_num_value_heads)
    w.add_full_attention_interval(c.full_attention_interval)


# generation_config.json field -> (gguf-py key, kind), as gguf-py's Metadata.load reads them
# (repetition_penalty is HF's name for llama.cpp's penalty_repeat).
_SAMPLING_FIELDS: tuple[tuple[str, str, type], ...] = (
    ("top_k", gguf.Keys.General.SAMPLING_TOP_K, int),
    ("top_p", gguf.Keys.General.SAMPLING_TOP_P, float),
    ("min_p", gguf.Keys.General.SAMPLING_MIN_P, float),
    ("temperature", gguf.Keys.General.SAMPLING_TEMP, float),
    ("repetition_penalty", gguf.Keys.General.SAMPLING_PENALTY_REPEAT, float),
)


def read_sampling_defaults(src: Path) -> dict[str, int | float]:
    """generation_config.json's sampling values as GGUF key -> value (empty without the file)."""
    path = src / "generation_config.json"
    if not path.is_file():
        return {}
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a JSON object")
    out: dict[str, int | float] = {}
    for field, key, kind in _SAMPLING_FIELDS:
        v = cfg.get(field)
        if v is None:
            continue
        ok = isinstance(v, int) if kind is int else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok or not math.isfinite(v):
            raise ValueError(f"{path}: {field} = {v!r} is not a{'n integer' if kind is int else ' number'}")
        out[key] = kind(v)
    return out


def _add_sampling_defaults(w: gguf.GGUFWriter, values: dict[str, int | float]) -> None:
    for key, v in values.items():
        if isinstance(v, int):
            w.add_int32(key, v)
        else:
            w.add_float32(key, v)


# -- output file -----------------------------------------------------------------------------------


def _check_paths(src: Path, out: Path, inputs: list[Path]) -> None:
    out_abs = out.resolve()
    if out_abs == src.resolve() or any(out_abs == p.resolve() for p in inputs):
        raise ValueError(f"{out}: refusing to overwrite an input of the conversion")
    if out_abs.is_dir():
        raise ValueError(f"{out}: is a directory; give the path of the .gguf file to write")
    if not out_abs.parent.is_dir():
        raise FileNotFoundError(f"{out.parent}: output directory does not exist")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not possible everywhere (e.g. Windows); best effort
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def convert(
    src: Path,
    out: Path,
    out_type: str,
    *,
    max_size_gb: float | None = None,
    n_threads: int | None = None,
    progress: bool = True,
) -> Path:
    """Convert the Hugging Face Qwen3.5-MoE folder `src` to a qwen35moe GGUF at `out`.

    out_type: a recipe of recipes.RECIPES ("f32", "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q4_k_m",
    "q3_k_m", "q2_k", "iq4_xs", "mac192"); norms, router weights, the conv kernel, ssm_a and ssm_dt are
    always F32 (spec 5.3 step 7). max_size_gb: the file may not exceed this many GB (1e9 bytes); room
    left under it after the recipe goes to upgrades (recipes.plan_types). n_threads: quantizer threads
    (default: all cores). Returns `out`. Bad input raises ValueError or FileNotFoundError with a
    one-line message; on any failure neither OUT nor a temporary file is left (an existing OUT is
    replaced only by a complete file).
    """
    recipe = _recipe(out_type)
    max_size = _max_size_bytes(max_size_gb)
    threads = default_threads() if n_threads is None else n_threads
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    src, out = Path(src), Path(out)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such model folder")
    if not src.is_dir():
        raise ValueError(f"{src}: not a folder; give the Hugging Face model folder")

    cfg = read_text_config(src)
    ckpt = Checkpoint(src)
    inputs = [src / "config.json", *ckpt.files]
    inputs += [
        src / n
        for n in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")
    ]
    _check_paths(src, out, inputs)
    plan = plan_tensors(ckpt.shapes(), cfg)
    for kind, n in sorted(plan.skipped.items()):
        _note(f"skipping {n} {kind} tensor{'s' if n != 1 else ''} (not part of the text GGUF)")
    outs, notes, budget = planned_choices(cfg, plan.tensors, recipe, max_size)
    for line in notes:
        _note(line)
    _check_core_quantizes({o.qtype for o in outs})
    vocab = read_hf_vocab(src, cfg.vocab_size)
    sampling = read_sampling_defaults(src)
    d = dims(cfg)

    w = gguf.GGUFWriter(path=None, arch=ARCH)
    _add_metadata(w, cfg, src, outs, int(recipe.file_type))
    _add_sampling_defaults(w, sampling)
    add_vocab_to_writer(w, vocab)
    del vocab
    for o in outs:
        if o.qtype in (QT.F32, QT.F16):
            dtype = np.dtype(np.float32 if o.qtype == QT.F32 else np.float16)
            w.add_tensor_info(o.planned.name, o.planned.shape, dtype, o.nbytes)
        else:
            byte_shape = gguf.quant_shape_to_byte_shape(o.planned.shape, o.qtype)
            w.add_tensor_info(o.planned.name, byte_shape, np.dtype(np.uint8), o.nbytes, raw_dtype=o.qtype)

    tmp = out.parent / f"{out.name}.tmp-{os.getpid()}"
    bar: Any = None
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        w.write_header_to_file(tmp)
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        assert w.fout is not None
        if max_size is not None and budget is not None:
            header = gguf.GGUFWriter.ggml_pad(w.fout[0].tell(), w.data_alignment)
            if header > max_size - budget:
                raise ValueError(
                    f"the header and metadata take {header} bytes, more than the {max_size - budget} kept "
                    "for them under --max-size; lower --max-size by that difference"
                )
        from tqdm import tqdm

        bar = tqdm(
            total=sum(o.nbytes for o in outs), unit="B", unit_scale=True, desc=out.name, disable=not progress
        )
        for o in outs:
            x = _produce_f32(ckpt, o.planned, d, pool, threads)
            data = encode(x, o.qtype, threads)
            del x
            if data.nbytes != o.nbytes:
                raise RuntimeError(f"{o.planned.name}: produced {data.nbytes} bytes, expected {o.nbytes}")
            w.write_tensor_data(data)
            del data
            bar.update(o.nbytes)
        for f in w.fout:
            f.flush()
            os.fsync(f.fileno())
        w.close()
        os.replace(tmp, out)
        _fsync_dir(out.resolve().parent)
    except BaseException:
        w.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.shutdown()
    return out
