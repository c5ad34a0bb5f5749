"""qwen35cpu: run Qwen3.5 Mixture-of-Experts models (qwen35moe GGUF) on CPUs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Model", "ModelConfig", "Session", "__version__", "load"]

if TYPE_CHECKING:
    from .config import ModelConfig
    from .model import Model, Session, load


def __getattr__(name: str) -> Any:
    # The C++ extension loads on first use, so the converter and the CLI's help start fast.
    if name in ("Model", "Session", "load"):
        from . import model

        return getattr(model, name)
    if name == "ModelConfig":
        from .config import ModelConfig

        return ModelConfig
    raise AttributeError(f"module 'qwen35cpu' has no attribute {name!r}")
