"""Loading a qwen35moe GGUF and evaluating tokens: the Python face of the C++ core."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from .config import ModelConfig

if TYPE_CHECKING:
    from .generate import GenerationResult, OnToken, Piece
    from .sampling import SamplingParams
    from .tokenizer import Tokenizer


class Model:
    """A loaded model: weights mmap'd from the GGUF file, shared by all of its sessions."""

    def __init__(self, path: str | os.PathLike[str], n_threads: int | None = None) -> None:
        self.path = os.fspath(path)
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be at least 1, got {n_threads}")
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"{self.path}: no such file")
        self._core = _core.Model(self.path, n_threads or 0)
        self.config = ModelConfig.from_dict(self._core.config)

    @property
    def n_threads(self) -> int:
        return int(self._core.n_threads)

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
        **settings: Any,
    ) -> Iterator[Piece | GenerationResult]:
        """`generate.stream_tokens` on this model: the Piece objects, then the GenerationResult.
        `settings` are SamplingParams fields (temperature, top_k, top_p, min_p, presence_penalty,
        frequency_penalty, repetition_penalty / repeat_penalty, penalty_last_n, logit_bias, seed)
        over `sampling` (default: `sampling_defaults()`)."""
        from .generate import GenerationResult, stream_tokens
        from .sampling import Sampler

        ids = self.tokenize(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
        params = (sampling if sampling is not None else self.sampling_defaults()).updated(**settings)
        if session is None:
            budget = max_tokens if max_tokens is not None else 0
            session = self._generation_session(len(ids) + budget)
        self.last_result = None
        for item in stream_tokens(
            session, ids, sampler=Sampler(params), max_tokens=max_tokens, stop_tokens=stop_tokens,
            stop_strings=stop, on_token=on_token, tokenizer=self.tokenizer,
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

    def __repr__(self) -> str:
        c = self.config
        return f"Model({self.path!r}, layers={c.n_layer}, hidden={c.n_embd}, experts={c.n_expert})"


class Session:
    """One sequence's state (KV cache, conv and recurrent state) on a model."""

    def __init__(self, model: Model, n_ctx: int = 4096) -> None:
        if n_ctx < 1:
            raise ValueError(f"n_ctx must be at least 1, got {n_ctx}")
        self.model = model
        self._core = _core.Session(model._core, int(n_ctx))

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
        return self._core.eval(arr.astype(np.int32, copy=False), all_logits)

    def reset(self) -> None:
        """Forget everything evaluated; the session starts a new sequence."""
        self._core.reset()


def load(path: str | os.PathLike[str], n_threads: int | None = None) -> Model:
    """Open a qwen35moe GGUF file. n_threads defaults to the number of physical cores."""
    return Model(path, n_threads)
