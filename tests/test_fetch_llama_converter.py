"""tools/fetch_llama_converter.py without the network: a synthetic sdist stands in for the download."""

from __future__ import annotations

import importlib.util
import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "fetch_llama_converter.py"


@pytest.fixture
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_llama_converter_under_test", TOOL)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sdist(path: Path, root: str, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


GOOD = {
    "vendor/llama.cpp/convert_hf_to_gguf.py": b"print('converter')\n",
    "vendor/llama.cpp/LICENSE": b"MIT\n",
    "vendor/llama.cpp/conversion/__init__.py": b"",
    "vendor/llama.cpp/conversion/qwen.py": b"# qwen\n",
    "vendor/llama.cpp/gguf-py/gguf/__init__.py": b"",
    "vendor/llama.cpp/ggml/src/ggml.c": b"int x;\n",  # not needed: left out
    "vendor/llama.cpp/convert_lora_to_gguf.py": b"",  # not needed: left out
    "llama_cpp/__init__.py": b"",  # the Python binding: left out
}


def _fake_download(tool: ModuleType, sdist: Path, calls: list[int]) -> Callable[[Path], Path]:
    def download(dest: Path) -> Path:
        calls.append(1)
        dest.mkdir(parents=True)
        out = dest / tool.SDIST
        out.write_bytes(sdist.read_bytes())
        return out

    return download


def test_fetch_extracts_only_the_converter_once(tool: ModuleType, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = f"llama_cpp_python-{tool.VERSION}"
    sdist = _sdist(tmp_path / "s.tar.gz", root, GOOD)
    calls: list[int] = []
    monkeypatch.setattr(tool, "_download", _fake_download(tool, sdist, calls))
    cache = tmp_path / "cache"
    monkeypatch.setenv(tool.ENV_VAR, str(cache))
    assert tool.cached_converter() is None
    (cache / ".partial-stale").mkdir(parents=True)  # left by an interrupted run

    d = tool.fetch()
    assert d == cache / "llama.cpp" == tool.cached_converter()
    files = sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())
    assert files == ["LICENSE", "conversion/__init__.py", "conversion/qwen.py", "convert_hf_to_gguf.py",
                     "gguf-py/gguf/__init__.py"]
    assert (d / "convert_hf_to_gguf.py").read_bytes() == GOOD["vendor/llama.cpp/convert_hf_to_gguf.py"]
    assert sorted(p.name for p in cache.iterdir()) == ["llama.cpp"]  # no partial left behind

    assert tool.fetch() == d and calls == [1]  # idempotent: no second download


def test_interrupted_extraction_leaves_no_cache(tool: ModuleType, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = f"llama_cpp_python-{tool.VERSION}"
    sdist = _sdist(tmp_path / "s.tar.gz", root, GOOD)
    monkeypatch.setattr(tool, "_download", _fake_download(tool, sdist, []))
    cache = tmp_path / "cache"

    def crash(sdist: Path, into: Path) -> None:
        (into / "gguf-py").mkdir(parents=True)
        raise KeyboardInterrupt  # killed half-way through

    monkeypatch.setattr(tool, "_extract", crash)
    with pytest.raises(KeyboardInterrupt):
        tool.fetch(cache)
    assert tool.cached_converter(cache) is None
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("bad", ["../evil.py", "/abs/evil.py"])
def test_unsafe_member_names_are_refused(tool: ModuleType, bad: str) -> None:
    with pytest.raises(ValueError, match="unsafe member"):
        tool._wanted(bad)


def test_sdist_without_the_converter_is_an_error(tool: ModuleType, tmp_path: Path) -> None:
    sdist = _sdist(tmp_path / "s.tar.gz", f"llama_cpp_python-{tool.VERSION}", {"llama_cpp/__init__.py": b""})
    with pytest.raises(RuntimeError, match=r"convert_hf_to_gguf\.py or gguf-py/ missing"):
        tool._extract(sdist, tmp_path / "out")
