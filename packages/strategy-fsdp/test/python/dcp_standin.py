"""What torch 2.x's DCP FileSystemReader does, for a machine whose torch (Debian's 1.13) has no
torch.distributed.checkpoint: `.metadata` is loaded with a plain pickle.Unpickler whose
find_class maps the torch.distributed.checkpoint classes to stand-ins with the same fields (and
everything else to the real objects: torch.Size, dtypes, torch.serialization._get_layout,
pathlib); each chunk is read with torch.load(BytesIO(file[offset:offset+length])) (tensors with
weights_only=True, as torch 2.x does) and copied into its box of the full tensor; the flat keys
are nested back by planner_data, as _EmptyStateDictLoadPlanner does (Lightning's consolidation).

  python3 dcp_standin.py read FOLDER FULL_CKPT   -> compares with torch.load(FULL_CKPT), prints JSON
  python3 dcp_standin.py skeleton METADATA        -> the class/field structure, as JSON
  python3 dcp_standin.py opcodes METADATA         -> protocol and opcodes used, as JSON
"""
import enum
import io
import json
import os
import pickle
import pickletools
import sys

import torch


class _Dataclass:
    """Fields come from BUILD (the instance dict), as for torch's dataclasses."""


class Metadata(_Dataclass):
    pass


class TensorStorageMetadata(_Dataclass):
    pass


class BytesStorageMetadata(_Dataclass):
    pass


class ChunkStorageMetadata(_Dataclass):
    pass


class StorageMeta(_Dataclass):
    pass


class _StorageInfo(_Dataclass):
    pass


class TensorProperties:
    # torch's TensorProperties pickles its fields as a tuple and restores them in __setstate__.
    def __setstate__(self, state):
        (self.dtype, self.layout, self.requires_grad, self.memory_format, self.pin_memory) = state


class MetadataIndex:
    # A frozen dataclass hashed and compared on (fqn, offset); `index` is only a hint.
    def _key(self):
        return (self.__dict__["fqn"], self.__dict__.get("offset"))

    def __hash__(self):
        return hash(self._key())

    def __eq__(self, other):
        return isinstance(other, MetadataIndex) and self._key() == other._key()


class _MEM_FORMAT_ENCODING(enum.Enum):
    TORCH_CONTIGUOUS_FORMAT = 0
    TORCH_CHANNELS_LAST = 1
    TORCH_PRESERVE_FORMAT = 2


STANDINS = {
    ("torch.distributed.checkpoint.metadata", c.__name__): c
    for c in (Metadata, TensorStorageMetadata, BytesStorageMetadata, ChunkStorageMetadata, StorageMeta, TensorProperties, MetadataIndex, _MEM_FORMAT_ENCODING)
}
STANDINS[("torch.distributed.checkpoint.filesystem", "_StorageInfo")] = _StorageInfo


class StandinUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.startswith("torch.distributed.checkpoint"):
            return STANDINS[(module, name)]  # a class torch 2.x has that we do not: KeyError
        return super().find_class(module, name)


def load_metadata(path):
    with open(path, "rb") as f:
        return StandinUnpickler(f).load()


def index(fqn, offset=None):
    i = MetadataIndex.__new__(MetadataIndex)
    i.__dict__.update({"fqn": fqn, "offset": offset} if offset is not None else {"fqn": fqn})
    return i


def set_element(root, path, value):
    # torch.distributed.checkpoint._nested_dict / _traverse.set_element
    cur = root
    for step, nxt in zip(path[:-1], path[1:]):
        container = [] if isinstance(nxt, int) else {}
        if isinstance(step, int):
            while len(cur) <= step:
                cur.append(None)
            if cur[step] is None:
                cur[step] = container
            cur = cur[step]
        else:
            cur = cur.setdefault(step, container)
    last = path[-1]
    if isinstance(last, int):
        while len(cur) <= last:
            cur.append(None)
    cur[last] = value


def read_state(folder):
    md = load_metadata(os.path.join(folder, ".metadata"))
    files = {}

    def blob(info):
        if info.relative_path not in files:
            with open(os.path.join(folder, info.relative_path), "rb") as f:
                files[info.relative_path] = f.read()
        return files[info.relative_path][info.offset : info.offset + info.length]

    flat = {}
    for fqn, item in md.state_dict_metadata.items():
        if isinstance(item, BytesStorageMetadata):
            flat[fqn] = torch.load(io.BytesIO(blob(md.storage_data[index(fqn)])), weights_only=False)
            continue
        full = torch.empty(tuple(item.size), dtype=item.properties.dtype)
        for chunk in item.chunks:
            info = md.storage_data[index(fqn, torch.Size(chunk.offsets))]
            part = torch.load(io.BytesIO(blob(info)), map_location="cpu", weights_only=True)
            box = full
            for d, (o, n) in enumerate(zip(chunk.offsets, chunk.sizes)):
                box = box.narrow(d, o, n)
            box.copy_(part.reshape(tuple(chunk.sizes)))
        flat[fqn] = full
    nested = {}
    for fqn, value in flat.items():
        set_element(nested, md.planner_data[fqn], value)
    meta = os.path.join(folder, "meta.pt")
    if os.path.exists(meta):
        nested.update(torch.load(meta))
    return nested, md


def compare(a, b, path=""):
    """Mismatches between two nested states, tensors bit for bit."""
    if torch.is_tensor(a) or torch.is_tensor(b):
        ok = torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        return [] if ok else [path]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(map(str, a)) != set(map(str, b)):
            return [f"{path}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"]
        bb = {str(k): v for k, v in b.items()}
        return [m for k, v in a.items() for m in compare(v, bb[str(k)], f"{path}.{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} != {len(b)}"]
        return [m for i, (x, y) in enumerate(zip(a, b)) for m in compare(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def skeleton(v):
    """Classes and field names (not values) of a metadata object, recursively; one dict entry stands for all."""
    if isinstance(v, enum.Enum):
        return f"{type(v).__module__}.{type(v).__name__}"
    if isinstance(v, (MetadataIndex, _Dataclass)):
        fields = {k: skeleton(x) for k, x in sorted(v.__dict__.items())}
        return {"class": type(v).__name__, "fields": fields}
    if isinstance(v, TensorProperties):
        return {"class": "TensorProperties", "state": [skeleton(v.dtype), str(v.layout), type(v.requires_grad).__name__, skeleton(v.memory_format), type(v.pin_memory).__name__]}
    if isinstance(v, dict):
        kinds = {}
        for k, x in v.items():
            kinds.setdefault(json.dumps(skeleton(k), sort_keys=True) + " -> " + json.dumps(skeleton(x), sort_keys=True), True)
        return {"dict": sorted(kinds)}
    if isinstance(v, torch.Size):
        return "torch.Size"
    if isinstance(v, torch.dtype):
        return "torch.dtype"
    if isinstance(v, (list, tuple)):
        return {type(v).__name__: sorted({json.dumps(skeleton(x), sort_keys=True) for x in v})}
    return type(v).__module__ + "." + type(v).__name__


def main():
    cmd, *args = sys.argv[1:]
    if cmd == "read":
        folder, full = args
        state, md = read_state(folder)
        expected = torch.load(full)
        print(json.dumps({"mismatches": compare(state, expected), "keys": sorted(state), "version": md.version, "tensors": sum(1 for i in md.state_dict_metadata.values() if isinstance(i, TensorStorageMetadata))}))
    elif cmd == "skeleton":
        md = load_metadata(args[0])
        sdm = md.state_dict_metadata
        tensor = next(v for v in sdm.values() if isinstance(v, TensorStorageMetadata))
        bytes_item = next(v for v in sdm.values() if isinstance(v, BytesStorageMetadata))
        tensor_key, tensor_info = next((k, v) for k, v in md.storage_data.items() if "offset" in k.__dict__)
        bytes_key, bytes_info = next((k, v) for k, v in md.storage_data.items() if "offset" not in k.__dict__)
        print(json.dumps({
            "metadata": sorted(md.__dict__),
            "tensor_item": skeleton(tensor),
            "bytes_item": skeleton(bytes_item),
            "tensor_storage_key": skeleton(tensor_key),
            "tensor_storage_info": skeleton(tensor_info),
            "bytes_storage_key": skeleton(bytes_key),
            "bytes_storage_info": skeleton(bytes_info),
            "storage_meta": skeleton(md.storage_meta),
            "planner_data": skeleton(md.planner_data),
            "version": md.version,
            "chunk_index_is_position": all(k.__dict__.get("index") == [tuple(c.offsets) for c in sdm[k.fqn].chunks].index(tuple(k.offset)) for k in md.storage_data if "offset" in k.__dict__),
        }, sort_keys=True))
    elif cmd == "opcodes":
        data = open(args[0], "rb").read()
        ops = sorted({op.name for op, _, _ in pickletools.genops(data)})
        print(json.dumps({"protocol": data[1], "opcodes": ops, "max_proto": max(op.proto for op, _, _ in pickletools.genops(data))}))


main()
