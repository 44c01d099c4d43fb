"""Stand-ins for the course's oracles in the student's worker, and the calls that cross to the oracle process.

The course's oracles (an assignment's oracles.py, staff-only: some entries are plain solutions) never enter the
process that runs student code: whatever is there, the student's code can find (the garbage collector, frames,
`__globals__`). They run in a process of their own (grader.sandbox.oracle_worker, started by the judge's
grader.sandbox.relay), and the student's worker gets a stand-in in place of each one:

- a function's stand-in sends the call to the judge in the middle of the worker's request (an `oracle` message on
  the worker's channel, where the judge expects its reply); the judge checks it and forwards it to the oracle
  process, and writes the answer back;
- a class keeps its identity; each of its methods is a stand-in that also ships the instance's plain state (its
  `__dict__`: tensors, numbers, strings, dtypes, devices, lists, tuples and dicts of them) and writes back what
  the oracle's method changed.

Plain data crosses by value (grader.sandbox.wire); anything else stays where it was made and crosses as a handle
(`Remote` on the other side): an oracle's non-plain result (a cache holding a torch.Size) is opaque to the
student's code, which can only pass it back to another stand-in; a student's function given to an oracle (a
trainer's loss function) is called back in the worker, under the guard. Handle ids say whose object it is:
positive, the object is the receiving process's own; negative, it is the other process's (the judge negates every
id it forwards, and forwards only ids the other side issued).

This module is shared by both processes and holds no oracle. The student's side trusts nothing it receives and
runs no student code while the guard is paused for its own work (see `StandIns.quiet`).
"""

from __future__ import annotations

import struct
import types
from collections.abc import Callable
from typing import Any

import torch

from grader.sandbox import wire

MAX_DEPTH = 32  # nested calls (an oracle calling back a student's function calling an oracle ...)
_PLAIN_SCALARS = (type(None), bool, int, float, str, torch.dtype, torch.device)
_TENSORS = (torch.Tensor, torch.nn.Parameter)  # exactly these: a subclass could run its own code while encoded


class OracleError(RuntimeError):
    """A call of the course's code (or back into the student's) that failed; raised where the call was made."""


class Remote:
    """An object of the other process, known by its id there (negative here): opaque. Passed back across, it is
    that object again; called (the oracle process calling a student's function), the call crosses."""

    __slots__ = ("_id", "_peer", "_type")

    def __init__(self, peer: Peer, hid: int, type_name: str) -> None:
        self._peer, self._id, self._type = peer, hid, type_name

    def __repr__(self) -> str:
        return f"<{self._type} object kept by the grader>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._peer.call_back(self, args, kwargs)


# ---- the exchange in the middle of a request --------------------------------------------------------------------


class Peer:
    """One process's side of the calls that cross in the middle of a request (through the judge, on the process's
    own channel): `request` sends one and serves the other side's requests (`serve`, by op) until its answer
    comes. `own` is the process's table of kept objects, `keep` adds one and returns its (positive) id."""

    def __init__(
        self,
        fd_in: int,
        fd_out: int,
        own: dict[int, Any],
        keep: Callable[[Any], int],
        serve: dict[str, Callable[[dict], dict]],
        call_op: str | None,
    ) -> None:
        self.fd_in, self.fd_out, self.own, self.keep, self.serve = fd_in, fd_out, own, keep, serve
        self.call_op = call_op  # the op of a call of a Remote (None: a Remote cannot be called from here)
        self.seq = 0
        self.depth = 0

    # -- encoding ---------------------------------------------------------------------------------------
    def outgoing(self, x: Any, kept: list[int], depth: int = 0) -> Any:
        """`x` with every value that is not plain data replaced by a handle: a Remote by its own (negative) id, any
        other object kept here (`kept` lists the ids). Reads types only, so no code of the object's runs."""
        if depth > wire.MAX_DEPTH:
            raise OracleError("a value given to the course's code is nested too deeply")
        t = type(x)
        if t in _PLAIN_SCALARS or t in _TENSORS:
            return x
        if t is list or t is tuple:
            items = [self.outgoing(v, kept, depth + 1) for v in x]
            return items if t is list else tuple(items)
        if t is dict:
            return {self.outgoing(k, kept, depth + 1): self.outgoing(v, kept, depth + 1) for k, v in x.items()}
        if t is Remote:
            return wire.Handle(x._id, x._type)
        if t is wire.Handle:  # a handle made by the student's code: the judge checks its id like any other
            return x
        hid = self.keep(x)
        kept.append(hid)
        return wire.Handle(hid, "object")

    def resolve(self, h: wire.Handle) -> Any:
        """A handle received: the other process's object (negative id) or one kept here."""
        if h.id < 0:
            return Remote(self, h.id, h.type[:100])
        if h.id not in self.own:
            raise wire.WireError(f"unknown object {h.id}")
        return self.own[h.id]

    def send(self, msg: dict) -> None:
        wire.write_all(self.fd_out, wire.frame(wire.encode(msg)))

    def recv(self) -> Any:
        (n,) = struct.unpack(">Q", wire.read_exact(self.fd_in, 8))
        return wire.decode(wire.read_exact(self.fd_in, n), from_handle=self.resolve)

    # -- requests ----------------------------------------------------------------------------------------
    def request(self, msg: dict, answer_op: str) -> dict:
        """Send `msg` (already made of plain data and handles) and serve the other side until its answer."""
        if self.depth >= MAX_DEPTH:
            raise OracleError("calls into the course's code are nested too deeply")
        self.seq += 1
        seq = self.seq
        self.depth += 1
        try:
            self.send({**msg, "seq": seq})
            while True:
                m = self.recv()
                op = m.get("op") if type(m) is dict else None
                if op == answer_op and m.get("seq") == seq:
                    return m
                if op in self.serve:
                    self.send({**self._answer(op, m), "seq": m.get("seq")})
                    continue
                raise OracleError("the grader's channel carried a message out of turn")
        finally:
            self.depth -= 1

    def _answer(self, op: str, m: dict) -> dict:
        try:
            return self.serve[op](m)
        except Exception as e:
            return {"op": op + "_reply", "ok": False, "type": type(e).__name__, "message": str(e)[:2000]}

    def call_back(self, remote: Remote, args: tuple, kwargs: dict) -> Any:
        """Call the other side's object (the oracle process calling a student's function it was given)."""
        if self.call_op is None:
            raise TypeError(f"{remote!r} cannot be called")
        kept: list[int] = []
        try:
            msg = {
                "op": self.call_op,
                "target": wire.Handle(remote._id, remote._type),
                "args": self.outgoing(list(args), kept),
                "kwargs": self.outgoing(dict(kwargs), kept),
            }
            reply = self.request(msg, self.call_op + "_reply")
        finally:
            for hid in kept:
                self.own.pop(hid, None)
        if not reply.get("ok"):
            raise OracleError(f"{reply.get('type', 'Error')}: {reply.get('message', '')}"[:2000])
        return reply.get("value")


# ---- the student's side: the stand-ins ----------------------------------------------------------------------


class StandIns:
    """The worker's stand-ins for the course's oracles. `guard` is the worker's grader.sandbox.guard.Guard: it is
    paused while a stand-in does its own work (encoding, the wire), which must not count as the student's use of
    anything, and resumed, as it was, while a student's function called back by an oracle runs."""

    def __init__(self, fd_in: int, fd_out: int, own: dict[int, Any], keep: Callable[[Any], int], guard) -> None:
        self.guard = guard
        self.peer = Peer(fd_in, fd_out, own, keep, {"callback": self._callback}, None)
        self.paused: list[tuple] = []  # the guard's state while paused, innermost last

    def function(self, name: str, attr: str = "") -> Callable:
        """The stand-in of an oracle function (or a class's static method `attr`)."""
        stand_ins = self

        def stand_in(*args, **kwargs):
            return stand_ins.call(name, attr, args, kwargs)

        stand_in.__name__ = stand_in.__qualname__ = attr or name
        stand_in.__doc__ = f"The course's {name}{'.' + attr if attr else ''}, run by the grader elsewhere."
        return stand_in

    def method(self, name: str, attr: str) -> Callable:
        """The stand-in of an oracle class's method: it ships the instance's plain state with the call and writes
        back what the oracle changed."""
        stand_ins = self

        def stand_in(self, *args, **kwargs):
            return stand_ins.call(name, attr, args, kwargs, instance=self)

        stand_in.__name__ = attr
        stand_in.__qualname__ = f"{name}.{attr}"
        stand_in.__doc__ = f"The course's {name}.{attr}, run by the grader elsewhere."
        return stand_in

    def members(self, name: str, entry: dict) -> dict[str, Any]:
        """The class attributes that stand in for an oracle class's own (`entry`: the oracle process's
        description of it, plain data)."""
        out: dict[str, Any] = {}
        for attr, kind in dict(entry.get("members", {})).items():
            if kind == "static":
                out[attr] = staticmethod(self.function(name, attr))
            elif kind == "class":
                out[attr] = staticmethod(self.function(name, attr))  # the oracle's own class is passed there
            elif kind == "method":
                out[attr] = self.method(name, attr)
        for attr, value in dict(entry.get("values", {})).items():
            out.setdefault(attr, value)
        return out

    # -- a call -----------------------------------------------------------------------------------------
    def call(self, name: str, attr: str, args: tuple, kwargs: dict, instance: Any = None) -> Any:
        what = f"the course's {name}{'.' + attr if attr else ''}"
        state = None
        if instance is not None:
            own = vars(instance)  # student code may run here (a __dict__ of its own): under the guard
            if type(own) is not dict:
                raise TypeError(f"{what} needs an instance with a plain __dict__")
            state = {k: v for k, v in own.items() if type(k) is str and _plain(v)}
        kept: list[int] = []
        self._pause(what)
        try:
            msg = {
                "op": "oracle",
                "name": name,
                "attr": attr,
                "args": self.peer.outgoing(list(args), kept),
                "kwargs": self.peer.outgoing(dict(kwargs), kept),
            }
            if state is not None:
                msg["state"] = self.peer.outgoing(state, kept)
            reply = self.peer.request(msg, "oracle_reply")
        finally:
            for hid in kept:
                self.peer.own.pop(hid, None)
            self._resume()
        if not reply.get("ok"):
            raise OracleError(f"{what}: {reply.get('message', '')}"[:2000])
        return self._write_back(reply, list(args), kwargs, own if instance is not None else None)

    def _write_back(self, reply: dict, args: list, kwargs: dict, own: dict | None) -> Any:
        """What the oracle changed, written into the student's objects: its arguments that are dicts or lists
        (BatchNorm's bn_param, an update rule's config, a trainer's params) and the instance's state, in place."""
        for i, new in dict(reply.get("args") or {}).items():
            if type(i) is int and 0 <= i < len(args):
                _merge(args[i], new)
        for k, new in dict(reply.get("kwargs") or {}).items():
            if type(k) is str and k in kwargs:
                _merge(kwargs[k], new)
        if own is not None:
            for k, new in dict(reply.get("state") or {}).items():
                if type(k) is str:
                    own[k] = _merge(own[k], new) if k in own else new
            for k in list(reply.get("removed") or []):
                if type(k) is str:
                    own.pop(k, None)
        value = reply.get("value")
        for where, arg in list(reply.get("same") or []):  # a value that is one of the arguments (a config)
            original = args[arg] if type(arg) is int and 0 <= arg < len(args) else kwargs.get(arg, _MISSING)
            if original is _MISSING:
                continue
            if where == -1:
                value = original
            elif type(value) in (tuple, list) and type(where) is int and 0 <= where < len(value):
                items = list(value)
                items[where] = original
                value = type(value)(items)
        return value

    # -- the guard ---------------------------------------------------------------------------------------
    def _pause(self, what: str) -> None:
        """Pause the guard for the stand-in's own work. Refused under a PyTorch mode of the student's own (it
        would run the student's code, unguarded, while tensors are encoded)."""
        g = self.guard
        if g is None:
            self.paused.append(())
            return
        if g.active and not g.only_its_modes():
            raise OracleError(f"{what} cannot be called under a PyTorch mode of your own")
        self.paused.append(g.pause())

    def _resume(self) -> None:
        saved = self.paused.pop()
        if saved:
            self.guard.resume(saved)

    def _callback(self, m: dict) -> dict:
        """An oracle calls a function the student's code gave it: it runs here, guarded as the call it is part of."""
        fn = m.get("target")
        if isinstance(fn, Remote) or not callable(fn):
            raise OracleError("the course's code may call back only a function it was given")
        args, kwargs = list(m.get("args") or []), dict(m.get("kwargs") or {})
        saved = self.paused[-1] if self.paused else ()
        if saved:
            self.guard.resume(saved)
        try:
            value = fn(*args, **kwargs)
        finally:
            if saved:
                self.paused[-1] = self.guard.pause()
        kept: list[int] = []
        return {"op": "callback_reply", "ok": True, "value": self.peer.outgoing(value, kept)}


_MISSING = object()


def _plain(x: Any, depth: int = 0) -> bool:
    """Whether `x` is plain data (crosses by value), or a handle of the oracle process's; reads types only."""
    if depth > wire.MAX_DEPTH:
        return False
    t = type(x)
    if t in _PLAIN_SCALARS or t in _TENSORS or t is Remote:
        return True
    if t is list or t is tuple:
        return all(_plain(v, depth + 1) for v in x)
    if t is dict:
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in x.items())
    return False


def _merge(old: Any, new: Any) -> Any:
    """`new` written into `old` where `old` is a container of the same kind (so the student's references to it see
    the change), else `new`."""
    if type(old) is dict and type(new) is dict:
        for k in [k for k in old if k not in new]:
            del old[k]
        for k, v in new.items():
            old[k] = _merge(old[k], v) if k in old else v
        return old
    if type(old) is list and type(new) is list:
        if len(old) == len(new):
            for i, v in enumerate(new):
                old[i] = _merge(old[i], v)
        else:
            old[:] = new
        return old
    return new


# ---- the oracle process's side: what changed ------------------------------------------------------------------


def fingerprint(x: Any, alive: list, depth: int = 0) -> Any:
    """What a value is made of, by identity (and a tensor's version counter, which in-place operations bump), so
    that a change to it, in place or not, changes its fingerprint. `alive` keeps every object seen, so no id is
    reused while the fingerprints are compared."""
    alive.append(x)
    if depth > wire.MAX_DEPTH:
        return id(x)
    if isinstance(x, torch.Tensor):
        return ("t", id(x), x._version)
    if type(x) is dict:
        return ("d", id(x), tuple((k, fingerprint(v, alive, depth + 1)) for k, v in x.items()))
    if type(x) in (list, tuple):
        return ("l", id(x), tuple(fingerprint(v, alive, depth + 1) for v in x))
    return ("o", id(x))


def describe(entry: Any) -> dict:
    """An oracle entry as the worker needs to know it to stand in for it: a function, or a class and its own
    methods (static, class or plain) and plain class attributes. Dunder names other than __init__ and __call__
    are left alone, as the student's class keeps its identity."""
    if not isinstance(entry, type):
        return {"kind": "function"}
    members: dict[str, str] = {}
    values: dict[str, Any] = {}
    for attr, v in type.__dict__["__dict__"].__get__(entry).items():
        if attr.startswith("__") and attr not in ("__init__", "__call__"):
            continue
        if isinstance(v, staticmethod):
            members[attr] = "static"
        elif isinstance(v, classmethod):
            members[attr] = "class"
        elif isinstance(v, types.FunctionType):
            members[attr] = "method"
        elif _plain(v):
            values[attr] = v
    return {"kind": "class", "members": members, "values": values}
