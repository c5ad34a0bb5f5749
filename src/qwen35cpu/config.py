"""The hyper-parameters of a loaded qwen35moe model."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """What the forward pass reads from the GGUF metadata (names follow the spec's symbols)."""

    n_layer: int  # main decoder layers
    n_embd: int  # hidden size H
    n_vocab: int  # vocabulary rows V
    n_ctx_train: int  # context_length
    rms_norm_eps: float
    n_head: int  # attention query heads nh
    n_head_kv: int  # attention KV heads nkv
    head_dim: int  # D
    n_rot: int  # rotary dims of each head
    rope_theta: float
    rope_sections: tuple[int, ...]
    ssm_conv_kernel: int  # Kc
    ssm_d_state: int  # dk = dv
    ssm_n_group: int  # nk, DeltaNet key heads
    ssm_dt_rank: int  # nv, DeltaNet value heads
    ssm_d_inner: int  # nv * dv
    full_attn_interval: int
    n_expert: int
    n_expert_used: int
    n_ff_exp: int  # routed expert width I
    n_ff_shexp: int  # shared expert width Is
    is_attn: tuple[bool, ...]  # per layer: full attention or DeltaNet

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        kw = {f.name: d[f.name] for f in fields(cls)}
        kw["rope_sections"] = tuple(kw["rope_sections"])
        kw["is_attn"] = tuple(bool(a) for a in kw["is_attn"])
        return cls(**kw)

    @property
    def n_attn_layers(self) -> int:
        return sum(self.is_attn)

    @property
    def n_deltanet_layers(self) -> int:
        return self.n_layer - self.n_attn_layers

    @property
    def conv_dim(self) -> int:
        return 2 * self.ssm_n_group * self.ssm_d_state + self.ssm_d_inner

    def kv_bytes_per_token(self, bytes_per_value: int = 4) -> int:
        """KV cache bytes one token adds (K and V of every attention layer)."""
        return 2 * self.n_attn_layers * self.n_head_kv * self.head_dim * bytes_per_value

    def recurrent_state_bytes(self) -> int:
        """Fixed per-sequence DeltaNet state: conv windows and delta-rule matrices, in f32."""
        conv = (self.ssm_conv_kernel - 1) * self.conv_dim
        ssm = self.ssm_dt_rank * self.ssm_d_state * self.ssm_d_state
        return self.n_deltanet_layers * (conv + ssm) * 4
