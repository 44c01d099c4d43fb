import json
import pickle
import struct

import pytest
import torch

from grader.sandbox import wire
from grader.sandbox.wire import Handle, WireError


def roundtrip(x):
    return wire.decode(wire.encode(x))


def test_values_round_trip_with_types_kept():
    value = {
        "a": [1, 2.5, None, True, "s"],
        3: (torch.arange(6).reshape(2, 3), torch.float64),
        "big": 2**70,
        "nan": float("nan"),
        "inf": float("-inf"),
        "dev": torch.device("cpu"),
        "h": Handle(4, "KnnClassifier"),
    }
    got = roundtrip(value)
    assert got["a"] == [1, 2.5, None, True, "s"]
    assert isinstance(got[3], tuple) and torch.equal(got[3][0], torch.arange(6).reshape(2, 3))
    assert got[3][1] is torch.float64
    assert got["big"] == 2**70 and got["nan"] != got["nan"] and got["inf"] == float("-inf")
    assert got["dev"] == torch.device("cpu") and got["h"] == Handle(4, "KnnClassifier")


@pytest.mark.parametrize(
    "dtype",
    [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool],
)
def test_tensors_keep_dtype_shape_and_bits(dtype):
    t = (torch.randn(3, 0, 2) if dtype.is_floating_point else torch.zeros(3, 0, 2)).to(dtype)
    for x in (torch.randn(4, 5).to(dtype), torch.tensor(7).to(dtype), t, torch.randn(6, 4).to(dtype).t()):
        y = roundtrip(x)
        assert y.dtype == dtype and y.shape == x.shape and torch.equal(y, x)


def test_unknown_objects_need_a_handle_hook():
    class Thing:
        pass

    with pytest.raises(WireError, match="Thing"):
        wire.encode(Thing())
    kept = []
    msg = wire.encode([Thing()], to_handle=lambda o: kept.append(o) or Handle(1, type(o).__name__))
    assert wire.decode(msg) == [Handle(1, "Thing")] and len(kept) == 1


def header(tree, body=b""):
    h = json.dumps(tree).encode()
    return struct.pack(">I", len(h)) + h + body


@pytest.mark.parametrize(
    "msg, match",
    [
        (b"\x00\x00", "too short"),
        (struct.pack(">I", 100) + b"{}", "truncated"),
        (struct.pack(">I", 4) + b"nope", "not JSON"),
        (
            header({"__tensor__": [0, 8], "dtype": "float64", "shape": [2], "device": "cpu"}, b"\0" * 8),
            "needs 16 bytes",
        ),
        (header({"__tensor__": [0, 8], "dtype": "object", "shape": [1], "device": "cpu"}, b"\0" * 8), "not allowed"),
        (header({"__tensor__": [4, 8], "dtype": "float64", "shape": [1], "device": "cpu"}, b"\0" * 8), "out of range"),
        (header({"__pickle__": "x"}), "unknown object"),
    ],
)
def test_malformed_messages_are_refused(msg, match):
    with pytest.raises(WireError, match=match):
        wire.decode(msg)


def test_a_pickle_is_not_a_message():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(WireError):
        wire.decode(pickle.dumps(Evil()))


def test_refs_cross_only_towards_the_worker():
    msg = wire.encode([wire.Ref("pkg.mod", "fn")])
    with pytest.raises(WireError, match="not accepted"):
        wire.decode(msg)
    assert wire.decode(msg, from_ref=lambda r: f"{r.module}:{r.attr}") == ["pkg.mod:fn"]


def test_tensors_cannot_share_a_buffer():
    """A reply whose tensors all point at the same bytes would decode to many times its size: refused."""
    raw = torch.zeros(1024, dtype=torch.float32)
    meta = {"__tensor__": [0, raw.numel() * 4], "dtype": "float32", "shape": [1024], "device": "cpu"}
    header = json.dumps([meta] * 100).encode()
    msg = struct.pack(">I", len(header)) + header + raw.numpy().tobytes()
    with pytest.raises(WireError, match="overlap"):
        wire.decode(msg)
    value = [torch.ones(3), torch.zeros(2, 2), {"k": torch.arange(4)}]  # honest messages still decode
    out = wire.decode(wire.encode(value))
    assert torch.equal(out[0], value[0]) and torch.equal(out[1], value[1]) and torch.equal(out[2]["k"], value[2]["k"])
