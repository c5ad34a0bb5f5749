"""`qwen35cpu chat MODEL`: an interactive chat in the terminal.

Input is read with prompt_toolkit (history, multi-line editing: Esc-Enter inserts a line break, so
does a line ending in a backslash; Enter sends). The answer streams as it is generated,
its thinking dimmed; a speed line follows each answer. Ctrl-C stops the answer being generated and
keeps the conversation (a second Ctrl-C before the answer stops interrupts for good); Ctrl-D or
/exit leaves. Slash commands: see HELP.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from ..generate import Timings
from .generate import add_model_args, add_sampling_args, check_positive, context_length, load_model

if TYPE_CHECKING:
    from ..model import Model, Session

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

SAVE_FORMAT = "qwen35cpu-chat"
SAVE_VERSION = 1


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


# ---------------------------------------------------------------- output


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


# ---------------------------------------------------------------- input


def history_path(args: argparse.Namespace) -> Path | None:
    if args.no_history:
        return None
    if args.history is not None:
        return Path(args.history)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qwen35cpu" / "chat_history"


def make_reader(args: argparse.Namespace) -> Callable[[], str]:
    """A function returning the next message; EOFError at the end, KeyboardInterrupt on Ctrl-C."""
    if args.plain or not (sys.stdin.isatty() and sys.stdout.isatty()):
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
    path = history_path(args)
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


# ---------------------------------------------------------------- Ctrl-C during an answer


class StopFlag:
    """While active, the first Ctrl-C only asks the running answer to stop (the generation loop
    checks between tokens, so the model state stays consistent); a second one raises as usual."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def __enter__(self) -> StopFlag:
        self.requested = False
        self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._old)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


# ---------------------------------------------------------------- the conversation


@dataclass
class TurnStats(Timings):
    finish_reason: str = ""

    def line(self) -> str:
        return (
            f"[{self.completion_tokens} tokens, {self.gen_tps:.1f} tokens/s; "
            f"prompt {self.prompt_tokens} tokens, {self.prompt_eval_tokens} evaluated at "
            f"{self.prompt_tps:.1f} tokens/s; {self.finish_reason}]"
        )


class Chat:
    """The terminal's conversation: messages and settings over a ChatSession (which reuses the
    evaluated state across turns and guards the thinking against loops)."""

    def __init__(self, model: Model, n_ctx: int, args: argparse.Namespace, *, system: str | None,
                 thinking: bool) -> None:
        from ..chat import ChatSession

        self.model = model
        self.args = args
        self.system = system
        self.thinking = thinking
        self.messages: list[dict[str, Any]] = []
        self.turns = 0
        self.total = TurnStats()
        self.last: TurnStats | None = None
        self.chat = ChatSession(model, n_ctx, enable_thinking=thinking,
                                max_thinking_tokens=args.max_thinking)

    @property
    def session(self) -> Session:
        return self.chat.session

    def conversation(self) -> list[dict[str, Any]]:
        sys_msg = [{"role": "system", "content": self.system}] if self.system else []
        return sys_msg + self.messages

    def reset(self) -> None:
        self.messages.clear()
        self.chat.reset()

    def answer(self, text: str, screen: Screen, stop: StopFlag) -> TurnStats:
        """Stream the answer to `text`; the user message and the answer join the conversation."""
        from .generate import sampling_params

        msgs = [*self.conversation(), {"role": "user", "content": text}]
        params = sampling_params(self.model, self.args, thinking=self.thinking)
        if self.args.ignore_eos:
            # As llama.cpp's --ignore-eos: end-of-generation tokens can never be sampled.
            from ..generate import default_stop_tokens

            bias = dict(params.logit_bias)
            bias.update({t: float("-inf") for t in default_stop_tokens(self.model.tokenizer)})
            params = params.updated(logit_bias=bias)
        t0 = time.perf_counter()
        t_first: float | None = None
        deltas = self.chat.stream(msgs, enable_thinking=self.thinking, max_tokens=self.args.max_tokens,
                                  sampling=params)
        kind = ""
        try:
            for d in deltas:
                if t_first is None:
                    t_first = time.perf_counter()
                if kind == "reasoning" and d.kind == "content":
                    screen.write("\n\n")  # the parser strips the newlines around </think>
                kind = d.kind
                screen.write(d.text, dim=d.kind == "reasoning")
                if stop.requested:
                    break
        finally:
            deltas.close()  # an interrupted answer: the ChatSession records it as cancelled
        res = self.chat.last_result
        assert res is not None
        st = TurnStats(prompt_tokens=res.prompt_tokens, prompt_eval_tokens=res.prompt_eval_tokens,
                       completion_tokens=res.completion_tokens, prompt_seconds=res.prompt_seconds,
                       gen_seconds=res.gen_seconds, finish_reason=res.finish_reason)
        if res.finish_reason == "cancelled":
            t1 = time.perf_counter()
            first = t_first if t_first is not None else t1
            st.finish_reason = "interrupted"
            st.prompt_seconds, st.gen_seconds = first - t0, t1 - first
            # Every sampled id but the last was evaluated after the prompt.
            st.completion_tokens = max(0, len(self.session.tokens) - res.prompt_tokens + 1)
            st.prompt_eval_tokens = res.prompt_eval_tokens or res.prompt_tokens
        self.messages += [{"role": "user", "content": text}, res.message()]
        self.turns += 1
        self.last = st
        summed = ("prompt_tokens", "prompt_eval_tokens", "completion_tokens", "prompt_seconds", "gen_seconds")
        for name in summed:
            setattr(self.total, name, getattr(self.total, name) + getattr(st, name))
        return st

    # -- /save and /load

    def save(self, path: Path) -> str:
        doc = {
            "format": SAVE_FORMAT,
            "version": SAVE_VERSION,
            "model": self.model.path,
            "system": self.system,
            "thinking": self.thinking,
            "messages": self.messages,
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)
        saved = f"saved {len(self.messages)} messages to {path}"
        sp = state_path(path)
        if self.session.tokens:
            self.session.save(sp)
            saved += f" (model state: {sp})"
        else:
            sp.unlink(missing_ok=True)  # not the state of some earlier conversation
        return saved

    def load(self, path: Path) -> str:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a saved chat ({e.msg} at line {e.lineno})") from None
        if not isinstance(doc, dict) or doc.get("format") != SAVE_FORMAT:
            raise ValueError(f"{path}: not a saved chat (no {SAVE_FORMAT!r} format tag)")
        if doc.get("version") != SAVE_VERSION:
            got = doc.get("version")
            raise ValueError(f"{path}: saved chat version {got!r}, this program reads {SAVE_VERSION}")
        msgs = doc.get("messages")
        ok = isinstance(msgs, list) and all(
            isinstance(m, dict) and m.get("role") in {"user", "assistant", "system", "tool"}
            and isinstance(m.get("content", ""), str)
            for m in msgs
        )
        if not ok:
            raise ValueError(f"{path}: the saved messages are malformed")
        system = doc.get("system")
        self.messages = list(msgs)
        self.system = system if isinstance(system, str) else None
        self.thinking = bool(doc.get("thinking", True))
        self.chat.reset()
        note = ""
        sp = state_path(path)
        if sp.exists():
            try:
                self.session.load_state(sp)
                note = " and the model state"
            except ValueError as e:
                note = f"; model state not used ({e})"
        return f"loaded {len(self.messages)} messages{note} from {path}"


def state_path(path: Path) -> Path:
    return path.with_name(path.name + ".state")


# ---------------------------------------------------------------- the loop


def run(args: argparse.Namespace) -> int:
    check_positive("--max-tokens", args.max_tokens)
    check_positive("--max-thinking", args.max_thinking)
    screen = Screen(plain=args.plain or not sys.stdout.isatty())
    model = load_model(args)
    chat = Chat(model, context_length(model, args), args, system=args.system, thinking=not args.no_think)
    session = chat.session
    read = make_reader(args)
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
