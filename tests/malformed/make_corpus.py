#!/usr/bin/env python3
"""Writes the malformed-input corpus for rankscope's safetensors, token and
shard-index readers, and EXPECTED.tsv (file, kind, a substring of the error).

Run once from anywhere with python3 (standard library only); the generated
files are committed. `crates/core/tests/malformed_safetensors.rs` checks every
line. Kinds: safetensors (read_header), tokens (by extension: .npy →
parse_npy, .json → parse_tokens_json, .safetensors →
parse_tokens_safetensors), shard_index (parse_index), values (parses fine;
the substring is the scan_values total over all tensors,
"nan=N pos_inf=P neg_inf=M"). The logs/ subfolder belongs to the run-log
readers and is not written here.
"""

import json
import math
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
rows = []


def put(name, data, kind, expect):
    assert "\t" not in expect and "\n" not in expect
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    rows.append((name, kind, expect))


def st(header, data=b"", pad=b""):
    """A safetensors file from a header (dict, or raw bytes) and data bytes."""
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    h += pad
    return struct.pack("<Q", len(h)) + h + data


def t(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def npy(descr, shape, data, fortran=False, magic=b"\x93NUMPY"):
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        descr, "True" if fortran else "False", "(%s)" % "".join("%d, " % d for d in shape))
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    return magic + b"\x01\x00" + struct.pack("<H", len(h)) + h.encode() + data


S = "safetensors"

# --- the length prefix -------------------------------------------------------
put("empty.safetensors", b"", S, "file is 0 bytes, too short")
put("three_bytes.safetensors", b"\x10\x00\x00", S, "file is 3 bytes, too short")
put("header_past_end.safetensors", struct.pack("<Q", 9000) + b"{}" + b" " * 798, S,
    "header says 9000 bytes but the file has only 800 after the length prefix")
put("header_too_large.safetensors", struct.pack("<Q", 1 << 40) + b"{}", S,
    "more than the 100000000 allowed")

# --- the JSON itself ----------------------------------------------------------
put("header_not_utf8.safetensors", st(b'{"w\xff\xfe":{}}'), S, "header is not valid UTF-8")
put("header_not_json.safetensors", st(b'{"w": {"dtype": "F32", '), S, "header is not valid JSON")
put("header_nul_padded.safetensors", st({}, pad=b"\x00" * 6), S, "header is not valid JSON")
put("header_array.safetensors", st(b"[1, 2, 3]"), S, "header is JSON an array")
put("metadata_value_not_string.safetensors", st({"__metadata__": {"run": "A1", "step": 5}}), S,
    '"__metadata__" value of key "step" is the number 5')
put("metadata_not_object.safetensors", st({"__metadata__": "pt"}), S,
    '"__metadata__" must be an object of string values')
put("duplicate_tensor.safetensors",
    st(b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
       b'"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\x00" * 8), S,
    'tensor "w" appears more than once')

# --- one tensor entry ---------------------------------------------------------
put("missing_dtype.safetensors", st({"w": {"shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 8), S,
    'tensor "w" has no "dtype"')
put("unknown_dtype.safetensors", st({"w": t("F12", [2], 0, 8)}, b"\x00" * 8), S,
    'tensor "w" has unknown dtype "F12"')
put("shape_not_integers.safetensors", st({"w": t("F32", [2, -1], 0, 8)}, b"\x00" * 8), S,
    '"shape" must be an array of non-negative integers')
put("size_mismatch.safetensors", st({"w": t("F32", [2, 3], 0, 20)}, b"\x00" * 20), S,
    'tensor "w": F32 [2, 3] needs 24 bytes but its data_offsets span 20')
put("offsets_reversed.safetensors", st({"a": t("F32", [2], 0, 8), "w": t("F32", [1], 8, 4)}, b"\x00" * 8), S,
    'tensor "w": data_offsets [8, 4] end before they begin')
put("shape_overflow.safetensors", st({"w": t("F32", [1 << 32, 1 << 32, 16], 0, 4)}, b"\x00" * 4), S,
    "has too many elements to count in 64 bits")

# --- the layout of the data ---------------------------------------------------
put("offsets_overlap.safetensors", st({"a": t("F32", [4], 0, 16), "b": t("F32", [4], 8, 24)}, b"\x00" * 24), S,
    'tensors "a" (data bytes 0..16) and "b" (data bytes 8..24) overlap')
put("offsets_gap.safetensors", st({"a": t("F32", [4], 0, 16), "b": t("F32", [4], 20, 36)}, b"\x00" * 36), S,
    'gap of 4 unused bytes (data bytes 16..20) before tensor "b"')
put("offsets_not_from_zero.safetensors", st({"a": t("F32", [1], 4, 8)}, b"\x00" * 8), S,
    'gap of 4 unused bytes (data bytes 0..4) before tensor "a"')
put("truncated_data.safetensors", st({"a": t("F32", [4], 0, 16), "b": t("F32", [4], 16, 32)}, b"\x00" * 20), S,
    "truncated: expected 32 bytes of tensor data, found 20")
put("tensor_past_end.safetensors", st({"a": t("F32", [4], 0, 16), "b": t("F32", [1], 40, 44)}, b"\x00" * 16), S,
    "truncated: expected 44 bytes of tensor data, found 16")
put("trailing_bytes.safetensors", st({"a": t("F32", [4], 0, 16)}, b"\x00" * 20), S,
    "trailing bytes: the tensors use 16 bytes of data but the file has 20 (4 extra)")

# --- files that parse: values are scanned -------------------------------------
nan, inf = float("nan"), float("inf")
f32 = struct.pack("<8f", 1.0, nan, -inf, 2.5, inf, -inf, nan, 0.0)
bf16 = bytes.fromhex("c07f" "803f" "80ff" "0000")  # NaN, 1.0, -inf, 0.0 (little-endian)
put("nan_inf.safetensors", st({"__metadata__": {"note": "2+1 NaN, 1 +inf, 2+1 -inf"},
                               "a": t("F32", [2, 4], 0, 32), "b": t("BF16", [4], 32, 40)}, f32 + bf16),
    "values", "nan=3 pos_inf=1 neg_inf=3")
put("header_space_padded.safetensors", st({"a": t("F64", [1], 0, 8)}, struct.pack("<d", math.pi), pad=b" " * 7),
    "values", "nan=0 pos_inf=0 neg_inf=0")

# --- token files --------------------------------------------------------------
T = "tokens"
put("tokens_npy_bad_magic.npy", npy("<i8", [2], b"\x00" * 16, magic=b"\x93NUMPX"), T, "not a .npy file")
put("tokens_npy_fortran.npy", npy("<i8", [2, 2], b"\x00" * 32, fortran=True), T, "Fortran (column-major) order")
put("tokens_npy_float.npy", npy("<f4", [2, 2], b"\x00" * 16), T, '.npy dtype "<f4" is not an integer type')
put("tokens_npy_short_data.npy", npy("<i4", [2, 2], b"\x00" * 8), T,
    ".npy data is 8 bytes but shape and dtype need 16")
put("tokens_json_ragged.json", b"[[1, 2, 3], [4, 5]]", T, "row 1 has 2 ids but row 0 has 3")
put("tokens_json_negative.json", b'{"input_ids": [[1, 2], [3, -4]]}', T, "negative token id -4 at row 1, column 1")
put("tokens_json_not_tokens.json", b'{"text": "hello"}', T, "must be an array of ids")
put("tokens_json_float_in_row.json", b"[[1, 2], [3, 4.5]]", T, "value at row 1, column 1 is the number 4.5, not an integer token id")
put("tokens_json_rows_then_id.json", b"[[1, 2], 3]", T, "must be an array of ids, an array of equal-length arrays")
put("tokens_json_id_too_large.json", b"[[1, 4294967296]]", T, "token id 4294967296 at row 0, column 1 is too large")
put("tokens_json_trailing.json", b"[[1, 2]] [[3, 4]]", T, "token JSON is not valid JSON: trailing characters")
put("tokens_json_string_id.json", b'{"input_ids": [["1", "2"]]}', T, 'value at row 0, column 0 is "1", not an integer token id')
put("tokens_float_dtype.safetensors", st({"input_ids": t("F32", [1, 2], 0, 8)}, b"\x00" * 8), T,
    'tensor "input_ids" is F32, but token ids must be integers')
put("tokens_no_integer_tensor.safetensors", st({"x": t("F16", [2], 0, 4)}, b"\x00" * 4), T, "no token tensor")

# --- shard indexes ------------------------------------------------------------
put("shard_index_no_weight_map.json", b'{"metadata": {"total_size": 1024}}', "shard_index", 'has no "weight_map"')
put("shard_index_weight_map_array.json", b'{"weight_map": ["model-00001-of-00002.safetensors"]}', "shard_index",
    '"weight_map" must be an object')

# Lines of other kinds (other readers' corpora, e.g. logs/) are kept as they are.
OURS = {"safetensors", "tokens", "shard_index", "values"}
tsv = os.path.join(HERE, "EXPECTED.tsv")
others = []
if os.path.exists(tsv):
    with open(tsv, encoding="utf-8") as f:
        others = [l for l in f if not l.startswith("#") and l.count("\t") == 2 and l.split("\t")[1] not in OURS]
with open(tsv, "w", encoding="utf-8", newline="\n") as f:
    f.write("# file\tkind\texpected substring (make_corpus.py writes the safetensors/tokens/shard_index/values lines)\n")
    for r in rows:
        f.write("\t".join(r) + "\n")
    f.writelines(others)
print(f"wrote {len(rows)} files")
