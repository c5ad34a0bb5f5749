"""`qwen35cpu convert SRC -o OUT --type TYPE [--max-size GB] [--threads N]`: Hugging Face Qwen3.5-MoE
folder -> qwen35moe GGUF; `--dry-run` prints the output sizes from config.json alone."""

from __future__ import annotations

import argparse
from pathlib import Path

# The recipes of qwen35cpu.convert.recipes (kept here too so that `--help` does not import the converter).
TYPES = ("f32", "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k", "iq4_xs", "mac192")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a Hugging Face Qwen3.5-MoE checkpoint folder to a qwen35moe GGUF file",
        description="Convert a Hugging Face Qwen3.5-MoE checkpoint folder (config.json, safetensors, "
        "tokenizer.json) to a llama.cpp-compatible qwen35moe GGUF file. MTP and vision tensors are skipped.",
    )
    p.add_argument("src", metavar="SRC", help="Hugging Face model folder")
    p.add_argument("-o", "--output", metavar="OUT", help="the .gguf file to write (not with --dry-run)")
    p.add_argument(
        "--type",
        default="bf16",
        metavar="|".join(TYPES),
        help="type of the weight matrices, or a mix (default: bf16); norms, router and small tensors stay "
        "f32. mac192: experts q3_k, attention/DeltaNet/shared expert q5_k, embeddings and output q6_k",
    )
    p.add_argument(
        "--max-size",
        type=float,
        metavar="GB",
        help="never write more than GB (1e9 bytes); room left after the type's mix upgrades the tensors "
        "that suffer most (expert down projections first, first and last layers first)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="read only SRC/config.json and print the output bytes per tensor group and the total",
    )
    p.add_argument("--threads", type=int, metavar="N", help="quantizer threads (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run)


def checked_type(value: str) -> str:
    """A --type argument, lower-cased; a one-line error for one the converter does not know."""
    out_type = str(value).lower()
    if out_type not in TYPES:
        raise ValueError(f"unsupported --type {value!r}; choose one of {', '.join(TYPES)}")
    return out_type


def run(args: argparse.Namespace) -> int:
    from ..convert import convert, dry_run

    out_type = checked_type(args.type)
    if args.dry_run:
        if args.output is not None:
            raise ValueError("--dry-run writes nothing; leave out -o/--output")
        for line in dry_run(Path(args.src), out_type, args.max_size):
            print(line)
        return 0
    if args.output is None:
        raise ValueError("the output file is required: -o OUT (or --dry-run)")
    out = convert(
        Path(args.src),
        Path(args.output),
        out_type,
        max_size_gb=args.max_size,
        n_threads=args.threads,
        progress=not args.no_progress,
    )
    print(f"wrote {out}")
    return 0
