"""`qwen35cpu demo`: the whole pipeline on a small random model, with no download.

It writes a Hugging Face checkpoint of the real qwen35moe architecture (3 DeltaNet : 1 attention
layers, 256-wide attention heads with partial rotary, 4 value heads per key head, routed and shared
experts) at a small size, with the real Qwen3.5 tokenizer, converts it with our converter, loads it
and evaluates a prompt, printing every step and its speed. The weights are random, so the text is
noise: the point is that every piece runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import add_mmap_arguments
from .convert import TYPES

# The real architecture, scaled down (see the spec's section 1.1 for the released sizes).
DEMO_CONFIG: dict[str, Any] = {
    "vocab_size": 248320,
    "hidden_size": 128,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 8,
    "linear_key_head_dim": 32,
    "linear_value_head_dim": 32,
    "linear_conv_kernel_dim": 4,
    "num_experts": 32,
    "num_experts_per_tok": 4,
    "moe_intermediate_size": 64,
    "shared_expert_intermediate_size": 64,
    "full_attention_interval": 4,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000000.0,
    "partial_rotary_factor": 0.25,
    "mrope_section": [11, 11, 10],
    "max_position_embeddings": 262144,
    "tie_word_embeddings": False,
    "mtp_num_hidden_layers": 1,
}

PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
CHAT_TURNS = ("Hello! Who are you?", "Tell me a short story about a llama.")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="build, convert and run a small random model (no download)")
    p.add_argument("--dir", type=Path, default=None, help="keep the checkpoint and GGUF here")
    p.add_argument("--type", default="q8_0", choices=TYPES, help="GGUF type (default: q8_0)")
    p.add_argument("--tokens", type=int, default=16, help="tokens to generate")
    p.add_argument("--threads", type=int, default=None, help="threads (default: physical cores)")
    add_mmap_arguments(p)
    p.set_defaults(func=run)


def step(msg: str) -> float:
    print(f"==> {msg}", flush=True)
    return time.perf_counter()


def run(args: argparse.Namespace) -> int:
    if args.tokens < 1:
        raise ValueError(f"--tokens must be at least 1, got {args.tokens}")
    if args.dir is None:
        with tempfile.TemporaryDirectory(prefix="qwen35cpu-demo-") as tmp:
            return demo(Path(tmp), args)
    args.dir.mkdir(parents=True, exist_ok=True)
    return demo(args.dir, args)


def demo(work: Path, args: argparse.Namespace) -> int:
    import qwen35cpu
    from qwen35cpu.convert import convert
    from qwen35cpu.qwen_vocab import write_qwen35_tokenizer_files
    from qwen35cpu.random_checkpoint import make_random_checkpoint

    print("qwen35cpu demo: the weights are RANDOM, so the generated text is meaningless.")
    ckpt, gguf_path = work / "checkpoint", work / f"demo-{args.type}.gguf"
    t = step(f"writing a random {DEMO_CONFIG['num_hidden_layers']}-layer qwen3_5_moe checkpoint to {ckpt}")
    make_random_checkpoint(ckpt, DEMO_CONFIG, layout="hub", dtype="bf16", shards=2)
    write_qwen35_tokenizer_files(ckpt)
    print(f"    done in {time.perf_counter() - t:.1f} s (real Qwen3.5 tokenizer, 248320 tokens)")

    t = step(f"converting to {gguf_path.name} ({args.type})")
    convert(ckpt, gguf_path, args.type, progress=False)
    print(f"    {gguf_path.stat().st_size / 2**20:.1f} MiB in {time.perf_counter() - t:.1f} s")

    t = step("loading")
    model = qwen35cpu.load(gguf_path, n_threads=args.threads, use_mmap=args.use_mmap)
    ids = model.tokenize(PROMPT)
    print(f"    {model!r}, {model.n_threads} threads, in {time.perf_counter() - t:.1f} s")
    print(f"    prompt {PROMPT!r} -> {len(ids)} tokens: {ids}")

    t = step(f"generating {args.tokens} tokens greedily (temperature 0)")
    res = model.generate(ids, max_tokens=args.tokens, temperature=0.0, stop_tokens=(), return_result=True)
    print(f"    prompt: {res.prompt_eval_tokens} tokens at {res.prompt_tps:.1f} tokens/s")
    print(f"    output: {res.completion_tokens} tokens at {res.gen_tps:.1f} tokens/s ({res.finish_reason})")
    print(f"    text: {res.text!r}")

    chat = model.chat_session(n_ctx=1024, enable_thinking=False)
    messages: list[dict[str, str]] = []
    for turn, question in enumerate(CHAT_TURNS, 1):
        messages.append({"role": "user", "content": question})
        t = step(f"chat turn {turn}: {question!r}")
        r = chat.send(messages, max_tokens=args.tokens, seed=turn)
        print(
            f"    prompt: {r.prompt_tokens} tokens, {r.prompt_eval_tokens} evaluated (the rest reused from "
            f"turn {turn - 1}'s state), {r.prompt_tps:.1f} tokens/s"
            if turn > 1
            else f"    prompt: {r.prompt_tokens} tokens at {r.prompt_tps:.1f} tokens/s"
        )
        print(f"    answer: {r.completion_tokens} tokens at {r.gen_tps:.1f} tokens/s ({r.finish_reason})")
        print(f"    text: {r.content!r}")
        messages.append(r.message())
    print("done: every stage ran; with real weights the same calls give a real answer.")
    return 0
