"""What is in a qwen35moe GGUF file: tensor groups, types, sizes and session memory."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field

from . import _core
from .config import ModelConfig

# Tensor groups by name pattern, first match wins: how a user reads the file's size.
GROUPS: list[tuple[str, str]] = [
    ("embedding", r"^token_embd\."),
    ("output", r"^output\."),
    ("norms", r"norm\.weight$"),
    ("router", r"\.ffn_gate_inp\."),
    ("routed experts", r"_exps\.weight$"),
    ("shared expert", r"(_shexp\.weight|ffn_gate_inp_shexp\.weight)$"),
    ("attention", r"\.attn_(q|k|v|output)\.weight$"),
    ("deltanet", r"\.(attn_qkv|attn_gate|ssm_\w+)(\.weight|\.bias)?$"),
]


@dataclass
class GroupStats:
    n_tensors: int = 0
    n_params: int = 0
    n_bytes: int = 0
    types: Counter[str] = field(default_factory=Counter)


def group_of(name: str) -> str:
    for group, pattern in GROUPS:
        if re.search(pattern, name):
            return group
    return "other"


@dataclass
class FileReport:
    path: str
    file_size: int
    metadata: dict[str, object]
    config: ModelConfig
    groups: dict[str, GroupStats]
    # Bytes per KV cache value: the core keeps F16 KV rows for files with quantized matrices (judged
    # by blk.0.ffn_down_exps, as csrc/model/weights.cpp does) and F32 rows for float files.
    kv_value_bytes: int = 4

    @property
    def weight_bytes(self) -> int:
        return sum(g.n_bytes for g in self.groups.values())

    @property
    def n_params(self) -> int:
        return sum(g.n_params for g in self.groups.values())

    def session_bytes(self, n_ctx: int) -> dict[str, int]:
        """Memory one session needs at n_ctx tokens."""
        kv = self.config.kv_bytes_per_token(self.kv_value_bytes) * n_ctx
        rec = self.config.recurrent_state_bytes()
        return {"kv_cache": kv, "recurrent_state": rec, "total": kv + rec}


def inspect_file(path: str | os.PathLike[str]) -> FileReport:
    p = os.fspath(path)
    # A split set is described whole: metadata from the first part, tensors from every part.
    files = [_core.GgufFile(part) for part in _core.gguf_parts(p)]
    f = files[0]
    config = ModelConfig.from_dict(_core.read_config(p))
    groups: dict[str, GroupStats] = {}
    kv_value_bytes = 4
    for t in (t for part in files for t in part.tensors):
        if t.name == "blk.0.ffn_down_exps.weight" and t.type_name not in ("F32", "F16", "BF16"):
            kv_value_bytes = 2
        g = groups.setdefault(group_of(t.name), GroupStats())
        n = 1
        for d in t.ne:
            n *= d
        g.n_tensors += 1
        g.n_params += n
        g.n_bytes += t.nbytes
        g.types[t.type_name] += t.nbytes
    size = sum(part.file_size for part in files)
    return FileReport(p, size, dict(f.metadata), config, groups, kv_value_bytes)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError


def format_report(r: FileReport, n_ctx: int) -> str:
    c = r.config
    md = r.metadata
    lines = [
        f"file:          {r.path}",
        f"size:          {human(r.file_size)} ({r.file_size} bytes)",
        f"architecture:  {md.get('general.architecture')}   name: {md.get('general.name', '-')}",
        f"parameters:    {r.n_params / 1e9:.3f} B   weights {human(r.weight_bytes)}",
        f"layers:        {c.n_layer} ({c.n_deltanet_layers} Gated DeltaNet,"
        f" {c.n_attn_layers} gated attention, every {c.full_attn_interval}th)",
        f"hidden:        {c.n_embd}   vocab: {c.n_vocab}   context (trained): {c.n_ctx_train}",
        f"attention:     {c.n_head} heads / {c.n_head_kv} KV heads of {c.head_dim}, rotary {c.n_rot} dims,"
        f" theta {c.rope_theta:g}",
        f"deltanet:      {c.ssm_n_group} key / {c.ssm_dt_rank} value heads of {c.ssm_d_state},"
        f" conv kernel {c.ssm_conv_kernel}",
        f"experts:       {c.n_expert} routed, top {c.n_expert_used}, width {c.n_ff_exp};"
        f" shared width {c.n_ff_shexp}",
        f"rms_norm_eps:  {c.rms_norm_eps:g}",
        "",
        "tensor groups:",
    ]
    order = [g for g, _ in GROUPS] + ["other"]
    for name in order:
        g = r.groups.get(name)
        if g is None:
            continue
        types = ", ".join(f"{t} {human(b)}" for t, b in g.types.most_common())
        lines.append(f"  {name:15s} {g.n_tensors:5d} tensors {g.n_params / 1e6:12.2f} M params"
                     f" {human(g.n_bytes):>12s}   [{types}]")
    mem = r.session_bytes(n_ctx)
    lines += [
        "",
        f"memory for one session at n_ctx={n_ctx}:",
        f"  weights (mmap)   {human(r.weight_bytes):>12s}",
        f"  KV cache ({'f16' if r.kv_value_bytes == 2 else 'f32'})   {human(mem['kv_cache']):>12s}"
        f"   ({c.kv_bytes_per_token(r.kv_value_bytes)} bytes/token)",
        f"  recurrent state  {human(mem['recurrent_state']):>12s}",
        f"  total            {human(r.weight_bytes + mem['total']):>12s}",
    ]
    return "\n".join(lines)
