"""Output sizes from config.json alone (`qwen35cpu convert --dry-run`).

`config_plan(cfg)` builds the tensor plan a real conversion of a checkpoint with that config makes
(the same `plan_tensors`, fed the shapes the config implies), so the types and sizes computed from it
are exactly those the converter writes. `header_reserve(cfg)` is the room kept for the header and the
metadata when a --max-size budget is given: the budget covers the whole file, and the dry-run cannot
read the vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

from .checkpoint import TextConfig
from .mapping import LAYER, MODEL, RULES, PlannedTensor, dims, plan_tensors, resolve_shape
from .recipes import GROUP_ORDER, Choice, Recipe, group_of, plan_types

__all__ = ["config_plan", "header_reserve", "planned_choices", "size_table"]

_PREFIX = "model.language_model."


def config_plan(c: TextConfig) -> list[PlannedTensor]:
    """The tensors a conversion writes for config `c`, in file order, without any checkpoint."""
    d = dims(c)
    shapes: dict[str, tuple[int, ...]] = {}
    layers = range(c.num_hidden_layers)
    for rule in RULES:
        if rule.optional and c.tie_word_embeddings:
            continue
        src = rule.sources[0]  # the hub layout (fused experts): one name per tensor, as a real one has
        shape = resolve_shape(src.shape, d)
        if rule.scope == MODEL:
            shapes[src.hf if src.hf == "lm_head.weight" else _PREFIX + src.hf] = shape
            continue
        for i in layers:
            if rule.scope == LAYER or c.layer_types[i] == rule.scope:
                shapes[_PREFIX + src.hf.format(i=i)] = shape
    return plan_tensors(shapes, c).tensors


# Header and metadata bound used with --max-size: per vocabulary entry, its token string (8-byte
# length + the bytes), its type (4) and a merge string (8 + two tokens) stay well under 64 bytes for
# BPE vocabularies (Qwen3.5's real vocabulary: about 40); a tensor info is 8 + name + 4 + 8*dims + 4 + 8
# bytes, under 256; 256 KiB covers the fixed keys and a chat template. The converter checks the real
# header against it before writing any tensor data.
RESERVE_PER_TOKEN = 64
RESERVE_PER_TENSOR = 256
RESERVE_FIXED = 256 * 1024


def header_reserve(c: TextConfig, n_tensors: int) -> int:
    return c.vocab_size * RESERVE_PER_TOKEN + n_tensors * RESERVE_PER_TENSOR + RESERVE_FIXED


def planned_choices(
    c: TextConfig, plan: Sequence[PlannedTensor], recipe: Recipe, max_size: int | None
) -> tuple[list[Choice], list[str], int | None]:
    """(choices, notes, data budget) for a plan; the budget is max_size less the header reserve."""
    budget = None
    if max_size is not None:
        budget = max_size - header_reserve(c, len(plan))
        if budget <= 0:
            raise ValueError(
                f"--max-size {max_size / 1e9:g} GB leaves no room for the tensors after the header reserve"
            )
    choices, notes = plan_types(plan, c.num_hidden_layers, recipe, budget)
    return choices, notes, budget


def size_table(choices: Sequence[Choice]) -> list[str]:
    """Lines: bytes per tensor group (with its type mix) and the total line."""
    by_group: dict[str, list[Choice]] = {}
    for ch in choices:
        by_group.setdefault(group_of(ch.planned.name), []).append(ch)
    lines = [f"{'group':<14} {'tensors':>7} {'parameters':>15} {'bytes':>16} {'GB':>9}  types"]
    total = 0
    for g in GROUP_ORDER:
        chs = by_group.get(g)
        if not chs:
            continue
        nbytes = sum(ch.padded for ch in chs)
        params = sum(_count(ch) for ch in chs)
        mix: dict[str, int] = {}
        for ch in chs:
            mix[ch.qtype.name] = mix.get(ch.qtype.name, 0) + 1
        types = ", ".join(f"{k} x{v}" for k, v in sorted(mix.items(), key=lambda kv: -kv[1]))
        lines.append(f"{g:<14} {len(chs):>7} {params:>15} {nbytes:>16} {nbytes / 1e9:>9.3f}  {types}")
        total += nbytes
    lines.append(f"total: {total} bytes ({total / 1e9:.2f} GB)")
    return lines


def _count(ch: Choice) -> int:
    n = 1
    for s in ch.planned.shape:
        n *= s
    return n
