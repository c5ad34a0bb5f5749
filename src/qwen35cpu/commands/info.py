"""`qwen35cpu info FILE`: architecture, hyper-parameters, tensor types and memory needs."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("info", help="describe a qwen35moe GGUF file")
    p.add_argument("file", help="path to a .gguf file")
    p.add_argument("--ctx", type=int, default=4096, help="context length for the memory estimate")
    # Accepted like on every command; info reads metadata only and computes nothing.
    p.add_argument("-t", "--threads", type=int, metavar="N", help="accepted; info computes nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..fileinfo import format_report, inspect_file

    if args.ctx < 1:
        raise ValueError(f"--ctx must be at least 1, got {args.ctx}")
    print(format_report(inspect_file(args.file), args.ctx))
    return 0
