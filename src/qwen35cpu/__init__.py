"""qwen35cpu: run Qwen3.5 Mixture-of-Experts models (qwen35moe GGUF) on CPUs."""

__version__ = "0.1.0"
