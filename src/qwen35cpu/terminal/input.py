"""How the chat reads a message: prompt_toolkit on a terminal (history, multi-line editing:
Esc-Enter inserts a line break, so does a line ending in a backslash; Enter sends), plain lines
from a pipe."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def history_path(history: Path | None, no_history: bool) -> Path | None:
    """The input history file: `history`, else $XDG_CACHE_HOME/qwen35cpu/chat_history; None without one."""
    if no_history:
        return None
    if history is not None:
        return Path(history)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qwen35cpu" / "chat_history"


def make_reader(plain: bool, history_file: Path | None) -> Callable[[], str]:
    """A function returning the next message; EOFError at the end, KeyboardInterrupt on Ctrl-C.
    Line editing with history in `history_file` (None: in memory) on a terminal, unless plain."""
    if plain or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return _plain_reader()
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, History, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings

    kb = KeyBindings()

    # Ctrl-J submits too: keys typed ahead while an answer streams arrive with the terminal in
    # cooked mode, where Enter's \r has become \n (Ctrl-J).
    @kb.add("enter")
    @kb.add("c-j")
    def _(event: Any) -> None:
        buf = event.current_buffer
        if buf.text.endswith("\\") and buf.cursor_position == len(buf.text):
            buf.delete_before_cursor(1)
            buf.insert_text("\n")
        else:
            buf.validate_and_handle()

    @kb.add("escape", "enter")
    def _(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    history: History = InMemoryHistory()
    path = history_file
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            history = FileHistory(str(path))
        except OSError:
            pass  # a read-only home: history for this run only
    session: Any = PromptSession(history=history, multiline=True, key_bindings=kb,
                                 prompt_continuation=lambda width, line, wrap: "." * (width - 1) + " ")
    return lambda: str(session.prompt("> "))


def _plain_reader() -> Callable[[], str]:
    def read() -> str:
        sys.stdout.write("> ")
        sys.stdout.flush()
        lines = []
        while True:
            line = sys.stdin.readline()
            if not line:
                if lines:
                    break
                raise EOFError
            line = line.rstrip("\n")
            if line.endswith("\\"):
                lines.append(line[:-1])
                continue
            lines.append(line)
            break
        return "\n".join(lines)

    return read
