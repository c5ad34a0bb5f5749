"""Where the matrices live: the file mapping or an anonymous (huge-page) copy, and the choice between them."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest
from fixture_util import load_golden, run_cli

import qwen35cpu

NAME = "nv2"
# Tensors the loader reads once into float vectors; every other tensor is a matrix.
VECTOR_SUFFIXES = ("_norm.weight", "ssm_conv1d.weight", "ssm_dt.bias", "ssm_a")


def thp_on_request() -> bool:
    try:
        s = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False
    return "[always]" in s or "[madvise]" in s


def meminfo(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


@pytest.mark.parametrize("typ", ["f32", "q8_0"])
def test_copy_and_mapping_give_identical_logits(converted: Callable[[str, str], Path], typ: str) -> None:
    path = converted(NAME, typ)
    prompt, _ = load_golden(NAME)
    mapped = qwen35cpu.load(path, n_threads=2, use_mmap=True)
    copied = qwen35cpu.load(path, n_threads=2, use_mmap=False)
    assert not mapped._core.weights_copied and mapped.weights_placement == "file mapping (asked for)"
    assert copied._core.weights_copied and copied.weights_placement.startswith("anonymous copy")
    a = mapped.session(n_ctx=len(prompt)).eval(prompt, all_logits=True)
    b = copied.session(n_ctx=len(prompt)).eval(prompt, all_logits=True)
    np.testing.assert_array_equal(a, b)


def test_copy_holds_every_matrix_but_the_embedding(converted: Callable[[str, str], Path]) -> None:
    path = converted(NAME, "q8_0")
    tensors = gguf.GGUFReader(path).tensors
    names = {t.name for t in tensors}
    assert "output.weight" in names  # untied: the embedding is read a row at a time and stays mapped
    mats = [t for t in tensors if t.name != "token_embd.weight" and not t.name.endswith(VECTOR_SUFFIXES)]
    want = sum(int(t.n_bytes) for t in mats)
    got = qwen35cpu.load(path, n_threads=1, use_mmap=False)._core.copied_bytes
    assert want <= got <= want + 64 * len(mats)  # each tensor starts on a 64-byte boundary


def test_automatic_choice(converted: Callable[[str, str], Path]) -> None:
    model = qwen35cpu.load(converted(NAME, "q8_0"), n_threads=1)
    if sys.platform.startswith("linux") and thp_on_request():
        assert model._core.weights_copied, model.weights_placement
    elif sys.platform.startswith("linux"):
        assert "transparent huge pages are off" in model.weights_placement
    else:
        assert model.weights_placement.startswith("file mapping (weights stay mapped")


def huge_sparse_model(src: Path, dst: Path, vocab: int) -> Path:
    """src with an F32 embedding and LM head of `vocab` rows: a valid model whose matrices exceed this
    machine's memory. Their data is a hole in a sparse file: nothing is written, nothing is read."""
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, "qwen35moe")
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture" or f.name.startswith("tokenizer."):
            continue
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(f.name, f.contents(), f.types[0], sub_type=f.types[-1])
        else:
            w.add_key_value(f.name, f.contents(), f.types[0])
    data = {}
    for t in r.tensors:
        if t.name in ("token_embd.weight", "output.weight"):
            n_embd = int(t.shape[0])
            w.add_tensor_info(t.name, [vocab, n_embd], np.dtype(np.float32), vocab * n_embd * 4,
                              raw_dtype=gguf.GGMLQuantizationType.F32)
        else:
            arr = np.array(t.data)
            data[t.name] = arr
            w.add_tensor_info(t.name, list(reversed([int(x) for x in t.shape])), arr.dtype, arr.nbytes,
                              raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None
    fout = w.fout[0]
    w.write_padding(fout, fout.tell())
    start = fout.tell()
    fout.close()
    # Lay the tensors out as the header says (each aligned), writing the small ones, skipping the big.
    align = w.data_alignment
    with open(dst, "r+b") as f:
        off = 0
        for t in r.tensors:
            if t.name in ("token_embd.weight", "output.weight"):
                n = vocab * int(t.shape[0]) * 4
            else:
                f.seek(start + off)
                f.write(data[t.name].tobytes())
                n = data[t.name].nbytes
            off += (n + align - 1) // align * align
        f.truncate(start + off)
    return dst


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the copy is a Linux feature")
def test_too_little_memory(converted: Callable[[str, str], Path], tmp_path: Path) -> None:
    src = converted(NAME, "f32")
    n_embd = int(qwen35cpu.load(src, n_threads=1, use_mmap=True).config.n_embd)
    # An LM head of twice the machine's memory.
    vocab = min(2**31 - 1, 2 * meminfo("MemTotal") // (4 * n_embd) + 1)
    if vocab * 4 * n_embd <= meminfo("MemTotal"):
        pytest.fail("cannot make a model larger than this machine's memory with a vocabulary under 2^31")
    big = huge_sparse_model(src, tmp_path / "big.gguf", vocab)
    assert os.stat(big).st_blocks * 512 < 100 << 20  # sparse: the file takes no real space
    mapped = qwen35cpu.load(big, n_threads=1)  # automatic: falls back to the mapping, says why
    assert not mapped._core.weights_copied
    if thp_on_request():
        why = mapped.weights_placement
        assert "copying the weights needs" in why and "available" in why
    with pytest.raises(ValueError, match=r"big\.gguf: copying the weights needs [0-9.]+ GB of memory"):
        qwen35cpu.load(big, n_threads=1, use_mmap=False)
    r = run_cli("info", str(big))  # the file itself is fine
    assert r.returncode == 0, r.stderr


def test_cli_flags(converted: Callable[[str, str], Path]) -> None:
    path = converted(NAME, "q8_0")
    for flag in ("--mmap", "--no-mmap"):
        r = run_cli("generate", str(path), "-p", "Hello", "-n", "2", "--temp", "0", "-t", "1", flag)
        assert r.returncode == 0, r.stderr
    r = run_cli("generate", str(path), "-p", "Hello", "--mmap", "--no-mmap")
    assert r.returncode == 2 and "not allowed with" in r.stderr
