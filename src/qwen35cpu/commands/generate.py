"""`qwen35cpu generate MODEL -p TEXT`: complete a prompt and stream the text to stdout.

The options shared with `chat` (MODEL loading, threads, context, sampling) live here too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import add_mmap_arguments

if TYPE_CHECKING:
    from ..generate import GenerationResult
    from ..model import Model
    from ..sampling import SamplingParams

MODEL_HELP = (
    "a .gguf file (the first part of a split set), or a Hugging Face reference: owner/repo:QUANT "
    "(e.g. Qwen/Qwen3.5-35B-A3B-GGUF:Q4_K_M) or owner/repo/file.gguf; downloads are cached"
)


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("-t", "--threads", type=int, metavar="N", help="compute threads (default: physical cores)")
    p.add_argument("-c", "--ctx", type=int, default=None, metavar="N",
                   help="context length in tokens (default: 4096, or the trained context if smaller)")
    add_mmap_arguments(p)


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling (defaults: Qwen3.5's recommended settings, or the GGUF's)")
    g.add_argument("-n", "--max-tokens", type=int, default=None, metavar="N", help="stop after N tokens")
    g.add_argument("--temp", type=float, default=None, help="temperature (0: greedy)")
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--min-p", type=float, default=None)
    g.add_argument("--presence-penalty", type=float, default=None)
    g.add_argument("--repeat-penalty", type=float, default=None)
    g.add_argument("--seed", type=int, default=None, help="random seed (same seed, same text)")
    g.add_argument("--ignore-eos", action="store_true", help="do not stop at end-of-text tokens")


def check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def load_model(args: argparse.Namespace) -> Model:
    """Resolve MODEL (local path or Hub reference, downloading if needed) and load it."""
    import qwen35cpu

    from ..hub import resolve

    check_positive("--threads", args.threads)
    check_positive("--ctx", args.ctx)
    path: Path = resolve(args.model, log=lambda line: print(line, file=sys.stderr))
    return qwen35cpu.load(path, n_threads=args.threads, use_mmap=args.use_mmap)


def context_length(model: Model, args: argparse.Namespace) -> int:
    if args.ctx is not None:
        if args.ctx > model.config.n_ctx_train:
            # As llama.cpp: allowed, but the model was not trained for it.
            print(f"warning: --ctx {args.ctx} is more than the {model.config.n_ctx_train} tokens the model "
                  "was trained for", file=sys.stderr)
        return int(args.ctx)
    return int(min(4096, model.config.n_ctx_train))


def sampling_params(model: Model, args: argparse.Namespace, *, thinking: bool) -> SamplingParams:
    params = model.sampling_defaults(thinking=thinking)
    return params.updated(
        temperature=args.temp,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        presence_penalty=args.presence_penalty,
        repetition_penalty=args.repeat_penalty,
        seed=args.seed,
    )


def stop_tokens(model: Model, args: argparse.Namespace) -> list[int] | None:
    """[] when --ignore-eos (nothing stops but the token budget), else None: the GGUF's defaults."""
    return [] if args.ignore_eos else None


def speed_line(r: GenerationResult) -> str:
    return (
        f"{r.completion_tokens} tokens at {r.gen_tps:.1f} tokens/s, prompt {r.prompt_tokens} tokens "
        f"({r.prompt_eval_tokens} evaluated) at {r.prompt_tps:.1f} tokens/s; finish: {r.finish_reason}"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("generate", help="complete a prompt, streaming the text")
    add_model_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-p", "--prompt", metavar="TEXT", help="the prompt")
    src.add_argument("-f", "--file", type=Path, metavar="FILE", help="read the prompt from FILE ('-': stdin)")
    p.add_argument("--chat", action="store_true", help="send the prompt as a user message (chat template)")
    p.add_argument("--system", metavar="TEXT", help="system message (with --chat)")
    p.add_argument("--no-think", action="store_true", help="with --chat: answer without thinking")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no speed line on stderr")
    add_sampling_args(p)
    p.set_defaults(func=run)


def read_prompt(args: argparse.Namespace) -> str:
    if args.prompt is not None:
        return str(args.prompt)
    if str(args.file) == "-":
        return sys.stdin.read()
    return Path(args.file).read_text(encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    from ..generate import GenerationResult, Piece

    check_positive("--max-tokens", args.max_tokens)
    text = read_prompt(args)
    model = load_model(args)
    thinking = bool(args.chat and not args.no_think)
    if args.chat:
        from ..chat_template import ChatTemplate

        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": text}
        ]
        tpl = ChatTemplate.from_metadata(model.metadata, model.tokenizer)
        text = tpl.render(messages, enable_thinking=thinking)
    ids = model.tokenize(text)
    n_ctx = context_length(model, args)
    if len(ids) >= n_ctx:
        raise ValueError(f"the prompt has {len(ids)} tokens; the context holds {n_ctx} (raise --ctx)")
    budget = args.max_tokens if args.max_tokens is not None else n_ctx - len(ids)
    session = model.session(n_ctx=n_ctx)
    out = sys.stdout
    result: GenerationResult | None = None
    try:
        for item in model.stream_pieces(
            ids, max_tokens=budget, stop=args.stop or None, stop_tokens=stop_tokens(model, args),
            sampling=sampling_params(model, args, thinking=thinking), session=session,
        ):
            if isinstance(item, Piece):
                out.write(item.text)
                out.flush()
            elif isinstance(item, GenerationResult):
                result = item
    except KeyboardInterrupt:
        out.write("\n")
        print("[interrupted]", file=sys.stderr)
        return 130
    out.write("\n")
    out.flush()
    if result is not None and not args.quiet:
        print(speed_line(result), file=sys.stderr)
    return 0
