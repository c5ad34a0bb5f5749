"""The `qwen35cpu` command line: one entry point, one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules under qwen35cpu.commands, imported lazily so `qwen35cpu info` does not
# pay for the converter's imports and vice versa.
COMMANDS = ["bench", "chat", "convert", "demo", "generate", "info", "synth"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwen35cpu", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"qwen35cpu.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly; devnull keeps the exit flush from failing.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (OSError, ValueError, RuntimeError) as e:
        # Bad input gets one clear line, not a traceback.
        print(f"qwen35cpu {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
