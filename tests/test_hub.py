"""MODEL resolution: local paths, owner/repo:QUANT against a fake listing, the offline HF cache.

Nothing here reaches the network: listings and downloads are fakes, and the cache test runs with
HF_HUB_OFFLINE=1 against a cache folder built by hand in the layout huggingface_hub uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qwen35cpu import hub
from qwen35cpu.hub import HubRef, ModelNotFound

# Shaped like a real quantizer's repo: singles, a split set in a folder, a vision projector.
LISTING = [
    ".gitattributes",
    "README.md",
    "Qwen3.5-35B-A3B-Q4_K_M.gguf",
    "Qwen3.5-35B-A3B-Q4_K_S.gguf",
    "Qwen3.5-35B-A3B-UD-Q4_K_XL.gguf",
    "Qwen3.5-35B-A3B-IQ4_XS.gguf",
    "Qwen3.5-35B-A3B-UD-IQ4_XS.gguf",
    "Q8_0/Qwen3.5-35B-A3B-Q8_0-00002-of-00002.gguf",
    "Q8_0/Qwen3.5-35B-A3B-Q8_0-00001-of-00002.gguf",
    "mmproj-F16.gguf",
]


def test_parse_forms(tmp_path: Path) -> None:
    local = tmp_path / "m.gguf"
    local.write_bytes(b"x")
    assert hub.parse(str(local)) == local
    assert hub.parse("Qwen/Qwen3.5-35B-A3B-GGUF:Q4_K_M") == HubRef(
        "Qwen/Qwen3.5-35B-A3B-GGUF", None, "Q4_K_M"
    )
    assert hub.parse("o/r@v1.0:q8_0") == HubRef("o/r", "v1.0", "q8_0")
    assert hub.parse("o/r") == HubRef("o/r")
    assert hub.parse("o/r/Q8_0/m-00001-of-00002.gguf") == HubRef(
        "o/r", None, None, "Q8_0/m-00001-of-00002.gguf"
    )
    for bad in ["./missing.gguf", "models/missing.gguf", "/abs/missing.gguf", "justaname"]:
        with pytest.raises(ModelNotFound, match="no such file"):
            hub.parse(bad)


@pytest.mark.parametrize(
    ("quant", "want"),
    [
        ("Q4_K_M", ("Qwen3.5-35B-A3B-Q4_K_M.gguf",)),
        ("q4_k_m", ("Qwen3.5-35B-A3B-Q4_K_M.gguf",)),
        ("ud-q4_k_xl", ("Qwen3.5-35B-A3B-UD-Q4_K_XL.gguf",)),
        (
            "q8_0",
            (
                "Q8_0/Qwen3.5-35B-A3B-Q8_0-00001-of-00002.gguf",
                "Q8_0/Qwen3.5-35B-A3B-Q8_0-00002-of-00002.gguf",
            ),
        ),
    ],
)
def test_pick_quant(quant: str, want: tuple[str, ...]) -> None:
    assert hub.pick(LISTING, quant=quant, where="o/r").files == want


def test_pick_errors_list_the_candidates() -> None:
    # Q4_K is a prefix of Q4_K_M / Q4_K_S but not a whole word of either: nothing matches.
    with pytest.raises(
        ModelNotFound, match=r"o/r: no GGUF matches quant Q4_K; available: .*Q4_K_M\.gguf"
    ) as e:
        hub.pick(LISTING, quant="Q4_K", where="o/r")
    assert "mmproj" not in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(
        ModelNotFound, match=r"several GGUFs match quant iq4_xs: .*-IQ4_XS\.gguf, .*UD-IQ4_XS\.gguf$"
    ):
        hub.pick(LISTING, quant="iq4_xs", where="o/r")
    with pytest.raises(ModelNotFound, match=r"several GGUFs, pick one with :QUANT: .*\(\+1 parts\)"):
        hub.pick(LISTING, where="o/r")
    with pytest.raises(ModelNotFound, match="no GGUF files"):
        hub.pick(["README.md"], quant="Q4_K_M", where="o/r")
    broken = ["m-Q8_0-00001-of-00003.gguf", "m-Q8_0-00003-of-00003.gguf", "m-Q4_0.gguf"]
    msg = r"o/r: split set m-Q8_0-\*-of-00003\.gguf is incomplete \(parts present: 1, 3\)"
    with pytest.raises(ModelNotFound, match=msg):
        hub.pick(broken, quant="q8_0", where="o/r")
    # A broken set elsewhere in the repo does not stand in the way of another quant.
    assert hub.pick(broken, quant="q4_0", where="o/r").files == ("m-Q4_0.gguf",)


def test_pick_file_of_a_split_set_takes_every_part() -> None:
    u = hub.pick(LISTING, filename="Q8_0/Qwen3.5-35B-A3B-Q8_0-00002-of-00002.gguf", where="o/r")
    assert len(u.files) == 2 and u.first.endswith("-00001-of-00002.gguf")
    with pytest.raises(ModelNotFound, match=r"no file nope\.gguf"):
        hub.pick(LISTING, filename="nope.gguf", where="o/r")


def test_resolve_downloads_every_part(tmp_path: Path) -> None:
    calls: list[tuple[str, str, bool]] = []

    def fake_download(ref: HubRef, filename: str, offline: bool) -> Path:
        calls.append((ref.repo_id, filename, offline))
        return tmp_path / filename

    def fake_list(ref: HubRef) -> list[str]:
        assert ref == HubRef("o/r", None, "Q8_0")
        return LISTING

    got = hub.resolve("o/r:Q8_0", offline=False, list_files=fake_list, download=fake_download)
    assert got == tmp_path / "Q8_0/Qwen3.5-35B-A3B-Q8_0-00001-of-00002.gguf"
    assert [c[1] for c in calls] == [
        "Q8_0/Qwen3.5-35B-A3B-Q8_0-00001-of-00002.gguf",
        "Q8_0/Qwen3.5-35B-A3B-Q8_0-00002-of-00002.gguf",
    ]
    assert all(not c[2] for c in calls)


def test_resolve_local_directory(tmp_path: Path) -> None:
    (tmp_path / "a.gguf").write_bytes(b"x")
    assert hub.resolve(str(tmp_path)) == tmp_path / "a.gguf"
    (tmp_path / "b.gguf").write_bytes(b"x")
    with pytest.raises(ModelNotFound, match="several GGUFs"):
        hub.resolve(str(tmp_path))


def make_cache(hf_home: Path, repo_id: str, files: dict[str, bytes]) -> None:
    """A cache folder laid out as huggingface_hub writes it: blobs, a snapshot of symlinks, refs/main."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    for i, (name, data) in enumerate(files.items()):
        blob = root / "blobs" / f"{i:040x}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = root / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))


def run_offline(hf_home: Path, spec: str) -> subprocess.CompletedProcess[str]:
    # huggingface_hub reads HF_HOME / HF_HUB_OFFLINE at import: a fresh interpreter sees them.
    env = {
        **os.environ,
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    env.pop("HF_HUB_CACHE", None)
    code = "import sys; from qwen35cpu.hub import resolve; print(resolve(sys.argv[1]))"
    return subprocess.run(
        [sys.executable, "-c", code, spec], env=env, capture_output=True, text=True, timeout=60
    )


def test_offline_cache(tmp_path: Path) -> None:
    make_cache(
        tmp_path,
        "o/r",
        {
            "README.md": b"readme",
            "m-Q4_K_M.gguf": b"a",
            "sub/m-Q8_0-00001-of-00002.gguf": b"b",
            "sub/m-Q8_0-00002-of-00002.gguf": b"c",
        },
    )
    r = run_offline(tmp_path, "o/r:q8_0")
    assert r.returncode == 0, r.stderr
    p = Path(r.stdout.strip())
    assert p.name == "m-Q8_0-00001-of-00002.gguf" and p.read_bytes() == b"b"
    assert (p.parent / "m-Q8_0-00002-of-00002.gguf").read_bytes() == b"c"
    r = run_offline(tmp_path, "o/r/m-Q4_K_M.gguf")
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).read_bytes() == b"a"
    r = run_offline(tmp_path, "o/other:Q4_K_M")
    assert r.returncode != 0
    assert "offline (HF_HUB_OFFLINE=1) and the repo is not in the local cache" in r.stderr


def test_unreachable_hub_falls_back_to_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_network(ref: HubRef) -> list[str]:
        raise ConnectionError("no route to host")

    monkeypatch.setattr(hub, "_cached_files", lambda ref: (tmp_path, ["m-Q4_K_M.gguf"]))
    seen: list[bool] = []

    def fake_download(ref: HubRef, filename: str, offline: bool) -> Path:
        seen.append(offline)
        return tmp_path / filename

    got = hub.resolve("o/r:q4_k_m", offline=False, list_files=no_network, download=fake_download)
    assert got == tmp_path / "m-Q4_K_M.gguf" and seen == [True]  # served from the cache only


def test_hub_errors_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    class RepositoryNotFoundError(Exception):
        pass

    class GatedRepoError(RepositoryNotFoundError):
        pass

    for exc, msg in [(RepositoryNotFoundError, "no such repository"), (GatedRepoError, "gated repository")]:

        def raising(ref: HubRef, exc: type[Exception] = exc) -> list[str]:
            raise exc("404")

        with pytest.raises(ModelNotFound, match=f"o/r: {msg}"):
            hub.resolve("o/r:q4_k_m", offline=False, list_files=raising)

    def broken_download(ref: HubRef, filename: str, offline: bool) -> Path:
        raise OSError("disk full\nmore detail")

    with pytest.raises(ModelNotFound, match=r"^o/r/m-Q4_K_M\.gguf: download failed: disk full$"):
        hub.resolve("o/r", offline=False, list_files=lambda ref: ["m-Q4_K_M.gguf"], download=broken_download)
