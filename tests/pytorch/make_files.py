"""Writes views.pt (a torch.save-format file with a transposed view, views at
storage offsets into a shared storage, F64, BF16 and F16 tensors and a
parameter) and views_expected.json (each tensor's shape and row-major values
as PyTorch would give them). Run from this folder: python3 make_files.py"""

import json
import struct

from torchlike import Storage, Tensor, save

base = Storage("0", "F32", [float(i) + 0.5 for i in range(12)])  # a 3x4 matrix
shared = Storage("1", "F32", [float(-i) for i in range(10)])
f64 = Storage("2", "F64", [1.0 / 3.0, 2.0 / 3.0, 1e-300, -7.25])
bf16 = Storage("3", "BF16", [1.5, -2.0, 3.0, 0.25, 100.0, -0.125])
f16 = Storage("4", "F16", [0.5, 1.0, 1.5, 2.0, 2.5, 3.0])

tensors = {
    "dense": Tensor(base, 0, [3, 4], [4, 1]),
    "transposed": Tensor(base, 0, [4, 3], [1, 4]),          # base.t(): stride (1, 4)
    "at_offset": Tensor(shared, 2, [2, 3], [3, 1]),          # shared[2:8].view(2, 3)
    "same_storage": Tensor(shared, 0, [4], [1]),             # shared[0:4]
    "column": Tensor(shared, 1, [3, 1], [3, 7]),             # shared[1::3] as a column (the size-1 dim's stride is free)
    "every_other": Tensor(shared, 0, [5], [2]),              # shared[::2]
    "f64": Tensor(f64, 0, [2, 2], [2, 1]),
    "bf16_t": Tensor(bf16, 0, [3, 2], [1, 3]),               # a transposed BF16 view
    "f16_param": Tensor(f16, 0, [2, 3], [3, 1], parameter=True),
}
save("views.pt", {"model_state_dict": tensors, "step": 12, "config": {"d_model": 4}}, name="views")


def bf16_round(v):
    return struct.unpack("<f", b"\0\0" + struct.pack("<f", v)[2:])[0]


expected = {}
for name, t in tensors.items():
    values = t.values()
    if t.storage.dtype == "BF16":
        values = [bf16_round(v) for v in values]
    expected[name] = {"shape": t.shape, "values": values}
with open("views_expected.json", "w") as f:
    json.dump(expected, f, indent=1)
