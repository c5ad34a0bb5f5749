"""The terminal's conversation: messages and settings over a ChatSession, each answer streamed
to the screen with its speed, and /save and /load (the messages as JSON, the model state beside
them)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..generate import Timings
from .interrupt import StopFlag
from .screen import Screen

if TYPE_CHECKING:
    from ..model import Model, Session
    from ..sampling import SamplingParams

SAVE_FORMAT = "qwen35cpu-chat"
SAVE_VERSION = 1


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

    def __init__(self, model: Model, n_ctx: int, *, system: str | None, thinking: bool,
                 sampling: Callable[[bool], SamplingParams], max_tokens: int | None = None,
                 ignore_eos: bool = False, max_thinking: int | None = None) -> None:
        """sampling(thinking): the sampling parameters of a turn; max_tokens: an answer's budget;
        ignore_eos: end-of-generation tokens are never sampled; max_thinking: the loop guard."""
        from ..chat import ChatSession

        self.model = model
        self.sampling = sampling
        self.max_tokens = max_tokens
        self.ignore_eos = ignore_eos
        self.system = system
        self.thinking = thinking
        self.messages: list[dict[str, Any]] = []
        self.turns = 0
        self.total = TurnStats()
        self.last: TurnStats | None = None
        self.chat = ChatSession(model, n_ctx, enable_thinking=thinking,
                                max_thinking_tokens=max_thinking)

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
        msgs = [*self.conversation(), {"role": "user", "content": text}]
        params = self.sampling(self.thinking)
        if self.ignore_eos:
            # As llama.cpp's --ignore-eos: end-of-generation tokens can never be sampled.
            from ..generate import default_stop_tokens

            bias = dict(params.logit_bias)
            bias.update({t: float("-inf") for t in default_stop_tokens(self.model.tokenizer)})
            params = params.updated(logit_bias=bias)
        t0 = time.perf_counter()
        t_first: float | None = None
        deltas = self.chat.stream(msgs, enable_thinking=self.thinking, max_tokens=self.max_tokens,
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
