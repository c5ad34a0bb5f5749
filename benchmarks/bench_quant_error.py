"""Quantization error and speed of our weight quantizers against llama.cpp's, as JSON.

    python benchmarks/bench_quant_error.py [--ggml-lib PATH/libggml-base.so] [--out results.json]

For every quantized weight type: RMSE and largest absolute error of the dequantized weights
(dequantized with gguf.quants, so both sides are read the same way) on fixed seeded data
(Gaussian rows and heavy-tailed Student-t df=3 rows), and single-thread quantize throughput in
MB/s of f32 input. llama.cpp's side is ggml's quantizer without an importance matrix
(`ggml_quantize_chunk(type, src, dst, 0, rows, cols, NULL)`), called through ctypes. It is measured
when a libggml-base is given (--ggml-lib, or found in an installed llama_cpp package) and
otherwise copied from the committed results file, which tests/test_quant.py checks our numbers
against.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T

from qwen35cpu import _core

RESULTS = Path(__file__).resolve().parent / "results" / "quant_error.json"
TYPES = ["Q8_0", "Q4_0", "IQ4_NL", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"]
ROWS, COLS = 256, 4096
# Typical LLM weight magnitude; scale matters only through f16 rounding of the block scales.
SIGMA = 0.02
SEEDS = {"gaussian": 1234, "student_t3": 5678}


def make_data(kind: str, rows: int = ROWS, cols: int = COLS) -> np.ndarray:
    """The seeded benchmark weights: SIGMA-scaled Gaussian or Student-t (df=3) rows, float32."""
    rng = np.random.default_rng(SEEDS[kind])
    if kind == "gaussian":
        x = rng.standard_normal((rows, cols))
    elif kind == "student_t3":
        x = rng.standard_t(3.0, (rows, cols))
    else:
        raise ValueError(f"unknown data kind {kind!r}")
    return (SIGMA * x).astype(np.float32)


def errors(x: np.ndarray, q: np.ndarray, qtype: T) -> tuple[float, float]:
    """RMSE and max |error| of q (quantized x) read back with gguf's dequantizer."""
    y = gguf.quants.dequantize(q, qtype).astype(np.float64)
    d = y - x.astype(np.float64)
    return float(np.sqrt(np.mean(d * d))), float(np.max(np.abs(d)))


def timed(fn: Callable[[], np.ndarray], repeats: int) -> tuple[np.ndarray, float]:
    best = float("inf")
    out = np.empty(0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


class Ggml:
    """llama.cpp's quantizers through ctypes (libggml-base)."""

    def __init__(self, path: Path) -> None:
        self.lib = ctypes.CDLL(str(path))
        f = self.lib.ggml_quantize_chunk
        f.restype = ctypes.c_size_t
        f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                      ctypes.c_int64, ctypes.c_void_p]

    def quantize(self, qtype: T, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        rows, cols = x.shape
        out = np.empty(gguf.quants.quant_shape_to_byte_shape(x.shape, qtype), dtype=np.uint8)
        n = self.lib.ggml_quantize_chunk(int(qtype), x.ctypes.data, out.ctypes.data, 0, rows, cols, None)
        if n != out.nbytes:
            raise RuntimeError(f"ggml_quantize_chunk wrote {n} bytes, expected {out.nbytes}")
        return out


def find_ggml(arg: Path | None) -> Path | None:
    if arg is not None:
        return arg
    try:
        import llama_cpp  # type: ignore[import-not-found]
    except ImportError:
        return None
    libs = sorted((Path(llama_cpp.__file__).parent / "lib").glob("libggml-base.*"))
    return libs[0] if libs else None


def run(ggml: Ggml | None, previous: dict[str, Any], repeats: int) -> dict[str, Any]:
    data = {kind: make_data(kind) for kind in SEEDS}
    mb = data["gaussian"].nbytes / 1e6
    results: dict[str, Any] = {}
    for name in TYPES:
        qtype = T[name]
        results[name] = {}
        for kind, x in data.items():
            q, sec = timed(lambda qt=qtype, xx=x: _core.quantize(int(qt), xx, 1), repeats)
            rmse, mx = errors(x, q, qtype)
            entry: dict[str, Any] = {"ours": {"rmse": rmse, "max_err": mx, "mb_per_s": mb / sec}}
            if ggml is not None:
                ql, sec = timed(lambda qt=qtype, xx=x: ggml.quantize(qt, xx), repeats)
                rmse, mx = errors(x, ql, qtype)
                entry["llama_cpp"] = {"rmse": rmse, "max_err": mx, "mb_per_s": mb / sec}
            else:
                old = previous.get("results", {}).get(name, {}).get(kind, {}).get("llama_cpp")
                if old is not None:
                    entry["llama_cpp"] = old
            results[name][kind] = entry
    return results


def table(results: dict[str, Any]) -> str:
    lines = [f"{'type':8} {'data':11} {'rmse ours':>11} {'rmse llama':>11} {'ratio':>6} "
             f"{'max ours':>9} {'max llama':>9} {'MB/s ours':>9} {'MB/s llama':>10}"]
    for name, per in results.items():
        for kind, e in per.items():
            o, ll = e["ours"], e.get("llama_cpp")
            if ll is None:
                lines.append(f"{name:8} {kind:11} {o['rmse']:11.4e} {'-':>11} {'-':>6} {o['max_err']:9.2e} "
                             f"{'-':>9} {o['mb_per_s']:9.1f} {'-':>10}")
            else:
                ratio = o["rmse"] / ll["rmse"]
                lines.append(f"{name:8} {kind:11} {o['rmse']:11.4e} {ll['rmse']:11.4e} {ratio:6.3f} "
                             f"{o['max_err']:9.2e} {ll['max_err']:9.2e} {o['mb_per_s']:9.1f} "
                             f"{ll['mb_per_s']:10.1f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ggml-lib", type=Path, default=None, help="llama.cpp's libggml-base shared library")
    ap.add_argument("--repeats", type=int, default=2, help="timing runs per quantizer (the fastest counts)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    lib = find_ggml(args.ggml_lib)
    ggml = Ggml(lib) if lib is not None else None
    results = run(ggml, previous, args.repeats)
    doc = {
        "data": {"rows": ROWS, "cols": COLS, "sigma": SIGMA, "seeds": SEEDS,
                 "kinds": {"gaussian": "SIGMA * standard_normal", "student_t3": "SIGMA * standard_t(df=3)"}},
        "llama_cpp": f"measured: {lib}" if ggml is not None else previous.get("llama_cpp", "not measured"),
        "machine": platform.machine(),
        "threads": 1,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
