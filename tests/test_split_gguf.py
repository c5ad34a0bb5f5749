"""Split GGUF sets (llama.cpp's gguf-split layout) load as one model, and broken sets are refused."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest

import qwen35cpu

NAME = "nv2"
PROMPT = [1, 5, 9, 2, 7, 3]


def write_split(src: Path, dst: Path, max_tensors: int, *, reverse: bool = True) -> list[Path]:
    """Rewrite `src` as a split set with gguf-py's writer (the same keys gguf-split writes).

    Tensors go in reverse order so token_embd.weight lands in the last part, away from the metadata.
    """
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, "qwen35moe", split_max_tensors=max_tensors)
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        vtype = f.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(f.name, f.contents(), vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(f.name, f.contents(), vtype)
    tensors = list(reversed(r.tensors)) if reverse else list(r.tensors)
    for t in tensors:
        w.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    parts = sorted(dst.parent.glob(f"{dst.stem}-*-of-*.gguf"))
    assert len(parts) > 1, parts
    return parts


@pytest.fixture(scope="module")
def single(converted: Callable[[str, str], Path]) -> Path:
    return converted(NAME, "q8_0")


@pytest.fixture
def parts(single: Path, tmp_path: Path) -> list[Path]:
    n = len(gguf.GGUFReader(single).tensors)
    got = write_split(single, tmp_path / "m.gguf", max_tensors=n // 3 + 1)
    assert len(got) == 3  # the swap test needs a middle part
    return got


def logits(path: Path) -> np.ndarray:
    return qwen35cpu.load(path, n_threads=1).session(n_ctx=len(PROMPT)).eval(PROMPT, all_logits=True)


def test_split_logits_equal_single_file(single: Path, parts: list[Path]) -> None:
    # The same bytes reached through several mappings must give bit-identical logits.
    first_tensors = {t.name for t in gguf.GGUFReader(parts[0]).tensors}
    assert "token_embd.weight" not in first_tensors
    model = qwen35cpu.load(parts[0], n_threads=1)
    assert model._core.paths == [str(p) for p in parts]
    assert model._core.file_size == sum(p.stat().st_size for p in parts)
    assert model.metadata["split.count"] == len(parts)
    np.testing.assert_array_equal(logits(parts[0]), logits(single))


def test_missing_part(parts: list[Path]) -> None:
    parts[1].unlink()
    msg = rf"{parts[1].name}: missing part 2 of {len(parts)} of the split model"
    with pytest.raises(ValueError, match=msg):
        qwen35cpu.load(parts[0])


def test_extra_part(parts: list[Path]) -> None:
    n = len(parts)
    extra = parts[0].with_name(f"m-{n + 1:05d}-of-{n:05d}.gguf")
    shutil.copy(parts[1], extra)
    with pytest.raises(ValueError, match=rf"{extra.name}: extra part: the split set has {n} parts"):
        qwen35cpu.load(parts[0])


def test_swapped_parts(parts: list[Path]) -> None:
    tmp = parts[1].with_suffix(".tmp")
    parts[1].rename(tmp)
    parts[2].rename(parts[1])
    tmp.rename(parts[2])
    with pytest.raises(ValueError, match=r"mismatched part: its metadata says part 3 of .*expected part 2"):
        qwen35cpu.load(parts[0])


def test_part_of_another_split(single: Path, parts: list[Path], tmp_path: Path) -> None:
    # The same tensors split in the opposite order: same part count and tensor total, so only the
    # cross-part tensor check can tell that part 2 belongs to another set.
    (tmp_path / "other").mkdir()
    n = len(gguf.GGUFReader(single).tensors)
    other = write_split(single, tmp_path / "other" / "m.gguf", max_tensors=n // 3 + 1, reverse=False)
    assert len(other) == len(parts)
    shutil.copy(other[1], parts[1])
    with pytest.raises(ValueError, match=r"tensor '.*' is also in .* \(mismatched split parts\)"):
        qwen35cpu.load(parts[0])


def test_loading_a_later_part_names_the_first(parts: list[Path]) -> None:
    msg = rf"this is part 2 of {len(parts)} of a split model; load the first part, .*{parts[0].name}"
    with pytest.raises(ValueError, match=msg):
        qwen35cpu.load(parts[1])


def test_first_part_renamed(parts: list[Path]) -> None:
    renamed = parts[0].with_name("renamed.gguf")
    parts[0].rename(renamed)
    msg = r"renamed\.gguf: split\.count is \d+ but the file name does not follow"
    with pytest.raises(ValueError, match=msg):
        qwen35cpu.load(renamed)


def test_missing_tensor_count(parts: list[Path]) -> None:
    # Part 2 rewritten with one tensor fewer but its split keys intact: nothing is duplicated, yet
    # the parts no longer hold split.tensors.count tensors.
    r = gguf.GGUFReader(parts[1])
    w = gguf.GGUFWriter(parts[1].with_suffix(".new"), "qwen35moe")
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        w.add_key_value(f.name, f.contents(), f.types[0])
    for t in r.tensors[:-1]:
        w.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    parts[1].with_suffix(".new").replace(parts[1])
    total = sum(len(gguf.GGUFReader(p).tensors) for p in parts)
    msg = rf"the split parts hold {total} tensors, but split\.tensors\.count is {total + 1} \(mismatched"
    with pytest.raises(ValueError, match=msg):
        qwen35cpu.load(parts[0])


def test_info_describes_the_whole_set(single: Path, parts: list[Path]) -> None:
    from qwen35cpu.fileinfo import inspect_file

    whole, split = inspect_file(single), inspect_file(parts[0])
    assert split.n_params == whole.n_params and split.weight_bytes == whole.weight_bytes
    assert split.file_size == sum(p.stat().st_size for p in parts)
