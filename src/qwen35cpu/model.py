"""Loading a qwen35moe GGUF and evaluating tokens: the Python face of the C++ core."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from .config import ModelConfig

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .chat import ChatSession
    from .generate import GenerationResult, OnToken, Piece
    from .sampling import SamplingParams
    from .tokenizer import Tokenizer


class Model:
    """A loaded model, shared by all of its sessions.

    use_mmap: True reads the matrices straight from the mmap'd file; False copies them into
    anonymous memory backed by huge pages (faster decode, the model's size in RAM; an error
    where memory is short); None (default) copies on Linux with transparent huge pages when they
    fit in the available memory, and maps elsewhere.
    """

    def __init__(
        self, path: str | os.PathLike[str], n_threads: int | None = None, *, use_mmap: bool | None = None
    ) -> None:
        self.path = os.fspath(path)
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be at least 1, got {n_threads}")
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"{self.path}: no such file")
        self._core = _core.Model(self.path, n_threads or 0, use_mmap)
        self.config = ModelConfig.from_dict(self._core.config)

    @property
    def n_threads(self) -> int:
        return int(self._core.n_threads)

    @property
    def weights_placement(self) -> str:
        """Where the matrices are read from, in words."""
        c = self._core
        if not c.weights_copied:
            return f"file mapping ({c.mmap_reason})"
        share = c.huge_page_bytes / c.copied_bytes if c.copied_bytes else 0.0
        return f"anonymous copy, {c.copied_bytes / 1e9:.2f} GB, {100 * min(share, 1.0):.0f}% in huge pages"

    @cached_property
    def metadata(self) -> dict[str, Any]:
        """All GGUF metadata key/values (token lists included)."""
        return dict(_core.GgufFile(self.path).metadata)

    @cached_property
    def tokenizer(self) -> Tokenizer:
        from .tokenizer import Tokenizer

        return Tokenizer.from_gguf_metadata(self.metadata)

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        return self.tokenizer.encode(text, special=special)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def session(self, n_ctx: int = 4096) -> Session:
        return Session(self, n_ctx)

    # -- generation ---------------------------------------------------------------------------------

    last_result: GenerationResult | None = None  # how the latest generate/stream call ended
    _gen_session: Session | None = None

    def sampling_defaults(self, *, thinking: bool = False) -> SamplingParams:
        """Qwen3.5's recommended settings for the mode, overridden by the GGUF's general.sampling.*."""
        from .sampling import defaults_from_metadata

        return defaults_from_metadata(self.metadata, thinking=thinking)

    def _generation_session(self, needed: int) -> Session:
        """One session kept across calls, so a prompt sharing a prefix with the last one reuses it."""
        s = self._gen_session
        if s is None or s.n_ctx < needed:
            s = self._gen_session = Session(self, max(needed, min(4096, self.config.n_ctx_train)))
        return s

    def stream_pieces(
        self,
        prompt: str | Sequence[int],
        *,
        max_tokens: int | None = 256,
        stop: str | Sequence[str] | None = None,
        stop_tokens: Sequence[int] | None = None,
        sampling: SamplingParams | None = None,
        on_token: OnToken | None = None,
        session: Session | None = None,
        thinking: bool = False,
        penalize_prompt: bool = False,
        **settings: Any,
    ) -> Iterator[Piece | GenerationResult]:
        """`generate.stream_tokens` on this model: the Piece objects, then the GenerationResult.
        `settings` are SamplingParams fields (temperature, top_k, top_p, min_p, presence_penalty,
        frequency_penalty, repetition_penalty / repeat_penalty, penalty_last_n, logit_bias, seed)
        over `sampling` (default: `sampling_defaults(thinking=thinking)`). Without `session` the model
        keeps one generation session, whose evaluated prefix later prompts reuse where the session
        can (Part S's eval_prefix_reuse)."""
        from .generate import GenerationResult, stream_tokens
        from .sampling import Sampler

        ids = self.tokenize(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
        base = sampling if sampling is not None else self.sampling_defaults(thinking=thinking)
        params = base.updated(**settings)
        if session is None:
            budget = max_tokens if max_tokens is not None else 0
            session = self._generation_session(len(ids) + budget)
        self.last_result = None
        for item in stream_tokens(
            session, ids, sampler=Sampler(params), max_tokens=max_tokens, stop_tokens=stop_tokens,
            stop_strings=stop, on_token=on_token, tokenizer=self.tokenizer, penalize_prompt=penalize_prompt,
        ):
            if isinstance(item, GenerationResult):
                self.last_result = item
            yield item

    def stream(self, prompt: str | Sequence[int], **kw: Any) -> Iterator[str]:
        """Generated text in pieces, each valid UTF-8; `last_result` tells how it ended and how fast."""
        from .generate import Piece

        for item in self.stream_pieces(prompt, **kw):
            if isinstance(item, Piece) and item.text:
                yield item.text

    def generate(
        self, prompt: str | Sequence[int], *, return_result: bool = False, **kw: Any
    ) -> str | GenerationResult:
        """The text generated after `prompt` (see `stream_pieces` for the settings); with
        return_result=True the GenerationResult (text, finish_reason, token counts, timings)."""
        from .generate import GenerationResult

        result: GenerationResult | None = None
        for item in self.stream_pieces(prompt, **kw):
            if isinstance(item, GenerationResult):
                result = item
        assert result is not None
        return result if return_result else result.text

    # -- chat -----------------------------------------------------------------------------------------

    _chat: ChatSession | None = None

    def chat_session(self, n_ctx: int | None = None, **kw: Any) -> ChatSession:
        """A new ChatSession on this model (n_ctx default: the training context, at most 8192); `kw` are
        ChatSession's options (template, tools, enable_thinking, max_thinking_tokens, ...)."""
        from .chat import ChatSession

        return ChatSession(self, n_ctx or min(self.config.n_ctx_train, 8192), **kw)

    def _default_chat(self) -> ChatSession:
        # One chat session kept across chat()/create_chat_completion() calls, as llama-cpp-python keeps
        # its context: a conversation sent again with one more turn is not evaluated again.
        if self._chat is None:
            self._chat = self.chat_session()
        return self._chat

    def chat(self, messages: Sequence[dict[str, Any]], **kw: Any) -> dict[str, Any]:
        """The assistant's answer to OpenAI-style `messages`: a dict with role, content,
        reasoning_content, tool_calls ([{"name", "arguments": dict}]), finish_reason, usage, timings.
        `kw`: tools, enable_thinking, max_tokens, stop, max_thinking_tokens, on_delta, sampling settings."""
        return self._default_chat().send(messages, **kw).as_dict()

    def create_chat_completion(
        self, messages: Sequence[dict[str, Any]], **kw: Any
    ) -> dict[str, Any] | Iterator[dict[str, Any]]:
        """llama-cpp-python's `Llama.create_chat_completion`: same arguments, same dicts (stream=True gives
        `chat.completion.chunk`s); see `chat.chat_completion`."""
        from .chat import chat_completion

        return chat_completion(self._default_chat(), messages, **kw)

    def __repr__(self) -> str:
        c = self.config
        return f"Model({self.path!r}, layers={c.n_layer}, hidden={c.n_embd}, experts={c.n_expert})"


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A session's state after `tokens`: restoring it continues exactly as if they had just been evaluated.

    logits are those of the last token (None for an empty checkpoint), so restoring a checkpoint
    whose tokens are the whole prompt needs no evaluation at all.
    """

    tokens: tuple[int, ...]
    state: _core.SessionState
    logits: np.ndarray | None

    @property
    def n_past(self) -> int:
        return len(self.tokens)

    @property
    def nbytes(self) -> int:
        """Memory held: state data, plus the logits."""
        return int(self.state.nbytes) + (0 if self.logits is None else int(self.logits.nbytes))


class Session:
    """One sequence's state (KV cache, conv and recurrent state) on a model.

    Besides the state, a session keeps the ids evaluated so far (`tokens`) and a bounded list of
    checkpoints. The recurrent (DeltaNet) state cannot be rewound, so going back to an earlier
    point of the sequence means restoring a checkpoint taken there; `eval_prefix_reuse` does so.
    """

    def __init__(self, model: Model, n_ctx: int = 4096, *, max_checkpoints: int = 8) -> None:
        if n_ctx < 1:
            raise ValueError(f"n_ctx must be at least 1, got {n_ctx}")
        if max_checkpoints < 0:
            raise ValueError(f"max_checkpoints must be at least 0, got {max_checkpoints}")
        self.model = model
        self._core = _core.Session(model._core, int(n_ctx))
        self.tokens: list[int] = []
        self.checkpoints: list[Checkpoint] = []
        self.max_checkpoints = max_checkpoints
        self.last_eval_count = 0  # tokens evaluated by the last eval / eval_prefix_reuse call
        self._last_logits: np.ndarray | None = None  # logits after tokens[-1], a private copy

    @property
    def n_past(self) -> int:
        """Tokens evaluated so far."""
        return int(self._core.n_past)

    @property
    def n_ctx(self) -> int:
        return int(self._core.n_ctx)

    def eval(self, ids: Sequence[int] | np.ndarray, *, all_logits: bool = False) -> np.ndarray:
        """Evaluate tokens after the current state; logits of the last token ([V]) or all ([n, V])."""
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError("token ids must be a 1-D sequence")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"token ids must be integers, got {arr.dtype}")
        if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
            raise ValueError("token id out of range")
        out = self._core.eval(arr.astype(np.int32, copy=False), all_logits)
        # The core validates before touching the state, so reaching here means all were evaluated.
        self.tokens.extend(arr.tolist())
        self._last_logits = np.array(out[-1] if all_logits else out, dtype=np.float32, copy=True)
        self.last_eval_count = int(arr.size)
        return out

    def reset(self) -> None:
        """Forget everything evaluated; the session starts a new sequence. Checkpoints are kept."""
        self._core.reset()
        self.tokens = []
        self._last_logits = None

    # ------------------------------------------------------------ session files

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write tokens, state and checkpoints to a file (atomically: temp file, then rename)."""
        from . import session_io

        session_io.save(self, path)

    def load_state(self, path: str | os.PathLike[str]) -> None:
        """Replace this session's tokens, state and checkpoints with a saved file's.

        ValueError, with the session unchanged, if the file is corrupt, truncated, of another
        format version, saved from another model, or longer than this session's n_ctx.
        """
        from . import session_io

        session_io.load_into(self, path)

    @classmethod
    def load(
        cls, model: Model, path: str | os.PathLike[str], n_ctx: int | None = None, *, max_checkpoints: int = 8
    ) -> Session:
        """A new session holding a saved file's state; n_ctx defaults to the saved session's."""
        from . import session_io

        return session_io.load_session(model, path, n_ctx, max_checkpoints=max_checkpoints)

    # ------------------------------------------------------------ checkpoints and prefix reuse

    def checkpoint(self) -> Checkpoint:
        """A copy of the current state: only the KV rows in use, and of those only the chunks not
        already held by the kept checkpoint that shares the longest token prefix with it."""
        if not self._in_sync():
            raise RuntimeError(
                f"session holds {self.n_past} positions but {len(self.tokens)} tokens "
                "(an interrupted eval?); reset or restore it first"
            )
        logits = None if self._last_logits is None else self._last_logits.copy()
        base = max(self.checkpoints, key=lambda c: common_prefix(c.tokens, self.tokens), default=None)
        return Checkpoint(tuple(self.tokens), self._core.snapshot(base.state if base else None), logits)

    def restore(self, cp: Checkpoint) -> None:
        """Return to a checkpoint's state; ValueError (session unchanged) if it does not fit this session."""
        if not isinstance(cp, Checkpoint):
            raise TypeError(f"restore() needs a Checkpoint, got {type(cp).__name__}")
        if cp.state.n_past != len(cp.tokens):
            raise ValueError(f"checkpoint holds {cp.state.n_past} positions but {len(cp.tokens)} tokens")
        self._core.restore(cp.state)  # validates shapes and n_ctx before changing anything
        self.tokens = list(cp.tokens)
        self._last_logits = None if cp.logits is None else cp.logits.copy()

    def add_checkpoint(self) -> Checkpoint:
        """Keep a checkpoint of the current state (the oldest goes beyond max_checkpoints)."""
        cp = self.checkpoint()
        # A checkpoint of the same tokens is the same state: keep only the new one.
        self.checkpoints = [c for c in self.checkpoints if c.tokens != cp.tokens]
        self.checkpoints.append(cp)
        if len(self.checkpoints) > self.max_checkpoints:
            del self.checkpoints[: len(self.checkpoints) - self.max_checkpoints]
        return cp

    def clear_checkpoints(self) -> None:
        self.checkpoints = []

    @property
    def checkpoints_nbytes(self) -> int:
        """Memory the kept checkpoints hold together (KV chunks they share counted once)."""
        states = _core.SessionState.nbytes_distinct([c.state for c in self.checkpoints])
        return int(states) + sum(0 if c.logits is None else int(c.logits.nbytes) for c in self.checkpoints)

    def eval_prefix_reuse(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Make the session's tokens equal ids, evaluating as few tokens as possible; the last token's logits.

        The evaluation starts from the longest prefix of ids the session can reach: its current
        state if ids extends the tokens evaluated so far, or a checkpoint whose tokens are a
        longer prefix of ids (among equals, the newest); from an empty state when none fits.
        last_eval_count tells how many tokens were evaluated.
        """
        arr = np.asarray(ids)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError("eval_prefix_reuse needs a 1-D sequence of at least one token id")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"token ids must be integers, got {arr.dtype}")
        want = [int(t) for t in arr.tolist()]
        # Validate everything the core would, before any restore: a failure must not leave the
        # session rewound to a checkpoint.
        n_vocab = self.model.config.n_vocab
        bad = next((i for i, t in enumerate(want) if not 0 <= t < n_vocab), None)
        if bad is not None:
            raise ValueError(
                f"token id {want[bad]} at position {bad} is outside the vocabulary [0, {n_vocab})"
            )
        if len(want) > self.n_ctx:
            raise ValueError(f"{len(want)} tokens do not fit in n_ctx {self.n_ctx}")

        # The current state, if usable, costs nothing to reach; a checkpoint costs a copy, so it
        # is only taken when it saves evaluating tokens.
        usable = self._in_sync() and self._usable_prefix(self.tokens, self._last_logits, want)
        have = len(self.tokens) if usable else -1
        best: Checkpoint | None = None
        for cp in self.checkpoints:  # oldest first, so ">=" picks the newest among equals
            longer = len(cp.tokens) > (have if best is None else len(best.tokens) - 1)
            if longer and self._usable_prefix(cp.tokens, cp.logits, want):
                best = cp
        if best is not None:
            self.restore(best)
        elif have < 0:
            self.reset()
        tail = want[len(self.tokens) :]
        if not tail:
            self.last_eval_count = 0
            assert self._last_logits is not None  # _usable_prefix guarantees it
            return self._last_logits.copy()
        return self.eval(tail)

    def _in_sync(self) -> bool:
        # False only if an exception (Ctrl-C) landed between the core's eval and the tokens update.
        return self.n_past == len(self.tokens)

    @staticmethod
    def _usable_prefix(tokens: Sequence[int], logits: np.ndarray | None, want: list[int]) -> bool:
        """Whether a state after `tokens` can reach `want`: a prefix, and when equal, logits to return."""
        n = len(tokens)
        if n > len(want) or list(tokens) != want[:n]:
            return False
        return n < len(want) or logits is not None


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n], dtype=np.int64) != np.asarray(b[:n], dtype=np.int64))
    return int(diff[0]) if diff.size else n


def load(
    path: str | os.PathLike[str], n_threads: int | None = None, *, use_mmap: bool | None = None
) -> Model:
    """Open a qwen35moe GGUF file. n_threads defaults to the number of physical cores; use_mmap: see Model."""
    return Model(path, n_threads, use_mmap=use_mmap)
