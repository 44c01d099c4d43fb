"""The judge's side of the trust boundary: start, feed, time and replace sandbox workers.

A `Sandbox` owns at most one worker process at a time. Every request has a deadline; a worker that
hangs, exits, is killed or blows its memory allowance is killed (with its whole process group) and a
fresh one is started for the next request. What comes back is decoded with `grader.wire` (never pickle).
"""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import wire
from grader.wire import Handle

MAX_REPLY_BYTES = 1 << 31


class SandboxError(Exception):
    """A request the student's code made fail. `kind` is one of: exception, exit, timeout, crash,
    memory, import, unsendable, protocol. `message` is written for the student."""

    def __init__(self, kind: str, message: str, *, type_name: str = "", where: list | None = None,
                 output: str = "") -> None:
        super().__init__(message)
        self.kind, self.message, self.type_name = kind, message, type_name
        self.where = where or []
        self.output = output


@dataclass
class SandboxConfig:
    root: Path                      # the staged tree the worker imports from
    student_files: list[str]        # paths (relative to root) that came from the submission
    device: str = "cpu"
    guarded: list[str] = field(default_factory=list)   # callables to wrap (forbidden-call guard)
    exempt: list[str] = field(default_factory=list)    # given code (qualified names) the guard ignores ...
    exempt_names: list[str] = field(default_factory=list)  # ... when it calls these names (autograd)
    call_timeout: float = 60.0
    startup_timeout: float = 120.0
    memory_mb: int = 4096
    threads: int = 1
    python: str = sys.executable
    run_as: str | None = "nobody"   # when the judge runs as root, the worker drops to this user


@dataclass
class Reply:
    value: Any
    seconds: float                  # timed by the judge, around the request
    worker_seconds: float           # as the worker reports it (untrusted; diagnostics only)
    forbidden_hits: list[str]
    aliases: list[int]
    args: list | None = None
    kwargs: dict | None = None


@dataclass
class Stats:
    starts: int = 0
    start_seconds: float = 0.0      # spawning workers and waiting for them to be ready
    io_seconds: float = 0.0         # encoding, sending, receiving, decoding
    call_seconds: float = 0.0       # round trips of calls (includes the student's compute)
    requests: int = 0


def python_readable_by_others(python: str) -> bool:
    """Whether another user could run `python` and import its standard library and packages (a Python
    installed under /root, as pyenv does, is not: the worker then keeps the judge's user)."""
    import subprocess
    out = subprocess.run([python, "-c", "import sysconfig, json; print(json.dumps(sorted(set(sysconfig.get_paths()"
                          "[k] for k in ('stdlib', 'platstdlib', 'purelib', 'platlib')))))"],
                         capture_output=True, text=True)
    import json
    try:
        paths = [Path(p) for p in json.loads(out.stdout)]
    except ValueError:
        return False
    for p in paths:
        for d in [p, *p.parents]:
            try:
                mode = d.stat().st_mode
            except OSError:
                return False
            if not mode & 0o001 or (d == p and not mode & 0o004):
                return False
    return True


def _user_ids(name: str | None) -> tuple[int, int] | None:
    if not name:
        return None
    import pwd
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _make_readable(root: Path) -> None:
    """Let another user read `root` and everything under it, and pass through its parents inside the
    temporary folder (the judge stages there; nothing outside it is touched)."""
    tmp = Path(tempfile.gettempdir()).resolve()
    for d in [root, *root.parents]:
        if d == tmp or tmp not in d.parents:
            break
        d.chmod(d.stat().st_mode | 0o055)
    for p in root.rglob("*"):
        p.chmod(p.stat().st_mode | (0o055 if p.is_dir() else 0o044))


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.stats = Stats()
        self.info: dict = {}
        self._imported: set[str] = set()
        self.module_errors: dict[str, SandboxError] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="grader-sandbox-")
        self._stderr_path = Path(self._tmp.name) / "stderr.txt"
        self._stderr = open(self._stderr_path, "ab+")
        self._workdir = Path(self._tmp.name) / "work"
        self._workdir.mkdir()
        self._run_as = (_user_ids(config.run_as) if os.getuid() == 0 and config.run_as
                        and python_readable_by_others(config.python) else None)
        if self._run_as:
            # the unprivileged worker reads the staged tree and writes only its working folder
            os.chmod(self._tmp.name, 0o755)
            os.chown(self._workdir, *self._run_as)
            _make_readable(Path(config.root))

    # -- life cycle ---------------------------------------------------------------------------
    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._kill()
        self._stderr.close()
        self._tmp.cleanup()

    def _start(self) -> None:
        t0 = time.perf_counter()
        env = {k: v for k, v in os.environ.items()
               if k in ("PATH", "HOME", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "OPENBLAS_CORETYPE",
                        "OPENBLAS_L2_SIZE", "TMPDIR", "DLCV_DATASET", "DLCV_CIFAR_ROOT")}
        env.update(OMP_NUM_THREADS=str(self.config.threads), MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1",
                   PYTHONHASHSEED="0")
        self.proc = subprocess.Popen(
            [self.config.python, "-I", "-m", "grader.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            cwd=self._workdir, env=env, start_new_session=True, close_fds=True,
        )
        self._imported = set()
        self.stats.starts += 1
        cfg = {"root": str(self.config.root), "workdir": str(self._workdir), "device": self.config.device,
               "student_files": list(self.config.student_files), "guarded": list(self.config.guarded),
               "exempt": list(self.config.exempt), "exempt_names": list(self.config.exempt_names),
               "memory_mb": self.config.memory_mb, "threads": self.config.threads,
               "run_as": list(self._run_as) if self._run_as else None}
        try:
            reply = self._roundtrip({"op": "setup", "config": cfg}, self.config.startup_timeout, "starting")
        finally:
            self.stats.start_seconds += time.perf_counter() - t0
        self.info = reply.get("info", {})

    def _kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.proc = None

    def _ensure(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self._kill()
            self._start()

    # -- transport ----------------------------------------------------------------------------
    def _roundtrip(self, req: dict, timeout: float, doing: str) -> dict:
        assert self.proc is not None
        t0 = time.perf_counter()
        msg = wire.frame(wire.encode(req))
        try:
            self.proc.stdin.write(msg)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died(doing) from None
        t1 = time.perf_counter()
        deadline = t1 + timeout
        fd = self.proc.stdout.fileno()
        header = self._read(fd, 8, deadline, doing)
        (n,) = struct.unpack(">Q", header)
        if n > MAX_REPLY_BYTES:
            self._kill()
            raise SandboxError("protocol", f"the result of {doing} is too large ({n} bytes) to take back")
        t2 = time.perf_counter()
        body = self._read(fd, n, deadline, doing)
        t3 = time.perf_counter()
        try:
            reply = wire.decode(body)
        except wire.WireError as e:
            self._kill()
            raise SandboxError("protocol", f"the sandbox sent back a malformed answer while {doing}: {e}") from None
        self.stats.io_seconds += (t1 - t0) + (time.perf_counter() - t3)
        self.stats.requests += 1
        if not isinstance(reply, dict):
            raise SandboxError("protocol", f"the sandbox sent back a malformed answer while {doing}")
        if not reply.get("ok"):
            raise SandboxError(str(reply.get("kind", "exception")), str(reply.get("message", "")),
                               type_name=str(reply.get("type", "")), where=list(reply.get("where") or []))
        return reply

    def _read(self, fd: int, n: int, deadline: float, doing: str) -> bytes:
        chunks, got = [], 0
        while got < n:
            left = deadline - time.perf_counter()
            if left <= 0:
                self._kill()
                raise SandboxError("timeout", f"{doing} did not finish within the time limit")
            ready, _, _ = select.select([fd], [], [], min(left, 0.25))
            if not ready:
                if self._over_memory():
                    self._kill()
                    raise SandboxError("memory", f"{doing} used more than the memory allowance "
                                                 f"({self.config.memory_mb} MB)")
                continue
            b = os.read(fd, min(n - got, 1 << 22))
            if not b:
                raise self._died(doing)
            chunks.append(b)
            got += len(b)
        return b"".join(chunks)

    def _over_memory(self) -> bool:
        if self.proc is None or self.config.device == "cpu":
            return False  # on the CPU the worker's address space is limited by the kernel instead
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                rss = next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0) * 1024
        except OSError:
            return False
        return rss > (self.config.memory_mb + 3072) * 2**20

    def _died(self, doing: str) -> SandboxError:
        proc = self.proc
        code = proc.wait(timeout=10) if proc is not None else None
        self._kill()
        if code is not None and code < 0:
            sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            hint = " (out of memory?)" if sig == "SIGKILL" else ""
            return SandboxError("crash", f"the process running your code was killed by {sig}{hint} while {doing}")
        return SandboxError("exit", f"the process running your code exited (exit code {code}) while {doing}; "
                                    "your code must not call exit(), sys.exit() or os._exit()")

    # -- requests -----------------------------------------------------------------------------
    def stderr_offset(self) -> int:
        self._stderr.flush()
        return self._stderr_path.stat().st_size

    def output_since(self, offset: int, limit: int = 1500) -> str:
        self._stderr.flush()
        with open(self._stderr_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        return text if len(text) <= limit else "..." + text[-limit:]

    def import_module(self, module: str, timeout: float | None = None) -> None:
        """Import `module` in the worker; a failure is remembered for the rest of the run, so a file that
        kills the worker at import costs one restart, not one per check."""
        if module in self.module_errors:
            raise self.module_errors[module]
        self._ensure()
        if module in self._imported:
            return
        offset = self.stderr_offset()
        try:
            self._roundtrip({"op": "import", "module": module}, timeout or self.config.call_timeout,
                            f"importing {module}")
        except SandboxError as e:
            e.output = self.output_since(offset)
            self.module_errors[module] = e
            raise
        self._imported.add(module)

    def call(self, module: str | None, attr: str, args: tuple = (), kwargs: dict | None = None, *,
             handle: Handle | None = None, seed: int = 0, forbidden: list[str] | None = None,
             keep: bool = False, return_args: bool = False, timeout: float | None = None) -> Reply:
        """Call `module.attr(*args, **kwargs)` (or `handle.attr(...)`) in the worker."""
        if module is not None:
            self.import_module(module)
        else:
            self._ensure()
        target = {"module": module, "attr": attr} if module is not None else {"handle": handle, "attr": attr}
        req = {"op": "call", "target": target, "args": list(args), "kwargs": dict(kwargs or {}), "seed": seed,
               "forbidden": list(forbidden or []), "keep": keep, "return_args": return_args}
        offset = self.stderr_offset()
        name = f"{attr}()" if module is not None else f"{handle.type}.{attr}()"
        t0 = time.perf_counter()
        try:
            reply = self._roundtrip(req, timeout or self.config.call_timeout, f"running {name}")
        except SandboxError as e:
            e.output = self.output_since(offset)
            raise
        finally:
            self.stats.call_seconds += time.perf_counter() - t0
        return Reply(value=reply.get("value"), seconds=time.perf_counter() - t0,
                     worker_seconds=float(reply.get("seconds", 0.0)),
                     forbidden_hits=[str(h) for h in reply.get("forbidden_hits", [])],
                     aliases=[int(i) for i in reply.get("aliases", [])],
                     args=reply.get("args"), kwargs=reply.get("kwargs"))

    def put(self, value: Any, timeout: float | None = None) -> Handle:
        """Store `value` in the worker and return its handle (e.g. to time a call without the transfer)."""
        self._ensure()
        return self._roundtrip({"op": "put", "value": value}, timeout or self.config.call_timeout,
                               "sending inputs")["value"]

    def getattr(self, handle: Handle, attr: str, timeout: float | None = None) -> Any:
        """An attribute (dotted path) of an object in the worker, e.g. a trained classifier's `W`."""
        self._ensure()
        return self._roundtrip({"op": "getattr", "value": handle, "attr": attr}, timeout or self.config.call_timeout,
                               f"reading {handle.type}.{attr}")["value"]

    def release(self, handles: list[Handle]) -> None:
        """Let the worker drop objects it keeps (a no-op when the worker that held them is gone)."""
        if handles and self.proc is not None and self.proc.poll() is None:
            try:
                self._roundtrip({"op": "release", "handles": [h.id for h in handles]}, self.config.call_timeout,
                                "releasing objects")
            except SandboxError:
                pass

    def get(self, handle: Handle, timeout: float | None = None) -> Any:
        self._ensure()
        return self._roundtrip({"op": "get", "value": handle}, timeout or self.config.call_timeout,
                               "fetching a result")["value"]
