"""Rendering OpenAI-style chat messages with a model's Jinja chat template.

The template is the GGUF's `tokenizer.chat_template` (what the converter copied from the checkpoint), or
the packaged Qwen3.5 template when the file has none. It runs in jinja2's ImmutableSandboxedEnvironment
with the same settings, filters and globals as Hugging Face's `apply_chat_template` (trim_blocks,
lstrip_blocks, loopcontrols, a `tojson` that keeps non-ASCII text and `<`/`>` unescaped,
`raise_exception`, `strftime_now`), so a template renders here exactly as it does there.

Messages are normalised first so that OpenAI-shaped input works with Qwen's template: tool-call
arguments given as JSON strings (the OpenAI wire format) become dicts, because the template iterates
`tool_call.arguments|items`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

__all__ = ["ChatTemplate", "default_template", "normalize_messages", "render"]


class _TemplateRaised(Exception):
    """raise_exception(...) called by the template itself."""


def _raise_exception(message: str) -> None:
    raise _TemplateRaised(message)


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    # Jinja's own tojson HTML-escapes '<', '>', '&' and "'"; the models were trained on plain json.dumps.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=8)
def _compile(source: str) -> Any:
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise ValueError(f"chat template does not compile: {e.message} (line {e.lineno})") from None


def default_template() -> str:
    """The packaged Qwen3.5 chat template (src/qwen35cpu/data/qwen35_chat_template.jinja)."""
    from .qwen_vocab import qwen35_chat_template

    return qwen35_chat_template()


def _arguments_dict(args: Any, name: str) -> Any:
    if isinstance(args, str):
        try:
            parsed = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            raise ValueError(f"tool call {name!r}: arguments are not valid JSON: {args[:80]!r}") from None
        if not isinstance(parsed, dict):
            raise ValueError(
                f"tool call {name!r}: arguments must be a JSON object, got {type(parsed).__name__}"
            )
        return parsed
    return args


def _normalize_tool_call(call: Any) -> Any:
    if not isinstance(call, Mapping):
        raise ValueError(f"a tool call must be a dict, got {type(call).__name__}")
    out = dict(call)
    if isinstance(call.get("function"), Mapping):
        fn = dict(call["function"])
        if "arguments" in fn:
            fn["arguments"] = _arguments_dict(fn["arguments"], str(fn.get("name")))
        out["function"] = fn
    elif "arguments" in out:
        out["arguments"] = _arguments_dict(out["arguments"], str(out.get("name")))
    return out


def normalize_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the messages ready for the template: roles checked, tool-call arguments as dicts."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ValueError("messages must be a list of {'role': ..., 'content': ...} dicts")
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise ValueError(f"messages[{i}] must be a dict, got {type(m).__name__}")
        role = m.get("role")
        if not isinstance(role, str):
            raise ValueError(f"messages[{i}] has no 'role'")
        msg = dict(m)
        calls = m.get("tool_calls")
        if calls is not None:
            if isinstance(calls, (str, bytes, Mapping)) or not isinstance(calls, Sequence):
                raise ValueError(f"messages[{i}]['tool_calls'] must be a list")
            msg["tool_calls"] = [_normalize_tool_call(c) for c in calls]
        out.append(msg)
    return out


class ChatTemplate:
    """A compiled chat template plus the special-token strings templates may refer to."""

    def __init__(
        self, source: str | None = None, *, bos_token: str | None = None, eos_token: str | None = None
    ):
        self.source = source if source is not None else default_template()
        self.bos_token = bos_token
        self.eos_token = eos_token
        self._template = _compile(self.source)

    @classmethod
    def from_metadata(cls, md: Mapping[str, Any], tokenizer: Any = None) -> ChatTemplate:
        """The GGUF's template (`tokenizer.chat_template`), else the packaged Qwen3.5 one."""
        source = md.get("tokenizer.chat_template")
        if isinstance(source, bytes):
            source = source.decode("utf-8")
        bos = eos = None
        if tokenizer is not None:
            if tokenizer.bos_token_id is not None:
                bos = tokenizer.id_to_token(tokenizer.bos_token_id)
            if tokenizer.eos_token_id is not None:
                eos = tokenizer.id_to_token(tokenizer.eos_token_id)
        return cls(source if isinstance(source, str) and source else None, bos_token=bos, eos_token=eos)

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        enable_thinking: bool = True,
        add_generation_prompt: bool = True,
        **extra: Any,
    ) -> str:
        import jinja2

        if tools is not None and (
            isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence)
        ):
            raise ValueError("tools must be a list of tool definitions")
        msgs = normalize_messages(messages)
        kw: dict[str, Any] = {
            "messages": msgs,
            "tools": list(tools) if tools else None,
            "add_generation_prompt": add_generation_prompt,
            "enable_thinking": enable_thinking,
            "bos_token": self.bos_token or "",
            "eos_token": self.eos_token or "",
            **extra,
        }
        try:
            return str(self._template.render(**kw))
        except _TemplateRaised as e:
            raise ValueError(f"chat template: {e}") from None
        except jinja2.TemplateError as e:
            raise ValueError(f"chat template failed: {type(e).__name__}: {e}") from None
        except (TypeError, AttributeError, KeyError) as e:
            raise ValueError(f"chat template failed on these messages: {type(e).__name__}: {e}") from None


def render(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    enable_thinking: bool = True,
    add_generation_prompt: bool = True,
    template: str | ChatTemplate | None = None,
    **extra: Any,
) -> str:
    """Render messages with `template` (source text or ChatTemplate; None: the packaged Qwen3.5 one)."""
    tpl = template if isinstance(template, ChatTemplate) else ChatTemplate(template)
    return tpl.render(
        messages,
        tools=tools,
        enable_thinking=enable_thinking,
        add_generation_prompt=add_generation_prompt,
        **extra,
    )
