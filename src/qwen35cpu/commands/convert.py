"""`qwen35cpu convert SRC -o OUT --type TYPE`: Hugging Face Qwen3.5-MoE folder -> qwen35moe GGUF."""

from __future__ import annotations

import argparse
from pathlib import Path

TYPES = ("f32", "f16", "bf16", "q8_0")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a Hugging Face Qwen3.5-MoE checkpoint folder to a qwen35moe GGUF file",
        description="Convert a Hugging Face Qwen3.5-MoE checkpoint folder (config.json, safetensors, "
        "tokenizer.json) to a llama.cpp-compatible qwen35moe GGUF file. MTP and vision tensors are skipped.",
    )
    p.add_argument("src", metavar="SRC", help="Hugging Face model folder")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="the .gguf file to write")
    p.add_argument(
        "--type",
        default="bf16",
        metavar="|".join(TYPES),
        help="type of the weight matrices (default: bf16); norms, router and small tensors stay f32",
    )
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..convert import convert

    out_type = str(args.type).lower()
    if out_type not in TYPES:
        raise ValueError(f"unsupported --type {args.type!r}; choose one of {', '.join(TYPES)}")
    out = convert(Path(args.src), Path(args.output), out_type, progress=not args.no_progress)
    print(f"wrote {out}")
    return 0
