"""`qwen35cpu synth -o FILE --layers N --experts E --type T [--preset 397b|122b|35b] [--seed S]
[--threads N]`: a qwen35moe GGUF with a released model's layer shapes and random weights (benchmarks)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .convert import TYPES, checked_type

# Kept here so that `--help` does not import numpy and gguf (qwen35cpu.synth.PRESETS has the shapes).
PRESETS = ("397b", "122b", "35b")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "synth",
        help="write a GGUF with the real layer shapes of a Qwen3.5 model and random weights",
        description="Write a qwen35moe GGUF with the layer dimensions of a released Qwen3.5 model (397B-A17B "
        "by default), N layers in the 3:1 DeltaNet/attention pattern, E experts, random weights, the real "
        "tokenizer and the tensor types of a converter --type. Rows are drawn from a pool of quantized "
        "random rows, so writing is fast. Loads in qwen35cpu and llama.cpp.",
    )
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="the .gguf file to write")
    p.add_argument("--layers", type=int, required=True, metavar="N", help="decoder layers")
    p.add_argument("--experts", type=int, required=True, metavar="E", help="routed experts per layer")
    p.add_argument(
        "--type", default="q4_k_m", metavar="|".join(TYPES), help="converter type or mix (default q4_k_m)"
    )
    p.add_argument("--preset", default="397b", choices=PRESETS, help="model shape (default 397b)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--threads", type=int, metavar="N", help="quantizer threads (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..synth import write_synth

    out_type = checked_type(args.type)
    from tqdm import tqdm

    t0 = time.perf_counter()
    bars: list[Any] = []  # made at the first tensor, so that an argument error prints one line only

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="B", unit_scale=True, desc=Path(args.output).name))
        bars[0].update(done - bars[0].n)

    try:
        out = write_synth(
            Path(args.output),
            args.layers,
            args.experts,
            out_type,
            args.preset,
            args.seed,
            n_threads=args.threads,
            progress=None if args.no_progress else progress,
        )
    finally:
        for bar in bars:
            bar.close()
    size = out.stat().st_size
    print(f"wrote {out} ({size / 1e9:.2f} GB) in {time.perf_counter() - t0:.1f} s")
    return 0
