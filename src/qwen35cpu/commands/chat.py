"""`qwen35cpu chat MODEL`: an interactive chat in the terminal (the app: qwen35cpu.terminal)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .generate import (
    add_model_args,
    add_sampling_args,
    check_positive,
    context_length,
    load_model,
    sampling_params,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("chat", help="chat with a model in the terminal")
    add_model_args(p)
    p.add_argument("--system", metavar="TEXT", help="system message")
    p.add_argument("--no-think", action="store_true", help="start with thinking off (/think on|off)")
    p.add_argument("--history", type=Path, metavar="FILE", help="input history file "
                   "(default: $XDG_CACHE_HOME/qwen35cpu/chat_history)")
    p.add_argument("--no-history", action="store_true", help="keep no input history on disk")
    p.add_argument("--plain", action="store_true", help="no colours, no line editing")
    p.add_argument("--max-thinking", type=int, metavar="N", default=None,
                   help="close the thinking after N tokens (a loop guard; repetition is caught anyway)")
    add_sampling_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..terminal import app
    from ..terminal.conversation import Chat
    from ..terminal.input import history_path, make_reader
    from ..terminal.screen import Screen

    check_positive("--max-tokens", args.max_tokens)
    check_positive("--max-thinking", args.max_thinking)
    screen = Screen(plain=args.plain or not sys.stdout.isatty())
    model = load_model(args)
    chat = Chat(model, context_length(model, args), system=args.system, thinking=not args.no_think,
                sampling=lambda thinking: sampling_params(model, args, thinking=thinking),
                max_tokens=args.max_tokens, ignore_eos=args.ignore_eos, max_thinking=args.max_thinking)
    read = make_reader(args.plain, history_path(args.history, args.no_history))
    return app.run(chat, screen, read)
