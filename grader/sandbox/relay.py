"""The judge's side of the course's oracles: the oracle process, and the calls it relays to it.

When a check first puts an oracle in place of a student's broken building block (`Sandbox.substitute`), the
student's worker's `Sandbox` starts an `OracleRelay`: a second sandboxed process (`Sandbox(role="oracles")`:
grader.sandbox.oracle_worker, under the same isolation and limits, over an empty tree) that compiles the
assignment's oracles.py and never imports student code. The worker gets stand-ins (grader.sandbox.proxy); their
calls reach the judge in the middle of the worker's request, and this relay forwards each to the oracle process and
its answer back, within the request's own deadline. The oracle process calling back a student's function (a
trainer's loss) goes the other way, to the worker.

Everything either process asks is untrusted: the student's worker may call only the names in place now and only
their own methods, may pass back only handles the oracle process issued in this run (at most MAX_OBJECTS), and its
messages are bounded as its replies are; the oracle process may call back only the worker's own objects. Handle
ids are negated as they cross (positive: the receiving process's own object; negative: the other process's).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from grader.sandbox.isolation import SMALL_REPLY_BYTES, SandboxConfig, SandboxError
from grader.sandbox.proxy import MAX_DEPTH
from grader.sandbox.wire import Handle

MAX_OBJECTS = 100_000  # objects the oracle process may keep for the worker between two restores
MAX_MESSAGE = 500  # characters of an oracle's error the student's code sees


class _Refused(Exception):
    """A request of the student's worker the relay does not forward."""


class _WorkerFailed(Exception):
    """The student's worker failed while an oracle waited on it: the worker's request fails with `error`."""

    def __init__(self, error: SandboxError) -> None:
        super().__init__(error.message)
        self.error = error


class OracleRelay:
    def __init__(self, worker, sandbox: type) -> None:
        """`worker`: the student's worker's grader.sandbox.host.Sandbox; `sandbox`: that class, which starts the
        oracle process too (given, not imported: host starts the relay)."""
        self.worker = worker
        cfg = worker.config
        root = Path(tempfile.mkdtemp(prefix="oracles-", dir=worker._tmp.name))  # nothing of the student's
        left = None
        if worker._deadline is not None:
            left = max(worker._deadline - time.monotonic(), 0.001)
        config = SandboxConfig(
            root=root,
            student_files=[],
            device=cfg.device,
            call_timeout=cfg.call_timeout,
            startup_timeout=cfg.startup_timeout,
            total_timeout=left,
            memory_mb=cfg.memory_mb,
            scratch_mb=cfg.scratch_mb,
            max_processes=cfg.max_processes,
            max_reply_bytes=cfg.max_reply_bytes,
            threads=cfg.threads,
            python=cfg.python,
            isolation=worker.isolation.mode,
            hide=list(cfg.hide),
            run_as=cfg.run_as,
            oracles=cfg.oracles,
        )
        self.process = sandbox(config, role="oracles")
        self.process.on_request = self._callback
        worker.on_request = self._oracle
        self.issued: set[int] = set()  # ids of the objects the oracle process keeps for the worker
        self._starts = 0
        self.depth = 0

    def close(self) -> None:
        self.worker.on_request = None
        self.process.close()

    def entries(self, names: list[str]) -> dict[str, dict]:
        """Each oracle of `names` as the worker needs to know it (starting the oracle process the first time)."""
        self._ensure()
        missing = [n for n in names if n not in self.process.oracle_entries]
        if missing:
            raise SandboxError("crash", f"the course's oracles.py has no oracle for {', '.join(missing)}")
        return {n: self.process.oracle_entries[n] for n in names}

    def reset(self) -> None:
        """Forget every object kept for the worker (its stand-ins are gone)."""
        self.issued.clear()
        if self.process.proc is not None and self.process.proc.poll() is None:
            try:
                self.process._roundtrip(
                    {"op": "reset"}, self.process.config.call_timeout, "resetting", max_reply=SMALL_REPLY_BYTES
                )
            except SandboxError:
                self.process._kill()

    def _ensure(self) -> None:
        self.process._ensure()
        if self.process.stats.starts != self._starts:  # a fresh process: the objects kept before are gone
            self._starts = self.process.stats.starts
            self.issued.clear()

    # -- the student's worker asks for an oracle ------------------------------------------------------------
    def _oracle(self, m: dict, deadline: float) -> dict:
        seq = m.get("seq") if isinstance(m.get("seq"), int) else None
        try:
            req, what = self._checked(m)
            if self.depth >= MAX_DEPTH:
                raise _Refused("calls into the course's code are nested too deeply")
        except _Refused as e:
            return {"op": "oracle_reply", "seq": seq, "ok": False, "message": str(e)}
        self.depth += 1
        try:
            self._ensure()
            reply = self.process.exchange(req, deadline, f"running the course's {what}")
        except _WorkerFailed as e:
            self.process._kill()  # it waits on the worker, which failed: its state is lost
            raise e.error from None
        except SandboxError as e:
            return {"op": "oracle_reply", "seq": seq, "ok": False, "message": f"it did not answer: {e}"}
        finally:
            self.depth -= 1
        if not reply.get("ok"):
            text = f"it raised {str(reply.get('type', ''))[:100]}: {reply.get('message', '')!s}"[:MAX_MESSAGE]
            return {"op": "oracle_reply", "seq": seq, "ok": False, "message": text}
        try:
            answer = {k: self._to_worker(reply.get(k)) for k in ("value", "args", "kwargs", "state")}
        except _Refused as e:
            return {"op": "oracle_reply", "seq": seq, "ok": False, "message": str(e)}
        removed = reply.get("removed") if isinstance(reply.get("removed"), list) else []
        same = reply.get("same") if isinstance(reply.get("same"), list) else []
        return {"op": "oracle_reply", "seq": seq, "ok": True, **answer, "removed": removed, "same": same}

    def _checked(self, m: dict) -> tuple[dict, str]:
        """The oracle call the worker's message asks for, if it may: a name in place now, one of its own methods,
        plain arguments and handles the oracle process issued."""
        name, attr = m.get("name"), m.get("attr") or ""
        if not isinstance(name, str) or name not in self.worker.substitution:
            raise _Refused("it is not in place now, so it cannot be called (only while a check judges with it)")
        if not isinstance(attr, str):
            raise _Refused("no such method")
        entry = self.process.oracle_entries.get(name, {})
        kind = None
        if entry.get("kind") == "class":
            kind = dict(entry.get("members", {})).get(attr)
            if kind is None:
                raise _Refused(f"it has no method {attr[:100]!r}")
        elif attr:
            raise _Refused(f"it is a function: it has no method {attr[:100]!r}")
        what = f"{name}.{attr}" if attr else name
        args, kwargs, state = m.get("args", []), m.get("kwargs", {}), m.get("state")
        if not isinstance(args, list) or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise _Refused("the call is malformed")
        req = {
            "op": "oracle_call",
            "name": name,
            "attr": attr,
            "args": self._to_oracle(args),
            "kwargs": self._to_oracle(kwargs),
        }
        if kind == "method":
            if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
                raise _Refused("the call comes without its instance's state")
            req["state"] = self._to_oracle(state)
        return req, what

    # -- the oracle process calls back a student's function ---------------------------------------------------
    def _callback(self, m: dict, deadline: float) -> dict:
        seq = m.get("seq") if isinstance(m.get("seq"), int) else None
        target, args, kwargs = m.get("target"), m.get("args", []), m.get("kwargs", {})
        if not (isinstance(target, Handle) and target.id < 0 and isinstance(args, list) and isinstance(kwargs, dict)):
            return {"op": "callback_reply", "seq": seq, "ok": False, "message": "only the worker's objects"}
        try:
            req = {
                "op": "callback",
                "target": Handle(-target.id, "object"),
                "args": self._to_worker(args),
                "kwargs": self._to_worker(kwargs),
            }
        except _Refused as e:
            return {"op": "callback_reply", "seq": seq, "ok": False, "message": str(e)}
        try:
            reply = self.worker.exchange(req, deadline, "running your function, called by the course's code")
        except SandboxError as e:
            raise _WorkerFailed(e) from None
        if not reply.get("ok"):
            text = f"{str(reply.get('type', ''))[:100]}: {reply.get('message', '')!s}"[:2000]
            return {"op": "callback_reply", "seq": seq, "ok": False, "type": "Error", "message": text}
        try:
            return {"op": "callback_reply", "seq": seq, "ok": True, "value": self._to_oracle(reply.get("value"))}
        except _Refused as e:
            return {"op": "callback_reply", "seq": seq, "ok": False, "message": str(e)}

    # -- handles, as they cross ------------------------------------------------------------------------------
    def _to_oracle(self, x: Any, depth: int = 0) -> Any:
        """What the worker sent, for the oracle process: its objects' ids negated, the oracle's own checked."""
        if depth > 64:
            raise _Refused("a value is nested too deeply")
        if isinstance(x, Handle):
            if x.id < 0 and -x.id in self.issued:
                return Handle(-x.id, x.type[:100])
            if x.id > 0:
                return Handle(-x.id, "object")
            raise _Refused("an object the course's code never gave out was passed to it")
        if type(x) in (list, tuple):
            return type(x)(self._to_oracle(v, depth + 1) for v in x)
        if type(x) is dict:
            return {self._to_oracle(k, depth + 1): self._to_oracle(v, depth + 1) for k, v in x.items()}
        return x

    def _to_worker(self, x: Any, depth: int = 0) -> Any:
        """What the oracle process sent, for the worker: the objects it keeps, issued and negated."""
        if depth > 64:
            raise _Refused("a value is nested too deeply")
        if isinstance(x, Handle):
            if x.id > 0:
                if x.id not in self.issued and len(self.issued) >= MAX_OBJECTS:
                    raise _Refused(f"the course's code kept more than {MAX_OBJECTS:,} objects for this check")
                self.issued.add(x.id)
            return Handle(-x.id, x.type[:100])
        if type(x) in (list, tuple):
            return type(x)(self._to_worker(v, depth + 1) for v in x)
        if type(x) is dict:
            return {self._to_worker(k, depth + 1): self._to_worker(v, depth + 1) for k, v in x.items()}
        return x
