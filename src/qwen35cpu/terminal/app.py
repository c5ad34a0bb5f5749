"""`qwen35cpu chat MODEL`: an interactive chat in the terminal.

Input is read with prompt_toolkit (history, multi-line editing: Esc-Enter inserts a line break, so
does a line ending in a backslash; Enter sends). The answer streams as it is generated,
its thinking dimmed; a speed line follows each answer. Ctrl-C stops the answer being generated and
keeps the conversation (a second Ctrl-C before the answer stops interrupts for good); Ctrl-D or
/exit leaves. Slash commands: see HELP.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .conversation import Chat
from .interrupt import StopFlag
from .screen import Screen

HELP = """\
/help              this help
/reset             forget the conversation (the system message stays)
/system [TEXT]     show or set the system message ("/system -" removes it)
/think on|off      answer with or without thinking first
/save FILE         save the conversation (and the model state, when supported) to FILE
/load FILE         load a conversation saved with /save
/stats             context use and speeds
/exit              leave (Ctrl-D works too)
Esc-Enter: new line; a line ending in \\ continues. Ctrl-C stops an answer."""


def run(chat: Chat, screen: Screen, read: Callable[[], str]) -> int:
    """The chat loop: read a message or a slash command, answer, until Ctrl-D or /exit; the exit code."""
    model, session = chat.model, chat.session
    name = Path(model.path).name
    screen.line(f"qwen35cpu chat: {name}, {model.n_threads} threads, context {session.n_ctx} tokens. "
                "/help for commands, Ctrl-D to leave.", dim=True)
    stop = StopFlag()
    while True:
        try:
            text = read()
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line
        except EOFError:
            screen.line()
            return 0
        if not text.strip():
            continue
        if text.startswith("/"):
            try:
                if command(chat, text, screen) == "exit":
                    return 0
            except (OSError, ValueError) as e:
                screen.error(str(e))
            continue
        try:
            with stop:
                st = chat.answer(text, screen, stop)
        except KeyboardInterrupt:
            # A second Ctrl-C lands anywhere, possibly between an evaluation and its bookkeeping:
            # drop the model state (the next turn evaluates the conversation afresh) and this turn.
            chat.chat.reset()
            screen.line()
            screen.line("[interrupted; this message was dropped]", dim=True)
            continue
        except (ValueError, RuntimeError) as e:
            screen.line()
            screen.error(str(e))
            continue
        screen.line()
        if st.finish_reason == "interrupted":
            screen.line("[interrupted]", dim=True)
        screen.line(st.line(), dim=True)


def command(chat: Chat, text: str, screen: Screen) -> str | None:
    name, _, rest = text.strip().partition(" ")
    rest = rest.strip()
    if name in {"/exit", "/quit"}:
        return "exit"
    if name == "/help":
        screen.line(HELP)
    elif name == "/reset":
        chat.reset()
        screen.line("conversation cleared", dim=True)
    elif name == "/system":
        if not rest:
            screen.line(f"system: {chat.system!r}" if chat.system else "no system message", dim=True)
        elif rest == "-":
            chat.system = None
            screen.line("system message removed", dim=True)
        else:
            chat.system = rest
            screen.line("system message set", dim=True)
    elif name == "/think":
        if rest not in {"on", "off"}:
            now = "on" if chat.thinking else "off"
            raise ValueError(f"/think takes on or off, got {rest!r} (thinking is {now})")
        chat.thinking = rest == "on"
        screen.line(f"thinking {rest}", dim=True)
    elif name == "/save":
        if not rest:
            raise ValueError("/save needs a file name")
        screen.line(chat.save(Path(rest).expanduser()), dim=True)
    elif name == "/load":
        if not rest:
            raise ValueError("/load needs a file name")
        screen.line(chat.load(Path(rest).expanduser()), dim=True)
    elif name == "/stats":
        screen.line(stats_text(chat), dim=True)
    else:
        raise ValueError(f"unknown command {name} (/help lists them)")
    return None


def stats_text(chat: Chat) -> str:
    t = chat.total
    lines = [
        f"turns: {chat.turns}, messages: {len(chat.messages)}, thinking: {'on' if chat.thinking else 'off'}",
        f"context: {chat.session.n_past} of {chat.session.n_ctx} tokens in use, "
        f"{len(chat.session.checkpoints)} checkpoints ({chat.session.checkpoints_nbytes / 2**20:.1f} MiB)",
        f"total: {t.completion_tokens} tokens generated at {t.gen_tps:.1f} tokens/s, "
        f"{t.prompt_eval_tokens} prompt tokens evaluated at {t.prompt_tps:.1f} tokens/s",
    ]
    if chat.last is not None:
        lines.append("last answer: " + chat.last.line())
    return "\n".join(lines)
