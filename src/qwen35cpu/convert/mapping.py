"""The Hugging Face -> GGUF tensor map of Qwen3.5-MoE (`qwen35moe`), as data (spec 5.2 / 5.3).

`RULES` is a table: one `TensorRule` per GGUF tensor with the HF name(s) it comes from (names relative
to the text model, `{i}` = layer, `{e}` = expert), the expected HF and GGUF shapes in config symbols
(`dims`), the transforms applied in order, and whether the tensor is forced to F32. The transforms are
the small functions in `TRANSFORMS`. `plan_tensors` matches a checkpoint's tensor names against the
table and returns what to write, checking names and shapes; it does not read any data.

HF name prefixes: `model.language_model.` (hub / ConditionalGeneration), `model.` (CausalLM
save_pretrained), `language_model.model.` (older multimodal exports); `lm_head.weight` (or
`language_model.lm_head.weight`) at the top level. `mtp.*` and `model.visual.*` are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .checkpoint import TextConfig

__all__ = [
    "RAW_TRANSFORMS",
    "RULES",
    "SKIP_PREFIXES",
    "TRANSFORMS",
    "PlannedTensor",
    "Source",
    "TensorPlan",
    "TensorRule",
    "canonical_name",
    "dims",
    "forced_f32_by_name",
    "plan_tensors",
    "v_head_order",
]

# -- config symbols ---------------------------------------------------------------------------------


def dims(c: TextConfig) -> dict[str, int]:
    """Symbols used in the shape columns of the table (spec conventions), from the config."""
    nk, nv = c.linear_num_key_heads, c.linear_num_value_heads
    dk, dv = c.linear_key_head_dim, c.linear_value_head_dim
    D, nh, nkv = c.head_dim, c.num_attention_heads, c.num_key_value_heads
    return {
        "V": c.vocab_size,
        "H": c.hidden_size,
        "D": D,
        "Dq": 2 * nh * D,  # q_proj rows: per head [q | gate]
        "Dkv": nkv * D,
        "Do": nh * D,
        "nk": nk,
        "nv": nv,
        "dk": dk,
        "dv": dv,
        "Dv": nv * dv,  # value dim = ssm inner size
        "Cv": 2 * nk * dk + nv * dv,  # conv channels = in_proj_qkv rows
        "Kc": c.linear_conv_kernel_dim,
        "E": c.num_experts,
        "I": c.moe_intermediate_size,
        "I2": 2 * c.moe_intermediate_size,
        "Is": c.shared_expert_intermediate_size,
    }


Shape = tuple[str | int, ...]


def resolve_shape(shape: Shape, d: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(s if isinstance(s, int) else d[s] for s in shape)


# -- transforms -------------------------------------------------------------------------------------
# Each takes the tensor in HF (row-major) layout and the `dims` table and returns the new tensor.
# RAW transforms only slice, so they are applied to the memory-mapped stored data before conversion
# to float32 (only the selected part is ever read); the others run on float32 arrays.

Transform = Callable[[np.ndarray, Mapping[str, int]], np.ndarray]


def v_head_order(nk: int, nv: int) -> np.ndarray:
    """Grouped -> tiled V-head order (spec 5.3 step 3): new head j holds old head (j mod nk)*r + j div nk."""
    r = nv // nk
    j = np.arange(nv)
    return (j % nk) * r + j // nk


def _reorder_v(x: np.ndarray, d: Mapping[str, int], *, axis: int, start: int, block: int) -> np.ndarray:
    """Reorder the nv blocks of `block` entries that begin at `start` along `axis`; identity if nk == nv."""
    nk, nv = d["nk"], d["nv"]
    if nk == nv:
        return x
    heads = v_head_order(nk, nv)
    part = (heads[:, None] * block + np.arange(block)).reshape(-1) + start
    n = x.shape[axis]
    index = np.concatenate([np.arange(start), part, np.arange(start + nv * block, n)])
    return np.take(x, index, axis=axis)


def plus_one(x: np.ndarray, d: Mapping[str, int]) -> np.ndarray:
    """RMSNorm weights stored as w for (1 + w): GGUF stores 1 + w."""
    x += 1.0
    return x


def neg_exp(x: np.ndarray, d: Mapping[str, int]) -> np.ndarray:
    """A_log -> A = -exp(A_log), correctly rounded to float32: computed in float64, because numpy's
    float32 exp is only good to ~3 ulp and differs between SIMD paths (machines), while torch's (used
    by transformers and llama.cpp's converter) is within 1 ulp."""
    return (-np.exp(x.astype(np.float64))).astype(np.float32)


def squeeze_conv(x: np.ndarray, d: Mapping[str, int]) -> np.ndarray:
    """conv1d weight [C, 1, Kc] -> [C, Kc]."""
    return x.reshape(d["Cv"], d["Kc"])


def reorder_v_qkv_rows(x: np.ndarray, d: Mapping[str, int]) -> np.ndarray:
    """in_proj_qkv: the V rows (from 2*nk*dk on, blocks of dv); q/k rows untouched."""
    return _reorder_v(x, d, axis=0, start=2 * d["nk"] * d["dk"], block=d["dv"])


def reorder_v_rows(x: np.ndarray, d: Mapping[str, int]) -> np.ndarray:
    """in_proj_z: all rows, blocks of dv."""
    return _reorder_v(x, d, axis=0, start=0, block=d["dv"])


def reorder_v_heads(x: np.ndarray, d: Mapping[str, int]) -> np.ndarray:
    """One entry per value head along axis 0: in_proj_a / in_proj_b rows, A_log, dt_bias."""
    return _reorder_v(x, d, axis=0, start=0, block=1)


def reorder_v_conv(x: np.ndarray, d: Mapping[str, int]) -> np.ndarray:
    """conv1d [C, Kc]: the V channels (from 2*nk*dk on, blocks of dv)."""
    return _reorder_v(x, d, axis=0, start=2 * d["nk"] * d["dk"], block=d["dv"])


def reorder_v_cols(x: np.ndarray, d: Mapping[str, int]) -> np.ndarray:
    """out_proj [H, nv*dv]: columns, blocks of dv."""
    return _reorder_v(x, d, axis=1, start=0, block=d["dv"])


def gate_half(x: np.ndarray, d: Mapping[str, int]) -> np.ndarray:
    """Fused experts.gate_up_proj [E, 2I, H]: the gate rows come first."""
    return x[:, : d["I"], :]


def up_half(x: np.ndarray, d: Mapping[str, int]) -> np.ndarray:
    """Fused experts.gate_up_proj [E, 2I, H]: the up rows come second."""
    return x[:, d["I"] :, :]


TRANSFORMS: dict[str, Transform] = {
    "plus_one": plus_one,
    "neg_exp": neg_exp,
    "squeeze_conv": squeeze_conv,
    "reorder_v_qkv_rows": reorder_v_qkv_rows,
    "reorder_v_rows": reorder_v_rows,
    "reorder_v_heads": reorder_v_heads,
    "reorder_v_conv": reorder_v_conv,
    "reorder_v_cols": reorder_v_cols,
    "gate_half": gate_half,
    "up_half": up_half,
}
RAW_TRANSFORMS = frozenset({"gate_half", "up_half"})

# -- the table -------------------------------------------------------------------------------------

MODEL, LAYER, FULL, LINEAR = "model", "layer", "full_attention", "linear_attention"


@dataclass(frozen=True)
class Source:
    """One way a GGUF tensor is stored in HF checkpoints.

    hf: name relative to the text model ("layers.{i}.…"); `{e}` means one 2-D tensor per expert, stacked
    on a new first axis in expert order. shape: the HF shape (per expert when stacked). transforms:
    applied first, before the rule's own (used for the fused-expert split)."""

    hf: str
    shape: Shape
    transforms: tuple[str, ...] = ()

    @property
    def stacked(self) -> bool:
        return "{e}" in self.hf


@dataclass(frozen=True)
class TensorRule:
    """One GGUF tensor: its name, where it comes from, its GGUF shape (row-major = ne reversed), the
    transforms (spec 5.3 order) and whether it is forced to F32 whatever the output type."""

    gguf: str
    sources: tuple[Source, ...]  # alternatives: exactly one must be present in a checkpoint
    shape: Shape
    transforms: tuple[str, ...] = ()
    f32: bool = False
    scope: str = LAYER  # MODEL (once), LAYER (every layer), FULL / LINEAR (layers of that kind)
    optional: bool = False  # output.weight: absent when tie_word_embeddings is true


def _rule(
    gguf: str,
    hf: str | tuple[Source, ...],
    hf_shape: Shape,
    shape: Shape | None = None,
    transforms: tuple[str, ...] = (),
    *,
    f32: bool = False,
    scope: str = LAYER,
    optional: bool = False,
) -> TensorRule:
    sources = hf if isinstance(hf, tuple) else (Source(hf, hf_shape),)
    return TensorRule(gguf, sources, hf_shape if shape is None else shape, transforms, f32, scope, optional)


def _experts(which: str, shape: Shape, raw: tuple[str, ...]) -> tuple[Source, ...]:
    fused = "gate_up_proj" if which in ("gate", "up") else "down_proj"
    fused_shape: Shape = ("E", "I2", "H") if fused == "gate_up_proj" else ("E", "H", "I")
    return (
        Source(f"layers.{{i}}.mlp.experts.{fused}", fused_shape, raw),
        Source(f"layers.{{i}}.mlp.experts.{fused}.weight", fused_shape, raw),
        Source(f"layers.{{i}}.mlp.experts.{{e}}.{which}_proj.weight", shape),
    )


P1 = ("plus_one",)
L = "layers.{i}."
SA, LA, MLP = L + "self_attn.", L + "linear_attn.", L + "mlp."

# fmt: off
RULES: tuple[TensorRule, ...] = (
    # _rule(GGUF name, HF name (text-model relative), HF shape, GGUF shape (None: same), transforms, ...)
    _rule("token_embd.weight", "embed_tokens.weight", ("V", "H"), scope=MODEL),
    _rule("output_norm.weight", "norm.weight", ("H",), None, P1, f32=True, scope=MODEL),
    _rule("output.weight", "lm_head.weight", ("V", "H"), scope=MODEL, optional=True),
    # every layer: norms and the MoE block
    _rule("blk.{i}.attn_norm.weight", L + "input_layernorm.weight", ("H",), None, P1, f32=True),
    _rule("blk.{i}.post_attention_norm.weight", L + "post_attention_layernorm.weight", ("H",), None, P1,
          f32=True),
    _rule("blk.{i}.ffn_gate_inp.weight", MLP + "gate.weight", ("E", "H"), f32=True),
    _rule("blk.{i}.ffn_gate_exps.weight", _experts("gate", ("I", "H"), ("gate_half",)), ("E", "I", "H")),
    _rule("blk.{i}.ffn_up_exps.weight", _experts("up", ("I", "H"), ("up_half",)), ("E", "I", "H")),
    _rule("blk.{i}.ffn_down_exps.weight", _experts("down", ("H", "I"), ()), ("E", "H", "I")),
    _rule("blk.{i}.ffn_gate_shexp.weight", MLP + "shared_expert.gate_proj.weight", ("Is", "H")),
    _rule("blk.{i}.ffn_up_shexp.weight", MLP + "shared_expert.up_proj.weight", ("Is", "H")),
    _rule("blk.{i}.ffn_down_shexp.weight", MLP + "shared_expert.down_proj.weight", ("H", "Is")),
    _rule("blk.{i}.ffn_gate_inp_shexp.weight", MLP + "shared_expert_gate.weight", (1, "H"), f32=True),
    # gated full-attention layers
    _rule("blk.{i}.attn_q.weight", SA + "q_proj.weight", ("Dq", "H"), scope=FULL),
    _rule("blk.{i}.attn_k.weight", SA + "k_proj.weight", ("Dkv", "H"), scope=FULL),
    _rule("blk.{i}.attn_v.weight", SA + "v_proj.weight", ("Dkv", "H"), scope=FULL),
    _rule("blk.{i}.attn_output.weight", SA + "o_proj.weight", ("H", "Do"), scope=FULL),
    _rule("blk.{i}.attn_q_norm.weight", SA + "q_norm.weight", ("D",), None, P1, f32=True, scope=FULL),
    _rule("blk.{i}.attn_k_norm.weight", SA + "k_norm.weight", ("D",), None, P1, f32=True, scope=FULL),
    # Gated DeltaNet layers: value heads reordered grouped -> tiled (identity when nk == nv)
    _rule("blk.{i}.attn_qkv.weight", LA + "in_proj_qkv.weight", ("Cv", "H"), None, ("reorder_v_qkv_rows",),
          scope=LINEAR),
    _rule("blk.{i}.attn_gate.weight", LA + "in_proj_z.weight", ("Dv", "H"), None, ("reorder_v_rows",),
          scope=LINEAR),
    _rule("blk.{i}.ssm_beta.weight", LA + "in_proj_b.weight", ("nv", "H"), None, ("reorder_v_heads",),
          scope=LINEAR),
    _rule("blk.{i}.ssm_alpha.weight", LA + "in_proj_a.weight", ("nv", "H"), None, ("reorder_v_heads",),
          scope=LINEAR),
    _rule("blk.{i}.ssm_conv1d.weight", LA + "conv1d.weight", ("Cv", 1, "Kc"), ("Cv", "Kc"),
          ("squeeze_conv", "reorder_v_conv"), f32=True, scope=LINEAR),
    _rule("blk.{i}.ssm_dt.bias", LA + "dt_bias", ("nv",), None, ("reorder_v_heads",), f32=True, scope=LINEAR),
    _rule("blk.{i}.ssm_a", LA + "A_log", ("nv",), None, ("reorder_v_heads", "neg_exp"), f32=True,
          scope=LINEAR),
    _rule("blk.{i}.ssm_norm.weight", LA + "norm.weight", ("dv",), f32=True, scope=LINEAR),  # no +1
    _rule("blk.{i}.ssm_out.weight", LA + "out_proj.weight", ("H", "Dv"), None, ("reorder_v_cols",),
          scope=LINEAR),
)
# fmt: on

# Tensors that are not part of the text GGUF: name prefix -> what to call them in the skip note.
SKIP_PREFIXES: tuple[tuple[str, str], ...] = (
    ("mtp.", "MTP"),
    ("model.mtp.", "MTP"),
    ("model.language_model.mtp.", "MTP"),
    ("model.visual.", "vision"),
    ("visual.", "vision"),
)
# Prefixes of the text model, most specific first; stripping gives the names used in RULES.
TEXT_PREFIXES: tuple[str, ...] = ("model.language_model.", "language_model.model.", "model.")
TOP_LEVEL: dict[str, str] = {
    "lm_head.weight": "lm_head.weight",
    "language_model.lm_head.weight": "lm_head.weight",
}


def forced_f32_by_name(gguf_name: str, n_dims: int) -> bool:
    """Spec 5.3 step 7 stated on names (llama.cpp's rule); the table's f32 flags must agree with it."""
    base = gguf_name.split(".", 2)[-1] if gguf_name.startswith("blk.") else gguf_name
    return (
        n_dims <= 1
        or gguf_name.endswith("_norm.weight")
        or base in ("ffn_gate_inp.weight", "ffn_gate_inp_shexp.weight", "ssm_conv1d.weight")
        or not gguf_name.endswith(".weight")
    )


def canonical_name(name: str) -> tuple[str | None, str | None]:
    """(name relative to the text model, None) or (None, skip kind) or (None, None) if unrecognised."""
    for prefix, kind in SKIP_PREFIXES:
        if name.startswith(prefix):
            return None, kind
    if name in TOP_LEVEL:
        return TOP_LEVEL[name], None
    for prefix in TEXT_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :], None
    return None, None


# -- planning ---------------------------------------------------------------------------------------

_LAYER_RE = re.compile(r"^layers\.(\d+)\.")
_EXPERT_RE = re.compile(r"\.experts\.(\d+)\.")


def _template(canonical: str) -> tuple[str, int | None, int | None]:
    """'layers.3.mlp.experts.7.up_proj.weight' -> ('layers.{i}.mlp.experts.{e}.up_proj.weight', 3, 7)."""
    layer = expert = None
    m = _LAYER_RE.match(canonical)
    if m:
        layer = int(m.group(1))
        canonical = "layers.{i}." + canonical[m.end() :]
        e = _EXPERT_RE.search(canonical)
        if e:
            expert = int(e.group(1))
            canonical = canonical[: e.start()] + ".experts.{e}." + canonical[e.end() :]
    return canonical, layer, expert


@dataclass(frozen=True)
class PlannedTensor:
    """One output tensor: where its data comes from and what it becomes."""

    name: str  # GGUF name
    rule: TensorRule
    source: Source
    hf_names: tuple[str, ...]  # checkpoint names: one, or num_experts when stacked
    hf_shape: tuple[int, ...]  # expected HF shape (per expert when stacked)
    shape: tuple[int, ...]  # GGUF shape, row-major (ne reversed)

    @property
    def transforms(self) -> tuple[str, ...]:
        return self.source.transforms + self.rule.transforms


@dataclass
class TensorPlan:
    tensors: list[PlannedTensor]
    skipped: dict[str, int] = field(default_factory=dict)  # kind ("MTP", "vision") -> count


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(s for s in shape if s != 1)


def plan_tensors(shapes: Mapping[str, tuple[int, ...]], c: TextConfig) -> TensorPlan:
    """Match checkpoint tensor names (with their shapes) against RULES for config `c`.

    Raises ValueError (one line) for an unknown tensor, a tensor of a layer the config does not have or
    of the wrong kind, a duplicate, a missing required tensor, or a shape that disagrees with the config.
    """
    d = dims(c)
    by_template: dict[str, tuple[TensorRule, Source]] = {}
    for rule in RULES:
        for src in rule.sources:
            by_template[src.hf] = (rule, src)

    skipped: dict[str, int] = {}
    found: dict[str, str] = {}  # canonical -> checkpoint name
    prefix_seen: str | None = None
    for name in shapes:
        canonical, skip = canonical_name(name)
        if skip is not None:
            skipped[skip] = skipped.get(skip, 0) + 1
            continue
        if canonical is None or _template(canonical)[0] not in by_template:
            raise ValueError(f"unknown tensor {name!r}: not part of a Qwen3.5-MoE text checkpoint")
        template, layer, expert = _template(canonical)
        rule, _ = by_template[template]
        if layer is not None:
            if layer >= c.num_hidden_layers:
                raise ValueError(
                    f"tensor {name!r} is for layer {layer} but the config has {c.num_hidden_layers} layers"
                )
            if rule.scope in (FULL, LINEAR) and c.layer_types[layer] != rule.scope:
                raise ValueError(
                    f"tensor {name!r} belongs to a {rule.scope} layer but config.json makes layer {layer} "
                    f"{c.layer_types[layer]}"
                )
        if expert is not None and expert >= c.num_experts:
            raise ValueError(
                f"tensor {name!r} is for expert {expert} but the config has {c.num_experts} experts"
            )
        if canonical in found:
            raise ValueError(f"tensor {name!r} and {found[canonical]!r} are the same tensor")
        found[canonical] = name
        if prefix_seen is None and name.endswith(canonical) and canonical != "lm_head.weight":
            prefix_seen = name[: len(name) - len(canonical)]

    text_prefix = prefix_seen if prefix_seen is not None else "model.language_model."

    def shown(canonical: str) -> str:
        return canonical if canonical == "lm_head.weight" else text_prefix + canonical

    def check_shape(name: str, want: tuple[int, ...]) -> None:
        got = tuple(shapes[name])
        if _squeezed(got) != _squeezed(want):
            raise ValueError(f"tensor {name!r} has shape {list(got)} but config.json implies {list(want)}")

    out: list[PlannedTensor] = []

    def place(rule: TensorRule, layer: int | None) -> None:
        fmt = {"i": layer} if layer is not None else {}
        present: list[tuple[Source, tuple[str, ...]]] = []
        for src in rule.sources:
            if src.stacked:
                names = [src.hf.format(e=e, **fmt) for e in range(c.num_experts)]
                have = [n for n in names if n in found]
                if not have:
                    continue
                if len(have) != len(names):
                    missing = next(n for n in names if n not in found)
                    raise ValueError(
                        f"missing tensor {shown(missing)!r} (other experts of layer {layer} exist)"
                    )
                present.append((src, tuple(found[n] for n in names)))
            else:
                n = src.hf.format(e="{e}", **fmt)
                if n in found:
                    present.append((src, (found[n],)))
        gguf_name = rule.gguf.format(i=layer) if layer is not None else rule.gguf
        if not present:
            if rule.optional and c.tie_word_embeddings:
                return
            first = rule.sources[0].hf.format(e=0, **fmt)
            raise ValueError(f"missing tensor {shown(first)!r} (needed for {gguf_name})")
        if len(present) > 1:
            raise ValueError(
                f"{gguf_name}: the checkpoint has both {present[0][1][0]!r} and {present[1][1][0]!r}"
            )
        src, names = present[0]
        hf_shape = resolve_shape(src.shape, d)
        for n in names:
            check_shape(n, hf_shape)
        out.append(PlannedTensor(gguf_name, rule, src, names, hf_shape, resolve_shape(rule.shape, d)))

    for rule in RULES:
        if rule.scope == MODEL:
            place(rule, None)
    for layer in range(c.num_hidden_layers):
        for rule in RULES:
            if rule.scope == LAYER or rule.scope == c.layer_types[layer]:
                place(rule, layer)
    return TensorPlan(out, skipped)
