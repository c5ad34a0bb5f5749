"""`qwen35cpu bench` and qwen35cpu.bench: bytes per token, bandwidth, the full-model estimate, the command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import gguf
import pytest
from fixture_util import run_cli

from qwen35cpu import _core, bench


def test_bytes_per_token_counts_top_k_experts_and_one_embedding_row(
    converted: Callable[[str, str], Path],
) -> None:
    path = converted("nv4_hd256", "q8_0")
    r = gguf.GGUFReader(path)
    E, k = 16, 4  # the fixture's num_experts and num_experts_per_tok
    sizes = {t.name: int(t.n_bytes) for t in r.tensors}
    experts = sum(v for n, v in sizes.items() if n.endswith("_exps.weight"))
    emb = sizes["token_embd.weight"]
    tb = bench.bytes_per_token(path)
    assert tb.experts == sum(v * k // E for n, v in sizes.items() if n.endswith("_exps.weight"))
    assert tb.lm_head == sizes["output.weight"]
    vocab = 320
    assert tb.other == sum(sizes.values()) - experts - emb - sizes["output.weight"] + emb // vocab
    assert tb.total == tb.experts + tb.lm_head + tb.other


def test_read_bandwidth_is_plausible_and_checks_input() -> None:
    # 64 MiB: beyond this machine's last-level cache; any machine moves it at more than 0.1 GB/s.
    bw = _core.read_bandwidth(1, 64 << 20, 2)
    assert 0.1 < bw < 10_000
    assert 0.1 < _core.read_bandwidth(1, 64 << 20, 2, huge_pages=True) < 10_000
    both = bench.read_bandwidth(1)
    assert both.best == max(both.pages_4k, both.huge_pages) > 0.1
    with pytest.raises(ValueError, match="n_threads"):
        _core.read_bandwidth(0, 64 << 20, 1)
    with pytest.raises(ValueError, match="1 MiB"):
        _core.read_bandwidth(1, 1000, 1)


def _result(n_layer: int, t0: float, t_layer: float, b0: int, b_layer: int) -> bench.BenchResult:
    """A measurement of a slice whose times and bytes are exactly linear in the layer count."""
    tb = bench.TokenBytes(total=b0 + n_layer * b_layer)
    tg = 1 / (t0 + n_layer * t_layer)
    pp = 1 / (t0 / 10 + n_layer * t_layer / 10)
    speeds = [bench.Speed("qwen35cpu", 2, 8, 4, pp, tg), bench.Speed("llama.cpp", 2, 8, 4, pp / 2, tg / 2)]
    bw = bench.Bandwidth(25.0, 30.0)
    return bench.BenchResult(f"{n_layer}.gguf", 2, n_layer, bw, tb, speeds, {"preset": "397b"})


def test_estimate_full_recovers_a_linear_model() -> None:
    t0, tl, b0, bl = 0.02, 0.005, 100_000_000, 30_000_000  # tg below the roofline
    est = bench.estimate_full(_result(8, t0, tl, b0, bl), _result(4, t0, tl, b0, bl), 60)
    q = est["engines"]["qwen35cpu"]
    assert q["tg_tps"] == pytest.approx(1 / (t0 + 60 * tl))
    assert q["pp_tps"] == pytest.approx(10 / (t0 + 60 * tl))
    assert est["bytes_per_token"] == pytest.approx(b0 + 60 * bl)
    assert est["roofline_tg_tps"] == pytest.approx(30e9 / (b0 + 60 * bl))
    assert est["ratio_to_llama"]["tg"] == pytest.approx(2.0)
    assert "unreliable" not in q
    # A deeper slice measured faster (a disturbed run) gives no estimate worth a ratio.
    fast_deep = _result(8, t0, tl, b0, bl)
    fast_deep.speeds[1].tg_tps = _result(4, t0, tl, b0, bl).speeds[1].tg_tps * 1.01
    est = bench.estimate_full(_result(4, t0, tl, b0, bl), fast_deep, 60)
    assert est["engines"]["llama.cpp"]["unreliable"] and "ratio_to_llama" not in est
    with pytest.raises(ValueError, match="different layer counts"):
        bench.estimate_full(_result(4, t0, tl, b0, bl), _result(4, t0, tl, b0, bl), 60)


def test_bench_command(converted: Callable[[str, str], Path], tmp_path: Path) -> None:
    path = converted("nv4_hd256", "q8_0")
    out = tmp_path / "b.json"
    r = run_cli("bench", str(path), "-t", "1", "-p", "8", "-n", "4", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "qwen35cpu" in r.stdout and "roof" in r.stdout
    doc = json.loads(out.read_text())
    (res,) = doc["results"]
    (s,) = res["speeds"]
    assert s["engine"] == "qwen35cpu" and s["threads"] == 1 and s["pp_tps"] > 0 and s["tg_tps"] > 0
    assert res["token_bytes"]["total"] == bench.bytes_per_token(path).total
    assert s["roofline_share"] == pytest.approx(s["tg_tps"] / res["roofline_tg_tps"])
    bw = res["bandwidth"]
    assert res["bandwidth_gbs"] == max(bw["pages_4k"], bw["huge_pages"])
    assert s["weights"]  # where the weights were read from, in words
    assert "bandwidth, 1t:" in r.stdout and "huge pages" in r.stdout
    assert doc["estimates"] == []  # a converted model is no synth slice


def test_bench_command_bad_input(tmp_path: Path) -> None:
    r = run_cli("bench", str(tmp_path / "missing.gguf"))
    assert r.returncode == 1 and "no such file" in r.stderr
    r = run_cli("bench", str(tmp_path / "missing.gguf"), "-t", "0")
    assert r.returncode == 1 and "--threads" in r.stderr
