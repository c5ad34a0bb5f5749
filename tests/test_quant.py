"""Quantized types: dequantization and quantization against gguf, Q8_K against spec 6.3, the
scalar dot products against float64, and our quantizers' RMSE against llama.cpp's committed
numbers (benchmarks/results/quant_error.json)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from qwen35cpu import _core

ROOT = Path(__file__).resolve().parents[1]
QUANT_TYPES = [T.Q8_0, T.Q4_0, T.IQ4_NL, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_XS]
# Types without a byte-exact reference: judged by RMSE against llama.cpp's quantizer.
SEARCHED_TYPES = [T.IQ4_NL, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_XS]
# Byte offsets of the f16 scale fields in each block (spec 6.2).
F16_FIELDS = {
    T.Q8_0: [0], T.Q4_0: [0], T.IQ4_NL: [0], T.Q2_K: [80, 82], T.Q3_K: [108],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208], T.IQ4_XS: [0],
}
U = 2.0**-24  # unit roundoff of float32


def sizes(t: T) -> tuple[int, int]:
    return gguf.GGML_QUANT_SIZES[t]


def random_blocks(t: T, nb: int, rng: np.random.Generator) -> np.ndarray:
    """nb random blocks of type t whose f16 fields are finite, including zero, the largest
    finite half, the smallest subnormal and negative values."""
    _, ts = sizes(t)
    raw = rng.integers(0, 256, size=(nb, ts), dtype=np.uint8)
    special = np.array([0.0, 65504.0, -65504.0, 2.0**-24, -(2.0**-24), 1.0], dtype=np.float16)
    for off in F16_FIELDS[t]:
        bits = rng.integers(0, 1 << 16, size=nb, dtype=np.uint16)
        bits = np.where((bits & 0x7C00) == 0x7C00, bits & 0xBFFF, bits)  # no inf / NaN
        h = bits.view(np.float16)
        h[: len(special)] = special
        raw[:, off:off + 2] = h.reshape(nb, 1).view(np.uint8).reshape(nb, 2)
    return raw


@pytest.mark.parametrize("t", QUANT_TYPES, ids=lambda t: t.name)
def test_dequantize_matches_gguf_bitwise(t: T) -> None:
    rng = np.random.default_rng(100 + int(t))
    bs, _ = sizes(t)
    nb = 96
    raw = random_blocks(t, nb, rng)
    ref = gguf.quants.dequantize(raw.reshape(1, -1), t).reshape(-1)
    ours = _core.dequantize(int(t), raw.reshape(1, -1), nb * bs).reshape(-1)
    assert np.all(np.isfinite(ref))
    np.testing.assert_array_equal(ours.view(np.uint32), ref.view(np.uint32))


def q_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Rows of 256 (one super-block, eight small blocks) that stress the reference quantizers."""
    ties = np.tile(np.arange(32, dtype=np.float32) - 15.5, 8)
    ties[::32] = -16.0  # block max: d = 2 for Q4_0, so x/d + 8.5 hits integers
    ties8 = np.tile(np.arange(-63, 65, 4, dtype=np.float32) + 0.5, 8)
    ties8[::32] = 127.0  # d = 1 for Q8_0: every other value is a rounding tie
    sign_tie = rng.standard_normal(256).astype(np.float32)
    sign_tie[::32], sign_tie[1::32] = 5.0, -5.0  # equal magnitudes: the first one sets the sign
    return {
        "gauss": rng.standard_normal((4, 256)).astype(np.float32),
        "student_t": rng.standard_t(3.0, (4, 256)).astype(np.float32),
        "zeros": np.zeros((1, 256), np.float32),
        "ties_q4": ties[None],
        "ties_q8": ties8[None],
        "sign_tie": sign_tie[None],
        "small": (1e-3 * rng.standard_normal((2, 256))).astype(np.float32),
    }


@pytest.mark.parametrize("t", [T.Q8_0, T.Q4_0], ids=lambda t: t.name)
def test_quantize_bytes_match_gguf(t: T) -> None:
    for name, x in q_inputs(np.random.default_rng(7)).items():
        ours = _core.quantize(int(t), x)
        ref = gguf.quants.quantize(x, t)
        np.testing.assert_array_equal(ours, ref, err_msg=name)


def q8_k_numpy(x: np.ndarray) -> bytes:
    """Spec 6.3 in numpy (float32 arithmetic, round half to even)."""
    out = bytearray()
    for blk in x.reshape(-1, 256).astype(np.float32):
        i = int(np.argmax(np.abs(blk)))  # first element of largest magnitude
        if blk[i] == 0:
            out += bytes(292)
            continue
        iscale = np.float32(-127.0) / blk[i]
        qs = np.minimum(np.rint(iscale * blk), 127).astype(np.int8)
        bsums = qs.reshape(16, 16).astype(np.int16).sum(axis=1).astype(np.int16)
        out += (np.float32(1.0) / iscale).tobytes() + qs.tobytes() + bsums.tobytes()
    return bytes(out)


def test_q8_k_matches_spec() -> None:
    rng = np.random.default_rng(11)
    rows = [*q_inputs(rng).values(), rng.standard_normal((3, 512)).astype(np.float32) * 30]
    for x in rows:
        x = x.reshape(1, -1)
        ours = _core.quantize(int(T.Q8_K), x).tobytes()
        assert ours == q8_k_numpy(x)
        # The activation quantizer of a k-quant weight is the same function on the scalar path.
        assert _core.quantize_act(int(T.Q4_K), "scalar", x.reshape(-1)).tobytes() == ours
    deq = _core.dequantize(int(T.Q8_K), _core.quantize(int(T.Q8_K), rows[0][:1]), 256)
    blk = np.frombuffer(q8_k_numpy(rows[0][:1]), dtype=np.uint8)
    d = blk[:4].view(np.float32)[0]
    np.testing.assert_array_equal(deq.reshape(-1), d * blk[4:260].view(np.int8).astype(np.float32))


def test_q8_k_is_activation_only() -> None:
    info = _core.type_info(int(T.Q8_K))
    assert info["can_quantize"] and not info["computable"]
    for t in SEARCHED_TYPES:
        want = T.Q8_0 if t == T.IQ4_NL else T.Q8_K
        assert _core.type_info(int(t))["vec_dot_type"] == int(want)
        assert _core.type_info(int(t))["computable"]


def min_part(t: T, raw: np.ndarray) -> np.ndarray:
    """-dmin*m of every value (0 for types without mins): the blocks dequantized with all quants
    zeroed."""
    z = raw.copy()
    if t == T.Q2_K:
        z[:, 16:80] = 0
    elif t in (T.Q4_K, T.Q5_K):
        z[:, 16:] = 0
    else:
        return np.zeros(raw.shape[0] * sizes(t)[0])
    return gguf.quants.dequantize(z.reshape(1, -1), t).reshape(-1).astype(np.float64)


@pytest.mark.parametrize("t", [T.Q8_0, T.Q4_0, *SEARCHED_TYPES], ids=lambda t: t.name)
def test_scalar_vec_dot_matches_float64(t: T) -> None:
    """Error bound: the weights w = A - B (A = d*sc*q, B = dmin*m) dequantize with at most three
    float32 roundings (d*sc, *q, -B), the activations with one (d*q); the kernel's block sum is
    exact in integers and then sees at most six roundings (the d products, int->float of a sum up
    to 2^28, the two products, the subtraction), and the float accumulation over nb blocks adds
    at most nb more. Each rounding is relative to terms bounded by (|A| + |B|)|a|, so
    |vec_dot - dot64(w, a)| <= (10 + nb) * u * sum((|w| + 2|B|) * |a|)."""
    rng = np.random.default_rng(200 + int(t))
    bs, _ = sizes(t)
    n = 2048
    nb = n // bs
    for trial in range(4):
        raw = random_blocks(t, nb, rng)
        if trial == 0:  # realistic magnitudes as well as the extreme random scales
            raw = _core.quantize(int(t), rng.standard_normal((1, n)).astype(np.float32)).reshape(nb, -1)
        w = gguf.quants.dequantize(raw.reshape(1, -1), t).reshape(-1).astype(np.float64)
        b = -min_part(t, raw)
        x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3)).astype(np.float32)
        y = _core.quantize_act(int(t), "scalar", x)
        a = _core.dequantize(_core.type_info(int(t))["vec_dot_type"], y.reshape(1, -1), n).reshape(-1)
        a = a.astype(np.float64)
        got = _core.vec_dot(int(t), "scalar", raw.reshape(-1), y, n)
        ref = float(np.dot(w, a))
        bound = (10 + nb) * U * float(np.sum((np.abs(w) + 2 * np.abs(b)) * np.abs(a)))
        assert abs(got - ref) <= bound, (trial, got, ref, bound)


def load_bench() -> ModuleType:
    path = ROOT / "benchmarks" / "bench_quant_error.py"
    spec = importlib.util.spec_from_file_location("bench_quant_error", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench() -> tuple[ModuleType, dict]:
    mod = load_bench()
    committed = json.loads(mod.RESULTS.read_text())
    return mod, committed


@pytest.mark.parametrize("kind", ["gaussian", "student_t3"])
def test_rmse_not_worse_than_llama_cpp(bench: tuple[ModuleType, dict], kind: str) -> None:
    mod, committed = bench
    x = mod.make_data(kind)
    assert committed["data"]["rows"] == x.shape[0] and committed["data"]["cols"] == x.shape[1]
    for t in SEARCHED_TYPES:
        llama = committed["results"][t.name][kind]["llama_cpp"]
        rmse, max_err = mod.errors(x, _core.quantize(int(t), x, 2), t)
        assert rmse <= llama["rmse"], (t.name, kind, rmse, llama["rmse"])
        assert np.isfinite(max_err)


@pytest.mark.parametrize("t", SEARCHED_TYPES, ids=lambda t: t.name)
def test_quantizer_edge_blocks(t: T) -> None:
    """Zero, constant, huge and tiny blocks give finite values; zero blocks stay exactly zero,
    constant blocks stay within one f16 rounding of the scale times the largest level."""
    n = 512
    rng = np.random.default_rng(300 + int(t))
    cases = {
        "zeros": np.zeros(n),
        "const_pos": np.full(n, 0.37),
        "const_neg": np.full(n, -0.37),
        "huge": rng.standard_normal(n) * 1e30,
        "max_float": np.where(rng.random(n) < 0.5, 3.4e38, -3.4e38),
        "tiny": rng.standard_normal(n) * 1e-30,
        "subnormal": rng.standard_normal(n) * 1e-41,
        "spike": np.where(np.arange(n) == 5, 1e3, 1e-3 * rng.standard_normal(n)),
    }
    for name, x in cases.items():
        x = x.astype(np.float32).reshape(1, n)
        y = _core.dequantize(int(t), _core.quantize(int(t), x), n)
        assert np.all(np.isfinite(y)), name
        if name == "zeros":
            assert np.all(y == 0)
        if name.startswith("const"):
            # A constant is one level times a fitted scale whose integer part is exact (the
            # largest sub-block scale maps onto the end of its range), so the only error is the
            # f16 rounding of the super-block scale: half an f16 ulp, 2^-11 relative, plus
            # float32 rounding of the products.
            err = float(np.max(np.abs(y.astype(np.float64) - x)))
            assert err <= 0.37 * (2.0**-11 + 2.0**-20), (name, err)


@pytest.mark.parametrize("t", [*QUANT_TYPES, T.Q8_K], ids=lambda t: t.name)
def test_bad_row_length_is_value_error(t: T) -> None:
    bs, ts = sizes(t)
    with pytest.raises(ValueError, match=f"multiple of {bs}"):
        _core.quantize(int(t), np.zeros((2, bs + 8), np.float32))
    with pytest.raises(ValueError, match=f"multiple of {bs}"):
        _core.dequantize(int(t), np.zeros((1, ts), np.uint8), bs + 8)


@pytest.mark.parametrize("t", SEARCHED_TYPES, ids=lambda t: t.name)
def test_quantize_threads_deterministic(t: T) -> None:
    """The converter quantizes rows on several threads; the bytes must not depend on it."""
    x = np.random.default_rng(400 + int(t)).standard_t(3.0, (16, 512)).astype(np.float32)
    np.testing.assert_array_equal(_core.quantize(int(t), x, 1), _core.quantize(int(t), x, 3))
