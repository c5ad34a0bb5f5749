"""`qwen35cpu bench MODEL`: prompt and decode tokens/s, the bandwidth roofline, and llama.cpp beside it."""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from .common import add_mmap_arguments


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="measure prompt and decode speed (and llama.cpp's, with --llama)")
    p.add_argument("model", help="path to a .gguf file")
    p.add_argument("-t", "--threads", type=int, metavar="N", help="threads (default: physical cores)")
    p.add_argument("-p", "--prompt", type=int, default=512, metavar="N", help="prompt tokens (pp)")
    p.add_argument("-n", "--gen", type=int, default=128, metavar="N", help="decoded tokens (tg)")
    p.add_argument("-r", "--reps", type=int, default=1, metavar="N",
                   help="runs of each measurement; the fastest counts (shared machines)")
    p.add_argument("--llama", action="store_true", help="also measure llama.cpp (needs the bench extra)")
    p.add_argument("--llama-mmap", choices=["both", "on", "off"], default="both",
                   help="llama.cpp's weights mapped (on), copied (off) or each in turn, the faster "
                        "decode counting (both, the default)")
    add_mmap_arguments(p)
    p.add_argument("--depth2", metavar="FILE",
                   help="a synth slice of another depth for the full-model estimate "
                        "(default: synthesise one 4 layers deeper, in a temporary directory)")
    p.add_argument("--no-estimate", action="store_true", help="skip the full-model estimate of a synth slice")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import bench

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if not os.path.exists(args.model):
        raise FileNotFoundError(f"{args.model}: no such file")
    if args.llama and not bench.llama_available():
        raise RuntimeError("--llama needs llama-cpp-python: pip install 'qwen35cpu[bench]'")
    kw = {"n_prompt": args.prompt, "n_gen": args.gen, "llama": args.llama, "reps": args.reps,
          "use_mmap": args.use_mmap, "llama_mmap": bench.LLAMA_MMAP[args.llama_mmap]}
    first = bench.bench_file(args.model, args.threads, **kw)
    results = [first]
    estimates = []
    if first.synth is not None and not args.no_estimate:
        with tempfile.TemporaryDirectory() as tmp:
            other = args.depth2 or _deeper_slice(first, tmp)
            second = bench.bench_file(other, first.threads, bandwidth=first.bandwidth, **kw)
            results.append(second)
        # The slice records its full depth (qwen35cpu.synth.full_layers); older slices only the preset.
        full = first.synth.get("full_layers") or bench.PRESET_LAYERS.get(first.synth["preset"])
        if full is None:
            raise ValueError(f"unknown synth preset {first.synth['preset']!r}")
        estimates.append({**bench.estimate_full(first, second, int(full)), "threads": first.threads})
    print(bench.format_table(results, estimates))
    if args.json:
        doc = {"results": [r.as_dict() for r in results], "estimates": estimates}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 0


def _deeper_slice(r: object, tmp: str) -> str:
    """A synth slice like r's, 4 layers deeper (one more 3:1 group), written under tmp."""
    from .. import bench
    from ..synth import write_synth  # type: ignore[import-not-found,unused-ignore]

    assert isinstance(r, bench.BenchResult) and r.synth is not None
    info = r.synth
    if "type" not in info:
        raise ValueError("the slice does not record its type (qwen35cpu.synth.type): pass --depth2 FILE")
    cfg = bench._core.read_config(r.path)
    path = os.path.join(tmp, "depth2.gguf")
    write_synth(path, r.n_layer + 4, int(cfg["n_expert"]), str(info["type"]), info["preset"],
                int(info.get("seed", 0)))
    return path
