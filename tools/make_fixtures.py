"""Build the tiny reference checkpoints and their golden logits with transformers.

    python tools/make_fixtures.py --out tests/fixtures/tiny [--only NAME ...] [--real-vocab]

Each NAME becomes DIR/NAME/: a Hugging Face checkpoint folder (config.json, safetensors, tokenizer)
plus golden.npz (`prompt` int32 [n], `logits` float32 [n, vocab]: transformers' qwen3_5_moe logits
of the whole prompt at once) and meta.json. Every parameter is re-randomised after construction
(transformers' default init sets RMSNorm1p weights to 0 and the gated-norm weight to 1, which would
hide (1 + w) mix-ups). Deterministic: the same versions give the same bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

# torch rounds differently on AVX-512 than on AVX2 (up to 5e-5 in these logits), and MKL's GEMM
# picks its blocking by the CPU model and cache sizes even on one ISA: the same AVX2 build gave
# other last bits on a 480 MiB-L3 Xeon than where the goldens were first made. Pinning torch's
# kernels to AVX2 and MKL to its strict conditional-numerical-reproducibility mode (one AVX2 code
# path on every processor, whatever the alignment) makes the goldens bit-reproducible. Set before
# torch loads.
for _var, _isa in (("ATEN_CPU_CAPABILITY", "avx2"), ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
                   ("ONEDNN_MAX_CPU_ISA", "AVX2"), ("MKL_CBWR", "AVX2,STRICT")):
    os.environ.setdefault(_var, _isa)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from qwen35cpu.random_checkpoint import (  # noqa: E402
    CFG_A,
    SPECIAL_TOKENS,
    bf16_bits,
    bf16_to_f32,
    layer_types,
    write_checkpoint,
)

BASE = {**CFG_A, "vocab_size": 320, "rope_theta": 1e7}

# name -> (text config, layout, stored dtype, prompt length); together they cover nv = 2 nk and
# nv = 4 nk, nk = nv, head_dim 256 with partial rotary, top-k 1 / 2 / 4 / 8, 4 to 12 layers,
# both checkpoint layouts and both prefixes, bf16 storage in both layouts, prompts longer than
# a 64-token chunk.
CONFIGS: dict[str, tuple[dict[str, Any], str, str, int]] = {
    "nv2": (
        {**BASE, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
         "partial_rotary_factor": 0.5, "mrope_section": [3, 3, 2], "linear_num_key_heads": 2,
         "linear_num_value_heads": 4, "shared_expert_intermediate_size": 64},
        "save_pretrained", "f32", 80,
    ),
    "nv4_hd256": (
        {**BASE, "num_hidden_layers": 8, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 256,
         "partial_rotary_factor": 0.25, "mrope_section": [11, 11, 10], "linear_num_key_heads": 2,
         "linear_num_value_heads": 8, "num_experts": 16, "num_experts_per_tok": 4,
         "shared_expert_intermediate_size": 32},
        "hub", "bf16", 80,
    ),
    "r1": (
        {**BASE, "hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16,
         "partial_rotary_factor": 0.5, "mrope_section": [2, 1, 1], "rope_theta": 1e4,
         "linear_num_key_heads": 4, "linear_num_value_heads": 4, "linear_key_head_dim": 8,
         "linear_value_head_dim": 8, "num_experts": 4, "num_experts_per_tok": 1,
         "moe_intermediate_size": 32, "shared_expert_intermediate_size": 32},
        "hub", "f32", 70,
    ),
    "deep": (
        {**BASE, "hidden_size": 32, "num_hidden_layers": 12, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 64, "partial_rotary_factor": 0.25, "mrope_section": [3, 3, 2],
         "linear_num_key_heads": 1, "linear_num_value_heads": 4, "linear_key_head_dim": 32,
         "linear_value_head_dim": 32, "num_experts": 16, "num_experts_per_tok": 8,
         "shared_expert_intermediate_size": 32},
        "save_pretrained", "bf16", 100,
    ),
}
REAL_VOCAB = (
    {**BASE, "vocab_size": 248320, "hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1,
     "head_dim": 32, "partial_rotary_factor": 0.5, "mrope_section": [3, 3, 2], "linear_num_key_heads": 1,
     "linear_num_value_heads": 2, "num_experts": 4, "num_experts_per_tok": 2},
    "save_pretrained", "f32", 80,
)


def hf_config(cfg: dict[str, Any]) -> Any:
    from transformers import Qwen3_5MoeTextConfig

    rope = {
        "rope_type": "default",
        "rope_theta": cfg["rope_theta"],
        "partial_rotary_factor": cfg["partial_rotary_factor"],
        "mrope_section": list(cfg["mrope_section"]),
        "mrope_interleaved": True,
    }
    skip = ("rope_theta", "partial_rotary_factor", "mrope_section", "mtp_num_hidden_layers")
    kw = {k: v for k, v in cfg.items() if k not in skip}
    return Qwen3_5MoeTextConfig(**kw, rope_parameters=rope, layer_types=layer_types(cfg),
                                hidden_act="silu", attn_implementation="eager")


def rerandomise(model: torch.nn.Module, seed: int) -> None:
    """Draw every parameter anew (spec section 8), so norm and gate bugs cannot hide."""
    g = torch.Generator().manual_seed(seed)

    def normal(shape: torch.Size, std: float, mean: float = 0.0) -> torch.Tensor:
        return torch.randn(shape, generator=g) * std + mean

    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("linear_attn.norm.weight"):
                p.copy_(normal(p.shape, 0.3, 1.0))  # gated norm: plain w
            elif name.endswith("norm.weight"):
                p.copy_(normal(p.shape, 0.3))  # RMSNorm1p: (1 + w)
            elif name.endswith("A_log"):
                # The log in float64, rounded once to float32: torch's float32 log (MKL's vector
                # math) gives other last bits on other CPU models, and A_log stays float32 in the
                # checkpoint, so the weights would not rebuild byte for byte everywhere.
                u = torch.rand(p.shape, generator=g) * 7.5 + 0.5
                p.copy_(torch.from_numpy(np.log(u.double().numpy()).astype(np.float32)))
            elif name.endswith("dt_bias"):
                p.copy_(normal(p.shape, 0.5))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(normal(p.shape, 1.0))
            elif name.endswith("conv1d.weight"):
                p.copy_(normal(p.shape, 0.5))
            else:  # matrices, fused expert stacks included: N(0, 1.5^2 / fan_in)
                fan_in = p.shape[-1]
                p.copy_(normal(p.shape, 1.5 / math.sqrt(fan_in)))


def canonical(model: torch.nn.Module, cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """In-memory state dict -> canonical names (relative to the text model, experts per expert)."""
    out: dict[str, np.ndarray] = {}
    I = cfg["moe_intermediate_size"]  # noqa: E741
    for name, t in model.state_dict().items():
        a = t.detach().float().numpy().copy()
        if name == "lm_head.weight":
            out[name] = a
            continue
        name = name.removeprefix("model.")
        if name.endswith("mlp.experts.gate_up_proj"):
            p = name.removesuffix("gate_up_proj")
            for e in range(a.shape[0]):
                out[f"{p}{e}.gate_proj.weight"] = a[e, :I]
                out[f"{p}{e}.up_proj.weight"] = a[e, I:]
        elif name.endswith("mlp.experts.down_proj"):
            p = name.removesuffix("down_proj")
            for e in range(a.shape[0]):
                out[f"{p}{e}.down_proj.weight"] = a[e]
        else:
            out[name] = a
    return out


def prompt_ids(n: int, vocab: int, seed: int) -> np.ndarray:
    # Ordinary ids only: the special tokens sit at the top of the small vocabularies.
    hi = vocab - len(SPECIAL_TOKENS) if vocab < 1000 else 248044
    return np.random.default_rng(seed).integers(0, hi, n).astype(np.int32)


def build(name: str, spec: tuple[dict[str, Any], str, str, int], out: Path, seed: int) -> None:
    from transformers import Qwen3_5MoeForCausalLM

    cfg, layout, dtype, n = spec
    torch.manual_seed(seed)
    model = Qwen3_5MoeForCausalLM(hf_config(cfg)).eval()
    rerandomise(model, seed)
    if dtype == "bf16":
        # Round the parameters only (not buffers such as RoPE's inv_freq), A_log stays f32.
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if not pname.endswith("A_log"):
                    p.copy_(p.to(torch.bfloat16).to(torch.float32))
    canon = canonical(model, cfg)
    if dtype == "bf16":
        canon = {k: (v if k.endswith("A_log") else bf16_to_f32(bf16_bits(v))) for k, v in canon.items()}

    prompt = prompt_ids(n, cfg["vocab_size"], seed)
    with torch.no_grad():
        ids = torch.from_numpy(prompt.astype(np.int64))[None]
        logits = model(ids).logits[0].float().numpy()
        out_t = model(ids[:, :1], use_cache=True)
        cache, inc = out_t.past_key_values, [out_t.logits[0, -1]]
        for t in range(1, n):
            out_t = model(ids[:, t : t + 1], past_key_values=cache, use_cache=True)
            cache = out_t.past_key_values
            inc.append(out_t.logits[0, -1])
        sanity = float((torch.stack(inc).float() - torch.from_numpy(logits)).abs().max())

    folder = out / name
    extra: dict[str, np.ndarray] = {}
    if layout == "hub":  # tensors a converter must leave out
        extra["mtp.fc.weight"] = np.zeros((cfg["hidden_size"], 2 * cfg["hidden_size"]), np.float32)
        extra["model.visual.blocks.0.attn.qkv.weight"] = np.zeros((48, 16), np.float32)
    write_checkpoint(folder, cfg, canon, layout, dtype, shards=2 if layout == "hub" else 1, extra=extra)
    if cfg["vocab_size"] > 1000:
        from qwen35cpu.qwen_vocab import write_qwen35_tokenizer_files

        write_qwen35_tokenizer_files(folder)
    np.savez(folder / "golden.npz", prompt=prompt, logits=logits.astype(np.float32))
    import transformers

    meta = {
        "layout": layout,
        "dtype": dtype,
        "seed": seed,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "max_abs_logit": float(np.abs(logits).max()),
        "hf_whole_vs_incremental_max_abs_diff": sanity,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"{name}: {layout} {dtype}, max |logit| {meta['max_abs_logit']:.2f},"
          f" HF whole vs incremental {sanity:.2e}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", nargs="*", default=None, choices=[*CONFIGS, "realvocab"])
    ap.add_argument("--real-vocab", action="store_true",
                    help="also build 'realvocab' (248320 tokens, not committed)")
    args = ap.parse_args(argv)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # the same reductions whatever the machine
    specs = dict(CONFIGS)
    if args.real_vocab or (args.only and "realvocab" in args.only):
        specs["realvocab"] = REAL_VOCAB
    names = args.only or list(specs)
    for i, name in enumerate(sorted(specs)):
        if name in names:
            build(name, specs[name], args.out, seed=1234 + i)
    return 0


if __name__ == "__main__":
    sys.exit(main())
