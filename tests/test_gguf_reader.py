"""Tests of the C++ GGUF reader (_core.GgufFile).

Round trips compare it with gguf-py's GGUFReader on files written by GGUFWriter; corruption
tests patch single fields of files written byte by byte with `Raw`, so each test knows the
exact offset of the field it breaks.
"""

import gc
import os
import pathlib
import random
import re
import struct

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
_core = pytest.importorskip("qwen35cpu._core")

GgufError = _core.GgufError
VT = gguf.GGUFValueType
QT = gguf.GGMLQuantizationType

# GGUF value type ids and their struct formats.
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?",
              U64: "Q", I64: "q", F64: "d"}
BLOCK = {0: (1, 4), 1: (1, 2), 8: (32, 34), 26: (1, 4), 30: (1, 2)}  # type -> (block, bytes)


# --------------------------------------------------------------------------------------------
# A byte-level GGUF writer that records where every field lands.
# --------------------------------------------------------------------------------------------

class Raw:
    """Appends little-endian fields to a buffer; `at[name]` is the offset of a named field."""

    def __init__(self):
        self.buf = bytearray()
        self.at = {}

    def put(self, fmt, value, name=None):
        if name is not None:
            self.at[name] = len(self.buf)
        self.buf += struct.pack("<" + fmt, value)

    def string(self, s, name=None):
        b = s.encode() if isinstance(s, str) else bytes(s)
        self.put("Q", len(b), name and name + ".len")
        self.buf += b

    def value(self, vtype, v, name):
        """v: a scalar, a str/bytes, or for ARRAY a pair (element type, list of values)."""
        if vtype == STRING:
            self.string(v, name)
        elif vtype == ARRAY:
            etype, items = v
            self.put("I", etype, name + ".arr_type")
            self.put("Q", len(items), name + ".arr_count")
            for i, item in enumerate(items):
                self.value(etype, item, f"{name}[{i}]")
        else:
            self.put(SCALAR_FMT[vtype], v, name)


def align_up(x, a):
    return (x + a - 1) // a * a


def make_gguf(kvs=(), tensors=(), version=3, alignment=32, n_kv=None, n_tensors=None):
    """GGUF bytes and field offsets.

    kvs: (key, value type, value) triples. tensors: (name, ne, ggml type) triples; data is
    filled with a byte pattern and the last tensor ends exactly at the end of the file, so any
    shorter prefix of the result is a truncated file.
    """
    r = Raw()
    r.put("I", 0x46554747, "magic")
    r.put("I", version, "version")
    r.put("Q", len(tensors) if n_tensors is None else n_tensors, "n_tensors")
    r.put("Q", len(kvs) if n_kv is None else n_kv, "n_kv")
    for i, (key, vtype, v) in enumerate(kvs):
        r.string(key, f"kv{i}.key")
        r.put("I", vtype, f"kv{i}.type")
        r.value(vtype, v, f"kv{i}.value")
    offset = 0
    sizes = []
    for i, (name, ne, ttype) in enumerate(tensors):
        r.string(name, f"t{i}.name")
        r.put("I", len(ne), f"t{i}.n_dims")
        for d, n in enumerate(ne):
            r.put("Q", n, f"t{i}.ne{d}")
        r.put("I", ttype, f"t{i}.type")
        r.put("Q", offset, f"t{i}.offset")
        blck, bsize = BLOCK[ttype]
        nbytes = ne[0] // blck * bsize * int(np.prod(ne[1:], dtype=np.int64))
        sizes.append(nbytes)
        offset = align_up(offset + nbytes, alignment)
    r.at["data"] = align_up(len(r.buf), alignment)
    r.buf += bytes(r.at["data"] - len(r.buf))
    for i, nbytes in enumerate(sizes):
        if nbytes > 1 << 20:  # shapes built to overflow: their data is never written
            continue
        r.buf += bytes(align_up(len(r.buf) - r.at["data"], alignment) - (len(r.buf) - r.at["data"]))
        r.buf += bytes((i * 7 + j) & 0xFF for j in range(nbytes))
    return bytes(r.buf), r.at


SMALL_KVS = [
    ("general.architecture", STRING, "qwen35moe"),
    ("general.alignment", U32, 32),
    ("a.i32", I32, -5),
    ("a.f32", F32, 1.5),
    ("a.bool", BOOL, True),
    ("a.strs", ARRAY, (STRING, ["x", "yz"])),
    ("a.ints", ARRAY, (U16, [1, 2, 3])),
    ("a.nested", ARRAY, (ARRAY, [(I8, [1, -1]), (STRING, ["q"])])),
]
SMALL_TENSORS = [
    ("tok_embd.weight", (64, 3), 8),   # Q8_0
    ("norm.weight", (5,), 0),          # F32
    ("blk.0.attn_q.weight", (4, 2, 2), 1),  # F16
]


def small_gguf():
    return make_gguf(SMALL_KVS, SMALL_TENSORS)


def write(tmp_path, data, name="f.gguf"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def patched(data, offset, fmt, value):
    b = bytearray(data)
    struct.pack_into("<" + fmt, b, offset, value)
    return bytes(b)


def expect_error(path, pattern):
    """Opening `path` raises GgufError naming the path and matching `pattern`."""
    with pytest.raises(GgufError) as ei:
        _core.GgufFile(str(path))
    msg = str(ei.value)
    assert msg.startswith(f"{path}: "), msg
    assert re.search(pattern, msg), msg
    assert "\n" not in msg
    return msg


# --------------------------------------------------------------------------------------------
# (a) round trips against gguf-py
# --------------------------------------------------------------------------------------------

def write_with_gguf_py(path, alignment=None):
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "qwen35moe")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_uint8("v.u8", 200)
    w.add_int8("v.i8", -100)
    w.add_uint16("v.u16", 60000)
    w.add_int16("v.i16", -30000)
    w.add_uint32("v.u32", 4_000_000_000)
    w.add_int32("v.i32", -2_000_000_000)
    w.add_float32("v.f32", 0.1)
    w.add_bool("v.bool_t", True)
    w.add_bool("v.bool_f", False)
    w.add_string("v.str", "héllo wörld ✓")
    w.add_uint64("v.u64", 2**64 - 1)
    w.add_int64("v.i64", -(2**63))
    w.add_float64("v.f64", 1e-300)
    w.add_array("v.arr_str", ["<unk>", "", "tok ✓", "a" * 300])
    w.add_array("v.arr_i32", [1, -2, 3])
    w.add_array("v.arr_f32", [0.5, -1.25])
    w.add_array("v.arr_bool", [True, False, True])
    w.add_key_value("v.arr_u64", [0, 2**64 - 1], VT.ARRAY, sub_type=VT.UINT64)
    w.add_key_value("v.arr_f64", [1e300, -2.5], VT.ARRAY, sub_type=VT.FLOAT64)
    w.add_key_value("v.arr_u8", [0, 255], VT.ARRAY, sub_type=VT.UINT8)
    w.add_array("v.nested", [[1, 2], [3], [4, 5, 6]])
    w.add_array("v.nested_str", [["a", "b"], ["c"]])

    x = rng.standard_normal((6, 64)).astype(np.float32)
    w.add_tensor("t.f32", x)
    w.add_tensor("t.f32_1d", rng.standard_normal(7).astype(np.float32))
    w.add_tensor("t.f16", rng.standard_normal((2, 3, 8)).astype(np.float16))
    w.add_tensor("t.bf16", gguf.quants.quantize(x, QT.BF16), raw_dtype=QT.BF16)
    w.add_tensor("t.q8_0", gguf.quants.quantize(x, QT.Q8_0), raw_dtype=QT.Q8_0)
    w.add_tensor("t.q8_0_3d", gguf.quants.quantize(rng.standard_normal((2, 2, 96)).astype(np.float32),
                                                  QT.Q8_0), raw_dtype=QT.Q8_0)
    w.add_tensor("t.i32", np.arange(-10, 14, dtype=np.int32).reshape(2, 3, 4))
    w.add_tensor("t.4d", np.ones((2, 1, 3, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {
        "v.nested": [[1, 2], [3], [4, 5, 6]],
        "v.nested_str": [["a", "b"], ["c"]],
    }


def flatten(v):
    return [y for x in v for y in (flatten(x) if isinstance(x, list) else [x])]


@pytest.mark.parametrize("alignment", [None, 64, 1])
def test_round_trip_matches_gguf_py(tmp_path, alignment):
    path = tmp_path / "rt.gguf"
    nested = write_with_gguf_py(path, alignment)
    ref = gguf.GGUFReader(str(path))
    f = _core.GgufFile(str(path))

    assert f.path == str(path)
    assert f.version == 3
    assert f.file_size == os.path.getsize(path)
    assert f.alignment == (alignment or 32)
    assert f.data_offset == ref.data_offset
    assert f.data_offset % f.alignment == 0

    md = f.metadata
    ref_fields = {k: v for k, v in ref.fields.items() if not k.startswith("GGUF.")}
    assert list(md) == list(ref_fields)  # file order
    for key, field in ref_fields.items():
        if key in nested:
            assert md[key] == nested[key]
            assert flatten(md[key]) == field.contents()
        else:
            assert md[key] == field.contents(), key
    assert md["v.u64"] == 2**64 - 1 and md["v.i64"] == -(2**63)
    assert md["v.bool_t"] is True and md["v.bool_f"] is False
    assert md["v.f32"] == pytest.approx(0.1, rel=1e-7) and isinstance(md["v.f32"], float)
    assert md["v.f64"] == 1e-300
    assert md["v.str"] == "héllo wörld ✓"
    assert md["v.arr_bool"] == [True, False, True]

    assert [t.name for t in f.tensors] == [t.name for t in ref.tensors]
    for t, rt in zip(f.tensors, ref.tensors, strict=True):
        assert t.type == int(rt.tensor_type)
        assert t.type_name == rt.tensor_type.name
        assert t.ne == tuple(int(n) for n in rt.shape)
        assert t.shape == t.ne[::-1]
        assert t.n_dims == len(t.ne)
        assert t.n_elements == int(rt.n_elements)
        assert t.nbytes == int(rt.n_bytes)
        assert t.offset == int(rt.data_offset)
        assert t.offset % f.alignment == 0
        view = f.tensor_bytes(t.name)
        assert view.dtype == np.uint8 and view.shape == (t.nbytes,)
        assert view.tobytes() == rt.data.tobytes()

    q = {t.name: t for t in f.tensors}
    assert q["t.q8_0"].ne == (64, 6) and q["t.q8_0"].nbytes == 6 * 2 * 34
    assert q["t.q8_0_3d"].ne == (96, 2, 2)
    assert q["t.4d"].shape == (2, 1, 3, 4)
    assert q["t.bf16"].type_name == "BF16" and q["t.i32"].type_name == "I32"
    ints = np.frombuffer(f.tensor_bytes("t.i32"), dtype=np.int32)
    assert ints.tolist() == list(range(-10, 14))


def test_version_2_and_path_types(tmp_path):
    data, _ = make_gguf(SMALL_KVS, SMALL_TENSORS, version=2)
    p = write(tmp_path, data)
    for arg in (str(p), p, os.fsencode(str(p))):
        f = _core.GgufFile(arg)
        assert f.version == 2 and f.path == str(p)
    assert f.metadata["a.nested"] == [[1, -1], ["q"]]
    assert f.metadata["a.strs"] == ["x", "yz"]


def test_small_raw_file_loads(tmp_path):
    data, at = small_gguf()
    f = _core.GgufFile(str(write(tmp_path, data)))
    assert f.file_size == len(data)
    assert f.data_offset == at["data"]
    assert [t.name for t in f.tensors] == [n for n, _, _ in SMALL_TENSORS]
    last = f.tensors[-1]
    assert last.offset + last.nbytes == len(data)
    assert f.tensor_bytes("norm.weight").tobytes() == bytes((7 + j) & 0xFF for j in range(20))


def test_non_utf8_strings_are_replaced_not_fatal(tmp_path):
    kvs = [(b"k\xff", STRING, b"v\xfe\x80"), ("arr", ARRAY, (STRING, [b"\xc3", b"ok"]))]
    data, _ = make_gguf(kvs, [(b"t\xff", (4,), 0)])
    f = _core.GgufFile(str(write(tmp_path, data)))
    md = f.metadata
    assert md["k\ufffd"] == "v\ufffd\ufffd"
    assert md["arr"] == ["\ufffd", "ok"]
    assert f.tensors[0].name == "t\ufffd"
    assert f.tensor_bytes(b"t\xff").nbytes == 16


def test_zero_sized_tensor_and_no_tensors(tmp_path):
    f = _core.GgufFile(str(write(tmp_path, make_gguf(SMALL_KVS, [("e", (0, 3), 0)])[0])))
    assert f.tensors[0].nbytes == 0 and f.tensor_bytes("e").shape == (0,)
    f = _core.GgufFile(str(write(tmp_path, make_gguf(SMALL_KVS, [])[0], "n.gguf")))
    assert f.tensors == [] and f.metadata["a.i32"] == -5


# --------------------------------------------------------------------------------------------
# (b) corruption
# --------------------------------------------------------------------------------------------

TRUNCATED = r"truncated|runs past the end|too small|empty file"


def test_every_truncation_is_an_error(tmp_path):
    data, _ = small_gguf()
    p = tmp_path / "trunc.gguf"
    for n in range(len(data)):
        p.write_bytes(data[:n])
        expect_error(p, TRUNCATED)
    p.write_bytes(data)
    _core.GgufFile(str(p))


def test_empty_missing_and_directory(tmp_path):
    expect_error(write(tmp_path, b""), r"empty file")
    expect_error(tmp_path / "nope.gguf", r"cannot open: No such file or directory")
    expect_error(tmp_path, r"is a directory")


def test_bad_magic(tmp_path):
    data, _ = small_gguf()
    expect_error(write(tmp_path, b"GGML" + data[4:]), r"not a GGUF file: bad magic 0x4c4d4747")
    expect_error(write(tmp_path, b"GGU", "3.gguf"), r"too small")
    expect_error(write(tmp_path, b"GGUF\x03\x00", "6.gguf"), r"truncated.*24-byte GGUF header")


@pytest.mark.parametrize("version,pattern", [
    (1, r"unsupported GGUF version 1\b"),
    (99, r"unsupported GGUF version 99\b"),
    (0, r"unsupported GGUF version 0\b"),
    (0x03000000, r"big-endian"),
])
def test_bad_version(tmp_path, version, pattern):
    data, at = small_gguf()
    expect_error(write(tmp_path, patched(data, at["version"], "I", version)), pattern)


@pytest.mark.parametrize("field,value", [
    ("n_kv", 2**63), ("n_kv", 2**64 - 1), ("n_tensors", 2**63), ("n_tensors", 2**40),
])
def test_huge_counts(tmp_path, field, value):
    data, at = small_gguf()
    what = "metadata entries" if field == "n_kv" else "tensors"
    expect_error(write(tmp_path, patched(data, at[field], "Q", value)),
                 rf"header claims {value} {what}.*truncated or corrupt")


def test_counts_that_fit_alone_but_not_together(tmp_path):
    data, at = make_gguf([], [])
    data = data[:24] + bytes(13 * 4)  # room for 4 minimal KVs, or 1 minimal tensor info
    data = patched(patched(data, at["n_kv"], "Q", 4), at["n_tensors"], "Q", 1)
    expect_error(write(tmp_path, data), r"4 metadata entries and 1 tensors, more than the 52 bytes")


def test_count_larger_than_entries(tmp_path):
    data, at = small_gguf()
    expect_error(write(tmp_path, patched(data, at["n_kv"], "Q", len(SMALL_KVS) + 1)),
                 r"metadata key '.*': unknown value type|truncated")


@pytest.mark.parametrize("length", [2**63, 2**64 - 1, 2**32])
def test_huge_string_lengths(tmp_path, length):
    data, at = small_gguf()
    expect_error(write(tmp_path, patched(data, at["kv0.key.len"], "Q", length)),
                 rf"truncated file: metadata entry #0: key at offset 32 needs {length} bytes")
    expect_error(write(tmp_path, patched(data, at["kv0.value.len"], "Q", length), "v.gguf"),
                 rf"metadata key 'general.architecture': string value at offset \d+ needs {length}")
    expect_error(write(tmp_path, patched(data, at["kv5.value[1].len"], "Q", length), "a.gguf"),
                 rf"metadata key 'a.strs': string value at offset \d+ needs {length}")
    expect_error(write(tmp_path, patched(data, at["t1.name.len"], "Q", length), "t.gguf"),
                 rf"tensor info #1: tensor name at offset \d+ needs {length}")


@pytest.mark.parametrize("key_index,count", [
    (6, 2**62),            # u16 elements: 2**63 bytes
    (6, 2**63 + 1),        # count * 2 wraps to 2
    (6, 2**64 - 1),
    (5, 2**62),            # strings
    (5, 2**61 + 1),        # count * 8 wraps to 8
    (7, 2**62),            # arrays of arrays
])
def test_huge_array_counts(tmp_path, key_index, count):
    data, at = small_gguf()
    data = patched(data, at[f"kv{key_index}.value.arr_count"], "Q", count)
    expect_error(write(tmp_path, data),
                 rf"metadata key '{SMALL_KVS[key_index][0]}': array count {count} at offset \d+ "
                 r"of \w+ elements .* cannot fit")


def test_huge_nested_array_count(tmp_path):
    data, at = small_gguf()
    data = patched(data, at["kv7.value[0].arr_count"], "Q", 2**63 + 1)
    expect_error(write(tmp_path, data), r"'a.nested': array count 9223372036854775809")


def test_u64_array_count_overflow(tmp_path):
    data, at = make_gguf([("big", ARRAY, (U64, [1, 2]))], [])
    data = patched(data, at["kv0.value.arr_count"], "Q", 2**61 + 1)  # * 8 wraps to 8
    expect_error(write(tmp_path, data), r"array count 2305843009213693953 .* cannot fit")


@pytest.mark.parametrize("vtype", [13, 255, 2**32 - 1])
def test_unknown_value_type(tmp_path, vtype):
    data, at = small_gguf()
    expect_error(write(tmp_path, patched(data, at["kv2.type"], "I", vtype)),
                 rf"metadata key 'a.i32': unknown value type {vtype} at offset {at['kv2.type']}")
    expect_error(write(tmp_path, patched(data, at["kv6.value.arr_type"], "I", vtype), "a.gguf"),
                 rf"metadata key 'a.ints': unknown array element type {vtype}")
    expect_error(write(tmp_path, patched(data, at["kv7.value[1].arr_type"], "I", vtype), "n.gguf"),
                 rf"metadata key 'a.nested': unknown array element type {vtype}")


def test_arrays_nested_too_deep(tmp_path):
    v = (I8, [1])
    for _ in range(40):
        v = (ARRAY, [v])
    expect_error(write(tmp_path, make_gguf([("deep", ARRAY, v)], [])[0]),
                 r"'deep': arrays nested more than 32 deep")
    v = (I8, [1])
    for _ in range(20):
        v = (ARRAY, [v])
    f = _core.GgufFile(str(write(tmp_path, make_gguf([("ok", ARRAY, v)], [])[0], "ok.gguf")))
    x = f.metadata["ok"]
    for _ in range(21):
        x = x[0]
    assert x == 1


@pytest.mark.parametrize("ttype", [4, 5, 31, 42, 1000, 2**32 - 1])
def test_unknown_tensor_type(tmp_path, ttype):
    data, at = small_gguf()
    expect_error(write(tmp_path, patched(data, at["t1.type"], "I", ttype)),
                 rf"tensor 'norm.weight': unknown ggml type id {ttype}$")


@pytest.mark.parametrize("n_dims", [0, 5, 2**32 - 1])
def test_bad_n_dims(tmp_path, n_dims):
    data, at = small_gguf()
    expect_error(write(tmp_path, patched(data, at["t0.n_dims"], "I", n_dims)),
                 rf"tensor 'tok_embd.weight': n_dims {n_dims} is out of range 1..4")


def test_negative_ne(tmp_path):
    data, at = small_gguf()
    expect_error(write(tmp_path, patched(data, at["t0.ne1"], "q", -3)),
                 r"tensor 'tok_embd.weight': ne\[1\] = -3 is negative")


def test_element_count_overflow(tmp_path):
    data, _ = make_gguf([], [("big", (2**32, 2**32), 0)])
    expect_error(write(tmp_path, data), r"tensor 'big': element count of shape "
                 r"\[4294967296, 4294967296\] overflows int64")
    data, _ = make_gguf([], [("big0", (2**40, 2**40, 0), 0)])  # zero does not hide it
    expect_error(write(tmp_path, data, "z.gguf"), r"'big0': element count .* overflows int64")


def test_nbytes_overflow(tmp_path):
    # 2**62 F32 elements fit in int64 but their 2**64 bytes do not fit in u64.
    data, _ = make_gguf([], [("big", (4, 2**60), 0)])
    expect_error(write(tmp_path, data), r"tensor 'big': data size of F32 shape \[4, "
                 r"1152921504606846976\] overflows 64 bits")


def test_block_size_mismatch(tmp_path):
    data, at = small_gguf()
    expect_error(write(tmp_path, patched(data, at["t0.ne0"], "Q", 48)),
                 r"tensor 'tok_embd.weight': ne\[0\] = 48 is not a multiple of the Q8_0 "
                 r"block size 32")


def test_misaligned_offset(tmp_path):
    data, at = small_gguf()
    expect_error(write(tmp_path, patched(data, at["t1.offset"], "Q", 200)),
                 r"tensor 'norm.weight': data offset 200 is not a multiple of the alignment 32")


def test_tensor_past_eof(tmp_path):
    data, at = small_gguf()
    size = len(data)
    expect_error(write(tmp_path, patched(data, at["t1.offset"], "Q", 1024)),
                 rf"tensor 'norm.weight': data \[{at['data'] + 1024}, {at['data'] + 1044}\) "
                 rf"runs past the end of the file \(size {size}\)")
    expect_error(write(tmp_path, patched(data, at["t0.ne1"], "Q", 4), "big.gguf"),
                 r"'tok_embd.weight'.* (runs past the end of the file|overlap)")


@pytest.mark.parametrize("offset", [2**64 - 32, 2**63, 2**64 - 2**20])
def test_offset_overflow(tmp_path, offset):
    data, at = small_gguf()
    expect_error(write(tmp_path, patched(data, at["t1.offset"], "Q", offset)),
                 r"tensor 'norm.weight': data .*runs past the end of the file \(size \d+\)")


def test_overlapping_tensors(tmp_path):
    data, at = small_gguf()
    expect_error(write(tmp_path, patched(data, at["t2.offset"], "Q", 64)),
                 r"tensors 'tok_embd.weight' \[\d+, \d+\) and 'blk.0.attn_q.weight' "
                 r"\[\d+, \d+\) overlap")


def test_duplicate_tensor_name(tmp_path):
    tensors = [("w", (4,), 0), ("w", (4,), 0)]
    expect_error(write(tmp_path, make_gguf([], tensors)[0]),
                 r"duplicate tensor name 'w' \(tensor infos #0 and #1\)")


def test_duplicate_key(tmp_path):
    kvs = [("a", U8, 1), ("b", U8, 2), ("a", STRING, "x")]
    expect_error(write(tmp_path, make_gguf(kvs, [])[0]),
                 r"duplicate metadata key 'a' \(entries #0 and #2\)")


@pytest.mark.parametrize("vtype,value,pattern", [
    (U32, 0, r"'general.alignment' is 0, which is not a nonzero power of two"),
    (U32, 3, r"'general.alignment' is 3, which is not a nonzero power of two"),
    (U32, 2**31 + 1, r"is 2147483649, which is not"),
    (U64, 32, r"'general.alignment' has type uint64, expected uint32"),
    (I32, 32, r"'general.alignment' has type int32, expected uint32"),
    (STRING, "32", r"'general.alignment' has type string, expected uint32"),
])
def test_bad_alignment(tmp_path, vtype, value, pattern):
    data, _ = make_gguf([("general.alignment", vtype, value)], [("w", (4,), 0)])
    expect_error(write(tmp_path, data), pattern)


def test_alignment_moves_data_section(tmp_path):
    for a in (1, 8, 256, 4096):
        data, at = make_gguf([("general.alignment", U32, a)], SMALL_TENSORS, alignment=a)
        f = _core.GgufFile(str(write(tmp_path, data, f"a{a}.gguf")))
        assert f.alignment == a and f.data_offset == at["data"] == align_up(at["data"], a)
        assert all(t.offset % a == 0 for t in f.tensors)


def test_messages_escape_hostile_names(tmp_path):
    name = b"evil\nname'\x00" + b"x" * 500
    data, at = make_gguf([], [(name, (4,), 0)])
    msg = expect_error(write(tmp_path, patched(data, at["t0.type"], "I", 77)),
                       r"tensor 'evil\\x0aname\\x27\\x00x+\.\.\.': unknown ggml type id 77")
    assert len(msg) < 400


# --------------------------------------------------------------------------------------------
# (c) fuzz
# --------------------------------------------------------------------------------------------

def exercise(f):
    """Touch everything a loaded file exposes."""
    _ = f.metadata
    for t in f.tensors:
        _ = (t.name, t.type_name, t.shape)
        if "\ufffd" in t.name:  # a name that is not UTF-8 is shown with U+FFFD: not a lookup key
            continue
        v = f.tensor_bytes(t.name)
        assert t.offset + t.nbytes <= f.file_size
        if t.nbytes:
            v[0], v[-1]


def test_fuzz_header_region(tmp_path):
    data, at = small_gguf()
    header_end = at["data"]
    rng = random.Random(1234)
    p = tmp_path / "fuzz.gguf"
    outcomes = {"ok": 0, "error": 0}
    for _ in range(300):
        b = bytearray(data)
        mode = rng.randrange(4)
        if mode == 0:  # a few single-byte flips
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(header_end)] ^= 1 << rng.randrange(8)
        elif mode == 1:  # random bytes
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(header_end)] = rng.randrange(256)
        elif mode == 2:  # a random range overwritten
            start = rng.randrange(header_end)
            n = rng.randint(1, 16)
            fill = rng.choice([0x00, 0xFF, None])
            for j in range(start, min(start + n, header_end)):
                b[j] = rng.randrange(256) if fill is None else fill
        else:  # a u64 field set to a boundary value
            start = rng.randrange(header_end - 8)
            value = rng.choice([0, 1, 2**31, 2**32 - 1, 2**62, 2**63, 2**64 - 1, 2**64 - 32])
            struct.pack_into("<Q", b, start, value)
        p.write_bytes(bytes(b))
        try:
            f = _core.GgufFile(str(p))
        except GgufError as e:
            assert str(e).startswith(f"{p}: ")
            outcomes["error"] += 1
            continue
        exercise(f)
        outcomes["ok"] += 1
    assert outcomes["error"] > 100  # the fuzzer does reach the checks


# --------------------------------------------------------------------------------------------
# (d) getters and tensor views
# --------------------------------------------------------------------------------------------

GETTER_KVS = [
    ("u8", U8, 250), ("i8", I8, -7), ("u16", U16, 65535), ("i16", I16, -32768),
    ("u32", U32, 2**32 - 1), ("i32", I32, -(2**31)), ("u64", U64, 2**63 - 1),
    ("u64big", U64, 2**63), ("i64", I64, -(2**63)), ("f32", F32, 2.5), ("f64", F64, -1e100),
    ("yes", BOOL, True), ("no", BOOL, False), ("s", STRING, "text"),
    ("ints", ARRAY, (I16, [-1, 0, 1])), ("bools", ARRAY, (BOOL, [True, False])),
    ("bigs", ARRAY, (U64, [1, 2**64 - 1])), ("floats", ARRAY, (F64, [0.25, -3.0])),
    ("strs", ARRAY, (STRING, ["a", "", "ccc"])), ("nest", ARRAY, (ARRAY, [(U8, [1])])),
]


@pytest.fixture
def getter_file(tmp_path):
    return _core.GgufFile(str(write(tmp_path, make_gguf(GETTER_KVS, [("w", (8,), 0)])[0])))


def test_metadata_types(getter_file):
    md = getter_file.metadata
    assert list(md) == [k for k, _, _ in GETTER_KVS]
    for key, vtype, v in GETTER_KVS:
        got = md[key]
        if vtype == ARRAY:
            etype, items = v
            assert got == [list(x[1]) for x in items] if etype == ARRAY else got == items
        else:
            assert got == v and type(got) is type(v), key
    assert md["bools"] == [True, False] and type(md["bools"][0]) is bool


def test_int_getter(getter_file):
    f = getter_file
    for key, vtype, v in GETTER_KVS:
        if vtype in (U8, I8, U16, I16, U32, I32, U64, I64, BOOL) and key != "u64big":
            assert f.get_int(key) == int(v)
    assert f.get_int("missing", 42) == 42 and f.get_int("u8", 1) == 250
    path = re.escape(f.path)
    with pytest.raises(GgufError, match=rf"^{path}: metadata key 'missing' is missing$"):
        f.get_int("missing")
    with pytest.raises(GgufError, match=r"'u64big' holds 9223372036854775808, which does not fit"):
        f.get_int("u64big")
    with pytest.raises(GgufError, match=r"'f32' has type float32, expected an integer"):
        f.get_int("f32")
    with pytest.raises(GgufError, match=r"'s' has type string, expected an integer"):
        f.get_int("s", 0)  # a default only covers a missing key


def test_float_getter(getter_file):
    f = getter_file
    assert f.get_float("f32") == 2.5 and f.get_float("f64") == -1e100
    assert f.get_float("i8") == -7.0 and f.get_float("u64big") == 2.0**63
    assert f.get_float("yes") == 1.0
    assert f.get_float("missing", 0.5) == 0.5
    with pytest.raises(GgufError, match=r"'missing' is missing"):
        f.get_float("missing")
    with pytest.raises(GgufError, match=r"'ints' has type array of int16, expected a number"):
        f.get_float("ints")


def test_string_getter(getter_file):
    f = getter_file
    assert f.get_str("s") == "text"
    with pytest.raises(GgufError, match=r"'u8' has type uint8, expected a string"):
        f.get_str("u8")
    with pytest.raises(GgufError, match=r"'nope' is missing"):
        f.get_str("nope")
    assert f.has("s") and "s" in f and not f.has("nope")


def test_array_getters(getter_file):
    f = getter_file
    assert f.get_int_array("ints") == [-1, 0, 1]
    assert f.get_int_array("bools") == [1, 0]
    assert f.get_float_array("floats") == [0.25, -3.0]
    assert f.get_float_array("ints") == [-1.0, 0.0, 1.0]
    assert f.get_str_array("strs") == ["a", "", "ccc"]
    with pytest.raises(GgufError, match=r"'bigs' holds 18446744073709551615, which does not fit"):
        f.get_int_array("bigs")
    with pytest.raises(GgufError, match=r"'floats' has type array of float64, expected an array "
                                        r"of integers"):
        f.get_int_array("floats")
    with pytest.raises(GgufError, match=r"'strs' has type array of string, expected an array of "
                                        r"numbers"):
        f.get_float_array("strs")
    with pytest.raises(GgufError, match=r"'ints' has type array of int16, expected an array of "
                                        r"strings"):
        f.get_str_array("ints")
    with pytest.raises(GgufError, match=r"'nest' has type array of array, expected an array of "
                                        r"integers"):
        f.get_int_array("nest")
    with pytest.raises(GgufError, match=r"'u8' has type uint8, expected an array of integers"):
        f.get_int_array("u8")
    with pytest.raises(GgufError, match=r"'gone' is missing"):
        f.get_str_array("gone")


def test_error_is_value_error():
    assert issubclass(GgufError, ValueError)


def test_tensor_bytes_is_readonly_and_keeps_file_alive(tmp_path):
    data, _ = small_gguf()
    p = write(tmp_path, data)
    f = _core.GgufFile(str(p))
    t = f.tensors[1]
    view = f.tensor_bytes(t.name)
    expected = data[t.offset:t.offset + t.nbytes]
    assert not view.flags.writeable and not view.flags.owndata
    with pytest.raises(ValueError):
        view[0] = 1
    with pytest.raises(ValueError):
        view.flags.writeable = True
    with pytest.raises(KeyError):
        f.tensor_bytes("no.such.tensor")
    with pytest.raises(KeyError):
        f.tensor_info("no.such.tensor")
    assert f.tensor_info(t.name).offset == t.offset

    # Zero copy: two views share memory.
    assert np.shares_memory(view, f.tensor_bytes(t.name))
    del f
    gc.collect()
    p.unlink()  # the mapping outlives the directory entry too
    assert view.tobytes() == expected
    assert int(view.sum()) == sum(expected)


def test_path_property_and_repr(tmp_path):
    p = write(tmp_path, small_gguf()[0])
    f = _core.GgufFile(pathlib.Path(p))
    assert f.path == str(p)
    assert "tok_embd.weight" in repr(f.tensors[0]) and "Q8_0" in repr(f.tensors[0])
