"""Session state: snapshots / checkpoints, prefix reuse, and session files.

Evaluation of a token does not depend on how the tokens before it were batched (every matmul
row, attention score and DeltaNet step is computed per token in the same order), so a restored
state must continue *bit-identically*: the checks below use exact equality, not a tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fixture_util import load_golden

import qwen35cpu
from qwen35cpu import _core
from qwen35cpu.model import Checkpoint, Model, Session

# deep: 12 layers (3 attention, 9 DeltaNet); r1: 4 layers; nv4_hd256: head_dim 256, 8 layers.
NAMES = ["deep", "r1", "nv4_hd256"]


@pytest.fixture(scope="module")
def models(converted: Callable[[str, str], Path]) -> dict[str, Model]:
    return {n: qwen35cpu.load(converted(n, "f32"), n_threads=2) for n in NAMES}


def prompt(name: str) -> list[int]:
    return [int(t) for t in load_golden(name)[0]]


def scratch(model: Model, ids: list[int]) -> np.ndarray:
    """Logits of every position of ids, evaluated from an empty state in one call."""
    return model.session(n_ctx=len(ids)).eval(ids, all_logits=True)


def expected_nbytes(model: Model, n_past: int) -> int:
    """The state a snapshot must hold: n_past KV rows per attention layer, fixed-size recurrent parts."""
    c = model.config
    n_attn = sum(c.is_attn)
    n_dn = c.n_layer - n_attn
    kv = 2 * n_attn * n_past * c.n_head_kv * c.head_dim
    conv = (c.ssm_conv_kernel - 1) * (2 * c.ssm_n_group * c.ssm_d_state + c.ssm_d_inner)
    ssm = c.ssm_dt_rank * c.ssm_d_state * c.ssm_d_state
    return 4 * (kv + n_dn * (conv + ssm))


# ---------------------------------------------------------------- snapshot / restore


@pytest.mark.parametrize("name", NAMES)
def test_restored_checkpoint_continues_bit_identically(name: str, models: dict[str, Model]) -> None:
    model, p = models[name], prompt(name)
    k = len(p) // 3
    want = scratch(model, p)

    s = model.session(n_ctx=len(p))
    s.eval(p[:k])
    cp = s.checkpoint()
    assert cp.tokens == tuple(p[:k]) and cp.n_past == k and cp.state.n_past == k
    # Wander off: more tokens, a reset, other tokens; then come back.
    s.eval(p[2 * k :])
    s.reset()
    s.eval(p[k : 2 * k])
    s.restore(cp)
    assert s.n_past == k and s.tokens == p[:k]
    np.testing.assert_array_equal(s.eval(p[k:], all_logits=True), want[k:])

    # Into a fresh session of the same model with another n_ctx.
    fresh = model.session(n_ctx=len(p) + 7)
    fresh.restore(cp)
    np.testing.assert_array_equal(fresh.eval(p[k:], all_logits=True), want[k:])


def test_restore_bit_identical_quantized(converted: Callable[[str, str], Path]) -> None:
    # Quantized weights quantize activations per token: still independent of batching.
    model, p = qwen35cpu.load(converted("deep", "q8_0"), n_threads=2), prompt("deep")
    want = scratch(model, p)
    s = model.session(n_ctx=len(p))
    s.eval(p[:40])
    cp = s.checkpoint()
    s.eval(p[40:60])
    s.restore(cp)
    np.testing.assert_array_equal(s.eval(p[40:], all_logits=True), want[40:])


def test_checkpoint_holds_only_rows_in_use(models: dict[str, Model]) -> None:
    model, p = models["deep"], prompt("deep")
    small = model.session(n_ctx=len(p))
    big = model.session(n_ctx=4096)
    for s in (small, big):
        s.eval(p[:10])
    assert small.checkpoint().state.nbytes == big.checkpoint().state.nbytes == expected_nbytes(model, 10)
    assert model.session(n_ctx=64).checkpoint().state.nbytes == expected_nbytes(model, 0)
    # Logits of the last token ride along ([V] float32).
    assert big.checkpoint().nbytes == expected_nbytes(model, 10) + 4 * model.config.n_vocab


def test_empty_checkpoint_is_a_reset(models: dict[str, Model]) -> None:
    model, p = models["r1"], prompt("r1")
    s = model.session(n_ctx=len(p))
    empty = s.checkpoint()
    assert empty.logits is None and empty.n_past == 0
    s.eval(p[:20])
    s.restore(empty)
    assert s.n_past == 0 and s.tokens == []
    np.testing.assert_array_equal(s.eval(p, all_logits=True), scratch(model, p))


def test_restore_that_does_not_fit_leaves_session_unchanged(models: dict[str, Model]) -> None:
    model, p = models["deep"], prompt("deep")
    long = model.session(n_ctx=len(p))
    long.eval(p[:30])
    cp_long = long.checkpoint()
    other = models["r1"].session(n_ctx=len(p))
    other.eval(prompt("r1")[:5])
    cp_other = other.checkpoint()

    s = model.session(n_ctx=20)
    s.eval(p[:8])
    for cp, msg in ((cp_long, "n_ctx"), (cp_other, "layers")):
        with pytest.raises(ValueError, match=msg):
            s.restore(cp)
        assert s.tokens == p[:8] and s.n_past == 8
    # Still exactly the state after p[:8].
    np.testing.assert_array_equal(s.eval(p[8:12], all_logits=True), scratch(model, p[:12])[8:])
    with pytest.raises(TypeError):
        s.restore(cp_long.state)  # type: ignore[arg-type]


def test_tokens_track_eval_and_reset(models: dict[str, Model]) -> None:
    model, p = models["r1"], prompt("r1")
    s = model.session(n_ctx=len(p))
    s.eval(p[:3])
    s.eval(np.array(p[3:7], dtype=np.int64), all_logits=True)
    assert s.tokens == p[:7] and s.last_eval_count == 4
    with pytest.raises(ValueError):
        s.eval([model.config.n_vocab])  # rejected before touching the state: tokens unchanged
    assert s.tokens == p[:7]
    s.reset()
    assert s.tokens == [] and s.n_past == 0


# ---------------------------------------------------------------- prefix reuse


def test_extending_evaluates_only_the_tail(models: dict[str, Model]) -> None:
    model, p = models["deep"], prompt("deep")
    want = scratch(model, p)
    s = model.session(n_ctx=len(p))
    np.testing.assert_array_equal(s.eval_prefix_reuse(p[:25]), want[24])
    assert s.last_eval_count == 25
    np.testing.assert_array_equal(s.eval_prefix_reuse(p[:60]), want[59])
    assert s.last_eval_count == 35
    # The same ids again: nothing to evaluate, the same logits.
    np.testing.assert_array_equal(s.eval_prefix_reuse(p[:60]), want[59])
    assert s.last_eval_count == 0
    assert s.tokens == p[:60]


def test_divergent_history_restores_newest_prefix_checkpoint(models: dict[str, Model]) -> None:
    """A chat whose template drops the previous turn's thinking: the history is rewritten."""
    model, p = models["deep"], prompt("deep")
    turn1, answer1, rewritten, turn2 = p[:30], p[30:50], p[50:58], p[58:75]
    s = model.session(n_ctx=len(p))
    s.eval_prefix_reuse(turn1)
    s.add_checkpoint()  # after the prompt
    s.eval(answer1)
    s.add_checkpoint()  # after the answer
    # Turn 2's rendering keeps turn1 but not answer1 as evaluated.
    ids = turn1 + rewritten + turn2
    got = s.eval_prefix_reuse(ids)
    assert s.last_eval_count == len(rewritten) + len(turn2)
    np.testing.assert_array_equal(got, scratch(model, ids)[-1])
    assert s.tokens == ids

    # Turn 3 extends turn 2: only the new tokens.
    s.add_checkpoint()
    ids3 = ids + p[75:90]
    got3 = s.eval_prefix_reuse(ids3)
    assert s.last_eval_count == 15
    np.testing.assert_array_equal(got3, scratch(model, ids3)[-1])


def test_longest_prefix_checkpoint_wins(models: dict[str, Model]) -> None:
    model, p = models["r1"], prompt("r1")
    s = model.session(n_ctx=len(p))
    s.eval(p[:10])
    s.add_checkpoint()
    s.eval(p[10:40])
    s.add_checkpoint()
    s.reset()
    s.eval(p[:5])
    s.add_checkpoint()  # newest but shorter
    s.eval(p[60:65])  # current tokens diverge from p
    got = s.eval_prefix_reuse(p[:45])
    assert s.last_eval_count == 5  # from the 40-token checkpoint
    np.testing.assert_array_equal(got, scratch(model, p[:45])[-1])
    # ids equal to a checkpoint's tokens: restored, nothing evaluated, its logits.
    got = s.eval_prefix_reuse(p[:10])
    assert s.last_eval_count == 0
    np.testing.assert_array_equal(got, scratch(model, p[:10])[-1])


def test_no_fitting_checkpoint_starts_over(models: dict[str, Model]) -> None:
    model, p = models["r1"], prompt("r1")
    s = model.session(n_ctx=len(p))
    s.eval(p[:20])
    s.add_checkpoint()
    ids = p[1:30]
    np.testing.assert_array_equal(s.eval_prefix_reuse(ids), scratch(model, ids)[-1])
    assert s.last_eval_count == len(ids)
    # A prefix of what was evaluated, with no checkpoint at its end, must start over too.
    s.clear_checkpoints()
    np.testing.assert_array_equal(s.eval_prefix_reuse(ids[:12]), scratch(model, ids[:12])[-1])
    assert s.last_eval_count == 12


def test_bad_ids_leave_session_unchanged(models: dict[str, Model]) -> None:
    model, p = models["r1"], prompt("r1")
    s = model.session(n_ctx=40)
    s.eval(p[:10])
    s.add_checkpoint()
    s.eval(p[10:20])
    V = model.config.n_vocab
    for bad in ([*p[:10], V], [*p[:10], -1], p[:41] if len(p) > 40 else p * 2, [], [[1, 2]], [1.5]):
        with pytest.raises(ValueError):
            s.eval_prefix_reuse(bad)
        assert s.tokens == p[:20] and s.n_past == 20
    np.testing.assert_array_equal(s.eval_prefix_reuse(p[:21]), scratch(model, p[:21])[-1])
    assert s.last_eval_count == 1


def test_checkpoints_are_bounded(models: dict[str, Model]) -> None:
    model, p = models["r1"], prompt("r1")
    s = Session(model, n_ctx=len(p), max_checkpoints=3)
    for i in range(6):
        s.eval(p[i : i + 1])
        s.add_checkpoint()
    s.add_checkpoint()  # same tokens as the newest: replaced, not duplicated
    assert [c.n_past for c in s.checkpoints] == [4, 5, 6]
    assert all(isinstance(c, Checkpoint) for c in s.checkpoints)
    assert s.checkpoints_nbytes == sum(c.nbytes for c in s.checkpoints)
    assert Session(model, n_ctx=8, max_checkpoints=0).add_checkpoint() is not None
    with pytest.raises(ValueError):
        Session(model, n_ctx=8, max_checkpoints=-1)


def test_core_state_blob_round_trip(models: dict[str, Model]) -> None:
    model, p = models["deep"], prompt("deep")
    s = model.session(n_ctx=len(p))
    s.eval(p[:33])
    st = s._core.snapshot()
    blob = st.serialize()
    assert len(blob) == 48 + expected_nbytes(model, 33)
    back = _core.SessionState.deserialize(model._core, blob)
    assert back.n_past == 33 and back.nbytes == st.nbytes
    assert back.serialize() == blob
    with pytest.raises(ValueError, match="bytes"):
        _core.SessionState.deserialize(model._core, blob[:-4])
    with pytest.raises(ValueError, match="shapes"):
        _core.SessionState.deserialize(models["r1"]._core, blob)
    with pytest.raises(ValueError, match="magic"):
        _core.SessionState.deserialize(model._core, b"X" + blob[1:])


# ---------------------------------------------------------------- session files


def chat_like(model: Model, p: list[int], n_ctx: int) -> Session:
    """A session with history, two checkpoints and a current state past the newest one."""
    s = model.session(n_ctx=n_ctx)
    s.eval_prefix_reuse(p[:20])
    s.add_checkpoint()
    s.eval(p[20:35])
    s.add_checkpoint()
    s.eval(p[35:40])
    return s


def same_state(a: Session, b: Session, nxt: list[int]) -> None:
    """a and b hold the same tokens and checkpoints and give identical logits from here on."""
    assert a.tokens == b.tokens and a.n_past == b.n_past
    assert [c.tokens for c in a.checkpoints] == [c.tokens for c in b.checkpoints]
    np.testing.assert_array_equal(a.eval_prefix_reuse(a.tokens), b.eval_prefix_reuse(b.tokens))
    np.testing.assert_array_equal(a.eval(nxt, all_logits=True), b.eval(nxt, all_logits=True))


@pytest.mark.parametrize("name", NAMES)
def test_save_load_reproduces_next_logits(name: str, models: dict[str, Model], tmp_path: Path) -> None:
    model, p = models[name], prompt(name)
    s = chat_like(model, p, n_ctx=len(p))
    f = tmp_path / "s.q35s"
    s.save(f)
    assert not [x for x in tmp_path.iterdir() if x != f]  # no temp file left behind

    fresh = Session.load(model, f)
    assert fresh.n_ctx == len(p)
    same_state(s, fresh, p[40:50])
    assert fresh.last_eval_count == 10

    # load_state into an existing session replaces what it had.
    other = model.session(n_ctx=len(p) + 5)
    other.eval(p[50:60])
    other.load_state(f)
    assert other.tokens == p[:40]
    np.testing.assert_array_equal(other.eval(p[40:50], all_logits=True), scratch(model, p[:50])[40:])
    # The loaded checkpoints work: rewinding to the 20-token one evaluates only the new tail.
    other.eval_prefix_reuse(p[:20] + p[60:63])
    assert other.last_eval_count == 3


def test_save_empty_session(models: dict[str, Model], tmp_path: Path) -> None:
    model, p = models["r1"], prompt("r1")
    f = tmp_path / "empty.q35s"
    model.session(n_ctx=16).save(f)
    s = model.session(n_ctx=16)
    s.eval(p[:4])
    s.load_state(f)
    assert s.tokens == [] and s.n_past == 0 and s.checkpoints == []
    np.testing.assert_array_equal(s.eval(p[:6], all_logits=True), scratch(model, p[:6]))


def test_save_overwrites_atomically(models: dict[str, Model], tmp_path: Path) -> None:
    model, p = models["r1"], prompt("r1")
    f = tmp_path / "s.q35s"
    s = chat_like(model, p, n_ctx=len(p))
    s.save(f)
    s.eval(p[40:45])
    s.save(f)
    assert Session.load(model, f).tokens == p[:45]
    # A failing write (target folder is gone) raises and leaves nothing.
    with pytest.raises(OSError):
        s.save(tmp_path / "missing" / "s.q35s")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.q35s"]


@pytest.fixture(scope="module")
def saved(models: dict[str, Model], tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a saved deep session (current state + 2 checkpoints)."""
    model, p = models["deep"], prompt("deep")
    f = tmp_path_factory.mktemp("sess") / "s.q35s"
    chat_like(model, p, n_ctx=len(p)).save(f)
    return f.read_bytes()


_victim_cache: dict[str, tuple[Checkpoint, Checkpoint, np.ndarray]] = {}


def victim(models: dict[str, Model]) -> tuple[Session, np.ndarray]:
    """A deep session in some state, and the logits it must give next if left untouched."""
    model, p = models["deep"], prompt("deep")
    if "deep" not in _victim_cache:  # evaluated once; each case restores it (cheap)
        s = model.session(n_ctx=len(p))
        s.eval(p[60:70])
        first = s.add_checkpoint()
        s.eval(p[70:72])
        _victim_cache["deep"] = (first, s.checkpoint(), scratch(model, p[60:75])[12:])
    first, now, want = _victim_cache["deep"]
    s = model.session(n_ctx=len(p))
    s.restore(first)
    s.add_checkpoint()
    s.restore(now)
    return s, want


def assert_untouched(s: Session, want_next: np.ndarray, models: dict[str, Model]) -> None:
    p = prompt("deep")
    assert s.tokens == p[60:72] and s.n_past == 12
    assert [c.tokens for c in s.checkpoints] == [tuple(p[60:70])]
    np.testing.assert_array_equal(s.eval(p[72:75], all_logits=True), want_next)


def load_bad(data: bytes, tmp_path: Path, models: dict[str, Model], match: str) -> None:
    f = tmp_path / "bad.q35s"
    f.write_bytes(data)
    s, want_next = victim(models)
    with pytest.raises(ValueError, match=match) as e:
        s.load_state(f)
    assert "\n" not in str(e.value)
    assert_untouched(s, want_next, models)


def test_saved_file_loads(saved: bytes, models: dict[str, Model], tmp_path: Path) -> None:
    # The baseline for the corruption tests: the unmodified bytes load.
    f = tmp_path / "ok.q35s"
    f.write_bytes(saved)
    s, _ = victim(models)
    s.load_state(f)
    assert s.tokens == prompt("deep")[:40]


def test_flipped_bytes(saved: bytes, models: dict[str, Model], tmp_path: Path) -> None:
    # Every region: header, metadata, tokens, logits, state blobs, checksum.
    rng = np.random.default_rng(0)
    positions = sorted({0, 9, 17, 30, 40, len(saved) - 1, len(saved) - 33, *rng.integers(0, len(saved), 24)})
    for pos in positions:
        bad = bytearray(saved)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        load_bad(bytes(bad), tmp_path, models, "session file")


def test_truncated(saved: bytes, models: dict[str, Model], tmp_path: Path) -> None:
    cuts = sorted({0, 1, 8, 31, 32, 64, len(saved) // 2, len(saved) - 33, len(saved) - 32, len(saved) - 1})
    cuts += list(range(100, len(saved), max(1, len(saved) // 16)))
    for n in cuts:
        load_bad(saved[:n], tmp_path, models, "session file|truncated")
    load_bad(saved + b"\0", tmp_path, models, "trailing")


def test_not_a_session_file(
    models: dict[str, Model], tmp_path: Path, converted: Callable[[str, str], Path]
) -> None:
    load_bad(converted("r1", "f32").read_bytes()[:4096], tmp_path, models, "not a qwen35cpu session file")
    load_bad(b"", tmp_path, models, "not a qwen35cpu session file")


def with_checksum(data: bytearray) -> bytes:
    import hashlib

    return bytes(data[:-32]) + hashlib.sha256(bytes(data[:-32])).digest()


def test_wrong_version(saved: bytes, models: dict[str, Model], tmp_path: Path) -> None:
    from qwen35cpu.session_io import FORMAT_VERSION

    bad = bytearray(saved)
    bad[8:12] = (FORMAT_VERSION + 1).to_bytes(4, "little")
    load_bad(with_checksum(bad), tmp_path, models, f"version {FORMAT_VERSION + 1}")
    load_bad(bytes(bad), tmp_path, models, f"version {FORMAT_VERSION + 1}")


def test_wrong_model(models: dict[str, Model], tmp_path: Path, converted: Callable[[str, str], Path]) -> None:
    # Other shapes (r1), and the same model stored in another type (deep f16), are other models.
    for path in (converted("r1", "f32"), converted("deep", "f16")):
        other = qwen35cpu.load(path, n_threads=1)
        f = tmp_path / "other.q35s"
        s = other.session(n_ctx=64)
        s.eval(prompt("deep")[:5])
        s.save(f)
        load_bad(f.read_bytes(), tmp_path, models, "another model")


def test_same_layout_other_weights(
    models: dict[str, Model], tmp_path: Path, converted: Callable[[str, str], Path]
) -> None:
    """A file of the same shapes and size whose embedding differs: not the same model."""
    import gguf

    src = converted("deep", "f32")
    data = bytearray(src.read_bytes())
    emb = next(t for t in gguf.GGUFReader(src).tensors if t.name == "token_embd.weight")
    data[emb.data_offset] ^= 0x40
    twin_path = tmp_path / "twin.gguf"
    twin_path.write_bytes(bytes(data))
    twin = qwen35cpu.load(twin_path, n_threads=1)
    s = twin.session(n_ctx=64)
    s.eval(prompt("deep")[:5])
    f = tmp_path / "twin.q35s"
    s.save(f)
    load_bad(f.read_bytes(), tmp_path, models, "another model")


def test_longer_than_n_ctx(saved: bytes, models: dict[str, Model], tmp_path: Path) -> None:
    f = tmp_path / "s.q35s"
    f.write_bytes(saved)
    small = models["deep"].session(n_ctx=30)
    small.eval(prompt("deep")[:3])
    with pytest.raises(ValueError, match="n_ctx 30"):
        small.load_state(f)
    assert small.tokens == prompt("deep")[:3]
    # A bigger n_ctx than the saved one is fine.
    assert Session.load(models["deep"], f, n_ctx=200).n_ctx == 200


def test_longer_checkpoint_beats_current_state(models: dict[str, Model]) -> None:
    model, p = models["r1"], prompt("r1")
    s = model.session(n_ctx=len(p))
    s.eval(p[:30])
    s.add_checkpoint()
    s.restore(s.checkpoints[0])
    s.reset()
    s.eval(p[:10])  # current state: a 10-token prefix of what follows
    got = s.eval_prefix_reuse(p[:34])
    assert s.last_eval_count == 4  # from the 30-token checkpoint, not 24 from the current state
    np.testing.assert_array_equal(got, scratch(model, p[:34])[-1])


# ---------------------------------------------------------------- shared KV chunks


def chunk_bytes(model: Model) -> int:
    """Bytes of one full KV chunk: chunk_rows positions of K and V in every attention layer."""
    c = model.config
    return 4 * 2 * sum(c.is_attn) * _core.SessionState.chunk_rows * c.n_head_kv * c.head_dim


def test_checkpoints_share_their_common_prefix(models: dict[str, Model], tmp_path: Path) -> None:
    model, p = models["deep"], prompt("deep")
    R = _core.SessionState.chunk_rows
    assert len(p) > R + 20  # the test needs one full chunk under both checkpoints
    want = scratch(model, p)
    s = model.session(n_ctx=len(p))
    s.eval(p[: R + 6])
    a = s.add_checkpoint()
    s.eval(p[R + 6 : R + 20])
    b = s.add_checkpoint()
    shared = expected_nbytes(model, R + 6) + expected_nbytes(model, R + 20) - chunk_bytes(model)
    logits = 2 * 4 * model.config.n_vocab
    assert s.checkpoints_nbytes == shared + logits
    assert a.nbytes + b.nbytes == shared + chunk_bytes(model) + logits  # each alone still counts it all

    # Both restore exactly, whichever is restored first.
    for cp in (b, a, b):
        s.restore(cp)
        n = cp.n_past
        np.testing.assert_array_equal(s.eval(p[n : n + 5], all_logits=True), want[n : n + 5])

    # Survives save / load: the loaded checkpoints share again.
    f = tmp_path / "s.q35s"
    s.save(f)
    back = Session.load(model, f)
    assert back.checkpoints_nbytes == s.checkpoints_nbytes
    back.restore(back.checkpoints[0])
    np.testing.assert_array_equal(back.eval(p[R + 6 : R + 9], all_logits=True), want[R + 6 : R + 9])


def test_chunks_of_other_tokens_are_not_shared(models: dict[str, Model]) -> None:
    model, p = models["deep"], prompt("deep")
    R = _core.SessionState.chunk_rows
    s1, s2 = model.session(n_ctx=len(p)), model.session(n_ctx=len(p))
    s1.eval(p[: R + 1])
    s2.eval(p[1 : R + 2])  # same length, other tokens
    a = s1._core.snapshot()
    b = s2._core.snapshot(a)  # offered a's chunks, but their bytes differ
    assert _core.SessionState.nbytes_distinct([a, b]) == a.nbytes + b.nbytes
    c = s1._core.snapshot(a)  # the same state: every chunk shared
    assert _core.SessionState.nbytes_distinct([a, c]) == a.nbytes + expected_nbytes(model, 0)


def split_file(data: bytes) -> tuple[dict, bytes]:
    """(metadata, payload) of a session file."""
    import json
    import struct

    _, _, _, _, meta_len = struct.unpack_from("<8sIIQQ", data, 0)
    return json.loads(data[32 : 32 + meta_len]), data[32 + meta_len : -32]


def build_file(meta: dict | bytes, payload: bytes, version: int | None = None) -> bytes:
    """A session file with a valid header and checksum around meta and payload."""
    import hashlib
    import json
    import struct

    from qwen35cpu.session_io import FORMAT_VERSION, MAGIC

    m = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    size = 32 + len(m) + len(payload) + 32
    body = struct.pack("<8sIIQQ", MAGIC, version or FORMAT_VERSION, 0, size, len(m)) + m + payload
    return body + hashlib.sha256(body).digest()


def test_file_stores_shared_chunks_once(models: dict[str, Model], tmp_path: Path) -> None:
    model, p = models["deep"], prompt("deep")
    R, V = _core.SessionState.chunk_rows, model.config.n_vocab
    s = model.session(n_ctx=len(p))
    s.eval(p[: R + 6])
    s.add_checkpoint()
    s.eval(p[R + 6 : R + 20])
    f = tmp_path / "s.q35s"
    s.save(f)
    data = f.read_bytes()
    meta, payload = split_file(data)
    assert [(e["base"], e["skip_chunks"]) for e in meta["entries"]] == [(-1, 0), (0, 1)]
    blobs = 48 + expected_nbytes(model, R + 20) + 48 + expected_nbytes(model, R + 6) - chunk_bytes(model)
    assert len(payload) == 4 * (R + 20) + 4 * V + 4 * (R + 6) + 4 * V + blobs
    back = Session.load(model, f)
    back.restore(back.checkpoints[0])
    want = scratch(model, p[: R + 9])[R + 6 :]
    np.testing.assert_array_equal(back.eval(p[R + 6 : R + 9], all_logits=True), want)

    # A rebuilt file with a valid checksum whose entry lost its base, or names a later one.
    for base, match in ((-1, "needs a base"), (1, "inconsistent"), (5, "inconsistent")):
        meta["entries"][1]["base"] = base
        load_bad(build_file(meta, payload), tmp_path, models, match)
    # And the rebuilt file with the right base loads: the check above fails for the stated reason.
    meta["entries"][1]["base"] = 0
    (tmp_path / "ok.q35s").write_bytes(build_file(meta, payload))
    assert Session.load(model, tmp_path / "ok.q35s").tokens == p[: R + 20]


def test_malformed_metadata_with_valid_checksum(
    saved: bytes, models: dict[str, Model], tmp_path: Path
) -> None:
    meta, payload = split_file(saved)
    for change in (
        lambda m: m.pop("entries"),
        lambda m: m.update(entries="x"),
        lambda m: m["entries"][0].update(n_tokens=-1),
        lambda m: m["entries"][0].update(n_tokens=m["entries"][0]["n_tokens"] + 1),
        lambda m: m["entries"][0].update(state_bytes=3),
        lambda m: m.update(n_vocab=7),
        lambda m: m.update(model="x"),
    ):
        m = __import__("copy").deepcopy(meta)
        change(m)
        load_bad(build_file(m, payload), tmp_path, models, "session file")
    for raw in (b"{not json", b"\xff\xfe", b"[]", b"null"):
        load_bad(build_file(raw, payload), tmp_path, models, "session file")


def test_tokens_out_of_sync_are_not_trusted(models: dict[str, Model]) -> None:
    """If an interrupt lands between the core's eval and the tokens update, the state is not reused."""
    model, p = models["r1"], prompt("r1")
    s = model.session(n_ctx=len(p))
    s.eval(p[:10])
    s._core.eval(np.array(p[10:12], dtype=np.int32), False)  # as if interrupted before bookkeeping
    with pytest.raises(RuntimeError, match="interrupted"):
        s.checkpoint()
    np.testing.assert_array_equal(s.eval_prefix_reuse(p[:14]), scratch(model, p[:14])[-1])
    assert s.last_eval_count == 14 and s.tokens == p[:14]
