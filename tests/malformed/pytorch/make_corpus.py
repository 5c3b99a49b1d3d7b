"""Hostile and broken PyTorch checkpoints, for malformed_pytorch.rs: each
file is written here by CPython's pickle and zipfile (with the torch.save
stand-ins of ../../pytorch/torchlike.py), and EXPECTED.tsv says what
rankscope must answer. Run from this folder: python3 make_corpus.py"""

import builtins
import os
import pickle
import struct
import subprocess
import sys
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pytorch"))
from torchlike import Storage, Tensor, dumps, save  # noqa: E402

sys.setrecursionlimit(20000)
ok = Storage("0", "F32", [1.0, 2.0, 3.0, 4.0])
good = {"w": Tensor(ok, 0, [2, 2], [2, 1])}
rows = []


def case(name, expect):
    rows.append((name, "pytorch", expect))
    return name


class System:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/rankscope_pwned",))


class Eval:
    def __reduce__(self):
        return (builtins.eval, ("__import__('os').system('echo pwned')",))


class Popen:
    def __reduce__(self):
        return (subprocess.Popen, (["sh", "-c", "echo pwned"],))


# A state dict whose config runs os.system when Python unpickles it.
save(case("os_system.pt", "posix.system"), {"model_state_dict": good, "config": System()})
# Protocol 2 writes the Python 2 names: builtins → __builtin__, subprocess → commands.
save(case("builtins_eval.pt", "__builtin__.eval"), {"state_dict": good, "x": Eval()})
# A __reduce__ payload instead of a tensor.
save(case("reduce_payload.pt", "commands.Popen"), {"w": Popen()})

# 500 nested lists around the state dict.
nested = good
for _ in range(500):
    nested = [nested]
save(case("deep_nesting.pt", "nests deeper than 256"), {"model": nested})

# A tensor that needs 8 elements of a 4-element storage.
save(case("storage_past_end.pt", "needs elements up to 32 bytes into storage `0`, which holds only 16"),
     {"w": Tensor(ok, 4, [2, 2], [2, 1])})
# A storage whose size says more than its entry holds.
short = Storage("0", "F32", [1.0, 2.0], numel=4)
save(case("storage_entry_short.pt", "which holds only 8"), {"w": Tensor(short, 0, [4], [1])})

# Re-zipped with deflate.
save(case("compressed.pt", "is compressed (method 8"), good, compression=zipfile.ZIP_DEFLATED)

# A tensor whose storage entry is missing.
pkl, _ = dumps(good)
with zipfile.ZipFile(case("missing_storage.pt", "refers to storage `0`, which is not in the file"), "w") as z:
    z.writestr("archive/data.pkl", pkl)

# A zip without data.pkl.
with zipfile.ZipFile(case("not_torch.pt", "no data.pkl"), "w") as z:
    z.writestr("hello.txt", "hello")

# Truncated: the second half of the file is gone (and with it the directory).
save("full.tmp", good)
data = open("full.tmp", "rb").read()
os.remove("full.tmp")
open(case("truncated.pt", "no end-of-central-directory record"), "wb").write(data[: len(data) // 2])


# Two central-directory entries that point at the same local header.
def overlapping(path):
    save(path, good)
    raw = bytearray(open(path, "rb").read())
    eocd = raw.rfind(b"PK\x05\x06")
    cd = struct.unpack_from("<I", raw, eocd + 16)[0]
    first = cd
    n1, e1, c1 = struct.unpack_from("<HHH", raw, first + 28)
    second = first + 46 + n1 + e1 + c1
    # The second entry's local-header offset := the first one's.
    struct.pack_into("<I", raw, second + 42, struct.unpack_from("<I", raw, first + 42)[0])
    open(path, "wb").write(raw)


overlapping(case("overlapping_entries.pt", "overlap"))


# A whole pickled nn.Module (needs its class's code to load).
class Net:
    def __init__(self):
        self._parameters = {}
        self._modules = {}


Net.__module__ = "mymodels"
sys.modules["mymodels"] = type(sys)("mymodels")
sys.modules["mymodels"].Net = Net
save(case("whole_module.pt", "whole pickled model object (class mymodels.Net)"), Net())

# No tensors anywhere.
save(case("no_tensors.pt", "no state dict of tensors in the checkpoint: it holds a dict with keys step"), {"step": 3})

# The legacy format, cut inside its pickles.
legacy = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.\x80\x02}q\x00(X"
open(case("legacy_truncated.pt", "truncated"), "wb").write(legacy)

# A pickle protocol from the future.
open(case("protocol_6.pt", "pickle protocol 6"), "wb").write(
    b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x06N.")

# One tuple of 1000 ints memoised, then fetched into 1000 slots of a list:
# 5 KB that unfold to a million values (the fuzzer found a 1 KB DUP variant
# that took 1.4 GB); refused by the sharing budget.
fan_out = (b"\x80\x02(" + b"K\x01" * 1000 + b"tq\x000](" + b"h\x00" * 1000 + b"e.")
with zipfile.ZipFile(case("shared_fan_out.pt", "beyond its own by repeating shared ones"), "w") as z:
    z.writestr(zipfile.ZipInfo("archive/data.pkl", date_time=(2026, 1, 1, 0, 0, 0)), fan_out)

with open("EXPECTED.tsv", "w") as f:
    f.write("# file\tkind\texpected substring (written by make_corpus.py)\n")
    for r in rows:
        f.write("\t".join(r) + "\n")
