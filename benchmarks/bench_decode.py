"""Issue 5's decode matrix: qwen35cpu beside llama.cpp on synth slices of the 397B-A17B shape, as JSON.

    python benchmarks/bench_decode.py [--types q4_k_m mac192] [--threads 1 2] [--layers 4]
        [--experts 64] [-p 512] [-n 128] [--no-llama] [--no-estimate] [--out benchmarks/results/decode.json]

For every type: a `--layers`-layer slice with `--experts` experts (and one 4 layers deeper for the
full 60-layer estimate), written with qwen35cpu.synth into a temporary directory; then, per thread
count, pp and tg tokens/s of qwen35cpu and of llama.cpp (llama-cpp-python, the `bench` extra) on the
same file, the memory read bandwidth at that thread count, bytes of weights per decoded token and the
share of the decode roofline. The target (issue 5): tg at least 1.25x llama.cpp's and 80% of the
roofline, at 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from qwen35cpu import _core, bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--types", nargs="+", default=["q4_k_m", "mac192"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--experts", type=int, default=64)
    ap.add_argument("--preset", default="397b", choices=sorted(bench.PRESET_LAYERS))
    ap.add_argument("-p", "--prompt", type=int, default=512)
    ap.add_argument("-n", "--gen", type=int, default=128)
    ap.add_argument("-r", "--reps", type=int, default=2, help="runs of each measurement; the fastest counts")
    ap.add_argument("--no-llama", action="store_true", help="qwen35cpu only")
    ap.add_argument("--llama-mmap", choices=["both", "on", "off"], default="both",
                    help="llama.cpp's weights mapped, copied, or each (the faster decode counts)")
    ap.add_argument("--no-estimate", action="store_true",
                    help="skip the deeper slice and the full-model estimate")
    ap.add_argument("--tmp", default=None, help="directory for the slices (default: the system's temp dir)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "decode.json")
    args = ap.parse_args()
    from qwen35cpu.synth import write_synth  # Part Y's writer (imported late: --help works without it)

    llama = not args.no_llama
    llama_mmap = bench.LLAMA_MMAP[args.llama_mmap]
    if llama and not bench.llama_available():
        raise SystemExit("llama-cpp-python is not installed (pip install '.[bench]'); or pass --no-llama")

    bandwidth = {t: bench.read_bandwidth(t) for t in args.threads}
    print("read bandwidth GB/s (4 KiB pages, huge pages):",
          {t: (round(v.pages_4k, 1), round(v.huge_pages, 1)) for t, v in bandwidth.items()}, flush=True)
    results: list[bench.BenchResult] = []
    estimates: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for typ in args.types:
            depths = [args.layers] if args.no_estimate else [args.layers, args.layers + 4]
            files = {}
            for n_layer in depths:
                path = Path(tmp) / f"synth-{args.preset}-{n_layer}L-{args.experts}e-{typ}.gguf"
                t0 = time.perf_counter()
                write_synth(path, n_layer, args.experts, typ, args.preset, 0)
                gb, dt = path.stat().st_size / 1e9, time.perf_counter() - t0
                print(f"wrote {path.name} ({gb:.2f} GB) in {dt:.0f} s", flush=True)
                files[n_layer] = str(path)
            for threads in args.threads:
                by_depth = []
                for path in files.values():
                    r = bench.bench_file(path, threads, args.prompt, args.gen, llama=llama, reps=args.reps,
                                         bandwidth=bandwidth[threads], llama_mmap=llama_mmap)
                    r.path = Path(path).name
                    print(bench.format_table([r]), flush=True)
                    by_depth.append(r)
                results.extend(by_depth)
                if len(by_depth) == 2:
                    est = bench.estimate_full(by_depth[0], by_depth[1], bench.PRESET_LAYERS[args.preset])
                    estimates.append({**est, "type": typ, "threads": threads})
            for path in files.values():
                Path(path).unlink()
    table = bench.format_table(results, estimates)
    print(table)
    doc = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "isa": _core.active_isa(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "preset": args.preset, "experts": args.experts, "prompt_tokens": args.prompt, "gen_tokens": args.gen,
        "reps": args.reps,
        "bandwidth_gbs": {t: {"4k_pages": v.pages_4k, "huge_pages": v.huge_pages}
                          for t, v in bandwidth.items()},
        "results": [r.as_dict() for r in results],
        "full_model_estimates": estimates,
        "table": table.splitlines(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
