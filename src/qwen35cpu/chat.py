"""Chat on a model: template rendering, multi-turn state reuse, the thinking loop guard, tool calls, and
llama-cpp-python's `create_chat_completion` dict shapes.

`ChatSession` keeps one Session across turns. Each turn renders the whole conversation with the chat
template, then evaluates as little of it as possible:

* Prompt ids are built against what the session already holds: the longest stretch of the session's
  ids (or of a checkpoint's) whose text is the start of the new prompt, cut where the prompt continues
  with a special token, is kept as it is, and only the text after it is tokenized. Special tokens split
  the text before BPE runs, so the tail's ids are what tokenizing the whole prompt gives, and the
  model's own generated ids are kept even where a re-tokenization would split them differently.
* Session.eval_prefix_reuse then evaluates only the ids after what the session (or its newest matching
  checkpoint) holds. Qwen3.5's template drops the thinking of earlier turns, so the new prompt is not
  an extension of the last one: the recurrent state cannot be cut back, hence checkpoints at each turn
  boundary, after the rendered history (before the generation prompt) and after the answer. The next
  turn restores the one after the last user message and evaluates the re-rendered answer and the new
  message.

The loop guard watches the think block token by token: past `max_thinking_tokens`, or when the thinking
ends in an exact repetition (a block of p tokens repeated until the repeated stretch covers at least
`min_repeats` copies and `min_span` tokens), it replaces the next token with `</think>\\n\\n` so the
answer follows.
"""

from __future__ import annotations

import re
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .chat_template import ChatTemplate, render
from .generate import Timings
from .toolcalls import THINK_END, THINK_START, Delta, StreamParser, openai_tool_calls, parse_output

if TYPE_CHECKING:
    from .generate import GenerationResult, GenerationState
    from .model import Model
    from .sampling import SamplingParams
    from .tokenizer import Tokenizer

__all__ = [
    "ChatResult",
    "ChatSession",
    "Delta",
    "LoopGuard",
    "RepeatDetector",
    "chat_completion",
    "parse_output",
    "prompt_ids_reusing",
    "render",
]

FORCED_THINK_END = THINK_END + "\n\n"


# -- prompt ids that reuse what the session holds --------------------------------------------------


def _added_token_starts(tok: Tokenizer, data: bytes) -> set[int]:
    """Byte offsets in `data` where an added (special) token begins: places where tokenization splits."""
    added = sorted((t.encode("utf-8") for t in tok.added_tokens), key=len, reverse=True)
    if not added:
        return set()
    pattern = re.compile(b"|".join(re.escape(a) for a in added))
    return {m.start() for m in pattern.finditer(data)}


def prompt_ids_reusing(
    tok: Tokenizer, text: str, known: Sequence[Sequence[int]] = ()
) -> tuple[list[int], int]:
    """Ids for `text` that keep the longest usable start of one of the `known` id sequences.

    A known sequence is usable up to token i when its bytes equal the text's first bytes and the text
    continues there with a special token (or ends): the remaining text is tokenized on its own, which
    is what tokenizing the whole text gives for it. Returns (ids, how many ids were kept from `known`).
    """
    text = unicodedata.normalize("NFC", text)  # what Tokenizer.encode does first
    data = text.encode("utf-8")
    safe = _added_token_starts(tok, data)
    safe.add(len(data))
    best_n, best_pos, best_seq = 0, 0, None
    scanned: list[Sequence[int]] = []
    for seq in known:
        # A sequence that starts another one already scanned cannot match further than it did.
        if any(len(s) >= len(seq) and list(s[: len(seq)]) == list(seq) for s in scanned):
            continue
        scanned.append(seq)
        pos, cut_n, cut_pos = 0, 0, 0
        for i, t in enumerate(seq):
            b = tok.token_bytes(int(t))
            if data[pos : pos + len(b)] != b:
                break
            pos += len(b)
            if pos in safe:
                cut_n, cut_pos = i + 1, pos
        if cut_pos > best_pos:
            best_n, best_pos, best_seq = cut_n, cut_pos, seq
    head = [int(t) for t in best_seq[:best_n]] if best_seq is not None else []
    return head + tok.encode(data[best_pos:].decode("utf-8")), len(head)


def _ids_covering(tok: Tokenizer, ids: Sequence[int], nbytes: int) -> int | None:
    """The k with bytes(ids[:k]) of length exactly `nbytes`, if a token boundary falls there."""
    pos = 0
    for k, t in enumerate(ids):
        if pos == nbytes:
            return k
        pos += len(tok.token_bytes(int(t)))
        if pos > nbytes:
            return None
    return len(ids) if pos == nbytes else None


# -- loop guard ------------------------------------------------------------------------------------


class RepeatDetector:
    """Is the sequence ending in an exact repetition? For each period p <= max_period it keeps how many
    of the latest tokens equal the token p places earlier (O(max_period) numpy work per token)."""

    def __init__(self, *, max_period: int = 256, min_repeats: float = 3.0, min_span: int = 64) -> None:
        if max_period < 1 or min_repeats < 2 or min_span < 2:
            raise ValueError("repeat detector: max_period >= 1, min_repeats >= 2 and min_span >= 2 needed")
        self.max_period = max_period
        self.min_repeats = min_repeats
        self.min_span = min_span
        self._hist: list[int] = []
        self._run = np.zeros(max_period + 1, dtype=np.int64)  # [p]: tail length with t[i] == t[i-p]
        self._periods = np.arange(max_period + 1, dtype=np.int64)
        self.period: int | None = None  # the period found

    def push(self, token: int) -> bool:
        h = self._hist
        h.append(int(token))
        n = len(h)
        top = min(self.max_period, n - 1)
        if top == 0:
            return False
        earlier = np.asarray(h[n - 1 - top : n - 1][::-1])  # [p-1] = the token p places back
        run = self._run[1 : top + 1]
        run[:] = np.where(earlier == token, run + 1, 0)
        # A tail of run[p] + p tokens is p-periodic: (run + p) / p copies of the block.
        span = run + self._periods[1 : top + 1]
        hit = (span >= self.min_span) & (span >= self.min_repeats * self._periods[1 : top + 1])
        if hit.any():
            self.period = int(np.argmax(hit)) + 1
            return True
        return False


class LoopGuard:
    """The on_token hook of a chat turn: closes a thinking block that runs past the budget or repeats.

    It follows the think block through the bytes of the sampled ids (open from the start when the
    prompt opened it, or once the output begins with `<think>`; closed by `</think>`, whichever ids
    spell it). When a limit is hit, the sampled token is replaced by the ids of `</think>\\n\\n`,
    preceded by a newline when the thinking does not end with one: Qwen's thinking ends
    "...\\n</think>\\n\\n" and its template renders it back that way, so the next turn's prompt still
    extends what was evaluated."""

    def __init__(
        self,
        tok: Tokenizer,
        *,
        in_thinking: bool,
        max_thinking_tokens: int | None = None,
        detect_repetition: bool = True,
        repeat: Mapping[str, Any] | None = None,
    ) -> None:
        if max_thinking_tokens is not None and max_thinking_tokens < 0:
            raise ValueError(f"max_thinking_tokens must be >= 0 or None, got {max_thinking_tokens}")
        self._tok = tok
        self.thinking = in_thinking
        self._undecided = not in_thinking  # the output may still open a block itself
        self.max_thinking_tokens = max_thinking_tokens
        self.detector = RepeatDetector(**(repeat or {})) if detect_repetition else None
        self.force_ids = tok.encode(FORCED_THINK_END)
        self._nl_force_ids = tok.encode("\n" + FORCED_THINK_END)
        self._out = b""  # the output's bytes so far (sampled ids, or the forced ones in their place)
        self.thinking_tokens = 0
        self.reason: str | None = None  # "budget" | "repetition" when the guard closed the block

    def __call__(self, token_id: int, state: GenerationState | None = None) -> list[int] | None:
        piece = self._tok.token_bytes(int(token_id))
        if not self.thinking:
            self._out += piece
            if self._undecided:
                lead = self._out.lstrip()
                if lead.startswith(THINK_START.encode()):
                    self.thinking, self._undecided = True, False
                    self._out = lead[len(THINK_START) :]
                elif not THINK_START.encode().startswith(lead):
                    self._undecided = False
            return None
        if self.max_thinking_tokens is not None and self.thinking_tokens >= self.max_thinking_tokens:
            return self._force("budget")
        window = len(THINK_END) + len(piece)
        self._out += piece
        self.thinking_tokens += 1
        if THINK_END.encode() in self._out[-window:]:
            self.thinking = False
            return None
        if self.detector is not None and self.detector.push(token_id):
            self._out = self._out[: len(self._out) - len(piece)]
            self.thinking_tokens -= 1
            return self._force("repetition")
        return None

    def _force(self, reason: str) -> list[int]:
        self.reason = reason
        self.thinking = False
        ids = self.force_ids if self._out.endswith(b"\n") else self._nl_force_ids
        self._out += b"".join(self._tok.token_bytes(t) for t in ids)
        return list(ids)


# -- results ---------------------------------------------------------------------------------------


@dataclass
class ChatResult(Timings):
    """One assistant turn: the parsed answer, how it ended, what was evaluated (prompt_eval_tokens: the
    prompt ids actually evaluated, the rest came from the session), and timings."""

    content: str = ""
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name": str, "arguments": dict}
    finish_reason: str = ""  # "stop" | "length" | "tool_calls" | "cancelled"
    text: str = ""  # the raw generated text
    token_ids: list[int] = field(default_factory=list)
    thinking_tokens: int = 0
    loop_guard: str | None = None  # why the guard closed the thinking ("budget" | "repetition")

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation (tool calls in OpenAI shape)."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning_content is not None:
            msg["reasoning_content"] = self.reasoning_content
        if self.tool_calls:
            msg["tool_calls"] = openai_tool_calls(self.tool_calls)
        return msg

    def as_dict(self) -> dict[str, Any]:
        """`Model.chat`'s answer: the message fields plus finish_reason, usage and timings."""
        return {
            "role": "assistant",
            "content": self.content,
            "reasoning_content": self.reasoning_content,
            "tool_calls": [dict(c) for c in self.tool_calls],
            "finish_reason": self.finish_reason,
            "usage": self.usage(),
            "timings": self.timings(),
            "loop_guard": self.loop_guard,
        }


@dataclass
class _Turn:
    """What a turn measured so far (kept up to date so an interrupted turn still reports it)."""

    n_prompt: int
    prompt_eval: int
    prompt_seconds: float
    ids: list[int] = field(default_factory=list)  # generated ids (the pieces' until the end)
    finish: str = "cancelled"  # until generation ends by itself
    gen_seconds: float = 0.0


# -- the session -----------------------------------------------------------------------------------


class ChatSession:
    """A conversation's state on a model, reused across turns (see the module doc).

    send()/stream() take the whole conversation each turn (OpenAI style); what the session already
    evaluated is not evaluated again. Options (each also a per-call argument of send/stream):
    template (source text or ChatTemplate; default the GGUF's, else the packaged Qwen3.5 one), tools,
    enable_thinking, max_thinking_tokens (None: no budget), detect_repetition and repeat
    (RepeatDetector settings: max_period, min_repeats, min_span). max_checkpoints bounds the states
    kept (two per turn: after the history, after the answer).
    """

    def __init__(
        self,
        model: Model,
        n_ctx: int = 4096,
        *,
        template: str | ChatTemplate | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        enable_thinking: bool = True,
        max_thinking_tokens: int | None = None,
        detect_repetition: bool = True,
        repeat: Mapping[str, Any] | None = None,
        max_checkpoints: int = 8,
    ) -> None:
        from .model import Session

        self.model = model
        self.session = Session(model, n_ctx, max_checkpoints=max_checkpoints)
        if isinstance(template, ChatTemplate):
            self.template = template
        elif template is not None:
            self.template = ChatTemplate(template)
        else:
            self.template = ChatTemplate.from_metadata(model.metadata, model.tokenizer)
        self.tools = list(tools) if tools else None
        self.enable_thinking = enable_thinking
        self.max_thinking_tokens = max_thinking_tokens
        self.detect_repetition = detect_repetition
        self.repeat = dict(repeat) if repeat else None  # RepeatDetector settings
        self.last_result: ChatResult | None = None

    @property
    def n_ctx(self) -> int:
        return self.session.n_ctx

    def reset(self) -> None:
        """Forget the evaluated state and the checkpoints."""
        self.session.reset()
        self.session.clear_checkpoints()
        self.last_result = None

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        enable_thinking: bool | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        return self.template.render(
            messages,
            tools=tools if tools is not None else self.tools,
            enable_thinking=self.enable_thinking if enable_thinking is None else enable_thinking,
            add_generation_prompt=add_generation_prompt,
        )

    def prompt_ids(self, text: str) -> list[int]:
        """Ids of a rendered prompt, keeping the session's own ids where they match (module doc)."""
        s = self.session
        known = [s.tokens, *(cp.tokens for cp in reversed(s.checkpoints))]
        return prompt_ids_reusing(self.model.tokenizer, text, known)[0]

    def _has_checkpoint(self, ids: Sequence[int]) -> bool:
        return any(list(cp.tokens) == list(ids) for cp in self.session.checkpoints)

    def _checkpoint_here(self) -> None:
        s = self.session
        if s.tokens and not self._has_checkpoint(s.tokens):
            s.add_checkpoint()

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        enable_thinking: bool | None = None,
        max_tokens: int | None = None,
        stop: str | Sequence[str] | None = None,
        max_thinking_tokens: int | None = None,
        detect_repetition: bool | None = None,
        sampling: SamplingParams | None = None,
        **settings: Any,
    ) -> Iterator[Delta]:
        """Generate the assistant's answer to `messages`, yielding reasoning/content deltas as they come.
        Tool calls are parsed at the end; `last_result` then holds the ChatResult. `settings` are
        SamplingParams fields over `sampling` (default: the model's defaults for the mode)."""
        from .generate import GenerationResult, Piece, stream_tokens
        from .sampling import Sampler

        thinking = self.enable_thinking if enable_thinking is None else enable_thinking
        tools = tools if tools is not None else self.tools
        tok = self.model.tokenizer
        text = self.render(messages, tools=tools, enable_thinking=thinking)
        history = self.render(messages, tools=tools, enable_thinking=thinking, add_generation_prompt=False)
        ids = self.prompt_ids(text)
        if len(ids) >= self.n_ctx:
            raise ValueError(f"the conversation has {len(ids)} tokens but the context holds {self.n_ctx}")
        params = (
            sampling if sampling is not None else self.model.sampling_defaults(thinking=thinking)
        ).updated(**settings)
        in_thinking = text.rstrip().endswith(THINK_START)
        guard = LoopGuard(
            tok,
            in_thinking=in_thinking,
            max_thinking_tokens=self.max_thinking_tokens
            if max_thinking_tokens is None
            else max_thinking_tokens,
            detect_repetition=self.detect_repetition if detect_repetition is None else detect_repetition,
            repeat=self.repeat,
        )
        parser = StreamParser(in_thinking=in_thinking, tools=tools)
        self.last_result = None

        # The prompt is evaluated here rather than in stream_tokens (which then finds it in place), so
        # its cost is known even when the answer is interrupted. First the turn boundary: the history
        # without the generation prompt, checkpointed for the next turn.
        t0 = time.perf_counter()
        prompt_eval = 0
        k = _ids_covering(tok, ids, len(unicodedata.normalize("NFC", history).encode("utf-8")))
        if (
            text.startswith(history)
            and k is not None
            and 0 < k < len(ids)
            and not self._has_checkpoint(ids[:k])
        ):
            if list(self.session.tokens) != ids[:k]:
                self.session.eval_prefix_reuse(ids[:k])
                prompt_eval += int(self.session.last_eval_count)
            self._checkpoint_here()
        self.session.eval_prefix_reuse(ids)
        prompt_eval += int(self.session.last_eval_count)
        turn = _Turn(n_prompt=len(ids), prompt_eval=prompt_eval, prompt_seconds=time.perf_counter() - t0)

        t1 = time.perf_counter()
        gen: GenerationResult | None = None
        try:
            for item in stream_tokens(
                self.session,
                ids,
                sampler=Sampler(params),
                max_tokens=max_tokens,
                stop_strings=stop,
                on_token=guard,
                tokenizer=tok,
            ):
                if isinstance(item, Piece):
                    turn.ids += item.token_ids
                    if item.text:
                        yield from parser.feed(item.text)
                elif isinstance(item, GenerationResult):
                    gen = item
            tail, _ = parser.finish()
            yield from tail
            if gen is not None:
                turn.ids = list(gen.token_ids)
                turn.finish = gen.finish_reason
                self._complete(ids + gen.token_ids)
        finally:
            turn.gen_seconds = time.perf_counter() - t1
            self.last_result = self._result(parser, guard, turn)
            if turn.finish != "cancelled":
                self._checkpoint_here()  # after the answer

    def _complete(self, ids: list[int]) -> None:
        """Evaluate the generated ids the generation loop left out (the last one, when no stop token
        ended it), so the session holds the whole answer and the next turn can extend it."""
        s = self.session
        n = len(s.tokens)
        if n < len(ids) <= self.n_ctx and list(s.tokens) == ids[:n]:
            s.eval(ids[n:])

    @staticmethod
    def _result(parser: StreamParser, guard: LoopGuard, turn: _Turn) -> ChatResult:
        content, reasoning, calls = parse_output(
            parser.text, in_thinking=parser.in_thinking, tools=parser.tools
        )
        return ChatResult(
            content=content,
            reasoning_content=reasoning,
            tool_calls=calls,
            finish_reason="tool_calls" if calls and turn.finish != "cancelled" else turn.finish,
            text=parser.text,
            token_ids=turn.ids,
            prompt_tokens=turn.n_prompt,
            prompt_eval_tokens=turn.prompt_eval,
            completion_tokens=len(turn.ids),
            prompt_seconds=turn.prompt_seconds,
            gen_seconds=turn.gen_seconds,
            thinking_tokens=guard.thinking_tokens,
            loop_guard=guard.reason,
        )

    def send(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        on_delta: Callable[[Delta], None] | None = None,
        **kw: Any,
    ) -> ChatResult:
        """The assistant's answer to `messages` (see `stream` for the settings)."""
        for d in self.stream(messages, **kw):
            if on_delta is not None:
                on_delta(d)
        assert self.last_result is not None
        return self.last_result


# -- llama-cpp-python's create_chat_completion -----------------------------------------------------

# Arguments of llama-cpp-python's create_chat_completion with no equivalent here, and the value that
# means "not used": anything else is refused rather than silently ignored.
_UNSUPPORTED: dict[str, Any] = {
    "functions": None,
    "function_call": None,
    "typical_p": 1.0,
    "mirostat_mode": 0,
    "grammar": None,
    "logits_processor": None,
    "logprobs": None,
    "top_logprobs": None,
}
_IGNORED = ("tfs_z", "mirostat_tau", "mirostat_eta")  # only meaningful with the refused settings


def _select_tools(
    tools: Sequence[Mapping[str, Any]] | None, tool_choice: Any
) -> list[Mapping[str, Any]] | None:
    if not tools or tool_choice in (None, "auto", "required"):
        return list(tools) if tools else None
    if tool_choice == "none":
        return None
    if isinstance(tool_choice, Mapping):
        name = (tool_choice.get("function") or {}).get("name")
        chosen = [t for t in tools if (t.get("function") or t).get("name") == name]
        if not chosen:
            raise ValueError(f"tool_choice names {name!r}, which is not among the tools")
        return chosen
    raise ValueError(
        f"tool_choice must be 'none', 'auto', 'required' or a named function, got {tool_choice!r}"
    )


def chat_completion(
    chat: ChatSession,
    messages: Sequence[Mapping[str, Any]],
    *,
    stream: bool = False,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: Any = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    min_p: float | None = None,
    stop: str | Sequence[str] | None = None,
    seed: int | None = None,
    response_format: Mapping[str, Any] | None = None,
    max_tokens: int | None = None,
    presence_penalty: float | None = None,
    frequency_penalty: float | None = None,
    repeat_penalty: float | None = None,
    logit_bias: Mapping[Any, float] | None = None,
    model: str | None = None,
    enable_thinking: bool | None = None,
    max_thinking_tokens: int | None = None,
    **unsupported: Any,
) -> dict[str, Any] | Iterator[dict[str, Any]]:
    """llama-cpp-python's `Llama.create_chat_completion` on a ChatSession: the same arguments and the
    same `chat.completion` / `chat.completion.chunk` dicts. Sampling settings left as None take the
    model's defaults for the mode (Qwen3.5's recommendations, or what the GGUF stores)."""
    for name, value in unsupported.items():
        if name in _IGNORED:
            continue
        if name not in _UNSUPPORTED:
            raise TypeError(f"create_chat_completion() got an unexpected keyword argument {name!r}")
        if value != _UNSUPPORTED[name]:
            raise ValueError(f"create_chat_completion: {name}={value!r} is not supported by qwen35cpu")
    if response_format is not None and response_format.get("type", "text") != "text":
        raise ValueError("create_chat_completion: only response_format type 'text' is supported")
    if max_tokens is not None and max_tokens <= 0:
        max_tokens = None  # llama-cpp-python: <= 0 means until the context is full
    bias = {int(k): float(v) for k, v in (logit_bias or {}).items()}
    kw: dict[str, Any] = {
        "tools": _select_tools(tools, tool_choice),
        "enable_thinking": enable_thinking,
        "max_tokens": max_tokens,
        "stop": stop or None,
        "max_thinking_tokens": max_thinking_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "min_p": min_p,
        "seed": seed,
        "presence_penalty": presence_penalty,
        "frequency_penalty": frequency_penalty,
        "repetition_penalty": repeat_penalty,
        "logit_bias": bias or None,
    }
    name = model if model is not None else chat.model.path
    cid, created = f"chatcmpl-{uuid.uuid4()}", int(time.time())
    if stream:
        return _chunks(chat, messages, kw, cid, created, name)
    result = chat.send(messages, **kw)
    msg: dict[str, Any] = {"role": "assistant", "content": result.content}
    if result.reasoning_content is not None:
        msg["reasoning_content"] = result.reasoning_content
    if result.tool_calls:
        msg["tool_calls"] = openai_tool_calls(result.tool_calls)
        if not result.content:
            msg["content"] = None  # as OpenAI and llama-cpp-python answer a pure tool call
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": name,
        "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": result.finish_reason}],
        "usage": result.usage(),
    }


def _chunk(cid: str, created: int, name: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": cid,
        "model": name,
        "created": created,
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _chunks(
    chat: ChatSession,
    messages: Sequence[Mapping[str, Any]],
    kw: dict[str, Any],
    cid: str,
    created: int,
    name: str,
) -> Iterator[dict[str, Any]]:
    yield _chunk(cid, created, name, {"role": "assistant"}, None)
    for d in chat.stream(messages, **kw):
        key = "content" if d.kind == "content" else "reasoning_content"
        yield _chunk(cid, created, name, {key: d.text}, None)
    result = chat.last_result
    assert result is not None
    if result.tool_calls:
        calls = [{"index": i, **c} for i, c in enumerate(openai_tool_calls(result.tool_calls))]
        yield _chunk(cid, created, name, {"tool_calls": calls}, None)
    last = _chunk(cid, created, name, {}, result.finish_reason)
    last["usage"] = result.usage()
    yield last
