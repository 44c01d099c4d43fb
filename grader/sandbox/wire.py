"""The data format that crosses the trust boundary between the judge and the sandbox worker.

A message is a JSON header plus raw tensor buffers. Decoding it never runs code (no pickle): only
None, bool, int, float, str, lists, tuples, dicts, torch dtypes/devices, tensors and worker handles
come through. Anything else the worker produces stays in the worker and crosses as a `Handle`.

Frame layout: 8-byte big-endian total length, 4-byte header length, UTF-8 JSON header, buffers.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

# dtypes allowed across the boundary; the name is what travels.
DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
MAX_DEPTH = 64


class WireError(ValueError):
    """A message that is not in the wire format (or breaks its limits)."""


@dataclass(frozen=True)
class Handle:
    """A reference to an object that lives in the worker (a class instance, a cache, a module ...)."""

    id: int
    type: str

    def __repr__(self) -> str:
        return f"<{self.type} object in the sandbox #{self.id}>"


@dataclass(frozen=True)
class Ref:
    """A name the worker resolves on its side: `module.attr` (e.g. a student's loss function passed as an
    argument to their training function). The judge sends Refs; it never receives one."""

    module: str
    attr: str


def encode(obj: Any, to_handle: Callable[[Any], Handle] | None = None) -> bytes:
    """Encode `obj` into one message. Objects outside the format go through `to_handle`
    (the worker keeps them and sends a Handle); without it they raise WireError."""
    buffers: list[bytes] = []
    offset = 0

    def enc(x: Any, depth: int) -> Any:
        nonlocal offset
        if depth > MAX_DEPTH:
            raise WireError("value is nested too deeply")
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, int):
            return x if abs(x) < 2**53 else {"__int__": str(x)}
        if isinstance(x, float):
            return {"__float__": repr(x)} if x != x or x in (float("inf"), float("-inf")) else x
        if isinstance(x, torch.Tensor):
            t = x.detach()
            if t.dtype not in DTYPE_NAMES:
                raise WireError(f"tensor dtype {t.dtype} cannot cross the sandbox boundary")
            raw = t.contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()
            meta = {
                "__tensor__": [offset, len(raw)],
                "dtype": DTYPE_NAMES[t.dtype],
                "shape": list(t.shape),
                "device": str(t.device),
                "requires_grad": bool(x.requires_grad),
            }
            buffers.append(raw)
            offset += len(raw)
            return meta
        if isinstance(x, Handle):
            return {"__handle__": x.id, "type": x.type}
        if isinstance(x, Ref):
            return {"__ref__": [x.module, x.attr]}
        if isinstance(x, torch.dtype):
            if x not in DTYPE_NAMES:
                raise WireError(f"dtype {x} cannot cross the sandbox boundary")
            return {"__dtype__": DTYPE_NAMES[x]}
        if isinstance(x, torch.device):
            return {"__device__": str(x)}
        if type(x) in (list, tuple):
            items = [enc(v, depth + 1) for v in x]
            return items if type(x) is list else {"__tuple__": items}
        if type(x) is dict:
            return {"__dict__": [[enc(k, depth + 1), enc(v, depth + 1)] for k, v in x.items()]}
        if _is_numpy_scalar(x):
            return enc(x.item(), depth)
        if to_handle is not None:
            return enc(to_handle(x), depth)
        raise WireError(f"a value of type {type(x).__name__} cannot cross the sandbox boundary")

    header = json.dumps(enc(obj, 0), separators=(",", ":")).encode()
    return struct.pack(">I", len(header)) + header + b"".join(buffers)


def decode(
    msg: bytes,
    device_map: Callable[[str], str] | None = None,
    from_handle: Callable[[Handle], Any] | None = None,
    from_ref: Callable[[Ref], Any] | None = None,
) -> Any:
    """Decode one message. `device_map` maps the sender's device name to a local one
    (default: keep it); `from_handle` and `from_ref` resolve handles and refs (the worker's side).
    Without `from_ref` a Ref is refused: the judge never accepts one."""
    if len(msg) < 4:
        raise WireError("message too short")
    (hlen,) = struct.unpack(">I", msg[:4])
    if 4 + hlen > len(msg):
        raise WireError("message header is truncated")
    try:
        tree = json.loads(msg[4 : 4 + hlen])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WireError(f"message header is not JSON: {e}") from None
    body = memoryview(msg)[4 + hlen :]
    cursor = [0]  # buffers are laid out one after another, in the order the header names them

    def dec(x: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise WireError("value is nested too deeply")
        if isinstance(x, list):
            return [dec(v, depth + 1) for v in x]
        if not isinstance(x, dict):
            return x
        if "__tensor__" in x:
            t = _tensor(x, body, device_map, cursor[0])
            cursor[0] += t.numel() * t.element_size()
            return t
        if "__tuple__" in x:
            return tuple(dec(v, depth + 1) for v in x["__tuple__"])
        if "__dict__" in x:
            out = {}
            for k, v in x["__dict__"]:
                k = dec(k, depth + 1)
                if isinstance(k, (list, dict, torch.Tensor)):
                    raise WireError("dict key is not hashable")
                out[k] = dec(v, depth + 1)
            return out
        if "__handle__" in x:
            h = Handle(int(x["__handle__"]), str(x.get("type", "object")))
            return from_handle(h) if from_handle else h
        if "__ref__" in x:
            if from_ref is None:
                raise WireError("a name reference is not accepted here")
            module, attr = (str(v) for v in x["__ref__"])
            return from_ref(Ref(module, attr))
        if "__dtype__" in x:
            return _lookup_dtype(x["__dtype__"])
        if "__device__" in x:
            return torch.device(x["__device__"])
        if "__int__" in x:
            return int(x["__int__"])
        if "__float__" in x:
            return float(x["__float__"])
        raise WireError(f"unknown object in message: {sorted(x)[:3]}")

    return dec(tree, 0)


def _lookup_dtype(name: Any) -> torch.dtype:
    if name not in DTYPES:
        raise WireError(f"dtype {name!r} is not allowed")
    return DTYPES[name]


def _tensor(meta: dict, body: memoryview, device_map: Callable[[str], str] | None, expected_start: int) -> torch.Tensor:
    dtype = _lookup_dtype(meta.get("dtype"))
    start, nbytes = (int(v) for v in meta["__tensor__"])
    shape = [int(s) for s in meta["shape"]]
    if any(s < 0 for s in shape) or start < 0 or start + nbytes > len(body):
        raise WireError("tensor buffer out of range")
    if start != expected_start:
        # each tensor owns its own bytes: no two may share a buffer (a small message must not decode to a huge one)
        raise WireError("tensor buffers overlap or are out of order")
    numel = 1
    for s in shape:
        numel *= s
    itemsize = torch.empty((), dtype=dtype).element_size()
    if numel * itemsize != nbytes:
        raise WireError(
            f"tensor of shape {shape} and dtype {meta['dtype']} needs {numel * itemsize} bytes, got {nbytes}"
        )
    if nbytes:
        flat = torch.frombuffer(bytearray(body[start : start + nbytes]), dtype=torch.uint8)
        t = flat.view(dtype).reshape(shape)
    else:
        t = torch.empty(shape, dtype=dtype)
    device = str(meta.get("device", "cpu"))
    device = device_map(device) if device_map else device
    if device != "cpu":
        t = t.to(device)
    if meta.get("requires_grad") and t.is_floating_point():
        t.requires_grad_(True)
    return t


def _is_numpy_scalar(x: Any) -> bool:
    return type(x).__module__ == "numpy" and hasattr(x, "item") and getattr(x, "ndim", None) == 0


# ---- framing over file descriptors -------------------------------------------------------------


def frame(msg: bytes) -> bytes:
    return struct.pack(">Q", len(msg)) + msg


def read_exact(fd: int, n: int) -> bytes:
    """Exactly `n` bytes from `fd` (EOFError when it closes first): the children's side of a frame."""
    chunks, got = [], 0
    while got < n:
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            raise EOFError
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to `fd` (a blocking descriptor)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
