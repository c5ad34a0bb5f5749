"""Single-thread matvec throughput of every dot-product kernel, per type and ISA, as JSON.

    python benchmarks/bench_kernels.py [--types q4_k,q8_0] [--isas avx2,avx512] [--mb 128]
                                       [--out benchmarks/results/kernels.json]

Each number is GB/s of weight bytes read by `_core.matvec_bench` (a C++ loop of vec_dot over
every row, one activation row, the fastest of --iters passes):

- streaming: a matrix of about --mb MB, beyond the last-level cache, so the weights come from
  DRAM; a kernel that keeps up with memory reaches the core's read bandwidth here. Measured on
  4 KiB pages (as a mapped file) and on transparent huge pages (as qwen35cpu's weight copy), beside
  the plain read bandwidth of one thread on each (`read_bw_gbps`).
- cached: a matrix of about 512 KB that stays in L2; this is the kernel's compute speed, and a
  kernel is memory-bound when it is well above the streaming number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from qwen35cpu import _core

TYPES = {
    "f32": 0, "f16": 1, "bf16": 30, "q8_0": 8, "q4_0": 2, "iq4_nl": 20,
    "q2_k": 10, "q3_k": 11, "q4_k": 12, "q5_k": 13, "q6_k": 14, "iq4_xs": 23,
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def rows_for(type_id: int, n: int, target_bytes: float) -> int:
    info = _core.type_info(type_id)
    row_bytes = n // info["block_size"] * info["type_size"]
    return max(1, int(target_bytes // row_bytes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--types", default=",".join(TYPES), help="comma-separated, from: " + ",".join(TYPES))
    ap.add_argument("--isas", default=None, help="comma-separated (default: every supported one)")
    ap.add_argument("--n", type=int, default=4096, help="row length (values)")
    ap.add_argument("--mb", type=float, default=1024.0,
                    help="streaming matrix size in MB (beyond the last-level cache: 480 MiB on some Xeons)")
    ap.add_argument("--iters", type=int, default=8, help="timed passes over the streaming matrix")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    types = [t.strip().lower() for t in args.types.split(",") if t.strip()]
    unknown = [t for t in types if t not in TYPES]
    if unknown:
        ap.error(f"unknown type(s) {', '.join(unknown)}; choose from {', '.join(TYPES)}")
    supported = list(_core.isas())
    isas = supported if args.isas is None else [i.strip() for i in args.isas.split(",") if i.strip()]
    bad = [i for i in isas if i not in supported]
    if bad:
        ap.error(f"ISA(s) {', '.join(bad)} not supported here; supported: {', '.join(supported)}")

    read_bw = {"4k_pages": _core.read_bandwidth(1, int(args.mb * 1e6), 5, False),
               "huge_pages": _core.read_bandwidth(1, int(args.mb * 1e6), 5, True)}
    print(f"one thread reads {read_bw['4k_pages']:.1f} GB/s on 4 KiB pages, "
          f"{read_bw['huge_pages']:.1f} on huge pages", flush=True)
    results = []
    for name in types:
        tid = TYPES[name]
        big_rows = rows_for(tid, args.n, args.mb * 1e6)
        small_rows = rows_for(tid, args.n, 512e3)
        for isa in isas:
            # The scalar reference is slow: one pass of the streaming matrix is enough for it.
            iters = 1 if isa == "scalar" else args.iters
            streaming = _core.matvec_bench(tid, isa, big_rows, args.n, iters)
            huge = _core.matvec_bench(tid, isa, big_rows, args.n, iters, 0, True)
            cached = _core.matvec_bench(tid, isa, small_rows, args.n, 50)
            results.append({"type": name, "isa": isa, "streaming_gbps": round(streaming, 2),
                            "streaming_huge_gbps": round(huge, 2), "cached_gbps": round(cached, 2),
                            "rows": big_rows, "n": args.n})
            line = (f"{name:7s} {isa:7s} streaming {streaming:7.2f} GB/s (huge pages {huge:7.2f})  "
                    f"cached {cached:7.2f} GB/s")
            print(line, flush=True)

    report = {
        "benchmark": "single-thread matvec (vec_dot over every row), GB/s of weights read",
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "isas": supported,
        "active_isa": _core.active_isa(),
        "qwen35cpu_isa_env": os.environ.get("QWEN35CPU_ISA", ""),
        "n": args.n,
        "streaming_mb": args.mb,
        "read_bw_gbps": read_bw,
        "results": results,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
