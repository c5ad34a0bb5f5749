"""Where the committed goldens live and how to read them; helpers shared by the tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np

from qwen35cpu.random_checkpoint import CFG_A

FIXTURES = Path(__file__).parent / "fixtures" / "tiny"

# Every matrix's input dimension is 256: H, nh*D (attention output), nv*dv (DeltaNet output), I, Is.
CFG_256 = {
    **CFG_A,
    "hidden_size": 256,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 128,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 64,
    "linear_value_head_dim": 64,
    "moe_intermediate_size": 256,
    "shared_expert_intermediate_size": 256,
    "num_experts": 8,
    "num_experts_per_tok": 2,
}



def build_cpp_target(build: Path, target: str) -> Path:
    """Configure the project with the C++ tests on (tests/cpp) in `build` and build `target`; its path."""
    import shutil

    cmake = shutil.which("cmake")
    assert cmake, "cmake is needed to build the C++ tests (pip install '.[test]')"
    root = Path(__file__).resolve().parents[1]
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(
        [cmake, "-S", str(root), "-B", str(build), *gen, "-DQ35_BUILD_TESTS=ON", "-DCMAKE_BUILD_TYPE=Release",
         "-DCMAKE_DISABLE_FIND_PACKAGE_Python=ON"],
        check=True, capture_output=True,
    )
    subprocess.run([cmake, "--build", str(build), "--target", target, "-j", "2"], check=True,
                   capture_output=True)
    return build / target


def list_fixtures() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "golden.npz").exists())


def fixture_dir(name: str) -> Path:
    return FIXTURES / name


def load_golden(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(prompt ids [n] int32, transformers' logits [n, vocab] float32)."""
    with np.load(fixture_dir(name) / "golden.npz") as z:
        return z["prompt"], z["logits"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`qwen35cpu ARGS` in a subprocess, with the environment as it is: the subprocess imports the same
    qwen35cpu as the tests (installed, or the developer build through PYTHONPATH=src)."""
    return subprocess.run(
        [sys.executable, "-m", "qwen35cpu.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def mean_kl(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    """Mean over positions of KL(softmax(p) || softmax(q)); logits are [positions, vocab]."""
    lp = p_logits - p_logits.max(1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(1, keepdims=True))
    lq = q_logits - q_logits.max(1, keepdims=True)
    lq -= np.log(np.exp(lq).sum(1, keepdims=True))
    return float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=1)))


TensorFn = Callable[[gguf.ReaderTensor], tuple[np.ndarray, object]]


def rewrite_gguf(src: Path, dst: Path, tensor: TensorFn) -> Path:
    """A copy of the GGUF src with the same metadata and each tensor replaced by tensor(t) ->
    (data, raw_dtype): float32 data in numpy order with raw_dtype None, or a type's bytes with its
    GGMLQuantizationType."""
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, "qwen35moe")
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        vtype = f.types[0]
        sub = {"sub_type": f.types[-1]} if vtype == gguf.GGUFValueType.ARRAY else {}
        w.add_key_value(f.name, f.contents(), vtype, **sub)
    for t in r.tensors:
        data, raw_dtype = tensor(t)
        w.add_tensor(t.name, data, raw_dtype=raw_dtype)  # type: ignore[arg-type]
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst
