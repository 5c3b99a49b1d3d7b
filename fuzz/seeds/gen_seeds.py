#!/usr/bin/env python3
"""Writes the small hand-made seed inputs under fuzz/seeds/<target>/ (committed).
Larger real files come from ../shared/fixtures at run time (scripts/fuzz.sh)."""
import base64, json, os, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))

def put(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def safetensors(tensors, meta=None):
    header, blob = {}, b""
    if meta:
        header["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob

st = safetensors([
    ("w.f32", "F32", [2, 2], struct.pack("<4f", 1.0, -2.5, float("nan"), float("inf"))),
    ("w.f16", "F16", [3], struct.pack("<3e", 0.5, -1.0, 65504.0)),
    ("w.bf16", "BF16", [2], bytes([0x80, 0x3f, 0xc0, 0x7f])),
    ("w.f64", "F64", [1], struct.pack("<d", 3.25)),
    ("ids", "I64", [1, 3], struct.pack("<3q", 1, 2, 3)),
    ("m", "U8", [2], b"\x01\x02"),
    ("b", "BOOL", [1], b"\x01"),
    ("e", "F32", [0], b""),
], meta={"format": "pt"})
put("safetensors", "mixed.safetensors", st)
put("tokens", "ids.safetensors", b"\x00" + safetensors([("input_ids", "I32", [2, 3], struct.pack("<6i", 0, 1, 2, 3, 4, 5))]))
put("inspect", "ckpt.safetensors", b"\x00" + st)
put("inspect", "tokens.safetensors", b"\x02" + safetensors([("input_ids", "I64", [1, 4], struct.pack("<4q", 5, 6, 7, 8))]))

def npy(descr, shape, raw, fortran=False):
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", repr(tuple(shape)))
    pad = -(10 + len(d) + 1) % 64
    h = d + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + raw

put("tokens", "i64.npy", b"\x01" + npy("<i8", [2, 2], struct.pack("<4q", 1, 2, 3, 4)))
put("tokens", "u16.npy", b"\x01" + npy("<u2", [3], struct.pack("<3H", 7, 8, 9)))
put("tokens", "i32.npy", b"\x01" + npy("<i4", [1, 2], struct.pack("<2i", 10, 11)))
put("inspect", "tokens.npy", b"\x03" + npy("<i8", [1, 3], struct.pack("<3q", 1, 2, 3)))
put("tokens", "flat.json", b"\x02[1,2,3,4]")
put("tokens", "rows.json", b"\x02[[1,2],[3,4]]")
put("tokens", "obj.json", b'\x02{"input_ids": [[0, 50256, 7]]}')
put("inspect", "tokens.json", b'\x04{"input_ids": [[0, 1, 7]]}')

# Logs: selector byte 0..=6 = parse_as(format), 7 = framed TensorBoard, 8.. = detect + parse.
jsonl = b'{"step": 0, "tokens": 0, "loss": 10.9}\n{"step": 10, "tokens": 20480, "loss": 7.5, "lr": 0.001}\n'
csv = b"step,loss,val_loss\n0,10.9,\n10,7.5,7.9\n"
wandb = b'"Step","run1 - loss","run1 - loss__MIN","run1 - loss__MAX"\n"0","10.9","10.8","11.0"\n"10","7.5","7.4","7.6"\n'
results = json.dumps({"tag": "A1", "tokens": [0, 20480], "layer_pr": [[1.0, 2.0], [1.5, 2.5]], "mean_pr": [1.5, 2.0], "gamma_final": [0.5, 0.6]}).encode()
metrics = json.dumps({"final_metrics": {"loss": 3.2}, "history": [{"step": 0, "loss": 10.0}, {"step": 5, "loss": 5.0}]}).encode()
text = b"step:0/100 train_loss:10.98 train_time:0ms\nstep:10/100 val_loss:7.5 train_time:100ms\ns:20 trl:6.1\n"

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def field(tag, wt, payload):
    key = varint((tag << 3) | wt)
    if wt == 2:
        return key + varint(len(payload)) + payload
    return key + payload

def event(step, tag, value, tensor=False):
    if tensor:
        tp = field(1, 0, varint(1)) + field(4, 2, struct.pack("<f", value))
        sv = field(1, 2, tag.encode()) + field(8, 2, tp)
    else:
        sv = field(1, 2, tag.encode()) + field(2, 5, struct.pack("<f", value))
    return field(1, 1, struct.pack("<d", 1.7e9)) + field(2, 0, varint(step)) + field(5, 2, field(1, 2, sv))

# CRC-32C (Castagnoli), masked as TFRecord does.
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

def masked(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

def record(data):
    n = struct.pack("<Q", len(data))
    return n + struct.pack("<I", masked(n)) + data + struct.pack("<I", masked(data))

assert crc32c(b"123456789") == 0xE3069283
events = [field(1, 1, struct.pack("<d", 1.7e9)) + field(3, 2, b"brain.Event:2"),
          event(0, "train/loss", 10.5), event(10, "train/loss", 7.25, tensor=True), event(10, "lr", 0.001)]
tfev = b"".join(record(e) for e in events)
framed = b"".join(bytes([len(e)]) + e for e in events)

for i, body in enumerate([jsonl, csv, wandb, results, metrics, tfev, text]):
    put("logs", "as_%d" % i, bytes([i]) + body)
put("logs", "framed_tfevents", b"\x07" + framed)
for i, body in enumerate([jsonl, csv, results, metrics, tfev, text, text, jsonl]):
    put("logs", "detect_%d" % i, bytes([8 + i]) + body)
put("inspect", "metrics.jsonl", b"\x05" + jsonl)
put("inspect", "results.json", b"\x06" + results)
put("inspect", "events", b"\x07" + tfev)
put("inspect", "train.log", b"\x08" + text)
put("inspect", "export.csv", b"\x09" + wandb)

figure = {
    "format": 1, "app_version": "0.1.0",
    "spec": {"kind": "Trajectory", "title": "PR vs tokens", "caption": "mean over 2 layers",
             "x": {"label": "training tokens", "scale": "Linear", "range": None},
             "y": {"label": "PR", "scale": "Log", "range": [0.1, 10.0]},
             "series": [{"name": "A1", "points": [[0, 1.5], [20480, 2.0]], "style": "LineMarkers", "color": 0,
                         "band": [[0, 1.0, 2.0]], "error_bars": None, "faint": False, "points_total": 2}],
             "sources": ["runs/A1/ckpt_tokens_0.safetensors"]},
    "files": [{"name": "runs/A1/ckpt_tokens_0.safetensors", "size": 1234, "digest": "ab12"}],
}
fj = json.dumps(figure).encode()
put("share_link_json", "figure.json", fj)
raw = zlib.compressobj(9, zlib.DEFLATED, -15)
packed = raw.compress(fj) + raw.flush()
link = "figure=v1." + base64.urlsafe_b64encode(packed).decode().rstrip("=")
put("share_link", "link", link.encode())
put("share_link", "url", ("https://example.org/rankscope/#" + link + "&x=1").encode())

# PyTorch: a file in torch.save's zip format (tests/pytorch/views.pt, written by
# tests/pytorch/make_files.py: strided views, shared storages, F64/BF16/F16), two
# hostile ones, and pickles of plain data in every protocol.
import pickle, zipfile
ROOT = os.path.join(HERE, "..", "..")
for name in ["tests/pytorch/views.pt", "tests/malformed/pytorch/os_system.pt", "tests/malformed/pytorch/deep_nesting.pt"]:
    with open(os.path.join(ROOT, name), "rb") as f:
        put("pytorch", os.path.basename(name), f.read())
with zipfile.ZipFile(os.path.join(ROOT, "tests/pytorch/views.pt")) as z:
    put("pickle", "views_data.pkl", z.read("views/data.pkl"))
plain = {"a": [1, -2, 3.5, None, True], "b": (b"xy", "s\u00e9"), "big": 2**70, "neg": -300, "nested": {"d": [[{}]]}, "set": {7}}
for proto in range(6):
    put("pickle", f"plain_p{proto}.pkl", pickle.dumps(plain, protocol=proto))
