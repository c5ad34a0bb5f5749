"""Chat: template rendering, output parsing, the loop guard, multi-turn state reuse, and the
llama-cpp-python dict shapes.

The models have random weights, so what they write is noise: the tests check mechanics (what gets
rendered and evaluated, how text is parsed, which tokens are forced, the shapes returned), never the
text itself. Generation is greedy, so every run produces the same ids.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qwen35cpu
from qwen35cpu.chat import (
    ChatResult,
    ChatSession,
    LoopGuard,
    RepeatDetector,
    chat_completion,
    prompt_ids_reusing,
)
from qwen35cpu.chat_template import ChatTemplate, default_template, render
from qwen35cpu.model import Model
from qwen35cpu.toolcalls import StreamParser, parse_output

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather <now> in a city, e.g. Zürich & 東京",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "ratio": {"type": "number"},
                "code": {"type": "string"},
                "opts": {"type": "object"},
                "tags": {"type": "array"},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
            "required": ["city"],
        },
    },
}


# -- rendering -------------------------------------------------------------------------------------


def test_generation_prompt_follows_enable_thinking() -> None:
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    on = render(msgs)
    off = render(msgs, enable_thinking=False)
    history = render(msgs, add_generation_prompt=False)
    assert history == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    assert on == history + "<|im_start|>assistant\n<think>\n"
    assert off == history + "<|im_start|>assistant\n<think>\n\n</think>\n\n"


def test_tools_and_tool_results_render_as_qwen_teaches() -> None:
    call_args = {"city": "Paris", "days": 3}
    base = [{"role": "user", "content": "Weather?"}]
    as_string = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps(call_args)},
    }
    as_dict = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": call_args}}
    tail = [
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "windy"},
    ]
    texts = [
        render([*base, {"role": "assistant", "content": "", "tool_calls": [c]}, *tail], tools=[WEATHER_TOOL])
        for c in (as_string, as_dict, {"name": "get_weather", "arguments": call_args})
    ]
    # OpenAI sends arguments as a JSON string; the template needs a dict: all render the same, and so
    # does a call as Model.chat returns it ({"name", "arguments"}).
    assert texts[0] == texts[1] == texts[2]
    text = texts[0]
    # The tool definition is plain json.dumps: non-ASCII and '<', '&' are not escaped.
    assert "<tools>\n" + json.dumps(WEATHER_TOOL, ensure_ascii=False) + "\n</tools>" in text
    assert (
        "<|im_start|>assistant\n<think>\n\n</think>\n\n<tool_call>\n<function=get_weather>\n"
        "<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>"
        "<|im_end|>\n"
    ) in text
    # Consecutive tool results share one user turn.
    assert text.endswith(
        "<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nwindy\n"
        "</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\n"
    )


def test_template_drops_thinking_before_the_last_user_query() -> None:
    msgs = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
        {"role": "user", "content": "q2"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "r2",
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}],
        },
        {"role": "tool", "content": "ok"},
    ]
    text = render(msgs)
    assert "<|im_start|>assistant\na1<|im_end|>" in text and "r1" not in text
    assert "<|im_start|>assistant\n<think>\nr2\n</think>\n\n<tool_call>\n<function=f>\n</function>" in text


CONVERSATIONS: list[tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = [
    ([{"role": "user", "content": "Hello"}], None),
    (
        [
            {"role": "system", "content": "  sys  "},
            {"role": "user", "content": "é 東京"},
            {"role": "assistant", "content": "<think>\nr\n</think>\n\nanswer"},
            {"role": "user", "content": "more"},
        ],
        None,
    ),
    (
        [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "w?"},
            {
                "role": "assistant",
                "content": "let me check",
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": {"city": "Paris", "opts": {"a": [1, 2]}},
                        },
                    }
                ],
            },
            {"role": "tool", "content": '{"t": 20}'},
        ],
        [WEATHER_TOOL],
    ),
]


@pytest.mark.reference
@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("case", range(len(CONVERSATIONS)))
def test_render_equals_transformers(case: int, thinking: bool) -> None:
    from transformers.utils.chat_template_utils import render_jinja_template

    msgs, tools = CONVERSATIONS[case]
    for gen in (True, False):
        theirs = render_jinja_template(
            conversations=[msgs],
            tools=tools,
            chat_template=default_template(),
            add_generation_prompt=gen,
            enable_thinking=thinking,
        )[0][0]
        assert render(msgs, tools=tools, enable_thinking=thinking, add_generation_prompt=gen) == theirs


@pytest.mark.parametrize(
    ("messages", "template", "message"),
    [
        ([], None, "No messages provided"),
        ([{"role": "assistant", "content": "x"}], None, "No user query found"),
        ([{"content": "x"}], None, "has no 'role'"),
        ("hello", None, "must be a list"),
        (
            [
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "f", "arguments": "{not json"}}],
                },
            ],
            None,
            "not valid JSON",
        ),
        ([{"role": "user", "content": "x"}], "{% for %}", "does not compile"),
        ([{"role": "user", "content": "x"}], "{{ ''.__class__.__mro__ }}", "unsafe"),
        ([{"role": "user", "content": "x"}], "{% set l = [] %}{{ l.append(1) }}", "unsafe"),
    ],
)
def test_bad_input_is_a_one_line_error(messages: Any, template: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message) as e:
        render(messages, template=template)
    assert "\n" not in str(e.value)


def test_template_comes_from_the_gguf(converted: Callable[[str, str], Path]) -> None:
    model = qwen35cpu.load(converted("r1", "f32"), n_threads=1)
    gguf = model.metadata["tokenizer.chat_template"]
    assert ChatSession(model, 64).template.source == gguf != default_template()
    assert ChatTemplate.from_metadata({}).source == default_template()
    assert ChatTemplate.from_metadata({}, model.tokenizer).eos_token == "<|im_end|>"


# -- parsing ---------------------------------------------------------------------------------------


def _generated_part(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    """What the model would have written for the last (assistant) message: its rendering after the
    generation prompt and before <|im_end|>."""
    full = render(messages, tools=tools, add_generation_prompt=False)
    prompt = render(messages[:-1], tools=tools)
    assert full.startswith(prompt[: -len("<think>\n")])
    return full[len(prompt) :].removesuffix("<|im_end|>\n")


def test_tool_calls_round_trip_through_the_template() -> None:
    args = {
        "city": "New York",
        "days": 7,
        "metric": True,
        "ratio": 0.25,
        "code": "007",
        "opts": {"units": "C", "list": [1, "a"]},
        "tags": ["x", "y"],
        "note": "line 1\nline 2\n",
    }
    calls = [
        {"name": "get_weather", "arguments": args},
        {"name": "get_weather", "arguments": {"city": "Rome"}},
    ]
    msgs = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "Checking.",
            "reasoning_content": "two calls",
            "tool_calls": [{"type": "function", "function": c} for c in calls],
        },
    ]
    text = _generated_part(msgs, [WEATHER_TOOL])
    assert parse_output(text, in_thinking=True, tools=[WEATHER_TOOL]) == ("Checking.", "two calls", calls)
    # Without the schema, values are read as JSON where they parse: "007" is no JSON number, stays text;
    # Python's True as the template writes it is no JSON either.
    content, _, got = parse_output(text, in_thinking=True)
    assert content == "Checking." and got[0]["arguments"] == {**args, "metric": "True"}


def test_think_block_detection() -> None:
    out = "r\n</think>\n\nanswer"
    assert parse_output(out) == ("answer", "r", [])  # prompt unknown: "</think>" shows it was open
    assert parse_output(out, in_thinking=True) == ("answer", "r", [])
    assert parse_output(out, in_thinking=False) == (out, None, [])
    assert parse_output(" <think>\nr</think>a", in_thinking=False) == ("a", "r", [])
    assert parse_output("thinking, cut off", in_thinking=True) == ("", "thinking, cut off", [])
    assert parse_output("plain") == ("plain", None, [])


@pytest.mark.parametrize(
    ("text", "content", "n_calls"),
    [
        ("<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>", "", 1),
        # no </tool_call> but a complete function block: still a call
        ("<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</function>\n", "", 1),
        # the older JSON form
        ('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>', "", 1),
        # malformed: no function, cut off, bad JSON, empty name -> left as content
        ("x <tool_call>\nhello\n</tool_call>", "x <tool_call>\nhello\n</tool_call>", 0),
        ("x <tool_call>\n<function=f>\n<parameter=a>\n1", "x <tool_call>\n<function=f>\n<parameter=a>\n1", 0),
        (
            '<tool_call>{"name": "f", "arguments": [1]}</tool_call>',
            '<tool_call>{"name": "f", "arguments": [1]}</tool_call>',
            0,
        ),
        (
            "<tool_call><function=>\n</function></tool_call>",
            "<tool_call><function=>\n</function></tool_call>",
            0,
        ),
        # a good call after a bad one
        (
            "<tool_call>oops</tool_call>\n<tool_call>\n<function=g>\n</function>\n</tool_call>",
            "<tool_call>oops</tool_call>",
            1,
        ),
    ],
)
def test_malformed_blocks_stay_content(text: str, content: str, n_calls: int) -> None:
    got, reasoning, calls = parse_output(text)
    assert (got, reasoning, len(calls)) == (content, None, n_calls)


def test_every_cut_of_an_output_parses() -> None:
    """A stream can stop anywhere (max_tokens): no prefix may crash the parser, and a block cut before
    </function> is never reported as a call."""
    msgs = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "c",
            "reasoning_content": "r",
            "tool_calls": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}},
                }
            ],
        },
    ]
    text = _generated_part(msgs, [WEATHER_TOOL])
    complete_at = text.index("</function>") + len("</function>")
    for n in range(len(text) + 1):
        _, reasoning, calls = parse_output(text[:n], in_thinking=True, tools=[WEATHER_TOOL])
        assert len(calls) == (1 if n >= complete_at else 0), n
        assert reasoning is not None


STREAM_TEXTS = [
    ("reasoning here\n</think>\n\nThe answer.  ", True),
    (
        "r\n</think>\n\nLet me call.\n\n<tool_call>\n<function=f>\n<parameter=x>\n<b>1</b>\n</parameter>\n"
        "</function>\n</tool_call>",
        True,
    ),
    ("  <think>\nr</think>content with <tool and </think later <tool_call>bad</tool_call> tail", False),
    ("no thinking at all <thi", False),
    ("cut off while thinking </thin", True),
    ("\n\n<think>\n\n</think>\n\n", False),
]


def _pieces(text: str, rng: random.Random) -> Iterator[list[str]]:
    yield list(text)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 6))))
        yield [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@pytest.mark.parametrize(("text", "in_thinking"), STREAM_TEXTS)
def test_stream_parser_deltas_add_up_to_parse_output(text: str, in_thinking: bool) -> None:
    want_content, want_reasoning, want_calls = parse_output(text, in_thinking=in_thinking)
    for pieces in _pieces(text, random.Random(len(text))):
        p = StreamParser(in_thinking=in_thinking)
        deltas = [d for piece in pieces for d in p.feed(piece)]
        streamed = list(deltas)
        tail, final = p.finish()
        deltas += tail
        assert final == (want_content, want_reasoning, want_calls)
        assert "".join(d.text for d in deltas if d.kind == "content") == want_content
        assert "".join(d.text for d in deltas if d.kind == "reasoning") == (want_reasoning or "")
        for d in streamed:  # a tag never leaks while streaming, nor a tool-call block
            assert "</think>" not in d.text and "<tool_call>" not in d.text


# -- loop guard ------------------------------------------------------------------------------------


@pytest.mark.parametrize("period", [1, 3, 10, 40])
def test_repeat_detector_fires_where_the_repetition_is_long_enough(period: int) -> None:
    rng = np.random.default_rng(period)
    det = RepeatDetector(max_period=64, min_repeats=3, min_span=32)
    prefix = rng.integers(1000, 2000, 100)  # distinct range: cannot extend the block's run
    block = rng.permutation(np.arange(period)) if period > 1 else np.array([7])
    seq = np.concatenate([prefix, np.tile(block, 200)])
    fired = next(i for i, t in enumerate(seq) if det.push(int(t)))
    # The tail is `period`-periodic over run + period tokens; it must cover max(32, 3 * period).
    need = max(32, 3 * period)
    assert fired == len(prefix) + need - 1 and det.period == period


def test_repeat_detector_quiet_on_non_repeating_text() -> None:
    det = RepeatDetector()
    seq = np.random.default_rng(0).integers(0, 50000, 4000)
    assert not any(det.push(int(t)) for t in seq)


def test_loop_guard_budget_and_natural_end(converted: Callable[[str, str], Path]) -> None:
    tok = qwen35cpu.load(converted("r1", "f32"), n_threads=1).tokenizer
    a = tok.encode("a")[0]
    g = LoopGuard(tok, in_thinking=True, max_thinking_tokens=3)
    assert [g(a) for _ in range(3)] == [None] * 3
    # "aaa" lacks the newline Qwen puts before </think>: it is added
    assert g(a) == tok.encode("\n</think>\n\n") and g.reason == "budget" and not g.thinking
    assert g(a) is None  # answering now: nothing more is forced
    g = LoopGuard(tok, in_thinking=True, max_thinking_tokens=2)
    assert [g(t) for t in tok.encode("a\n")] == [None, None]
    assert g(a) == tok.encode("</think>\n\n")
    g = LoopGuard(tok, in_thinking=True, max_thinking_tokens=100)
    for t in tok.encode("x</think>"):
        assert g(t) is None
    assert not g.thinking and g.reason is None and g(a) is None
    # The output may open the block itself when the prompt did not.
    g = LoopGuard(tok, in_thinking=False, max_thinking_tokens=0)
    assert all(g(t) is None for t in tok.encode(" <think>"))
    assert g(a) == tok.encode("\n</think>\n\n")
    g = LoopGuard(tok, in_thinking=False, max_thinking_tokens=0)  # an answer, not a think block
    assert all(g(t) is None for t in tok.encode("<b> x <think>"))


@pytest.fixture(scope="module")
def r1(converted: Callable[[str, str], Path]) -> Model:
    return qwen35cpu.load(converted("r1", "f32"), n_threads=1)


def _no_stop(model: Model) -> dict[int, float]:
    """A logit bias that keeps the random model from ending its answer early."""
    tok = model.tokenizer
    return {
        i: -1e4
        for i in {tok.eos_token_id, tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")}
        if i is not None
    }


@pytest.mark.parametrize("name", ["r1", "realvocab"])
def test_thinking_budget_forces_the_end_of_thinking(name: str, request: pytest.FixtureRequest) -> None:
    """r1's toy vocabulary spells </think> with several ids, the real one has a token for it."""
    model: Model = request.getfixturevalue(name)
    chat = ChatSession(model, 256, template=default_template(), max_thinking_tokens=5)
    tok = model.tokenizer
    r = chat.send(
        [{"role": "user", "content": "Hello"}], max_tokens=16, temperature=0, logit_bias=_no_stop(model)
    )
    assert r.loop_guard == "budget" and r.thinking_tokens == 5 and r.completion_tokens == 16
    thought = tok.decode(r.token_ids[:5])
    forced = "</think>\n\n" if thought.endswith("\n") else "\n</think>\n\n"
    n = len(tok.encode(forced))
    assert tok.decode(r.token_ids[5 : 5 + n]) == forced
    assert r.reasoning_content == thought.strip()
    assert r.content == tok.decode(r.token_ids[5 + n :]).strip()


def test_repetition_inside_thinking_is_cut(r1: Model) -> None:
    chat = ChatSession(r1, 256, template=default_template())
    tok = r1.tokenizer
    x = tok.encode("a")[0]
    r = chat.send(
        [{"role": "user", "content": "Hello"}],
        max_tokens=80,
        temperature=0,
        logit_bias={**_no_stop(r1), x: 1e4},
    )
    # Default detector: 64 equal tokens make the loop; the 64th is replaced by the forced end.
    assert r.loop_guard == "repetition" and r.thinking_tokens == 63
    assert r.token_ids[:63] == [x] * 63
    assert tok.decode(r.token_ids[63:]).startswith("\n</think>\n\n")
    assert r.reasoning_content == "a" * 63 and r.content == "a" * (
        80 - 63 - len(tok.encode("\n</think>\n\n"))
    )
    # With thinking off there is no think block to guard.
    r = chat.send(
        [{"role": "user", "content": "Hello"}],
        enable_thinking=False,
        max_tokens=80,
        temperature=0,
        logit_bias={**_no_stop(r1), x: 1e4},
    )
    assert r.loop_guard is None and r.reasoning_content is None and r.content == "a" * 80


# -- multi-turn reuse ------------------------------------------------------------------------------


class EvalLog:
    """Records what a session's eval_prefix_reuse was asked for and what it returned."""

    def __init__(self, session: Any) -> None:
        self.calls: list[tuple[list[int], np.ndarray, int]] = []
        inner = session.eval_prefix_reuse

        def wrapped(ids: Any) -> np.ndarray:
            out = inner(ids)
            self.calls.append(([int(t) for t in ids], np.array(out), session.last_eval_count))
            return out

        session.eval_prefix_reuse = wrapped


def _scratch_logits(model: Model, ids: list[int]) -> np.ndarray:
    return model.session(n_ctx=len(ids)).eval(ids)


def test_extending_conversation_evaluates_only_new_tokens(r1: Model) -> None:
    """The GGUF's own template keeps the whole history, so each turn extends the last: the session
    holds prompt + answer and a turn evaluates exactly the ids after them."""
    tok = r1.tokenizer
    # Only letters may be generated: the answer renders back as the same text (no stripped spaces,
    # no U+FFFD), so the next prompt really is an extension.
    letters = {i for i in range(tok.vocab_size) if tok.token_bytes(i).isalpha()}
    bias = {i: -1e4 for i in range(r1.config.n_vocab) if i not in letters}
    chat = ChatSession(r1, 512)
    log = EvalLog(chat.session)
    msgs: list[dict[str, Any]] = []
    for turn, question in enumerate(["Hello world", "The quick brown fox", "jumps over the lazy dog"]):
        msgs.append({"role": "user", "content": question})
        held = list(chat.session.tokens)
        r = chat.send(msgs, max_tokens=6, temperature=0, logit_bias=bias)
        ids, logits, _ = log.calls[-1]
        assert ids[: len(held)] == held  # an extension ...
        assert r.prompt_eval_tokens == len(ids) - len(held)  # ... so only the new ids are evaluated
        np.testing.assert_array_equal(logits, _scratch_logits(r1, ids))
        if turn == 2:
            assert r.prompt_eval_tokens == len(
                tok.encode(
                    "<|im_end|>\n<|im_start|>user\n" + question + "<|im_end|>\n<|im_start|>assistant\n"
                )
            )
        msgs.append(r.message())
        assert chat.session.tokens == ids + r.token_ids  # the whole answer is held for the next turn


@pytest.fixture(scope="module")
def realvocab(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """A tiny qwen35moe with the real Qwen3.5 tokenizer and chat template (random weights)."""
    from qwen35cpu.convert import convert
    from qwen35cpu.qwen_vocab import write_qwen35_tokenizer_files
    from qwen35cpu.random_checkpoint import CFG_A, make_random_checkpoint

    cfg = {
        **CFG_A,
        "vocab_size": 248320,
        "hidden_size": 32,
        "num_key_value_heads": 1,
        "linear_num_key_heads": 1,
        "linear_num_value_heads": 2,
        "num_experts": 4,
        "shared_expert_intermediate_size": 32,
    }
    folder = tmp_path_factory.mktemp("chat_realvocab") / "ckpt"
    make_random_checkpoint(folder, cfg, "hub", "f32", seed=11)
    write_qwen35_tokenizer_files(folder)
    return qwen35cpu.load(convert(folder, folder.parent / "m.gguf", "f32", progress=False), n_threads=1)


def test_turn_three_restores_the_turn_boundary_checkpoint(realvocab: Model) -> None:
    """Qwen3.5's template drops the thinking of answered turns, so turn 3's prompt is not an extension
    of what was evaluated. The session goes back to its checkpoint after turn 2's last user message and
    evaluates only what follows; the logits equal a from-scratch evaluation of the same ids, and those
    ids are exactly the tokenization of the rendered prompt."""
    model = realvocab
    tok = model.tokenizer
    assert model.metadata["tokenizer.chat_template"] == default_template()
    chat = ChatSession(model, 1024)
    log = EvalLog(chat.session)
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    for turn, question in enumerate(["Hi there!", "Tell me about Zürich.", "And 東京?"]):
        msgs.append({"role": "user", "content": question})
        n_log = len(log.calls)
        r = chat.send(msgs, max_tokens=8, temperature=0, logit_bias=_no_stop(model))
        text = render(msgs)
        ids, logits, _ = log.calls[-1]  # what generation started from
        assert ids == tok.encode(text)
        np.testing.assert_array_equal(logits, _scratch_logits(model, ids))
        history = tok.encode(render(msgs, add_generation_prompt=False))
        assert any(cp.tokens == tuple(history) for cp in chat.session.checkpoints)  # the turn boundary
        assert chat.session.checkpoints[-1].tokens == tuple(ids + r.token_ids)  # after the answer
        if turn == 2:
            before = tok.encode(render(msgs[:-2], add_generation_prompt=False))  # ... up to question 2
            assert log.calls[n_log][0] == history  # the boundary first, from the checkpoint
            assert r.prompt_eval_tokens == len(ids) - len(before)
        msgs.append(r.message())
        assert "reasoning_content" in msgs[-1]


# -- Model.chat and create_chat_completion ---------------------------------------------------------


def test_model_chat_returns_the_answer_and_reuses_its_session(r1: Model) -> None:
    msgs = [{"role": "user", "content": "Hello"}]
    a = r1.chat(msgs, max_tokens=4, temperature=0)
    assert {"role", "content", "reasoning_content", "tool_calls", "finish_reason", "usage", "timings"} <= set(
        a
    )
    assert a["role"] == "assistant" and a["finish_reason"] in ("stop", "length") and a["tool_calls"] == []
    assert a["usage"]["total_tokens"] == a["usage"]["prompt_tokens"] + a["usage"]["completion_tokens"]
    # The answer dict itself can join the conversation (the template reads role and content).
    b = r1.chat([*msgs, a, {"role": "user", "content": "More"}], max_tokens=4, temperature=0)
    assert 0 < b["timings"]["prompt_eval_tokens"] < b["timings"]["prompt_tokens"]


CHUNK_KEYS = {"id", "model", "created", "object", "choices"}


def test_create_chat_completion_dicts(r1: Model) -> None:
    msgs = [{"role": "user", "content": "Hello"}]
    kw: dict[str, Any] = {
        "max_tokens": 6,
        "temperature": 0,
        "seed": 1,
        "repeat_penalty": 1.0,
        "tfs_z": 1.0,
        "typical_p": 1.0,
        "mirostat_mode": 0,
        "logit_bias": {str(k): v for k, v in _no_stop(r1).items()},  # OpenAI sends string keys
    }
    full = r1.create_chat_completion(messages=msgs, **kw)
    assert set(full) == {"id", "object", "created", "model", "choices", "usage"}
    assert full["object"] == "chat.completion" and full["id"].startswith("chatcmpl-")
    (choice,) = full["choices"]
    assert set(choice) == {"index", "message", "logprobs", "finish_reason"} and choice["index"] == 0
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert full["usage"]["completion_tokens"] == 6 and choice["finish_reason"] == "length"

    chunks = list(r1.create_chat_completion(messages=msgs, stream=True, **kw))
    assert all(set(c) >= CHUNK_KEYS and c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    # Greedy from the same (reused, bit-identical) state: the stream says what the full answer said.
    assert "".join(d.get("content", "") for d in deltas) == choice["message"]["content"]
    reasoning = choice["message"].get("reasoning_content") or ""
    assert "".join(d.get("reasoning_content", "") for d in deltas) == reasoning


class ScriptedChat:
    """A stand-in for ChatSession whose "model" writes a fixed text: tool-call shapes need a model that
    calls tools, which random weights do not."""

    def __init__(self, text: str, tools: list[dict[str, Any]]) -> None:
        self.text, self.model, self.last_result = text, type("M", (), {"path": "scripted"})(), None
        self.seen: dict[str, Any] = {}

    def stream(self, messages: Any, **kw: Any) -> Iterator[Any]:
        self.seen = kw
        p = StreamParser(in_thinking=True, tools=kw["tools"])
        for ch in self.text:
            yield from p.feed(ch)
        tail, (content, reasoning, calls) = p.finish()
        yield from tail
        self.last_result = ChatResult(
            content=content, reasoning_content=reasoning, tool_calls=calls,
            finish_reason="tool_calls" if calls else "stop", prompt_tokens=3, completion_tokens=5,
        )  # fmt: skip

    def send(self, messages: Any, **kw: Any) -> ChatResult:
        for _ in self.stream(messages, **kw):
            pass
        assert self.last_result is not None
        return self.last_result


def test_tool_calls_in_openai_shape() -> None:
    text = (
        "need weather\n</think>\n\n<tool_call>\n<function=get_weather>\n"
        "<parameter=city>\nOslo\n</parameter>\n<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>"
    )
    chat = ScriptedChat(text, [WEATHER_TOOL])
    out = chat_completion(chat, [{"role": "user", "content": "q"}], tools=[WEATHER_TOOL])  # type: ignore[arg-type]
    assert chat.seen["tools"] == [WEATHER_TOOL]
    (choice,) = out["choices"]
    msg = choice["message"]
    assert choice["finish_reason"] == "tool_calls" and msg["content"] is None
    assert msg["reasoning_content"] == "need weather"
    (call,) = msg["tool_calls"]
    assert (
        set(call) == {"id", "type", "function"}
        and call["type"] == "function"
        and call["id"].startswith("call_")
    )
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo", "days": 2}

    chunks = list(chat_completion(chat, [], stream=True, tools=[WEATHER_TOOL]))  # type: ignore[arg-type]
    calls = [
        c["choices"][0]["delta"]["tool_calls"] for c in chunks if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert len(calls) == 1 and calls[0][0]["index"] == 0 and calls[0][0]["function"]["name"] == "get_weather"
    assert json.loads(calls[0][0]["function"]["arguments"]) == {"city": "Oslo", "days": 2}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert not any("<tool_call>" in c["choices"][0]["delta"].get("content", "") for c in chunks)
    # tool_choice: "none" hides the tools, a named one keeps only it
    chat_completion(chat, [], tools=[WEATHER_TOOL], tool_choice="none")  # type: ignore[arg-type]
    assert chat.seen["tools"] is None
    with pytest.raises(ValueError, match="not among the tools"):
        chat_completion(
            chat,
            [],
            tools=[WEATHER_TOOL],  # type: ignore[arg-type]
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )


def test_tool_result_feeds_back(realvocab: Model) -> None:
    """A tool call answered with a role "tool" message: the prompt carries the result where the template
    puts it, and the conversation continues from the checkpoint of the previous turn."""
    chat = ChatSession(realvocab, 1024, tools=[WEATHER_TOOL])
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Oslo?"}]
    chat.send(msgs, max_tokens=3, temperature=0)
    msgs += [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "content": "-3 C"},
    ]
    r = chat.send(msgs, max_tokens=3, temperature=0)
    text = realvocab.detokenize(chat.session.tokens)
    assert "<tool_response>\n-3 C\n</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\n" in text
    assert r.prompt_eval_tokens < r.prompt_tokens


@pytest.mark.parametrize(
    ("kw", "err"),
    [
        ({"grammar": object()}, ValueError),
        ({"logprobs": True}, ValueError),
        ({"mirostat_mode": 2}, ValueError),
        ({"response_format": {"type": "json_object"}}, ValueError),
        ({"bogus": 1}, TypeError),
    ],
)
def test_unsupported_options_are_refused(r1: Model, kw: dict[str, Any], err: type[Exception]) -> None:
    with pytest.raises(err):
        r1.create_chat_completion(messages=[{"role": "user", "content": "x"}], max_tokens=1, **kw)


def test_prompt_ids_keep_generated_tokens_only_up_to_special_tokens(r1: Model) -> None:
    tok = r1.tokenizer
    text = "<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n"
    canon = tok.encode(text)
    # A known sequence with a non-canonical split of "hello" is kept up to the next special token.
    h = [tok.encode(c)[0] for c in "hello"]
    odd = tok.encode("<|im_start|>user\n") + h + tok.encode(" world")
    ids, kept = prompt_ids_reusing(tok, text, [odd])
    assert kept == len(odd) and ids == odd + tok.encode("<|im_end|>\n<|im_start|>assistant\n")
    # Diverging text: only up to the last special token before the difference.
    head = "<|im_start|>user\nhello world<|im_end|>\n"
    ids, kept = prompt_ids_reusing(tok, text, [tok.encode(head + "<|im_start|>user\nbye")])
    assert ids == canon and kept == len(tok.encode(head))
    ids, kept = prompt_ids_reusing(tok, text, [tok.encode("<|im_start|>user\nhello there")])
    assert ids == canon and kept == 0  # no special token inside the common part
    assert prompt_ids_reusing(tok, text, []) == (canon, 0)


def test_interrupted_answer_keeps_a_usable_session(r1: Model) -> None:
    """Closing the stream (what the terminal does on Ctrl-C) records a cancelled turn with what it
    generated; the next turn starts from a consistent state."""
    chat = ChatSession(r1, 256)
    log = EvalLog(chat.session)
    msgs = [{"role": "user", "content": "Hello"}]
    stream = chat.stream(msgs, max_tokens=40, temperature=0, logit_bias=_no_stop(r1))
    first = next(stream)
    stream.close()
    r = chat.last_result
    assert r is not None and r.finish_reason == "cancelled" and first.text in r.content
    assert 0 < r.completion_tokens < 40 and r.prompt_eval_tokens == r.prompt_tokens
    assert chat.session.checkpoints[-1].tokens != tuple(chat.session.tokens)  # no "after the answer"
    r2 = chat.send([*msgs, r.message(), {"role": "user", "content": "Again"}], max_tokens=4, temperature=0)
    ids, logits, _ = log.calls[-1]
    np.testing.assert_array_equal(logits, _scratch_logits(r1, ids))
    assert r2.finish_reason in ("stop", "length") and r2.prompt_eval_tokens < r2.prompt_tokens
