"""The generation loop: prompt evaluation, sampling, streaming text that is always valid UTF-8.

`stream_tokens(session, prompt_ids, ...)` yields `Piece`s and, last, one `GenerationResult`:

* text is decoded incrementally from the tokens' raw bytes: a character whose bytes span several
  tokens is emitted once all of them arrived (invalid sequences become U+FFFD, as `decode` does);
* stop strings never leak: text that could be the start of a stop string is held back until it is
  known not to be; on a match the text before it is emitted and generation ends ("stop");
* stop tokens (by default the GGUF's eos and `<|im_end|>`) end generation without being emitted;
* `max_tokens` or a full context end it with "length";
* `on_token(token_id, state)` sees each sampled token first and may replace it: return None to keep
  it, an id, or a sequence of ids (e.g. `</think>` and a newline) — the chat loop guard's hook.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .sampling import Sampler, SamplingParams

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

__all__ = [
    "GenerationResult",
    "GenerationState",
    "Piece",
    "StopMatcher",
    "Timings",
    "Utf8Stream",
    "default_stop_tokens",
    "stream_tokens",
]


@dataclass
class Piece:
    """A chunk of generated text and the ids sampled since the previous piece."""

    text: str
    token_ids: list[int]


@dataclass
class Timings:
    """Token counts and seconds of one prompt evaluation and generation, and the rates from them
    (shared by GenerationResult, the chat's ChatResult and the terminal's per-turn line)."""

    prompt_tokens: int = 0  # length of the prompt
    prompt_eval_tokens: int = 0  # prompt tokens actually evaluated (fewer when a prefix was reused)
    completion_tokens: int = 0
    prompt_seconds: float = 0.0
    gen_seconds: float = 0.0

    @property
    def prompt_tps(self) -> float:
        """Prompt tokens evaluated per second (0 when nothing needed evaluating)."""
        return self.prompt_eval_tokens / self.prompt_seconds if self.prompt_seconds > 0 else 0.0

    @property
    def gen_tps(self) -> float:
        """Generated tokens per second (sampling and evaluation)."""
        return self.completion_tokens / self.gen_seconds if self.gen_seconds > 0 else 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def timings(self) -> dict[str, float]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "prompt_eval_tokens": self.prompt_eval_tokens,
            "completion_tokens": self.completion_tokens,
            "prompt_seconds": self.prompt_seconds,
            "gen_seconds": self.gen_seconds,
            "prompt_tps": self.prompt_tps,
            "gen_tps": self.gen_tps,
        }


@dataclass
class GenerationResult(Timings):
    """How a generation ended: the full text (stop string excluded), ids and timings."""

    text: str = ""
    # generated ids: a stop string's included, a stop token not
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str = ""  # "stop" | "length"
    stop: str | int | None = None  # the stop string or stop token that ended it


@dataclass
class GenerationState:
    """What the on_token hook sees: the prompt, the ids generated so far and their text."""

    prompt_ids: list[int]
    token_ids: list[int] = field(default_factory=list)
    text: str = ""  # decoded so far (stop strings not yet cut)

    @property
    def n_generated(self) -> int:
        return len(self.token_ids)


OnToken = Callable[[int, GenerationState], int | Sequence[int] | None]


class Utf8Stream:
    """Token bytes in, complete characters out: holds back an unfinished multi-byte sequence."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tok = tokenizer
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        return self._dec.decode(self._tok.token_bytes(token_id))

    def flush(self) -> str:
        """At the end: what is left becomes U+FFFD, as a one-shot decode would give."""
        return self._dec.decode(b"", final=True)


class StopMatcher:
    """Finds stop strings in streamed text, releasing only text that cannot start one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._pending = ""

    def push(self, text: str) -> tuple[str, str | None]:
        """Add text; returns (text safe to emit, the stop string found or None). After a match the
        emitted text ends right before the stop string and the rest is dropped."""
        self._pending += text
        if not self.stops:
            out, self._pending = self._pending, ""
            return out, None
        first: tuple[int, str] | None = None
        for s in self.stops:
            i = self._pending.find(s)
            if i >= 0 and (first is None or i < first[0]):
                first = (i, s)
        if first is not None:
            out = self._pending[: first[0]]
            self._pending = ""
            return out, first[1]
        hold = self._held_suffix()
        cut = len(self._pending) - hold
        out, self._pending = self._pending[:cut], self._pending[cut:]
        return out, None

    def _held_suffix(self) -> int:
        """Length of the longest suffix of the pending text that is a proper prefix of a stop string."""
        best = 0
        p = self._pending
        for s in self.stops:
            for n in range(min(len(s) - 1, len(p)), best, -1):
                if p.endswith(s[:n]):
                    best = n
                    break
        return best

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out


def default_stop_tokens(tokenizer: Tokenizer) -> list[int]:
    """The GGUF's eos id and `<|im_end|>` / `<|endoftext|>` when the vocabulary has them."""
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    for name in ("<|im_end|>", "<|endoftext|>"):
        tid = tokenizer.token_to_id(name)
        if tid is not None and tid not in ids:
            ids.append(tid)
    return ids


def _eval_prompt(session: Any, ids: list[int]) -> tuple[np.ndarray, int]:
    """Evaluate the whole prompt as the session's context; returns (last logits, ids evaluated)."""
    reuse = getattr(session, "eval_prefix_reuse", None)
    if reuse is not None:
        logits = reuse(ids)
        return logits, int(getattr(session, "last_eval_count", len(ids)))
    if session.n_past:
        session.reset()
    return session.eval(ids), len(ids)


def stream_tokens(
    session: Any,
    prompt_ids: Sequence[int],
    *,
    sampler: Sampler | None = None,
    max_tokens: int | None = 256,
    stop_tokens: Sequence[int] | None = None,
    stop_strings: Sequence[str] | str | None = None,
    on_token: OnToken | None = None,
    tokenizer: Tokenizer | None = None,
    penalize_prompt: bool = False,
) -> Iterator[Piece | GenerationResult]:
    """Generate after `prompt_ids` (the session's whole context) and stream the text.

    Yields `Piece`s, then one `GenerationResult` (also the generator's return value). max_tokens=None
    runs until a stop or a full context. The last sampled token is not evaluated (nothing needs its
    logits), so afterwards the session holds the prompt and all generated ids but the last.

    The penalties see the generated ids only (penalize_prompt=False), as in vLLM and SGLang, the
    engines Qwen's recommended presence_penalty=1.5 is given for: over a long prompt it would
    otherwise push the answer away from every word of the question. penalize_prompt=True adds the
    prompt, as llama-server does.
    """
    prompt = [int(t) for t in prompt_ids]
    if not prompt:
        raise ValueError("the prompt is empty: generation needs at least one token")
    if max_tokens is not None and max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0 or None, got {max_tokens}")
    n_ctx = int(session.n_ctx)
    if len(prompt) > n_ctx:
        raise ValueError(f"the prompt has {len(prompt)} tokens but the context holds {n_ctx}")
    tok = tokenizer if tokenizer is not None else session.model.tokenizer
    sampler = sampler if sampler is not None else Sampler(SamplingParams.greedy())
    stops = set(default_stop_tokens(tok) if stop_tokens is None else (int(t) for t in stop_tokens))
    if isinstance(stop_strings, str):
        stop_strings = [stop_strings]
    matcher = StopMatcher(list(stop_strings or ()))
    utf8 = Utf8Stream(tok)
    state = GenerationState(prompt_ids=prompt)
    history = list(prompt) if penalize_prompt else []

    t0 = time.perf_counter()
    logits, n_eval = _eval_prompt(session, prompt)
    t1 = time.perf_counter()

    emitted: list[str] = []
    batch_ids: list[int] = []  # ids since the last yielded piece
    finish, stop_hit = "length", None
    # The context bounds what can be generated: each id but the last must be evaluated.
    room = n_ctx - len(prompt) + 1
    limit = room if max_tokens is None else min(max_tokens, room)

    while len(state.token_ids) < limit:
        tid = sampler.sample(logits, history)
        forced = on_token(tid, state) if on_token is not None else None
        if forced is None:
            new_ids = [tid]
        elif isinstance(forced, (int, np.integer)):
            new_ids = [int(forced)]
        else:
            new_ids = [int(t) for t in forced]
            if not new_ids:
                raise ValueError("on_token returned an empty list: return None to keep the token")
        to_eval: list[int] = []
        done = False
        for t in new_ids:
            if not 0 <= t < min(len(logits), tok.vocab_size):
                raise ValueError(f"token id {t} is outside the vocabulary (0..{len(logits) - 1})")
            if t in stops:
                finish, stop_hit, done = "stop", t, True
                break
            state.token_ids.append(t)
            history.append(t)
            batch_ids.append(t)
            to_eval.append(t)
            chunk = utf8.push(t)
            state.text += chunk
            out, hit = matcher.push(chunk)
            if out:
                emitted.append(out)
                yield Piece(out, batch_ids)
                batch_ids = []
            if hit is not None:
                finish, stop_hit, done = "stop", hit, True
                break
            if len(state.token_ids) >= limit:
                done = True
                break
        if done:
            break
        logits = session.eval(to_eval)

    if stop_hit is None or isinstance(stop_hit, int):
        # No stop string cut the text: release what the decoder and the matcher still hold.
        tail = utf8.flush()
        state.text += tail
        out, hit = matcher.push(tail)
        if hit is not None:
            finish, stop_hit = "stop", hit
        else:
            out += matcher.flush()
        if out or batch_ids:
            emitted.append(out)
            yield Piece(out, batch_ids)
    elif batch_ids:
        yield Piece("", batch_ids)
    t2 = time.perf_counter()

    result = GenerationResult(
        text="".join(emitted),
        token_ids=list(state.token_ids),
        finish_reason=finish,
        prompt_tokens=len(prompt),
        prompt_eval_tokens=n_eval,
        completion_tokens=len(state.token_ids),
        prompt_seconds=t1 - t0,
        gen_seconds=t2 - t1,
        stop=stop_hit,
    )
    yield result
    return result
