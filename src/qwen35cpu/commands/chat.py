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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from .generate import add_model_args, add_sampling_args, check_positive, context_length, load_model

if TYPE_CHECKING:
    from ..model import Model, Session

HELP = """\
/help              this help
/reset             forget the conversation (the system message stays)
/system [TEXT]     show or set the system message (an empty TEXT removes it)
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
    add_sampling_args(p)
    p.set_defaults(func=run)


# ---------------------------------------------------------------- streaming display of <think>


class ThinkSplitter:
    """Splits streamed text into (text, is_thinking) runs, hiding the <think> / </think> tags even
    when a tag arrives split over several pieces."""

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self, thinking: bool) -> None:
        self.thinking = thinking
        self.buf = ""
        self.thought = ""  # all thinking text seen
        self.answer = ""  # all answer text seen

    def push(self, text: str) -> list[tuple[str, bool]]:
        self.buf += text
        out: list[tuple[str, bool]] = []
        while True:
            tag = self.CLOSE if self.thinking else self.OPEN
            i = self.buf.find(tag)
            if i < 0:
                break
            self._emit(out, self.buf[:i])
            self.buf = self.buf[i + len(tag):]
            self.thinking = not self.thinking
        # Keep back a tail that could be the start of the tag.
        keep = 0
        for n in range(min(len(tag) - 1, len(self.buf)), 0, -1):
            if tag.startswith(self.buf[-n:]):
                keep = n
                break
        self._emit(out, self.buf[: len(self.buf) - keep])
        self.buf = self.buf[len(self.buf) - keep:]
        return out

    def flush(self) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        self._emit(out, self.buf)
        self.buf = ""
        return out

    def _emit(self, out: list[tuple[str, bool]], text: str) -> None:
        if not text:
            return
        if self.thinking:
            self.thought += text
        else:
            self.answer += text
        out.append((text, self.thinking))


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
class TurnStats:
    prompt_tokens: int = 0
    prompt_eval_tokens: int = 0
    completion_tokens: int = 0
    prompt_seconds: float = 0.0
    gen_seconds: float = 0.0
    finish_reason: str = ""

    @property
    def gen_tps(self) -> float:
        return self.completion_tokens / self.gen_seconds if self.gen_seconds > 0 else 0.0

    @property
    def prompt_tps(self) -> float:
        return self.prompt_eval_tokens / self.prompt_seconds if self.prompt_seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"[{self.completion_tokens} tokens, {self.gen_tps:.1f} tokens/s; "
            f"prompt {self.prompt_tokens} tokens, {self.prompt_eval_tokens} evaluated at "
            f"{self.prompt_tps:.1f} tokens/s; {self.finish_reason}]"
        )


@dataclass
class Chat:
    model: Model
    session: Session
    args: argparse.Namespace
    system: str | None = None
    thinking: bool = True
    messages: list[dict[str, Any]] = field(default_factory=list)
    turns: int = 0
    total: TurnStats = field(default_factory=TurnStats)
    last: TurnStats | None = None

    def __post_init__(self) -> None:
        from ..chat_template import ChatTemplate

        self.template = ChatTemplate.from_metadata(self.model.metadata, self.model.tokenizer)

    def conversation(self) -> list[dict[str, Any]]:
        sys_msg = [{"role": "system", "content": self.system}] if self.system else []
        return sys_msg + self.messages

    def reset(self) -> None:
        self.messages.clear()
        self.session.reset()

    def answer(self, text: str, screen: Screen, stop: StopFlag) -> TurnStats:
        """Stream the answer to `text`; the user message and the answer join the conversation."""
        from ..generate import GenerationResult, Piece, stream_tokens
        from ..sampling import Sampler
        from .generate import sampling_params, stop_tokens

        msgs = [*self.conversation(), {"role": "user", "content": text}]
        prompt = self.template.render(msgs, enable_thinking=self.thinking)
        ids = self.model.tokenize(prompt)
        n_ctx = self.session.n_ctx
        if len(ids) >= n_ctx:
            raise ValueError(
                f"the conversation is {len(ids)} tokens; the context holds {n_ctx} (/reset or --ctx)"
            )
        budget = n_ctx - len(ids)
        if self.args.max_tokens is not None:
            budget = min(budget, self.args.max_tokens)
        opened = prompt.rstrip().endswith(ThinkSplitter.OPEN)
        split = ThinkSplitter(thinking=opened)
        sampler = Sampler(sampling_params(self.model, self.args, thinking=self.thinking))
        st = TurnStats(prompt_tokens=len(ids), finish_reason="interrupted")
        t0 = time.perf_counter()
        t_first: float | None = None
        gen: Iterator[Any] = stream_tokens(
            self.session, ids, sampler=sampler, max_tokens=budget,
            stop_tokens=stop_tokens(self.model, self.args), tokenizer=self.model.tokenizer,
        )
        try:
            for item in gen:
                if isinstance(item, Piece):
                    if t_first is None:
                        t_first = time.perf_counter()
                    st.completion_tokens += len(item.token_ids)
                    for run, dim in split.push(item.text):
                        screen.write(run, dim=dim)
                elif isinstance(item, GenerationResult):
                    st.prompt_eval_tokens = item.prompt_eval_tokens
                    st.prompt_seconds, st.gen_seconds = item.prompt_seconds, item.gen_seconds
                    st.finish_reason = item.finish_reason
                if stop.requested:
                    break
        finally:
            gen.close()
        for run, dim in split.flush():
            screen.write(run, dim=dim)
        if st.finish_reason == "interrupted":
            t1 = time.perf_counter()
            first = t_first if t_first is not None else t1
            st.prompt_seconds, st.gen_seconds = first - t0, t1 - first
            st.prompt_eval_tokens = int(getattr(self.session, "last_eval_count", len(ids)))
        content = split.answer.lstrip("\n")
        reply: dict[str, Any] = {"role": "assistant", "content": content}
        if split.thought.strip():
            reply["reasoning_content"] = split.thought.strip("\n")
        self.messages += [{"role": "user", "content": text}, reply]
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
        save_state = getattr(self.session, "save", None)
        if save_state is not None and getattr(self.session, "tokens", None):
            save_state(state_path(path))
            saved += f" (model state: {state_path(path)})"
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
        self.session.reset()
        note = ""
        sp = state_path(path)
        load_state = getattr(self.session, "load_state", None)
        if load_state is not None and sp.exists():
            try:
                load_state(sp)
                note = " and the model state"
            except ValueError as e:
                note = f"; model state not used ({e})"
        return f"loaded {len(self.messages)} messages{note} from {path}"


def state_path(path: Path) -> Path:
    return path.with_name(path.name + ".state")


# ---------------------------------------------------------------- the loop


def run(args: argparse.Namespace) -> int:
    check_positive("--max-tokens", args.max_tokens)
    screen = Screen(plain=args.plain or not sys.stdout.isatty())
    model = load_model(args)
    session = model.session(n_ctx=context_length(model, args))
    chat = Chat(model, session, args, system=args.system, thinking=not args.no_think)
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
            screen.line()
            screen.line("[interrupted]", dim=True)
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
        if not rest and text.strip() == "/system":
            screen.line(f"system: {chat.system!r}" if chat.system else "no system message", dim=True)
        else:
            chat.system = rest or None
            screen.line("system message set" if rest else "system message removed", dim=True)
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
        f"context: {chat.session.n_past} of {chat.session.n_ctx} tokens in use",
        f"total: {t.completion_tokens} tokens generated at {t.gen_tps:.1f} tokens/s, "
        f"{t.prompt_eval_tokens} prompt tokens evaluated at {t.prompt_tps:.1f} tokens/s",
    ]
    if chat.last is not None:
        lines.append("last answer: " + chat.last.line())
    return "\n".join(lines)
