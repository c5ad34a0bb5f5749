"""`qwen35cpu demo`, the README's main-job command: the whole pipeline with no download."""

from __future__ import annotations

import re
from pathlib import Path

from fixture_util import run_cli


def test_demo_runs_every_stage(tmp_path: Path) -> None:
    r = run_cli("demo", "--dir", str(tmp_path), "--tokens", "4", "--threads", "1")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "the weights are RANDOM" in out.splitlines()[0]
    steps = [line[4:] for line in out.splitlines() if line.startswith("==> ")]
    assert [s.split()[0] for s in steps] == ["writing", "converting", "loading", "generating", "chat", "chat"]
    # Generation and both chat turns report their speed; turn 2 reuses turn 1's state.
    assert len(re.findall(r"\d+ tokens at [\d.]+ tokens/s", out)) >= 5
    m = re.search(r"prompt: (\d+) tokens, (\d+) evaluated \(the rest reused", out)
    assert m and 0 < int(m.group(2)) < int(m.group(1)), out
    assert out.rstrip().endswith("with real weights the same calls give a real answer.")
    assert (tmp_path / "demo-q8_0.gguf").exists()
