"""Hugging Face Qwen3.5-MoE checkpoint -> qwen35moe GGUF converter.

`convert(src, out, out_type)` is the entry point (see `writer.convert`). Submodules: `checkpoint`
(config.json and safetensors reading), `mapping` (the tensor map as a table, and its transforms),
`vocab` (tokenizer metadata), `writer` (streaming GGUF output). Imported lazily so that importing
`qwen35cpu.convert.vocab` does not pull in the whole converter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["OUT_TYPES", "convert", "dry_run"]

if TYPE_CHECKING:
    from .writer import OUT_TYPES, convert, dry_run


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import writer

        return getattr(writer, name)
    raise AttributeError(f"module 'qwen35cpu.convert' has no attribute {name!r}")
