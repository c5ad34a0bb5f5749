"""Converter throughput (GB of bf16 checkpoint read per second) and peak memory, as JSON.

    python benchmarks/bench_convert.py [--types q4_k_m mac192] [--threads N] [--out results.json]

A random bf16 checkpoint with realistic matrix sizes (hidden 2048, 4 layers, 16 experts of 512, vocab
32768: about 0.95 GB) is written once; each type is then converted in a fresh process that reports
its wall time and its peak memory, so the figures are the converter's alone. "peak RSS" (VmHWM)
counts the checkpoint pages read through the memory map (clean page cache the kernel can drop);
"anon" is the peak of the process's own memory (RssAnon, sampled every 5 ms) over what it held
before converting: what the conversion needs. The checkpoint sits in the page cache (it was just
written), so the numbers are the converter's compute, not the disk's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CONFIG: dict[str, Any] = {
    "vocab_size": 32768,
    "hidden_size": 2048,
    "num_hidden_layers": 4,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 32,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4,
    "num_experts": 16,
    "num_experts_per_tok": 4,
    "moe_intermediate_size": 512,
    "shared_expert_intermediate_size": 512,
    "full_attention_interval": 4,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000000.0,
    "partial_rotary_factor": 0.25,
    "mrope_section": [11, 11, 10],
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
    "mtp_num_hidden_layers": 0,
}

SHOWN = ("hidden_size", "num_hidden_layers", "num_experts", "moe_intermediate_size", "vocab_size")

# Runs in the child: convert, then print wall time and memory as JSON on the last line.
_CHILD = r"""
import json, sys, threading, time
from pathlib import Path
from qwen35cpu.convert import convert
from qwen35cpu import _core  # imports done before the baseline
src, out, out_type, threads = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
peak_anon = [0]
done = threading.Event()
def sample():
    while not done.is_set():
        peak_anon[0] = max(peak_anon[0], status("RssAnon"))
        time.sleep(0.005)
before = status("RssAnon")
th = threading.Thread(target=sample, daemon=True)
th.start()
t0 = time.perf_counter()
convert(Path(src), Path(out), out_type, n_threads=int(threads) if threads != "0" else None, progress=False)
t1 = time.perf_counter()
done.set()
th.join()
print(json.dumps({"seconds": t1 - t0, "anon_before": before, "peak_anon": peak_anon[0],
                  "peak_rss": status("VmHWM")}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--types", nargs="+", default=["bf16", "q8_0", "q4_k_m", "mac192"])
    ap.add_argument("--threads", type=int, default=0, help="quantizer threads (default: all cores)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from qwen35cpu.convert.checkpoint import Checkpoint
    from qwen35cpu.convert.writer import default_threads
    from qwen35cpu.random_checkpoint import make_random_checkpoint

    threads = args.threads or default_threads()
    load = [round(x, 2) for x in os.getloadavg()]  # a shared machine's other work slows every figure
    h, e = CONFIG["hidden_size"], CONFIG["num_experts"]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt"
        make_random_checkpoint(ckpt, CONFIG, layout="hub", dtype="bf16")
        read = sum(p.stat().st_size for p in Checkpoint(ckpt).files if p.suffix == ".safetensors")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        for t in args.types:
            out = Path(tmp) / f"{t}.gguf"
            res = subprocess.run(
                [sys.executable, "-c", _CHILD, str(ckpt), str(out), t, str(threads)],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            if res.returncode != 0:
                raise SystemExit(f"{t}: conversion failed:\n{res.stderr}")
            m = json.loads(res.stdout.strip().splitlines()[-1])
            runs.append(
                {
                    "type": t,
                    "seconds": round(m["seconds"], 3),
                    "gb_bf16_read_per_s": round(read / m["seconds"] / 1e9, 3),
                    "out_bytes": out.stat().st_size,
                    "peak_rss_bytes": m["peak_rss"],
                    "peak_anon_bytes": m["peak_anon"],
                    "peak_anon_over_start_bytes": m["peak_anon"] - m["anon_before"],
                }
            )
            out.unlink()
    result = {
        "checkpoint": "random bf16, hub layout: " + ", ".join(f"{k}={CONFIG[k]}" for k in SHOWN),
        "bf16_bytes_read": read,
        "largest_tensor_f32_bytes": 4 * h * max(CONFIG["vocab_size"], e * CONFIG["moe_intermediate_size"]),
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "runs": runs,
    }
    head = f"{'type':<8} {'seconds':>8} {'GB/s bf16':>10} {'out MB':>9} {'peak RSS MB':>12} {'anon MB':>8}"
    print(head)
    for r in runs:
        print(
            f"{r['type']:<8} {r['seconds']:>8.2f} {r['gb_bf16_read_per_s']:>10.3f} "
            f"{r['out_bytes'] / 1e6:>9.1f} {r['peak_rss_bytes'] / 1e6:>12.1f} "
            f"{r['peak_anon_over_start_bytes'] / 1e6:>8.1f}"
        )
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        print(f"wrote {args.out}")
    else:
        print(text)


if __name__ == "__main__":
    main()
