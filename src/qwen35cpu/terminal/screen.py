"""Where the chat writes: rich on a terminal (thinking dimmed), plain text otherwise."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class Screen:
    """Where the chat writes: rich on a terminal (thinking dimmed), plain text otherwise."""

    def __init__(self, plain: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.console: Any = None
        if not plain:
            from rich.console import Console

            self.console = Console(
                file=self.stream, highlight=False, markup=False, emoji=False, soft_wrap=True
            )

    def write(self, text: str, *, dim: bool = False, style: str | None = None) -> None:
        if self.console is not None and (dim or style):
            self.console.print(text, style=style or "dim", end="")
        else:
            self.stream.write(text)
        self.stream.flush()

    def line(self, text: str = "", *, dim: bool = False, style: str | None = None) -> None:
        self.write(text + "\n", dim=dim, style=style)

    def error(self, text: str) -> None:
        self.line(f"error: {text}", style="bold red")
