"""MODEL arguments: a local GGUF path, or a GGUF on the Hugging Face Hub.

Accepted forms:
  path/to/model.gguf            a local file (or the first part of a local split set)
  owner/repo:QUANT              the GGUF (or split set) in the repo whose name carries QUANT,
                                matched case-insensitively as a whole word ("q4_k" is not "Q4_K_M")
  owner/repo                    the repo's only GGUF
  owner/repo/dir/file.gguf      that file of the repo (all parts when it is part of a split set)
A repo may carry a revision: owner/repo@rev:QUANT.

Downloads go through huggingface_hub (its cache, progress bars, resumable partial files). Once a
file is cached it is used without the network: with HF_HUB_OFFLINE=1, or when the Hub cannot be
reached, the repo's file list comes from the cached snapshot.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

SPLIT_RE = re.compile(r"^(?P<prefix>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
REPO_RE = re.compile(
    r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+?))?(?::(?P<quant>[\w.-]+))?$"
)
FILE_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w.-]+))?/(?P<file>.+\.gguf)$", re.I)


class ModelNotFound(ValueError):
    """MODEL names nothing usable; the message is one line that says what exists instead."""


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None = None
    quant: str | None = None
    filename: str | None = None  # a file inside the repo (owner/repo/file.gguf)


@dataclass(frozen=True)
class Unit:
    """One loadable model in a file listing: a single GGUF or every part of a split set."""

    files: tuple[str, ...]
    missing: str = ""  # for an incomplete split set: what is wrong with it

    @property
    def first(self) -> str:
        return self.files[0]

    @property
    def label(self) -> str:
        if len(self.files) == 1:
            return self.first
        return f"{self.first} (+{len(self.files) - 1} parts)"


def parse(spec: str) -> Path | HubRef:
    """Tell a local path from a Hub reference. Existing paths always win."""
    if os.path.exists(spec):
        return Path(spec)
    looks_local = spec.startswith(("/", "./", "../", "~")) or (os.sep == "\\" and ":" in spec[:3])
    m = FILE_RE.match(spec)
    if m and not looks_local and spec.count("/") >= 2:
        return HubRef(m["repo"], m["rev"], None, m["file"])
    m = REPO_RE.match(spec)
    if m and not looks_local and not spec.lower().endswith(".gguf"):
        return HubRef(m["repo"], m["rev"], m["quant"])
    raise ModelNotFound(
        f"{spec}: no such file, and not a Hub reference (owner/repo:QUANT or owner/repo/file.gguf)"
    )


def units(files: Sequence[str]) -> list[Unit]:
    """Group a listing's GGUF files into loadable models (vision projectors left out)."""
    singles: list[Unit] = []
    sets: dict[tuple[str, int], list[tuple[int, str]]] = {}
    for f in sorted(files):
        base = f.rsplit("/", 1)[-1]
        if not base.lower().endswith(".gguf") or base.lower().startswith("mmproj"):
            continue
        m = SPLIT_RE.match(f)
        if m:
            sets.setdefault((m["prefix"], int(m["count"])), []).append((int(m["no"]), f))
        else:
            singles.append(Unit((f,)))
    out = list(singles)
    for (prefix, count), parts in sets.items():
        got = sorted(parts)
        missing = ""
        if [no for no, _ in got] != list(range(1, count + 1)):
            have = ", ".join(str(no) for no, _ in got)
            missing = f"split set {prefix}-*-of-{count:05d}.gguf is incomplete (parts present: {have})"
        # Kept (and refused only if selected) so a broken set does not hide the repo's other models.
        out.append(Unit(tuple(f for _, f in got), missing))
    return sorted(out, key=lambda u: u.first)


def quant_matches(path: str, quant: str) -> bool:
    # A whole word of the path: not preceded by a letter or digit, not followed by one or by "_"
    # (so Q4_K does not pick Q4_K_M, and Q8_0 does not pick Q8_0_L), case-insensitive.
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(quant)}(?![A-Za-z0-9_])", path, re.I) is not None


def pick(
    files: Sequence[str], *, quant: str | None = None, filename: str | None = None, where: str = ""
) -> Unit:
    """The one unit of `files` that `quant` or `filename` selects; ModelNotFound listing the choices."""
    all_units = units(files)
    if filename is not None:
        for u in all_units:
            if filename in u.files:
                if u.missing:
                    raise ModelNotFound(f"{where}: {u.missing}")
                return u
        raise ModelNotFound(f"{where}: no file {filename}; GGUF files: {_listing(all_units)}")
    cands = all_units if quant is None else [u for u in all_units if quant_matches(u.first, quant)]
    if len(cands) == 1:
        if cands[0].missing:
            raise ModelNotFound(f"{where}: {cands[0].missing}")
        return cands[0]
    if not all_units:
        raise ModelNotFound(f"{where}: no GGUF files")
    if not cands:
        raise ModelNotFound(f"{where}: no GGUF matches quant {quant}; available: {_listing(all_units)}")
    what = "several GGUFs match quant " + quant if quant else "several GGUFs, pick one with :QUANT"
    raise ModelNotFound(f"{where}: {what}: {_listing(cands)}")


def _listing(us: Sequence[Unit]) -> str:
    return ", ".join(u.label for u in us)


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _cached_files(ref: HubRef) -> tuple[Path, list[str]]:
    """The cached snapshot folder of the repo and the files in it (no network)."""
    from huggingface_hub import snapshot_download

    folder = Path(snapshot_download(ref.repo_id, revision=ref.revision, local_files_only=True))
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()]
    return folder, files


def _remote_files(ref: HubRef) -> list[str]:
    from huggingface_hub import HfApi

    return list(HfApi().list_repo_files(ref.repo_id, revision=ref.revision))


def _download(ref: HubRef, filename: str, offline: bool) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(ref.repo_id, filename, revision=ref.revision, local_files_only=offline))


def resolve(
    spec: str,
    *,
    offline: bool | None = None,
    list_files: Callable[[HubRef], list[str]] | None = None,
    download: Callable[[HubRef, str, bool], Path] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Local path of the GGUF that MODEL names (its first part for a split set), downloading it if needed.

    list_files / download replace the Hub calls (tests pass fakes; nothing here needs the network
    when the files are cached). `log` receives one line saying what MODEL resolved to.
    """
    target = parse(spec)
    if isinstance(target, Path):
        return _resolve_local(target)
    offline = offline_mode() if offline is None else offline
    download = download or _download
    list_files = list_files or _remote_files
    files: list[str] | None = None
    if not offline:
        try:
            files = list_files(target)
        except Exception as e:  # no network, rate limit, ...: fall back to the cache
            kinds = {c.__name__ for c in type(e).__mro__}
            if "GatedRepoError" in kinds:
                how = "accept its terms on the Hub and log in (hf auth login)"
                raise ModelNotFound(f"{target.repo_id}: gated repository: {how}") from None
            if kinds & {"RepositoryNotFoundError", "RevisionNotFoundError"}:
                what = "no such repository or revision on the Hugging Face Hub"
                raise ModelNotFound(f"{target.repo_id}: {what}") from None
            files = None
    if files is None:
        try:
            _, files = _cached_files(target)
        except Exception:
            why = "offline (HF_HUB_OFFLINE=1)" if offline else "the Hub cannot be reached"
            raise ModelNotFound(f"{spec}: {why} and the repo is not in the local cache") from None
        offline = True
    unit = pick(files, quant=target.quant, filename=target.filename, where=target.repo_id)
    if log is not None:
        src = "the local cache" if offline else "the Hugging Face Hub"
        log(f"{spec}: {unit.label} from {src}")
    paths = []
    for f in unit.files:
        try:
            paths.append(download(target, f, offline))
        except Exception as e:
            raise ModelNotFound(f"{target.repo_id}/{f}: download failed: {_one_line(e)}") from None
    return paths[0]


def _resolve_local(path: Path) -> Path:
    if path.is_dir():
        ggufs = [p.relative_to(path).as_posix() for p in path.rglob("*.gguf")]
        return path / pick(ggufs, where=str(path)).first
    return path


def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
