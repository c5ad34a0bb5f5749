"""Prompt and decode speed of a GGUF file in qwen35cpu and, side by side, in llama.cpp; the roofline.

The numbers, per engine: pp (prompt tokens per second over one `n_prompt`-token prompt) and tg
(decode tokens per second over `n_gen` single-token steps), both from an empty state after a
warm-up pass that faults the weights in. Beside them: the machine's memory read bandwidth at the
same thread count, the bytes of weights one decoded token reads (from the file: every non-expert
matrix, the top-k experts' share of the routed expert tensors, the LM head, one embedding row),
and from the two the decode roofline (bandwidth / bytes per token) and the share of it reached.

Bandwidth is measured twice, on 4 KiB pages (as a mapped file is read) and on transparent huge
pages (as qwen35cpu's weight copy is, where Linux gives them); the roofline takes the higher, so
neither engine's share can be flattered by its page size. llama.cpp runs with its weights mapped
(its default) and copied (`use_mmap=False`); the faster decode counts.

A synth slice (metadata `qwen35cpu.synth.preset`) is a few layers of a real model shape, so the
full model's speed is estimated from two slice depths: per-layer time is the difference over the
extra layers, the rest (embedding, LM head, sampling overhead) is counted once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import _core

# Layers of the full models the synth presets slice (spec 1.1).
PRESET_LAYERS = {"397b": 60, "122b": 48, "35b": 40}
BANDWIDTH_BYTES = 1 << 30  # well beyond any last-level cache, so the number is DRAM's
# --llama-mmap: llama.cpp's weights mapped, copied, or each in turn (the faster decode counts).
LLAMA_MMAP: dict[str, tuple[bool, ...]] = {"both": (True, False), "on": (True,), "off": (False,)}


@dataclass
class TokenBytes:
    """Bytes of weights one decoded token reads, by part."""

    experts: int = 0  # top-k experts' rows of the routed expert tensors
    lm_head: int = 0
    other: int = 0  # attention, DeltaNet, shared expert, router, norms, one embedding row
    total: int = 0


def bytes_per_token(path: str | os.PathLike[str]) -> TokenBytes:
    """What one decode step reads from the weights of the file at `path` (all parts of a split set)."""
    p = os.fspath(path)
    cfg = _core.read_config(p)
    n_expert, n_used = int(cfg["n_expert"]), int(cfg["n_expert_used"])
    tensors = [t for part in _core.gguf_parts(p) for t in _core.GgufFile(part).tensors]
    names = {t.name for t in tensors}
    tb = TokenBytes()
    for t in tensors:
        if t.name.endswith("_exps.weight"):
            # Each routed expert is an equal slice of the tensor; a token reads k of the n.
            tb.experts += t.nbytes * n_used // n_expert
        elif t.name == "output.weight" or (t.name == "token_embd.weight" and "output.weight" not in names):
            tb.lm_head += t.nbytes  # a tied embedding is read whole as the LM head
        elif t.name == "token_embd.weight":
            tb.other += t.nbytes // int(t.ne[1])  # one row per token
        else:
            tb.other += t.nbytes
    tb.total = tb.experts + tb.lm_head + tb.other
    return tb


@dataclass
class Speed:
    engine: str
    threads: int
    n_prompt: int
    n_gen: int
    pp_tps: float
    tg_tps: float
    op_times: dict[str, float] | None = None  # seconds per op kind over the profiled decode steps
    weights: str = ""  # where the engine read its weights from
    # llama.cpp: every weight setting tried, {"mmap": {"pp_tps": .., "tg_tps": ..}, "no-mmap": ...}
    tried: dict[str, dict[str, float]] | None = None


@dataclass
class Bandwidth:
    """Memory read bandwidth in GB/s at one thread count, on 4 KiB pages and on huge pages."""

    pages_4k: float
    huge_pages: float

    @property
    def best(self) -> float:
        return max(self.pages_4k, self.huge_pages)


def prompt_ids(n: int, n_vocab: int, seed: int = 0) -> list[int]:
    """The same pseudo-random token ids for every engine (ordinary vocabulary, no special tokens)."""
    hi = min(n_vocab, 150_000)
    return [int(x) for x in np.random.default_rng(seed).integers(100, hi, n)]


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _run_engine(
    eval_fn: Callable[[list[int]], object], reset: Callable[[], object], ids: list[int],
    n_prompt: int, n_gen: int, reps: int = 1,
) -> tuple[float, float]:
    """pp and tg tokens/s of one engine, given its eval(ids) and reset(): the best of `reps` runs each,
    the run least disturbed by other processes on a shared machine."""
    # Warm-up: a short prompt routes tokens to most experts, faulting their pages in.
    eval_fn(ids[: min(32, n_prompt)])
    reset()
    pp = tg = 0.0
    for _ in range(reps):
        pp = max(pp, n_prompt / _timed(lambda: eval_fn(ids[:n_prompt])))
        reset()
    for _ in range(reps):
        eval_fn(ids[:1])  # decode timing starts with a token in the state, as a generation's does

        def decode() -> None:
            for t in ids[1 : n_gen + 1]:
                eval_fn([t])

        tg = max(tg, n_gen / _timed(decode))
        reset()
    return pp, tg


def measure_qwen35cpu(
    path: str, threads: int | None, n_prompt: int, n_gen: int, profile_steps: int = 16, reps: int = 1,
    use_mmap: bool | None = None,
) -> Speed:
    from .model import Model

    model = Model(path, n_threads=threads, use_mmap=use_mmap)
    sess = model.session(n_ctx=n_prompt + n_gen + profile_steps + 2)
    ids = prompt_ids(n_prompt + n_gen + profile_steps + 2, model.config.n_vocab)
    core = sess._core  # the core session directly: no Python-side token bookkeeping in the timing

    def eval_fn(x: list[int]) -> object:
        return core.eval(np.asarray(x, dtype=np.int32), False)

    pp, tg = _run_engine(eval_fn, core.reset, ids, n_prompt, n_gen, reps)
    ops = _op_times(core, eval_fn, ids, profile_steps)
    return Speed("qwen35cpu", model.n_threads, n_prompt, n_gen, pp, tg, ops, model.weights_placement)


def _op_times(
    core: Any, eval_fn: Callable[[list[int]], object], ids: list[int], steps: int
) -> dict[str, float] | None:
    """Per-op seconds over `steps` decode steps, where the core can profile (None where it cannot)."""
    set_prof = getattr(core, "set_profiling", None)
    read = getattr(core, "op_times", None)
    if set_prof is None or read is None or steps < 1:
        return None
    eval_fn(ids[:1])
    set_prof(True)
    try:
        if hasattr(core, "reset_op_times"):
            core.reset_op_times()
        before = dict(read())
        for t in ids[1 : steps + 1]:
            eval_fn([t])
        after = dict(read())
    finally:
        set_prof(False)
        core.reset()
    # Counters may accumulate from earlier steps: keep only this window's share, per decoded token.
    return {k: (float(after[k]) - float(before.get(k, 0.0))) / steps for k in after}


def llama_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def measure_llama(
    path: str, threads: int, n_prompt: int, n_gen: int, reps: int = 1,
    use_mmap: Sequence[bool] = (True, False),
) -> Speed:
    """The same measurement through llama-cpp-python (the `bench` extra), on the same file, with its
    weights mapped and/or copied (`use_mmap`); the setting with the faster decode counts."""
    from llama_cpp import Llama

    if not use_mmap:
        raise ValueError("use_mmap needs at least one setting")
    tried: dict[str, dict[str, float]] = {}
    for mm in use_mmap:
        llm = Llama(
            model_path=path, n_ctx=n_prompt + n_gen + 8, n_batch=max(n_prompt, 1), n_ubatch=max(n_prompt, 1),
            n_threads=threads, n_threads_batch=threads, use_mmap=mm, verbose=False,
        )
        try:
            ids = prompt_ids(n_prompt + n_gen + 2, llm.n_vocab())
            pp, tg = _run_engine(llm.eval, llm.reset, ids, n_prompt, n_gen, reps)
        finally:
            llm.close()
        tried["mmap" if mm else "no-mmap"] = {"pp_tps": pp, "tg_tps": tg}
    best = max(tried, key=lambda k: tried[k]["tg_tps"])
    return Speed("llama.cpp", threads, n_prompt, n_gen, tried[best]["pp_tps"], tried[best]["tg_tps"],
                 weights=best, tried=tried)


def read_bandwidth(threads: int) -> Bandwidth:
    """Measured memory read bandwidth in GB/s (1e9 B/s) with `threads` threads, on both page sizes."""
    return Bandwidth(
        float(_core.read_bandwidth(threads, BANDWIDTH_BYTES, 5, False)),
        float(_core.read_bandwidth(threads, BANDWIDTH_BYTES, 5, True)),
    )


@dataclass
class BenchResult:
    path: str
    threads: int
    n_layer: int
    bandwidth: Bandwidth
    token_bytes: TokenBytes
    speeds: list[Speed] = field(default_factory=list)
    synth: dict[str, Any] | None = None  # the slice's metadata and the full-model estimate

    @property
    def bandwidth_gbs(self) -> float:
        """The roofline's bandwidth: the higher of the two page sizes'."""
        return self.bandwidth.best

    @property
    def roofline_tps(self) -> float:
        return self.bandwidth_gbs * 1e9 / self.token_bytes.total

    def speed(self, engine: str) -> Speed | None:
        return next((s for s in self.speeds if s.engine == engine), None)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bandwidth_gbs"] = self.bandwidth_gbs
        d["roofline_tg_tps"] = self.roofline_tps
        for s in d["speeds"]:
            s["roofline_share"] = s["tg_tps"] / self.roofline_tps
        q, ll = self.speed("qwen35cpu"), self.speed("llama.cpp")
        if q and ll:
            d["ratio_to_llama"] = {"pp": q.pp_tps / ll.pp_tps, "tg": q.tg_tps / ll.tg_tps}
        return d


def synth_info(path: str) -> dict[str, Any] | None:
    """The synth slice metadata (`qwen35cpu.synth.*`) of a file, or None for a real model."""
    md = dict(_core.GgufFile(_core.gguf_parts(path)[0]).metadata)
    info = {k.removeprefix("qwen35cpu.synth."): v for k, v in md.items() if k.startswith("qwen35cpu.synth.")}
    if "preset" not in info:
        return None
    info["preset"] = str(info["preset"])
    return info


def bench_file(
    path: str, threads: int | None = None, n_prompt: int = 512, n_gen: int = 128, *, llama: bool = False,
    bandwidth: Bandwidth | None = None, reps: int = 1, use_mmap: bool | None = None,
    llama_mmap: Sequence[bool] = (True, False),
) -> BenchResult:
    """Measure one file: qwen35cpu (weights placed by `use_mmap`, see Model) and, with `llama`,
    llama.cpp (each setting of `llama_mmap`, the faster counting); bandwidth and bytes per token."""
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    if n_prompt < 1 or n_gen < 1:
        raise ValueError(f"prompt and decode lengths must be at least 1, got {n_prompt} and {n_gen}")
    q = measure_qwen35cpu(path, threads, n_prompt, n_gen, reps=reps, use_mmap=use_mmap)
    n_threads = q.threads
    bw = bandwidth if bandwidth is not None else read_bandwidth(n_threads)
    cfg = _core.read_config(path)
    res = BenchResult(path, n_threads, int(cfg["n_layer"]), bw, bytes_per_token(path), [q], synth_info(path))
    if llama:
        if not llama_available():
            raise RuntimeError("--llama needs llama-cpp-python: pip install 'qwen35cpu[bench]'")
        res.speeds.append(measure_llama(path, n_threads, n_prompt, n_gen, reps, llama_mmap))
    return res


def estimate_full(a: BenchResult, b: BenchResult, full_layers: int) -> dict[str, Any]:
    """The full model's pp, tg, bytes per token and roofline, from two slices of different depth.

    Time per token is linear in the layer count: t(L) = t0 + L * t_layer, with t0 the once-per-token
    part (embedding, LM head, overhead). Two depths give both terms; bytes per token likewise.
    """
    if a.n_layer == b.n_layer:
        raise ValueError("the two slices need different layer counts")
    lo, hi = (a, b) if a.n_layer < b.n_layer else (b, a)
    dl = hi.n_layer - lo.n_layer

    def extrapolate(y_lo: float, y_hi: float) -> float:
        per = (y_hi - y_lo) / dl
        return y_lo + (full_layers - lo.n_layer) * per

    full_bytes = extrapolate(lo.token_bytes.total, hi.token_bytes.total)
    bw = (lo.bandwidth_gbs + hi.bandwidth_gbs) / 2
    out: dict[str, Any] = {
        "layers": full_layers, "from_layers": [lo.n_layer, hi.n_layer],
        "bytes_per_token": full_bytes, "roofline_tg_tps": bw * 1e9 / full_bytes, "engines": {},
    }
    for s_lo in lo.speeds:
        s_hi = hi.speed(s_lo.engine)
        if s_hi is None:
            continue
        tg_s = extrapolate(1 / s_lo.tg_tps, 1 / s_hi.tg_tps)
        pp_s = extrapolate(1 / s_lo.pp_tps, 1 / s_hi.pp_tps)
        e = {"tg_tps": 1 / tg_s, "pp_tps": 1 / pp_s, "roofline_share": (1 / tg_s) / out["roofline_tg_tps"]}
        # More layers cannot take less time, nor can decode beat the roofline: if the two depths say
        # so, one of the measurements was disturbed (a shared machine) and the estimate means nothing.
        if s_hi.tg_tps >= s_lo.tg_tps or s_hi.pp_tps >= s_lo.pp_tps or e["roofline_share"] > 1:
            e["unreliable"] = True
        out["engines"][s_lo.engine] = e
    q, ll = out["engines"].get("qwen35cpu"), out["engines"].get("llama.cpp")
    if q and ll and not q.get("unreliable") and not ll.get("unreliable"):
        out["ratio_to_llama"] = {"pp": q["pp_tps"] / ll["pp_tps"], "tg": q["tg_tps"] / ll["tg_tps"]}
    return out


def format_table(results: Sequence[BenchResult], estimates: Sequence[dict[str, Any]] = ()) -> str:
    head = (f"{'model':28s} {'layers':>6s} {'thr':>3s} {'engine':10s} {'pp t/s':>8s} {'tg t/s':>8s} "
            f"{'MB/tok':>8s} {'BW GB/s':>7s} {'roof t/s':>8s} {'roof %':>6s} {'x llama':>12s}")
    lines = [head, "-" * len(head)]
    for r in results:
        ll = r.speed("llama.cpp")
        for s in r.speeds:
            ratio = ""
            if s.engine != "llama.cpp" and ll:
                ratio = f"{s.pp_tps / ll.pp_tps:.2f}/{s.tg_tps / ll.tg_tps:.2f}"
            lines.append(
                f"{os.path.basename(r.path)[:28]:28s} {r.n_layer:6d} {r.threads:3d} {s.engine:10s} "
                f"{s.pp_tps:8.2f} {s.tg_tps:8.2f} {r.token_bytes.total / 1e6:8.1f} {r.bandwidth_gbs:7.1f} "
                f"{r.roofline_tps:8.2f} {100 * s.tg_tps / r.roofline_tps:6.1f} {ratio:>12s}"
            )
    for e in estimates:
        for name, v in e["engines"].items():
            ratio = ""
            if name != "llama.cpp" and "ratio_to_llama" in e:
                ratio = f"{e['ratio_to_llama']['pp']:.2f}/{e['ratio_to_llama']['tg']:.2f}"
            lines.append(
                f"{'full model (estimate)':28s} {e['layers']:6d} {e.get('threads', 0):3d} {name:10s} "
                f"{v['pp_tps']:8.2f} {v['tg_tps']:8.2f} {e['bytes_per_token'] / 1e6:8.1f} {'':7s} "
                f"{e['roofline_tg_tps']:8.2f} {100 * v['roofline_share']:6.1f} {ratio:>12s}"
                + ("  unreliable: a disturbed run" if v.get("unreliable") else "")
            )
    lines.append("x llama: qwen35cpu / llama.cpp tokens/s, pp/tg; roof: bandwidth / weight bytes per token")
    for r in results:
        lines.append(f"bandwidth, {r.threads}t: {r.bandwidth.pages_4k:.1f} GB/s on 4 KiB pages, "
                     f"{r.bandwidth.huge_pages:.1f} GB/s on huge pages (the roofline takes the higher)")
        for s in r.speeds:
            tried = ""
            if s.tried and len(s.tried) > 1:
                tried = " (tg " + ", ".join(f"{k} {v['tg_tps']:.2f}" for k, v in s.tried.items()) + ")"
            if s.weights:
                name = os.path.basename(r.path)
                lines.append(f"weights, {name} {r.threads}t {s.engine}: {s.weights}{tried}")
    for r in results:
        for s in r.speeds:
            if s.op_times:
                total = sum(s.op_times.values()) or 1.0
                split = ", ".join(f"{k} {1e3 * v:.2f} ms ({100 * v / total:.0f}%)"
                                  for k, v in sorted(s.op_times.items(), key=lambda kv: -kv[1]))
                lines.append(f"ops per token, {os.path.basename(r.path)} {r.threads}t {s.engine}: {split}")
    return "\n".join(lines)
