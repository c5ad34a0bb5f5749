"""Prompt and decode speed of the float reference path on the demo-sized model, as JSON.

    python benchmarks/bench_forward.py [--type q8_0] [--threads N] [--out results.json]

This is the baseline the SIMD kernels and the fast decode path are measured against; the
side-by-side comparison with llama.cpp on the same file comes with the decode work.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import qwen35cpu
from qwen35cpu.commands.demo import DEMO_CONFIG
from qwen35cpu.convert import convert
from qwen35cpu.random_checkpoint import make_random_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--type", default="q8_0", choices=["f32", "f16", "bf16", "q8_0"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--prompt", type=int, default=128, help="prompt tokens")
    ap.add_argument("--decode", type=int, default=32, help="decoded tokens")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt"
        make_random_checkpoint(ckpt, {**DEMO_CONFIG, "vocab_size": 32768}, layout="hub", dtype="bf16")
        path = convert(ckpt, Path(tmp) / "m.gguf", args.type, progress=False)
        model = qwen35cpu.load(path, n_threads=args.threads)
        ids = np.random.default_rng(0).integers(0, 32000, args.prompt + args.decode).astype(np.int32)
        sess = model.session(n_ctx=len(ids))
        t0 = time.perf_counter()
        sess.eval(ids[: args.prompt])
        t1 = time.perf_counter()
        for t in ids[args.prompt :]:
            sess.eval([int(t)])
        t2 = time.perf_counter()
        result = {
            "model": "demo config, vocab 32768",
            "type": args.type,
            "file_bytes": path.stat().st_size,
            "threads": model.n_threads,
            "machine": platform.machine(),
            "prompt_tokens": args.prompt,
            "prompt_tokens_per_s": args.prompt / (t1 - t0),
            "decode_tokens": args.decode,
            "decode_tokens_per_s": args.decode / (t2 - t1),
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
