"""Parsing what a Qwen3.5 model writes: `<think>` blocks and `<tool_call>` blocks.

Qwen3.5's chat template teaches this tool-call format (Qwen3-Coder style XML, one block per call):

    <tool_call>
    <function=get_weather>
    <parameter=city>
    Paris
    </parameter>
    </function>
    </tool_call>

Parameter values are written as raw text: strings as they are, numbers and booleans with Jinja's
`|string`, objects and arrays as JSON. So a value is converted back with the tool's JSON schema when
one is given (a "string" parameter stays text even if it looks like a number), otherwise by trying
JSON and keeping the text when that fails. The older Qwen JSON form, `<tool_call>{"name": ...,
"arguments": {...}}</tool_call>`, is read too. A block that cannot be parsed (no `<function=...>`, bad
JSON, cut off before `</function>`) stays in the content as text: it is never dropped, never an error.

`parse_output` gives the final (content, reasoning_content, tool_calls); `StreamParser` turns text pieces
into reasoning/content deltas as they arrive, holding back anything that could still become a tag, and
its deltas concatenate to exactly what `parse_output` returns.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "THINK_END",
    "THINK_START",
    "TOOL_CALL_END",
    "TOOL_CALL_START",
    "StreamParser",
    "openai_tool_calls",
    "parse_output",
    "parse_tool_calls",
]

THINK_START = "<think>"
THINK_END = "</think>"
TOOL_CALL_START = "<tool_call>"
TOOL_CALL_END = "</tool_call>"

_FUNCTION_RE = re.compile(r"<function=([^>\n]+)>(.*?)(?:</function>|\Z)", re.DOTALL)
_PARAM_RE = re.compile(r"<parameter=([^>\n]+)>")
_PARAM_END = "</parameter>"

ToolCall = dict[str, Any]  # {"name": str, "arguments": dict}


# -- values ----------------------------------------------------------------------------------------


def _schema_types(tools: Sequence[Mapping[str, Any]] | None, fn_name: str) -> dict[str, set[str]] | None:
    """parameter -> the JSON-schema types the tool declares for it (None: the tool is unknown)."""
    for tool in tools or ():
        fn = tool.get("function", tool) if isinstance(tool, Mapping) else None
        if not isinstance(fn, Mapping) or fn.get("name") != fn_name:
            continue
        props = (fn.get("parameters") or {}).get("properties") or {}
        out: dict[str, set[str]] = {}
        for pname, spec in props.items():
            types: set[str] = set()
            for s in (
                [spec, *(spec.get("anyOf") or []), *(spec.get("oneOf") or [])]
                if isinstance(spec, Mapping)
                else []
            ):
                t = s.get("type") if isinstance(s, Mapping) else None
                types.update([t] if isinstance(t, str) else (t or []))
                if isinstance(s, Mapping) and "enum" in s and not t:
                    types.add("string")
            out[pname] = types
        return out
    return None


def _convert(raw: str, types: set[str] | None) -> Any:
    if types is None or not types:
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, ValueError):
            return raw
    if "string" in types and len(types - {"string", "null"}) == 0:
        return None if raw == "null" and "null" in types else raw
    low = raw.strip().lower()
    if "boolean" in types and low in ("true", "false"):  # the template writes Python's True/False
        return low == "true"
    if "null" in types and low in ("null", "none"):
        return None
    if "integer" in types:
        try:
            return int(raw.strip())
        except ValueError:
            pass
    if "number" in types:
        try:
            f = float(raw.strip())
            return int(f) if f.is_integer() and re.fullmatch(r"-?\d+", raw.strip()) else f
        except ValueError:
            pass
    if types & {"object", "array"}:
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, ValueError):
            pass
    if "string" in types:
        return raw
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, ValueError):
        return raw


def _strip_one_newline(v: str) -> str:
    # The template writes "<parameter=p>\n" + value + "\n</parameter>": exactly one newline each side.
    if v.startswith("\n"):
        v = v[1:]
    if v.endswith("\n"):
        v = v[:-1]
    return v


# -- one block -------------------------------------------------------------------------------------


def _parse_xml_call(body: str, tools: Sequence[Mapping[str, Any]] | None) -> ToolCall | None:
    m = _FUNCTION_RE.search(body)
    if m is None or "</function>" not in body[m.start() :]:
        return None
    name = m.group(1).strip()
    if not name:
        return None
    inner = m.group(2)
    types = _schema_types(tools, name)
    args: dict[str, Any] = {}
    starts = list(_PARAM_RE.finditer(inner))
    for k, pm in enumerate(starts):
        end_limit = starts[k + 1].start() if k + 1 < len(starts) else len(inner)
        seg = inner[pm.end() : end_limit]
        close = seg.find(_PARAM_END)
        value = _strip_one_newline(seg[:close] if close >= 0 else seg.rstrip("\n"))
        pname = pm.group(1).strip()
        args[pname] = _convert(value, None if types is None else types.get(pname, set()))
    return {"name": name, "arguments": args}


def _parse_json_call(body: str) -> ToolCall | None:
    try:
        obj = json.loads(body)
    except (json.JSONDecodeError, ValueError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except (json.JSONDecodeError, ValueError):
            return None
    if not isinstance(args, dict):
        return None
    return {"name": obj["name"], "arguments": args}


def _parse_block(body: str, tools: Sequence[Mapping[str, Any]] | None) -> ToolCall | None:
    stripped = body.strip()
    if stripped.startswith("{"):
        return _parse_json_call(stripped)
    return _parse_xml_call(body, tools)


# -- whole outputs ---------------------------------------------------------------------------------


def parse_tool_calls(
    text: str, tools: Sequence[Mapping[str, Any]] | None = None
) -> tuple[str, list[ToolCall]]:
    """(content with the parsed blocks removed, stripped; the calls in order)."""
    calls: list[ToolCall] = []
    kept: list[str] = []
    pos = 0
    while True:
        start = text.find(TOOL_CALL_START, pos)
        if start < 0:
            kept.append(text[pos:])
            break
        body_start = start + len(TOOL_CALL_START)
        end = text.find(TOOL_CALL_END, body_start)
        nxt = text.find(TOOL_CALL_START, body_start)
        if end >= 0 and (nxt < 0 or end < nxt):
            body, after = text[body_start:end], end + len(TOOL_CALL_END)
        else:  # unterminated: accept only a complete <function=...>...</function> up to the next block
            stop = nxt if nxt >= 0 else len(text)
            body, after = text[body_start:stop], stop
        call = _parse_block(body, tools)
        if call is None:
            kept.append(text[pos:after])
        else:
            kept.append(text[pos:start])
            calls.append(call)
        pos = after
    return "".join(kept).strip(), calls


def _split_thinking(text: str, in_thinking: bool | None) -> tuple[str | None, str]:
    lead = text.lstrip()
    if lead.startswith(THINK_START) and not in_thinking:
        text = lead[len(THINK_START) :]
    elif in_thinking is None:
        # Unknown prompt: a "</think>" means it opened the block (Qwen3.5's does in thinking mode).
        if THINK_END not in text:
            return None, text
    elif not in_thinking:
        return None, text
    end = text.find(THINK_END)
    if end < 0:
        return text, ""  # cut off while thinking
    return text[:end], text[end + len(THINK_END) :]


def parse_output(
    text: str, *, in_thinking: bool | None = None, tools: Sequence[Mapping[str, Any]] | None = None
) -> tuple[str, str | None, list[ToolCall]]:
    """Generated text -> (content, reasoning_content, tool_calls).

    in_thinking: whether the prompt already opened the think block (Qwen3.5's generation prompt ends
    with "<think>\\n" in thinking mode), so the text starts inside it. None (not known): the text
    is inside a think block if it starts with `<think>` or contains `</think>`; False: only if it starts
    with `<think>`. reasoning_content is None when there was no think block. Both strings are stripped
    of surrounding whitespace, as the template does when it renders them back. tools: the definitions
    the model was given, used to type parameter values.
    """
    reasoning, rest = _split_thinking(text, in_thinking)
    content, calls = parse_tool_calls(rest, tools)
    return content, (reasoning.strip() if reasoning is not None else None), calls


def openai_tool_calls(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """Parsed calls in the OpenAI / llama-cpp-python shape (arguments as a JSON string)."""
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)},
        }
        for c in calls
    ]


# -- streaming -------------------------------------------------------------------------------------


def _held_suffix(buf: str, tag: str) -> int:
    """Length of the longest end of `buf` that is a proper beginning of `tag` (could still become it)."""
    for n in range(min(len(buf), len(tag) - 1), 0, -1):
        if tag.startswith(buf[-n:]):
            return n
    return 0


class _Stripper:
    """Passes text through with the leading whitespace dropped and trailing whitespace held back, so the
    pieces concatenate to the stripped whole."""

    def __init__(self) -> None:
        self.started = False
        self.pending = ""
        self.emitted = ""

    def push(self, s: str) -> str:
        if not self.started:
            s = s.lstrip()
            if not s:
                return ""
            self.started = True
        s = self.pending + s
        body = s.rstrip()
        self.pending = s[len(body) :]
        self.emitted += body
        return body


@dataclass
class Delta:
    kind: str  # "reasoning" | "content"
    text: str


class StreamParser:
    """Incremental parse_output: feed text pieces, get reasoning/content deltas; tool-call blocks are held
    until finish(), which returns the last deltas and the final (content, reasoning, tool_calls)."""

    def __init__(
        self, *, in_thinking: bool = False, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        self.in_thinking = in_thinking
        self.tools = tools
        self.text = ""
        self._buf = ""
        self._mode = "think" if in_thinking else "start"
        self._reasoning = _Stripper()
        self._content = _Stripper()
        self.saw_think = in_thinking

    @property
    def thinking(self) -> bool:
        """Inside the think block (or still unsure whether one opens)."""
        return self._mode in ("think", "start")

    def feed(self, piece: str) -> list[Delta]:
        self.text += piece
        self._buf += piece
        out: list[Delta] = []
        while True:
            if self._mode == "start":
                lead = self._buf.lstrip()
                if lead.startswith(THINK_START):
                    self._buf = lead[len(THINK_START) :]
                    self._mode = "think"
                    self.saw_think = True
                    continue
                if lead == "" or THINK_START.startswith(lead):
                    break  # still undecided
                self._mode = "content"
                continue
            if self._mode == "think":
                end = self._buf.find(THINK_END)
                if end >= 0:
                    self._emit(out, "reasoning", self._buf[:end])
                    self._buf = self._buf[end + len(THINK_END) :]
                    self._mode = "content"
                    continue
                keep = _held_suffix(self._buf, THINK_END)
                self._emit(out, "reasoning", self._buf[: len(self._buf) - keep])
                self._buf = self._buf[len(self._buf) - keep :]
                break
            if self._mode == "content":
                start = self._buf.find(TOOL_CALL_START)
                if start >= 0:
                    self._emit(out, "content", self._buf[:start])
                    self._buf = self._buf[start:]
                    self._mode = "tools"
                    break
                keep = _held_suffix(self._buf, TOOL_CALL_START)
                self._emit(out, "content", self._buf[: len(self._buf) - keep])
                self._buf = self._buf[len(self._buf) - keep :]
                break
            break  # "tools": everything waits for finish()
        return out

    def _emit(self, out: list[Delta], kind: str, s: str) -> None:
        text = (self._reasoning if kind == "reasoning" else self._content).push(s)
        if text:
            out.append(Delta(kind, text))

    def finish(self) -> tuple[list[Delta], tuple[str, str | None, list[ToolCall]]]:
        result = parse_output(self.text, in_thinking=self.in_thinking, tools=self.tools)
        content, reasoning, _ = result
        out: list[Delta] = []
        for kind, final, st in (
            ("reasoning", reasoning or "", self._reasoning),
            ("content", content, self._content),
        ):
            # What was streamed is a prefix of the final text by construction; send the rest.
            if final.startswith(st.emitted) and len(final) > len(st.emitted):
                out.append(Delta(kind, final[len(st.emitted) :]))
                st.emitted = final
        return out, result
