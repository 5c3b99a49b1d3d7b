"""Writes files in the format of `torch.save` without PyTorch: CPython's own
pickle (with `persistent_id`, as torch.save uses it) and zipfile, and the
same globals torch.save names (`torch._utils._rebuild_tensor_v2`,
`torch.FloatStorage`, ...), defined here as stand-ins so that pickle records
them by name. An independent writer for rankscope's reader to be checked
against. Used by make_files.py and ../malformed/pytorch/make_corpus.py."""

import collections
import io
import pickle
import struct
import sys
import types
import zipfile

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils

STORAGES = {"F32": ("FloatStorage", "<f", 4), "F64": ("DoubleStorage", "<d", 8),
            "F16": ("HalfStorage", "<e", 2), "I64": ("LongStorage", "<q", 8)}
for _name, _, _ in STORAGES.values():
    _cls = type(_name, (), {"__module__": "torch"})
    setattr(torch, _name, _cls)


def _rebuild_tensor_v2(*a):
    raise RuntimeError("never called")


def _rebuild_parameter(*a):
    raise RuntimeError("never called")


for _f in (_rebuild_tensor_v2, _rebuild_parameter):
    _f.__module__ = "torch._utils"
    setattr(torch_utils, _f.__name__, _f)


class Storage:
    """A storage: `values` (floats) of dtype `dtype`, saved under `key`."""

    def __init__(self, key, dtype, values, numel=None):
        self.key, self.dtype, self.values = key, dtype, list(values)
        self.numel = len(self.values) if numel is None else numel

    def data(self):
        if self.dtype == "BF16":
            return b"".join(struct.pack("<f", v)[2:] for v in self.values)
        return b"".join(struct.pack(STORAGES[self.dtype][1], v) for v in self.values)


class Tensor:
    def __init__(self, storage, offset, shape, stride, parameter=False):
        self.storage, self.offset, self.shape, self.stride, self.parameter = storage, offset, shape, stride, parameter

    def __reduce__(self):
        inner = (_rebuild_tensor_v2, (self.storage, self.offset, tuple(self.shape), tuple(self.stride), False,
                                      collections.OrderedDict()))
        if self.parameter:
            return (_rebuild_parameter, (Tensor(self.storage, self.offset, self.shape, self.stride), True,
                                         collections.OrderedDict()))
        return inner

    def values(self):
        """Row-major values, as torch would give them."""
        out = []

        def walk(dim, base):
            if dim == len(self.shape):
                out.append(self.storage.values[base])
                return
            for i in range(self.shape[dim]):
                walk(dim + 1, base + i * self.stride[dim])

        walk(0, self.offset)
        return out


def storage_type(dtype):
    if dtype == "BF16":
        if not hasattr(torch, "BFloat16Storage"):
            torch.BFloat16Storage = type("BFloat16Storage", (), {"__module__": "torch"})
        return torch.BFloat16Storage
    return getattr(torch, STORAGES[dtype][0])


class TorchPickler(pickle.Pickler):
    def __init__(self, f, storages):
        super().__init__(f, protocol=2)
        self.storages = storages

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            self.storages[obj.key] = obj
            return ("storage", storage_type(obj.dtype), obj.key, "cpu", obj.numel)
        return None


def dumps(obj):
    """The pickle and the storages it refers to."""
    buf, storages = io.BytesIO(), {}
    TorchPickler(buf, storages).dump(obj)
    return buf.getvalue(), storages


def save(path, obj, name="archive", compression=zipfile.ZIP_STORED, extra=()):
    """torch.save's zip layout: name/data.pkl, name/byteorder, name/data/<key>."""
    pkl, storages = dumps(obj)
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        z.writestr(f"{name}/data.pkl", pkl)
        z.writestr(f"{name}/byteorder", "little")
        for key, s in storages.items():
            z.writestr(f"{name}/data/{key}", s.data())
        for entry, data in extra:
            z.writestr(entry, data)
        z.writestr(f"{name}/version", "3\n")
