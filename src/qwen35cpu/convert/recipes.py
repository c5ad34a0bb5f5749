"""Output types of the converter as data: which ggml type each GGUF tensor gets (`--type`), the
block-size fallback, and the `--max-size` upgrade plan.

A `Recipe` is a table: a base type for every quantizable matrix, per-role overrides (the role of
`blk.7.ffn_down_exps.weight` is "ffn_down_exps") and per-layer overrides (`LayerRule`: roles, a named
layer set, a type; later rules win). Tensors the mapping forces to F32 (norms, router gates, conv,
ssm_a, ssm_dt, every 1-D tensor) stay F32 whatever the recipe.

The k-quant mixes (`q5_k_m`, `q4_k_m`, `q3_k_m`) follow what llama.cpp's `llama-quant.cpp` does for
these ftypes on a `qwen35moe` model (more than 8 experts, so none of its 8-expert special cases): the
"attn_v-like" tensors are attn_v and attn_qkv (llama.cpp counts the DeltaNet attn_qkv with attn_v;
every layer has exactly one of the two, so its counter equals the layer index), "ffn_down" is both the
routed expert stack and the shared expert, output.weight goes to Q6_K. One adaptation: Q3_K_M raises
attn_output to Q4_K and we treat ssm_out, the DeltaNet layers' output projection, the same way.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import gguf

from .mapping import PlannedTensor

__all__ = [
    "ALIGNMENT",
    "RECIPES",
    "Choice",
    "LayerRule",
    "Recipe",
    "compatible_type",
    "padded_nbytes",
    "plan_types",
    "role_of",
    "tensor_nbytes",
]

QT = gguf.GGMLQuantizationType
FT = gguf.LlamaFileType
ALIGNMENT = gguf.GGUF_DEFAULT_ALIGNMENT  # every tensor's data starts on this boundary (32)

# The types the core can compute; a recipe may only produce these.
WRITABLE: frozenset[QT] = frozenset(
    {QT.F32, QT.F16, QT.BF16, QT.Q8_0, QT.Q4_0, QT.IQ4_NL, QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K,
     QT.IQ4_XS}
)  # fmt: skip


def block_size(t: QT) -> int:
    return gguf.GGML_QUANT_SIZES[t][0]


def bits_per_weight(t: QT) -> float:
    block, size = gguf.GGML_QUANT_SIZES[t]
    return 8.0 * size / block


def tensor_nbytes(shape: tuple[int, ...], t: QT) -> int:
    """Bytes of a tensor of GGUF row-major `shape` (last axis = ne0) stored as `t`."""
    block, size = gguf.GGML_QUANT_SIZES[t]
    n = 1
    for s in shape:
        n *= s
    if shape and shape[-1] % block:
        raise ValueError(f"{t.name} needs rows of a multiple of {block} values, got {shape[-1]}")
    return n // block * size


def padded_nbytes(shape: tuple[int, ...], t: QT) -> int:
    """Bytes the tensor takes in the file's data section, alignment padding included."""
    n = tensor_nbytes(shape, t)
    return n + (-n) % ALIGNMENT


# -- fallback for rows that are not whole blocks ------------------------------------------------------

# A 256-block type whose rows do not fit goes to a 32-block type of at least its quality (llama.cpp
# uses Q4_0 / Q5_0 / Q5_1 / Q8_0; Q5_0 and Q5_1 are not computed by the core, and IQ4_NL has Q4_0's size
# with a smaller error, so it replaces Q4_0); a 32-block type that does not fit goes to F16.
FALLBACK: Mapping[QT, QT] = {
    QT.Q2_K: QT.IQ4_NL,
    QT.Q3_K: QT.IQ4_NL,
    QT.Q4_K: QT.IQ4_NL,
    QT.IQ4_XS: QT.IQ4_NL,
    QT.Q5_K: QT.Q8_0,
    QT.Q6_K: QT.Q8_0,
}


def compatible_type(t: QT, ne0: int) -> QT:
    """`t` if rows of ne0 values are whole blocks of it, else its fallback (F16 as the last resort)."""
    if ne0 % block_size(t) == 0:
        return t
    fb = FALLBACK.get(t)
    if fb is not None and ne0 % block_size(fb) == 0:
        return fb
    return QT.F16


# -- the recipe tables ------------------------------------------------------------------------------


def _more_bits(i: int, n: int) -> bool:
    """llama.cpp's use_more_bits: the first and last eighth of the layers and every third one between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


LAYER_SETS: Mapping[str, Callable[[int, int], bool]] = {
    "more_bits": _more_bits,
    "first_sixteenth": lambda i, n: i < n // 16,
    "first_two": lambda i, n: i < 2,
}


@dataclass(frozen=True)
class LayerRule:
    roles: tuple[str, ...]
    layers: str  # a key of LAYER_SETS
    qtype: QT


@dataclass(frozen=True)
class Recipe:
    name: str
    file_type: FT  # general.file_type
    base: QT  # every quantizable matrix whose role is not in `roles`
    roles: Mapping[str, QT] = field(default_factory=dict)
    layers: tuple[LayerRule, ...] = ()

    def type_for(self, role: str, layer: int | None, n_layers: int) -> QT:
        t = self.roles.get(role, self.base)
        for rule in self.layers:
            if layer is not None and role in rule.roles and LAYER_SETS[rule.layers](layer, n_layers):
                t = rule.qtype
        return t


ATTN_V_LIKE = ("attn_v", "attn_qkv")
FFN_DOWN = ("ffn_down_exps", "ffn_down_shexp")
EXPERTS = ("ffn_gate_exps", "ffn_up_exps", "ffn_down_exps")


def _uniform(name: str, ft: FT, t: QT) -> Recipe:
    return Recipe(name, ft, t)


RECIPES: Mapping[str, Recipe] = {
    r.name: r
    for r in (
        _uniform("f32", FT.ALL_F32, QT.F32),
        _uniform("f16", FT.MOSTLY_F16, QT.F16),
        _uniform("bf16", FT.MOSTLY_BF16, QT.BF16),
        _uniform("q8_0", FT.MOSTLY_Q8_0, QT.Q8_0),
        _uniform("q6_k", FT.MOSTLY_Q6_K, QT.Q6_K),
        Recipe(
            "q5_k_m", FT.MOSTLY_Q5_K_M, QT.Q5_K, {"output": QT.Q6_K},
            (LayerRule(ATTN_V_LIKE, "more_bits", QT.Q6_K), LayerRule(FFN_DOWN, "more_bits", QT.Q6_K)),
        ),
        Recipe(
            "q4_k_m", FT.MOSTLY_Q4_K_M, QT.Q4_K, {"output": QT.Q6_K},
            (LayerRule(ATTN_V_LIKE, "more_bits", QT.Q6_K), LayerRule(FFN_DOWN, "more_bits", QT.Q6_K)),
        ),
        Recipe(
            "q3_k_m", FT.MOSTLY_Q3_K_M, QT.Q3_K,
            {"output": QT.Q6_K,
             **dict.fromkeys((*ATTN_V_LIKE, *FFN_DOWN, "attn_output", "ssm_out"), QT.Q4_K)},
            (LayerRule(ATTN_V_LIKE, "first_two", QT.Q5_K), LayerRule(FFN_DOWN, "first_sixteenth", QT.Q5_K)),
        ),
        _uniform("q2_k", FT.MOSTLY_Q2_K, QT.Q2_K),
        _uniform("iq4_xs", FT.MOSTLY_IQ4_XS, QT.IQ4_XS),
        # mac192: a 397B-A17B that fits a 192 GB Mac (about 173 GB of tensors). The bulk (routed
        # experts) is 3-bit and everything that runs for every token is 5-6 bit, the shape of a
        # Q3_K_M mix, hence that file type. Router gates, norms and conv are F32 by the mapping;
        # the small DeltaNet gate projections (alpha, beta: nv rows) are F32 here too.
        Recipe(
            "mac192", FT.MOSTLY_Q3_K_M, QT.Q5_K,
            {"token_embd": QT.Q6_K, "output": QT.Q6_K, **dict.fromkeys(EXPERTS, QT.Q3_K),
             "ssm_alpha": QT.F32, "ssm_beta": QT.F32},
        ),
    )
}  # fmt: skip

# -- roles and groups -------------------------------------------------------------------------------


def role_of(name: str) -> tuple[str, int | None]:
    """'blk.7.ffn_down_exps.weight' -> ('ffn_down_exps', 7); 'output.weight' -> ('output', None)."""
    layer: int | None = None
    if name.startswith("blk."):
        _, i, name = name.split(".", 2)
        layer = int(i)
    return name.removesuffix(".weight"), layer


# role -> group shown by --dry-run; roles not listed are "norms/small".
GROUPS: Mapping[str, str] = {
    "token_embd": "embeddings",
    "output": "output",
    **dict.fromkeys(("attn_q", "attn_k", "attn_v", "attn_output"), "attention"),
    **dict.fromkeys(("attn_qkv", "attn_gate", "ssm_out", "ssm_alpha", "ssm_beta"), "deltanet"),
    **dict.fromkeys(("ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp"), "shared expert"),
    "ffn_gate_exps": "experts gate",
    "ffn_up_exps": "experts up",
    "ffn_down_exps": "experts down",
    **dict.fromkeys(("ffn_gate_inp", "ffn_gate_inp_shexp"), "router"),
}
GROUP_ORDER = (
    "embeddings", "output", "attention", "deltanet", "shared expert", "experts gate", "experts up",
    "experts down", "router", "norms/small",
)  # fmt: skip


def group_of(name: str) -> str:
    return GROUPS.get(role_of(name)[0], "norms/small")


# -- --max-size: spending the room left on the tensors that hurt most --------------------------------

# One step better for each type (same or compatible block size, so a fitting tensor still fits).
UPGRADE: Mapping[QT, QT] = {
    QT.Q2_K: QT.Q3_K,
    QT.Q3_K: QT.Q4_K,
    QT.IQ4_XS: QT.Q5_K,
    QT.Q4_K: QT.Q5_K,
    QT.Q5_K: QT.Q6_K,
    QT.Q6_K: QT.Q8_0,
    QT.Q4_0: QT.Q8_0,
    QT.IQ4_NL: QT.Q8_0,
}

# Among tensors at the same bits per weight, which is upgraded first: lower tier first, then the
# layers nearest the ends of the stack (0, L-1, 1, L-2, ...), then the order of the roles here.
TIERS: tuple[tuple[str, ...], ...] = (
    ("ffn_down_exps",),
    ("ffn_gate_exps", "ffn_up_exps"),
    ("ffn_down_shexp", "attn_v", "attn_qkv", "attn_output", "ssm_out"),
)


def _priority(role: str, layer: int | None, n_layers: int) -> tuple[int, int, int]:
    tier, pos = len(TIERS), 0
    for k, roles in enumerate(TIERS):
        if role in roles:
            tier, pos = k, roles.index(role)
    edge = -1 if layer is None else min(2 * layer, 2 * (n_layers - 1 - layer) + 1)
    return tier, edge, pos


@dataclass(frozen=True)
class Choice:
    """One output tensor and the type it is written as."""

    planned: PlannedTensor
    qtype: QT

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.planned.shape, self.qtype)

    @property
    def padded(self) -> int:
        return padded_nbytes(self.planned.shape, self.qtype)


def plan_types(
    plan: Iterable[PlannedTensor], n_layers: int, recipe: Recipe, budget: int | None = None
) -> tuple[list[Choice], list[str]]:
    """The type of every tensor under `recipe`, then (when `budget`, bytes of tensor data with padding,
    is given) upgraded one step at a time while the total stays within it. Returns the choices in plan
    order and the notes to print (fallbacks). Deterministic: depends only on the plan and arguments.
    ValueError when the recipe alone exceeds the budget."""
    choices: list[Choice] = []
    fallback: dict[tuple[QT, QT], list[str]] = {}
    for p in plan:
        if p.rule.f32 or len(p.shape) <= 1:
            choices.append(Choice(p, QT.F32))
            continue
        role, layer = role_of(p.name)
        want = recipe.type_for(role, layer, n_layers)
        t = compatible_type(want, p.shape[-1])
        if t != want:
            fallback.setdefault((want, t), []).append(p.name)
        if t not in WRITABLE:
            raise AssertionError(f"{p.name}: recipe {recipe.name} chose {t.name}, not computable by the core")
        choices.append(Choice(p, t))
    notes = [
        f"{len(names)} tensor(s) have rows of a length that is not a multiple of {block_size(a)} and are "
        f"written as {b.name} instead of {a.name}: {', '.join(names)}"
        for (a, b), names in fallback.items()
    ]
    if budget is not None:
        choices = _fill_budget(choices, n_layers, budget)
    return choices, notes


def _fill_budget(choices: list[Choice], n_layers: int, budget: int) -> list[Choice]:
    total = sum(c.padded for c in choices)
    if total > budget:
        raise ValueError(
            f"the recipe alone needs {total} bytes ({total / 1e9:.2f} GB) of tensor data, over the budget "
            f"of {budget} bytes ({budget / 1e9:.2f} GB) left for it; choose a smaller --type or a larger "
            "--max-size"
        )
    # Greedy: always try the tensor with the fewest bits per weight (ties: _priority, then plan order).
    # A step that does not fit is dropped for good: the room left only shrinks.
    heap: list[tuple[float, tuple[int, int, int], int]] = []

    def push(i: int) -> None:
        c = choices[i]
        if c.qtype in UPGRADE:
            role, layer = role_of(c.planned.name)
            heapq.heappush(heap, (bits_per_weight(c.qtype), _priority(role, layer, n_layers), i))

    for i in range(len(choices)):
        push(i)
    while heap:
        _, _, i = heapq.heappop(heap)
        c = choices[i]
        up = UPGRADE[c.qtype]
        if c.planned.shape[-1] % block_size(up):
            continue
        new = Choice(c.planned, up)
        extra = new.padded - c.padded
        if total + extra <= budget:
            total += extra
            choices[i] = new
            push(i)
    return choices
