"""Session files: a session's tokens, state and checkpoints, saved and loaded.

Layout (all integers little-endian):

    offset 0   magic b"Q35CPUSS"
           8   u32 format version
          12   u32 reserved, 0
          16   u64 size of the whole file, checksum included
          24   u64 length M of the metadata
          32   metadata: UTF-8 JSON (model identity, n_ctx, n_vocab, and one entry per state)
      32 + M   per entry, in the metadata's order: tokens (int32 x n_tokens), logits of the last
               token (float32 x n_vocab, if the entry has them), the C++ state blob. A blob may
               leave out leading KV chunks it shares with an earlier entry, its "base": the
               checkpoints of one conversation store their common prefix once.
    size - 32  SHA-256 of every byte before it

The first entry is the session's current state, the others its checkpoints, oldest first.
Loading checks the magic, version, size and checksum, then that the file was saved from this
model, then every entry, and only then changes the session: a bad file leaves it as it was.
Writing goes to a temporary file in the target's folder, renamed over the target at the end,
so a crash mid-write never leaves a half-written session file under the target name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import struct
import tempfile
import weakref
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from . import _core

if TYPE_CHECKING:
    from .model import Model, Session

MAGIC = b"Q35CPUSS"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<8sIIQQ")  # magic, version, reserved, file size, metadata length
_SUM = 32  # SHA-256 digest bytes
# How much of a few weight tensors goes into the model identity: enough to tell two checkpoints
# of one architecture apart, small enough that identifying a 20 GB model reads a few pages.
_SAMPLE_BYTES = 4096
_SAMPLED = ("token_embd.weight", "output_norm.weight", "output.weight")

_identities: weakref.WeakKeyDictionary[Model, str] = weakref.WeakKeyDictionary()


def model_identity(model: Model) -> str:
    """Hex SHA-256 of the hyper-parameters, every tensor's name/type/shape, the file sizes and a
    sample of the weights. Two files with the same identity hold the same model layout; a
    session saved from one restores into the other. A split model counts all of its parts."""
    if model in _identities:
        return _identities[model]
    # _core.Model.paths lists the parts of a split GGUF set (where the loader supports them).
    parts = [_core.GgufFile(p) for p in getattr(model._core, "paths", [model.path])]
    tensors = [t for f in parts for t in f.tensors]
    desc = {
        "config": model._core.config,
        "tensors": sorted([t.name, int(t.type), list(t.ne)] for t in tensors),
        "file_sizes": [int(f.file_size) for f in parts],
    }
    h = hashlib.sha256(json.dumps(desc, sort_keys=True).encode())
    for name in _SAMPLED:
        f = next((f for f in parts if name in {t.name for t in f.tensors}), None)
        if f is not None:
            h.update(name.encode())
            h.update(bytes(f.tensor_bytes(name)[:_SAMPLE_BYTES]))
    _identities[model] = h.hexdigest()
    return _identities[model]


@dataclass
class _Entry:
    tokens: tuple[int, ...]
    logits: np.ndarray | None
    state: Any  # _core.SessionState


# ---------------------------------------------------------------- save


def save(session: Session, path: str | os.PathLike[str]) -> None:
    """Write the session (tokens, state, checkpoints) to path atomically."""
    path = os.fspath(path)
    model = session.model
    current = session.checkpoint()
    entries = [current, *session.checkpoints]
    meta = {
        "model": {
            "identity": model_identity(model),
            "name": os.path.basename(model.path),
        },
        "n_ctx": session.n_ctx,
        "n_vocab": model.config.n_vocab,
    }
    # KV chunks an entry shares with an earlier one (checkpoints of one conversation share their
    # common prefix) are written once: the later blob leaves them out and names its base.
    specs: list[dict[str, Any]] = []
    for i, cp in enumerate(entries):
        shared = [_core.SessionState.shared_prefix_chunks(cp.state, e.state) for e in entries[:i]]
        k = max(shared, default=0)
        base = shared.index(k) if k > 0 else -1
        specs.append(
            {
                "n_tokens": len(cp.tokens),
                "logits": cp.logits is not None,
                "base": base,
                "skip_chunks": k,
                "state_bytes": cp.state.serialized_size(k),
            }
        )
    meta["entries"] = specs
    meta_bytes = json.dumps(meta, separators=(",", ":")).encode()
    V = model.config.n_vocab
    size = _HEAD.size + len(meta_bytes) + _SUM
    size += sum(4 * e["n_tokens"] + (4 * V if e["logits"] else 0) + e["state_bytes"] for e in specs)

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            h = hashlib.sha256()

            def put(b: bytes | memoryview) -> None:
                h.update(b)
                out.write(b)

            put(_HEAD.pack(MAGIC, FORMAT_VERSION, 0, size, len(meta_bytes)))
            put(meta_bytes)
            for cp, spec in zip(entries, specs, strict=True):
                put(np.asarray(cp.tokens, dtype="<i4").tobytes())
                if cp.logits is not None:
                    put(np.ascontiguousarray(cp.logits, dtype="<f4").tobytes())
                put(cp.state.serialize(spec["skip_chunks"]))  # one blob in memory at a time
            out.write(h.digest())
            _check_written(out, size, path)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _check_written(out: IO[bytes], size: int, path: str) -> None:
    if out.tell() != size:  # the size formula and the writer disagree: a bug, never a bad file
        raise RuntimeError(f"{path}: wrote {out.tell()} bytes, expected {size}")


def _unlink_quietly(p: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(p)


# ---------------------------------------------------------------- load


def read(model: Model, path: str | os.PathLike[str]) -> tuple[int, list[_Entry]]:
    """Parse and check a session file for model: (saved n_ctx, entries). ValueError if unusable."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < _HEAD.size + _SUM:
            raise ValueError(f"{path}: not a qwen35cpu session file (only {size} bytes; truncated?)")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _parse(model, path, mm, size)


def _parse(model: Model, path: str, mm: mmap.mmap, size: int) -> tuple[int, list[_Entry]]:
    magic, version, _, declared, meta_len = _HEAD.unpack_from(mm, 0)
    if magic != MAGIC:
        raise ValueError(f"{path}: not a qwen35cpu session file (bad magic)")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: session file format version {version}; this qwen35cpu reads version {FORMAT_VERSION}"
        )
    if declared != size:
        what = "truncated" if size < declared else "has trailing bytes"
        raise ValueError(f"{path}: session file is {what} ({size} bytes, header says {declared})")
    body = memoryview(mm)[: size - _SUM]
    try:
        ok = hashlib.sha256(body).digest() == mm[size - _SUM : size]
    finally:
        body.release()
    if not ok:
        raise ValueError(f"{path}: session file is corrupt (checksum mismatch)")
    if meta_len > size - _HEAD.size - _SUM:
        raise ValueError(f"{path}: session file metadata runs past the end")
    try:
        meta = json.loads(mm[_HEAD.size : _HEAD.size + meta_len].decode())
        mid = meta["model"]["identity"]
        n_ctx = int(meta["n_ctx"])
        n_vocab = int(meta["n_vocab"])
        specs = [
            (int(e["n_tokens"]), bool(e["logits"]), int(e["state_bytes"]), int(e["base"]))
            for e in meta["entries"]
        ]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: session file metadata is malformed ({type(e).__name__})") from None
    if mid != model_identity(model):
        saved_from = meta["model"].get("name", "?")
        raise ValueError(
            f"{path}: session was saved from another model ({saved_from!s}, identity {str(mid)[:12]}), "
            f"not {os.path.basename(model.path)} (identity {model_identity(model)[:12]})"
        )
    V = model.config.n_vocab
    bad_spec = any(n < 0 or b < 0 or not -1 <= j < i for i, (n, _, b, j) in enumerate(specs))
    if n_vocab != V or not specs or bad_spec:
        raise ValueError(f"{path}: session file metadata is inconsistent")
    payload = sum(4 * n + (4 * V if lg else 0) + b for n, lg, b, _ in specs)
    if _HEAD.size + meta_len + payload + _SUM != size:
        raise ValueError(f"{path}: session file sections do not add up to its size")

    entries: list[_Entry] = []
    off = _HEAD.size + meta_len
    for i, (n, has_logits, nb, base_index) in enumerate(specs):
        tokens = np.frombuffer(mm, dtype="<i4", count=n, offset=off).astype(np.int64)
        off += 4 * n
        if n and (tokens.min() < 0 or tokens.max() >= V):
            raise ValueError(f"{path}: session file entry {i} holds a token id outside the vocabulary")
        logits = None
        if has_logits:
            logits = np.frombuffer(mm, dtype="<f4", count=V, offset=off).astype(np.float32)
            off += 4 * V
        # The base entry holds the KV chunks the blob leaves out (and shares later ones that are
        # byte-equal). No other entry may stand in for it: its rows would be taken unchecked.
        tok = tuple(int(t) for t in tokens)
        base = entries[base_index] if base_index >= 0 else None
        blob = memoryview(mm)[off : off + nb]
        try:
            state = _core.SessionState.deserialize(model._core, blob, base.state if base else None)
        except ValueError as e:
            raise ValueError(f"{path}: session file entry {i}: {e}") from None
        finally:
            blob.release()
        off += nb
        if state.n_past != n:
            raise ValueError(f"{path}: session file entry {i} has {state.n_past} positions but {n} tokens")
        entries.append(_Entry(tok, logits, state))
    return n_ctx, entries


def load_into(session: Session, path: str | os.PathLike[str]) -> None:
    """Replace session's tokens, state and checkpoints with a file's; unchanged on any error."""
    _apply(session, os.fspath(path), read(session.model, path)[1])


def load_session(
    model: Model, path: str | os.PathLike[str], n_ctx: int | None = None, *, max_checkpoints: int = 8
) -> Session:
    """A new session of model holding a file's state; n_ctx defaults to the saved session's."""
    from .model import Session

    saved_ctx, entries = read(model, path)
    session = Session(model, n_ctx or saved_ctx, max_checkpoints=max_checkpoints)
    _apply(session, os.fspath(path), entries)
    return session


def _apply(session: Session, path: str, entries: list[_Entry]) -> None:
    from .model import Checkpoint

    longest = max(len(e.tokens) for e in entries)
    if longest > session.n_ctx:
        raise ValueError(
            f"{path}: session holds {longest} tokens, more than this session's n_ctx {session.n_ctx}"
        )
    cps = [Checkpoint(e.tokens, e.state, e.logits) for e in entries]
    # Everything is checked: this restore cannot fail on shapes or n_ctx.
    session.restore(cps[0])
    keep = cps[1:]
    session.checkpoints = keep[len(keep) - session.max_checkpoints :] if session.max_checkpoints else []
    session.last_eval_count = 0
