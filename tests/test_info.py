"""`qwen35cpu info FILE`."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from fixture_util import run_cli

from qwen35cpu.fileinfo import inspect_file


def run_info(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("info", *args)


def test_info_prints_the_file(converted: Callable[[str, str], Path]) -> None:
    path = converted("nv4_hd256", "q8_0")
    r = run_info(str(path), "--ctx", "1000")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "architecture:  qwen35moe" in out
    assert "layers:        8 (6 Gated DeltaNet, 2 gated attention, every 4th)" in out
    assert "attention:     2 heads / 1 KV heads of 256, rotary 64 dims" in out
    assert "experts:       16 routed, top 4, width 32; shared width 32" in out
    assert f"({path.stat().st_size} bytes)" in out
    for group in ("embedding", "routed experts", "shared expert", "attention", "deltanet", "norms", "router"):
        assert f"  {group} " in out
    assert "Q8_0" in out and "F32" in out
    # KV: 2 attention layers x (K + V) x 1 KV head x 256 x 2 bytes (F16 for a quantized file) = 2048
    # bytes per token.
    assert "KV cache (f16)" in out and "(2048 bytes/token)" in out
    rep = inspect_file(path)
    assert rep.session_bytes(1000)["kv_cache"] == 2048 * 1000
    # DeltaNet: 6 layers x ((4-1) x conv_dim 192 + 8 heads x 16 x 16) x 4 bytes
    assert rep.session_bytes(1)["recurrent_state"] == 6 * (3 * 192 + 8 * 16 * 16) * 4
    assert rep.weight_bytes <= path.stat().st_size


def test_info_bad_input(tmp_path: Path) -> None:
    r = run_info(str(tmp_path / "missing.gguf"))
    assert r.returncode == 1
    assert r.stderr.startswith("qwen35cpu info: error:") and "missing.gguf" in r.stderr
    assert "Traceback" not in r.stderr
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\x00" * 10)
    r = run_info(str(junk))
    assert r.returncode == 1 and "junk.gguf" in r.stderr and "Traceback" not in r.stderr
