"""The sampler: each stage against a plain-Python reference (loops, full sorts, Counter), the draw,
seeding, validation, the Qwen3.5 defaults and the GGUF round trip of generation_config.json."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import gguf
import numpy as np
import pytest

from qwen35cpu.sampling import (
    DEFAULTS_INSTRUCT,
    DEFAULTS_THINKING,
    Sampler,
    SamplingParams,
    defaults_from_metadata,
)

V = 248_320  # the real Qwen3.5 vocabulary size


def _logits(seed: int, n: int = V, scale: float = 4.0) -> np.ndarray:
    # continuous values: no ties, so "the top k" is one well-defined set
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)


def _neutral(**kw: object) -> SamplingParams:
    base = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
    base.update(kw)
    return SamplingParams(**base)  # type: ignore[arg-type]


# -- reference implementations, deliberately written another way (scalar loops, full sorts) ----------


def ref_bias_penalties(logits: np.ndarray, history: list[int], p: SamplingParams) -> list[float]:
    out = [float(x) for x in logits]
    for tid, b in p.logit_bias.items():
        out[tid] += b
    window = history if p.penalty_last_n < 0 else history[len(history) - p.penalty_last_n :]
    if p.penalty_last_n == 0:
        window = []
    for tid, count in Counter(window).items():
        x = out[tid]
        x = x * p.repetition_penalty if x <= 0 else x / p.repetition_penalty
        out[tid] = x - count * p.frequency_penalty - p.presence_penalty
    return out


def ref_order(values: list[float]) -> list[int]:
    return sorted(range(len(values)), key=lambda i: (-values[i], i))


def ref_top_p(values: list[float], ids: list[int], top_p: float) -> list[int]:
    m = max(values[i] for i in ids)
    z = sum(math.exp(values[i] - m) for i in ids)
    kept, acc = [], 0.0
    for i in ids:
        kept.append(i)
        acc += math.exp(values[i] - m) / z
        if acc >= top_p:
            break
    return kept


def ref_min_p(values: list[float], ids: list[int], min_p: float) -> list[int]:
    m = max(values[i] for i in ids)
    return [i for i in ids if math.exp(values[i] - m) >= min_p]  # p_i / p_max


# -- stages ------------------------------------------------------------------------------------------


def test_bias_and_penalties_match_reference() -> None:
    rng = np.random.default_rng(1)
    n = 5000
    logits = _logits(2, n)
    history = [int(t) for t in rng.integers(0, 300, 400)]  # many repeats
    p = _neutral(
        repetition_penalty=1.3, frequency_penalty=0.2, presence_penalty=0.7, penalty_last_n=128,
        logit_bias={5: 2.5, 17: -100.0, 4999: 0.25},
    )
    got = Sampler(p).apply_bias_and_penalties(logits, history)
    want = ref_bias_penalties(logits, history, p)
    # float32 result vs float64 reference: a few ulps of values up to ~|20|
    np.testing.assert_allclose(got, np.array(want, dtype=np.float64), rtol=0, atol=1e-5)
    # only the window counts: a token seen only before the last 128 keeps its logit
    early = set(history[:-128]) - set(history[-128:]) - set(p.logit_bias)
    assert early, "the history should have tokens outside the window"
    for t in early:
        assert got[t] == logits[t]
    # the whole history with penalty_last_n=-1, and none with 0
    for last_n in (-1, 0):
        q = _neutral(presence_penalty=1.5, frequency_penalty=0.1, penalty_last_n=last_n)
        np.testing.assert_allclose(
            Sampler(q).apply_bias_and_penalties(logits, history),
            ref_bias_penalties(logits, history, q), atol=1e-5, rtol=0,
        )


def test_repetition_penalty_sign_rule() -> None:
    # llama.cpp: positive logits are divided, negative (and zero) multiplied -> both become less likely
    logits = np.array([2.0, -2.0, 0.0, 1.0], dtype=np.float32)
    got = Sampler(_neutral(repetition_penalty=2.0)).apply_bias_and_penalties(logits, [0, 1, 2])
    assert got.tolist() == [1.0, -4.0, 0.0, 1.0]


@pytest.mark.parametrize("k", [1, 20, 40, 1000])
def test_top_k_matches_reference(k: int) -> None:
    logits = _logits(k)
    ids, vals = Sampler(_neutral(top_k=k)).candidates(logits)
    want = ref_order(logits.tolist())[:k]
    assert ids.tolist() == want
    assert vals.tolist() == logits[want].tolist()


@pytest.mark.parametrize(("top_k", "top_p", "scale"), [(0, 0.95, 4.0), (0, 0.5, 1.0), (0, 0.9, 0.2),
                                                       (20, 0.95, 1.0), (40, 0.3, 4.0)])
def test_top_p_matches_reference(top_k: int, top_p: float, scale: float) -> None:
    # scale 0.2 makes the distribution flat: the top 1024 hold far less than 0.9 and the cover grows
    n = 60_000
    logits = _logits(int(top_p * 100) + top_k, n, scale)
    ids, _ = Sampler(_neutral(top_k=top_k, top_p=top_p)).candidates(logits)
    values = logits.tolist()
    order = ref_order(values)
    pool = order[:top_k] if top_k else order
    want = ref_top_p(values, pool, top_p)
    assert ids.tolist() == want
    assert len(want) > 1


@pytest.mark.parametrize(("top_k", "min_p"), [(0, 0.05), (0, 0.5), (40, 0.1), (5000, 0.02)])
def test_min_p_matches_reference(top_k: int, min_p: float) -> None:
    logits = _logits(7, 20_000, 1.5)
    ids, _ = Sampler(_neutral(top_k=top_k, min_p=min_p)).candidates(logits)
    values = logits.tolist()
    order = ref_order(values)
    want = ref_min_p(values, order[:top_k] if top_k else order, min_p)
    # float32 exp(l - lmax) >= p vs logit >= lmax + log p: equal unless a logit sits within rounding of
    # the boundary, which these continuous random values do not
    assert ids.tolist() == want


def test_chain_order_top_k_then_top_p_then_min_p() -> None:
    logits = _logits(11, 30_000, 2.0)
    p = _neutral(top_k=50, top_p=0.8, min_p=0.2)
    values = logits.tolist()
    want = ref_min_p(values, ref_top_p(values, ref_order(values)[:50], 0.8), 0.2)
    assert Sampler(p).candidates(logits)[0].tolist() == want


def test_greedy_is_argmax_after_penalties() -> None:
    logits = _logits(3, 1000)
    top = int(np.argmax(logits))
    assert Sampler(SamplingParams.greedy()).sample(logits, [top]) == top
    # a presence penalty larger than the gap moves greedy to the runner-up, as in llama.cpp
    second = ref_order(logits.tolist())[1]
    gap = float(logits[top] - logits[second])
    p = SamplingParams(temperature=0.0, presence_penalty=gap + 1.0)
    assert Sampler(p).sample(logits, [top]) == second
    assert Sampler(SamplingParams(temperature=0.0, logit_bias={7: 1e4})).sample(logits, []) == 7


def test_draw_is_inverse_cdf_of_tempered_softmax() -> None:
    # the sampler draws u ~ U[0,1) from PCG64(seed) and takes the first candidate whose running
    # probability exceeds u: recompute that from scratch for several steps
    logits = _logits(5, 2000, 2.0)
    p = _neutral(temperature=0.7, top_k=30, seed=1234)
    s = Sampler(p)
    rng = np.random.Generator(np.random.PCG64(1234))
    values = logits.tolist()
    pool = ref_order(values)[:30]
    w = [math.exp((values[i] - values[pool[0]]) / 0.7) for i in pool]
    z = sum(w)
    for _ in range(50):
        u = rng.random()
        acc, pick = 0.0, pool[-1]
        for i, wi in zip(pool, w, strict=True):
            acc += wi / z
            if acc > u:
                pick = i
                break
        assert s.sample(logits, []) == pick


def test_draw_frequencies_follow_temperature() -> None:
    logits = np.array([2.0, 1.0, 0.5, 0.0, -1.0], dtype=np.float32)
    for temp in (0.5, 1.0, 2.0):
        s = Sampler(_neutral(temperature=temp, seed=7))
        n = 20_000
        counts = np.bincount([s.sample(logits) for _ in range(n)], minlength=5)
        e = np.exp(logits / temp)
        want = e / e.sum()
        # each frequency is binomial: 5 standard deviations, a bound crossed with probability ~6e-7
        sd = np.sqrt(want * (1 - want) / n)
        assert np.all(np.abs(counts / n - want) <= 5 * sd), (temp, counts / n, want)


def test_same_seed_same_tokens_other_seed_differs() -> None:
    logits = _logits(9, V, 1.0)
    p = DEFAULTS_THINKING.updated(seed=42)

    def run(params: SamplingParams) -> list[int]:
        s, hist = Sampler(params), []
        for _ in range(30):
            hist.append(s.sample(logits, hist))
        return hist

    a, b = run(p), run(p)
    assert a == b
    assert run(p.updated(seed=43)) != a
    s = Sampler(p)
    first = [s.sample(logits) for _ in range(5)]
    s.reset()
    assert [s.sample(logits) for _ in range(5)] == first
    # without a seed each sampler picks its own
    assert Sampler(DEFAULTS_THINKING).seed != Sampler(DEFAULTS_THINKING).seed


def test_presence_penalty_breaks_a_loop() -> None:
    # two tokens far ahead of the rest: without penalties the sampler keeps choosing them; with Qwen's
    # presence penalty over the whole history, once both are used, others get their turn
    logits = np.zeros(100, dtype=np.float32)
    logits[[3, 4]] = 5.0
    hist: list[int] = []
    s = Sampler(_neutral(temperature=0.0, presence_penalty=6.0, penalty_last_n=-1))
    for _ in range(4):
        hist.append(s.sample(logits, hist))
    assert hist[:2] == [3, 4] and hist[2] not in (3, 4)


@pytest.mark.parametrize(
    "kw",
    [
        {"temperature": -0.1}, {"top_k": -1}, {"top_k": 2.5}, {"top_p": 0.0}, {"top_p": 1.5},
        {"min_p": -0.1}, {"repetition_penalty": 0.0}, {"penalty_last_n": -2}, {"seed": -1},
        {"temperature": float("nan")}, {"logit_bias": {"a": 1.0}}, {"logit_bias": {3: float("nan")}},
    ],
)
def test_bad_settings_raise_one_line(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError) as e:
        SamplingParams(**kw)  # type: ignore[arg-type]
    assert "\n" not in str(e.value)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="outside the vocabulary"):
        Sampler(_neutral(logit_bias={10: 1.0})).sample(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        Sampler(_neutral(presence_penalty=1.0)).sample(np.zeros(5, np.float32), [7])
    with pytest.raises(ValueError, match="nothing to sample"):
        Sampler(_neutral()).sample(np.full(5, -np.inf, np.float32))
    with pytest.raises(TypeError, match="unknown sampling setting"):
        DEFAULTS_THINKING.updated(temprature=0.5)
    assert DEFAULTS_THINKING.updated(repeat_penalty=1.1, temp=0.3).repetition_penalty == 1.1


def test_qwen_recommended_defaults() -> None:
    # Qwen3.5 model cards, best practices (general tasks)
    t, i = DEFAULTS_THINKING, DEFAULTS_INSTRUCT
    assert (t.temperature, t.top_p, t.top_k, t.min_p, t.presence_penalty) == (1.0, 0.95, 20, 0.0, 1.5)
    assert (i.temperature, i.top_p, i.top_k, i.min_p, i.presence_penalty) == (0.7, 0.8, 20, 0.0, 1.5)
    assert t.repetition_penalty == i.repetition_penalty == 1.0


def test_defaults_from_metadata() -> None:
    assert defaults_from_metadata({}) == DEFAULTS_THINKING
    assert defaults_from_metadata({}, thinking=False) == DEFAULTS_INSTRUCT
    md = {
        "general.sampling.temp": float(np.float32(0.6)),  # as a GGUF reader returns a float32
        "general.sampling.top_k": 40,
        "general.sampling.top_p": float(np.float32(0.95)),
        "general.sampling.penalty_repeat": float(np.float32(1.05)),
    }
    got = defaults_from_metadata(md)
    assert (got.temperature, got.top_k, got.top_p, got.repetition_penalty) == (0.6, 40, 0.95, 1.05)
    assert got.presence_penalty == DEFAULTS_THINKING.presence_penalty  # not a GGUF key: kept
    with pytest.raises(ValueError, match=r"general\.sampling\.top_p"):
        defaults_from_metadata({"general.sampling.top_p": 3.0})
    with pytest.raises(ValueError, match=r"general\.sampling\.top_k"):
        defaults_from_metadata({"general.sampling.top_k": "many"})


# -- converter: generation_config.json -> general.sampling.* -> defaults -----------------------------


def test_converter_writes_generation_config(tmp_path: Path) -> None:
    from fixture_util import fixture_dir

    from qwen35cpu.convert import convert

    src = tmp_path / "src"
    shutil.copytree(fixture_dir("r1"), src)
    (src / "generation_config.json").write_text(json.dumps(
        {"do_sample": True, "temperature": 0.6, "top_k": 20, "top_p": 0.95, "repetition_penalty": 1.0,
         "eos_token_id": [1, 2]}
    ))
    out = convert(src, tmp_path / "m.gguf", "f32", progress=False)
    r = gguf.GGUFReader(out)
    f = r.fields
    assert f[gguf.Keys.General.SAMPLING_TOP_K].types == [gguf.GGUFValueType.INT32]
    assert int(f[gguf.Keys.General.SAMPLING_TOP_K].contents()) == 20
    assert f[gguf.Keys.General.SAMPLING_TEMP].types == [gguf.GGUFValueType.FLOAT32]
    assert f[gguf.Keys.General.SAMPLING_TEMP].contents() == pytest.approx(0.6, abs=1e-7)
    assert gguf.Keys.General.SAMPLING_MIN_P not in f  # absent from generation_config: not written

    import qwen35cpu

    m = qwen35cpu.load(out, n_threads=1)
    d = m.sampling_defaults(thinking=True)
    assert (d.temperature, d.top_k, d.top_p, d.min_p) == (0.6, 20, 0.95, 0.0)

    (src / "generation_config.json").write_text('{"top_k": "twenty"}')
    with pytest.raises(ValueError, match="top_k"):
        convert(src, tmp_path / "m2.gguf", "f32", progress=False)
    assert not (tmp_path / "m2.gguf").exists()
