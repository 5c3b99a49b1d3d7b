#!/usr/bin/env python3
"""Writes the hostile-input corpus of issue 19 (files that other readers'
corpora do not cover: whole-file recognition, sessions, figure links) and
EXPECTED.tsv (file, kind, a substring of the outcome).

Run once with python3 (standard library only); the files are committed and
small. `crates/core/tests/malformed_hostile.rs` checks every line. Kinds:
  inventory  inspect_file(name, bytes): "<kind label>: <messages>"
  session    session::read_session: "not a session", "session: N runs", or the error
  link       share::decode_link, then drawn to SVG and PNG: "drawn", or the error
Large hostile cases (a 20 000-key log, a 200 MB token array, a 1.1 GB
session) are generated at test time instead, in the Rust tests.
"""

import base64
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
rows = []


def put(name, data, kind, expect):
    assert "\t" not in expect and "\n" not in expect
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    rows.append((name, kind, expect))


# --- whole-file recognition: positive evidence or "not a format" ------------
I = "inventory"
put("results_with_input_ids.json",
    json.dumps({"model": "stories260K", "input_ids": [1, 461, 397], "logits": [[0.1, 0.2]], "max_abs_logit": 9.5}),
    I, 'unknown: not a format rankscope reads: a JSON object with "input_ids" among other keys')
put("flat_integers.json", "[1, 2, 3, 4]", I,
    "unknown: not a format rankscope reads: a JSON array of integers, but a token batch is an array of equal-length rows")
put("one_line_manifest.json", json.dumps({"generator": "make.py", "seed": 42, "runs": ["A1"]}), I,
    "unknown: not a format rankscope reads: a JSON object, but not a run log")
put("tokenizer_output.json", json.dumps({"input_ids": [[5, 6, 7]], "attention_mask": [[1, 1, 1]]}), I,
    "token batch: ")
put("array_of_float_rows.json", "[[0.5, 1.5], [2.5, 3.5]]", I,
    "unknown: not a format rankscope reads: a JSON array, but not of rows of integer token ids")
put("rows_then_float.json", "[[1, 2], [3, 4.5]]", I,
    "token batch: value at row 1, column 1 is the number 4.5, not an integer token id")
put("session_word_in_log.jsonl",
    '{"run": "rankscope-session-check", "step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n', I,
    "run log: ")
put("saved_session.json", json.dumps({"format": "rankscope-session", "version": 1, "app_version": "0.1.0"}), I,
    "unknown: a rankscope session file (saved by the page): open it in the page")
put("config_eps_negative.json", json.dumps({"model_type": "llama", "rms_norm_eps": -1}), I, "model config: ")

# --- sessions -----------------------------------------------------------------
S = "session"
good = json.dumps({"format": "rankscope-session", "version": 1, "app_version": "0.1.0", "files": [],
                   "weights": [], "activations": [], "study": [], "failures": [], "view": None},
                  separators=(",", ":"))
put("session_ok.json", good, S, "session: 0 runs")
put("session_truncated.json", good[: len(good) // 2], S, "the session file is truncated")
put("session_future.json", good.replace('"version":1', '"version":7'), S, "saved by a newer rankscope (session format v7)")
put("session_damaged.json", good.replace('"weights":[]', '"weights":{}'), S, "the session file is damaged")
put("session_keys_reordered.json",
    json.dumps({"app_version": "0.1.0", "version": 1, "format": "rankscope-session"}), S, "session: 0 runs")
put("session_word_in_log.json",
    '{"run": "rankscope-session", "step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n', S, "not a session")
put("session_not_utf8.json", good.encode()[:-20] + b"\xff\xfe" + good.encode()[-18:], S, "not UTF-8 text")
put("session_format_not_string.json", json.dumps({"format": ["rankscope-session"], "version": 1}), S, "not a session")

# --- figure links -------------------------------------------------------------
L = "link"


def series(name, points, style="Line", faint=False, color=0):
    return {"name": name, "points": points, "style": style, "color": color, "faint": faint, "points_total": None}


def figure(series_list, x=None, y=None, fmt=1):
    axis = lambda label, scale="Linear", rng=None: {"label": label, "scale": scale, "range": rng}
    return {"format": fmt, "app_version": "0.1.0",
            "spec": {"kind": "LossCurve", "title": "t", "caption": "c", "x": x or axis("step"), "y": y or axis("loss"),
                     "series": series_list, "sources": ["metrics.jsonl"]},
            "files": []}


def link(fig, version="v1"):
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = raw.compress(json.dumps(fig, separators=(",", ":")).encode()) + raw.flush()
    return "https://example.org/rankscope/#figure=" + version + "." + base64.urlsafe_b64encode(packed).decode().rstrip("=")


ok = figure([series("a", [[0, 1], [1, 2]])])
put("link_ok.txt", link(ok), L, "drawn")
put("link_many_series.txt", link(figure([series("s", [[0, 1]], faint=True)] * 2001)), L,
    "it has 2001 series (at most 2000)")
put("link_infinite_width.txt",
    link(figure([series("a", [[0, 1]])], y={"label": "y", "scale": "Linear", "range": [-1.7e308, 1.7e308]})), L,
    "drawn: c. the fixed y range [-1.7e308, 1.7e308] cannot be drawn, so y is fitted to the data.")
put("link_log_range_negative.txt",
    link(figure([series("a", [[1, 1]])], x={"label": "x", "scale": "Log", "range": [-1, 10]})), L,
    "drawn: c. the fixed x range [-1, 10] cannot be drawn, so x is fitted to the data.")
put("link_log_extremes.txt",
    link(figure([series("a", [[0, 1], [1, 1e300]])], y={"label": "y", "scale": "Log", "range": None})), L, "drawn: c Sources: metrics.jsonl.")
put("link_log_underflow.txt",
    link(figure([series("a", [[0, 1e-310], [1, 1.0], [2, 0.5]])], y={"label": "y", "scale": "Log", "range": None})),
    L, "drawn")
put("link_linear_overflow.txt", link(figure([series("a", [[0, 1e308], [1, -1e308]])])), L, "drawn")
put("link_control_characters.txt", link(figure([series("run\u001b]0;x\u0007\u0000<b>", [[0, 1], [1, 2]])])), L,
    "drawn")
put("link_cut.txt", link(ok)[:-7], L, "the link is cut short")
put("link_future.txt", link(ok, "v9"), L, "the link was made by a newer rankscope (link format v9)")

# --- run logs of issue 19, written into ../logs (their lines in ../logs/EXPECTED.tsv) ---
LOGS = os.path.join(HERE, "..", "logs")


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data, claimed=None):
    n = struct.pack("<Q", len(data) if claimed is None else claimed)
    return n + struct.pack("<I", masked(n)) + data + struct.pack("<I", masked(data))


assert crc32c(b"123456789") == 0xE3069283


def log(name, data):
    with open(os.path.join(LOGS, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# A first record claiming 2^62 bytes; then one after a good event (field 3, file_version).
log("events.out.tfevents.huge_length", record(b"", claimed=1 << 62)[:12] + b"\x00" * 20)
log("events.out.tfevents.huge_second", record(bytes([0x1A, 7]) + b"brain.E") + record(b"", claimed=1 << 62)[:12] + b"\x00" * 8)
log("semicolons.csv", "step;loss\n1;2.5\n2;2.25\n")
log("semicolons_decimal_commas.csv", "step;loss;lr\n1;2,5;0,001\n2;2,25;0,001\n")
log("ragged_semicolons.csv", "step;loss\n1;2,5\n2;2,25;9\n")
log("one_object.json", '{"generator": "make.py", "seed": 42}\n')

with open(os.path.join(HERE, "EXPECTED.tsv"), "w", encoding="utf-8", newline="\n") as f:
    f.write("# file\tkind\texpected substring of the outcome (written by make_hostile.py)\n")
    for r in rows:
        f.write("\t".join(r) + "\n")
print(f"wrote {len(rows)} files")
