"""The oracle process: the course's oracles run here, never in the process that runs student code.

Started by grader.sandbox.relay through the same `grader.sandbox.host.Sandbox` as the student's worker (the same
isolation: bubblewrap or the `user` fallback, no network, the same memory and time limits, the same set-up in
`Worker.setup`), over an empty staged tree: it imports no student code and serves only these requests:

- `load_oracles`: compile the assignment's oracles.py (trusted source, sent by the judge) into a module no import
  can reach; answers with what the worker needs to stand in for each entry (grader.sandbox.proxy.describe);
- `oracle_call`: call one entry of ORACLES (or a method of one), on an instance rebuilt from the student's
  instance's plain state for a method; answers with the value and what the call changed in its arguments and the
  instance's state. Values that are not plain data stay here as handles (positive ids); a handle with a negative
  id is the student's worker's object (a function given to a trainer), which the call may call back through the
  judge (grader.sandbox.proxy.Peer);
- `reset`: drop every object kept here (the judge restores the student's code).

Nothing here decides a score; the judge checks every answer's shape as it does the worker's.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

from grader.sandbox import proxy, wire
from grader.sandbox.worker import Worker, _error_reply

ORACLE_OPS = ("load_oracles", "oracle_call", "reset")


class OracleWorker(Worker):
    def __init__(self, fd_in: int, fd_out: int) -> None:
        super().__init__(fd_in, fd_out)
        self.entries: dict[str, Any] = {}
        self.peer = proxy.Peer(fd_in, fd_out, self.handles, self._keep_id, {"oracle_call": self._nested}, "callback")

    # -- handles: positive ids are kept here, negative ones are the student's worker's --------------------------
    def _keep(self, obj: Any) -> wire.Handle:
        if type(obj) is proxy.Remote:
            return wire.Handle(obj._id, obj._type)
        return super()._keep(obj)

    def _keep_id(self, obj: Any) -> int:
        return self._keep(obj).id

    def _resolve(self, h: wire.Handle) -> Any:
        return self.peer.resolve(h)

    def _resolve_ref(self, ref: wire.Ref) -> Any:
        raise wire.WireError("the oracle process resolves no names")

    # -- requests ---------------------------------------------------------------------------------------------
    def handle(self, req: dict) -> dict:
        op = req.get("op")
        if op == "load_oracles":
            return {"ok": True, "value": self.load(str(req["source"]), str(req.get("assignment", "")))}
        if op == "oracle_call":
            return self.call_oracle(req)
        if op == "reset":
            self.handles.clear()
            return {"ok": True}
        raise ValueError(f"the oracle process serves only {', '.join(ORACLE_OPS)}, not {op!r}")

    def load(self, source: str, assignment: str) -> dict:
        module = types.ModuleType("_grader_oracles")
        module.__file__ = f"<oracles of {assignment or 'the assignment'}>"
        exec(compile(source, module.__file__, "exec"), module.__dict__)
        self.entries = dict(module.__dict__.get("ORACLES", {}))
        return {name: proxy.describe(entry) for name, entry in self.entries.items()}

    def _nested(self, req: dict) -> dict:
        """An oracle call made while an oracle waits for a call back into the student's code."""
        try:
            return {**self.call_oracle(req), "op": "oracle_call_reply"}
        except Exception as e:
            return {**_error_reply(e, set()), "op": "oracle_call_reply", "where": []}

    def call_oracle(self, req: dict) -> dict:
        name, attr = str(req.get("name")), str(req.get("attr") or "")
        if name not in self.entries:
            raise KeyError(f"no oracle named {name!r}")
        entry = self.entries[name]
        args, kwargs = list(req.get("args") or []), dict(req.get("kwargs") or {})
        state = req.get("state")
        instance = None
        if not attr:
            fn = entry
        else:
            kind = proxy.describe(entry).get("members", {}).get(attr)
            if kind is None:
                raise AttributeError(f"{name} has no method {attr!r} of its own")
            if kind == "method":
                if type(state) is not dict:
                    raise TypeError(f"{name}.{attr} needs the instance's state")
                instance = object.__new__(entry)
                instance.__dict__.update(state)
                fn = getattr(instance, attr)
            else:
                fn = getattr(entry, attr)
        alive: list = []
        before_args = [proxy.fingerprint(a, alive) for a in args]
        before_kwargs = {k: proxy.fingerprint(v, alive) for k, v in kwargs.items()}
        before_state = {k: proxy.fingerprint(v, alive) for k, v in (state or {}).items()}
        value = fn(*args, **kwargs)
        out: dict[str, Any] = {"ok": True, "value": value}
        mutable = (dict, list)
        out["args"] = {
            i: a for i, a in enumerate(args) if type(a) in mutable and proxy.fingerprint(a, alive) != before_args[i]
        }
        out["kwargs"] = {
            k: v for k, v in kwargs.items() if type(v) in mutable and proxy.fingerprint(v, alive) != before_kwargs[k]
        }
        if instance is not None:
            now = instance.__dict__
            out["state"] = {
                k: v for k, v in now.items() if k not in before_state or proxy.fingerprint(v, alive) != before_state[k]
            }
            out["removed"] = [k for k in before_state if k not in now]
        same = []
        items = list(value) if type(value) in (tuple, list) else []
        for where, v in [(-1, value), *enumerate(items)]:
            for key, a in [*enumerate(args), *kwargs.items()]:
                if v is a and type(a) in mutable:
                    same.append([where, key])
                    break
        out["same"] = same
        return out


def main() -> None:
    # as grader.sandbox.worker.main: the protocol on private descriptors, what the oracles print to stderr
    fd_in, fd_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    OracleWorker(fd_in, fd_out).serve()


if __name__ == "__main__":
    main()
