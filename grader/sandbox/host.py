"""The judge's side of the trust boundary: start, feed, time and replace the sandbox worker (`Sandbox`).

A `Sandbox` owns at most one worker process at a time, isolated as grader.sandbox.isolation chose and confined
by grader.sandbox.process. Every request has a deadline for its write and its read, a bound on the size of its
reply, and a sequence number the reply must echo; the whole grading has a time budget. A worker that hangs,
exits, is killed, blows its memory allowance or breaks the protocol is killed and a fresh one is started for the
next request. What comes back is decoded with `grader.sandbox.wire` (never pickle).
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.sandbox.isolation import (
    SANDBOX_ROOT,
    SMALL_REPLY_BYTES,
    WORKER_FAILURES,
    Failure,
    Reply,
    SandboxConfig,
    SandboxError,
    Stats,
    bwrap_base,
    bwrap_devices,
    detect_isolation,
    nvidia_library_dirs,
)
from grader.sandbox.process import (
    Cgroup,
    Confinement,
    make_readable,
    protect,
)

if TYPE_CHECKING:
    from grader.sandbox.wire import Handle

# The judge opens a grading (stages it, starts its worker) before it imports PyTorch itself
# (grader.judge.opening): this module imports the wire format and the guard, which import PyTorch, only where a
# message is written or read, so the judge's `import torch` runs while the worker's does.

# The files of the grader package the worker runs, relative to it: what worker.py imports, and no more
# (tests/grader/test_layout.py keeps this list equal to the worker's imports).
WORKER_RUNTIME = (
    "__init__.py",
    "sandbox/__init__.py",
    "sandbox/worker.py",
    "sandbox/wire.py",
    "sandbox/guard.py",
    "sandbox/lowering.py",
    "sandbox/syscalls.py",
    "sandbox/audit.py",
    "sandbox/proxy.py",
)
FORBIDDEN_CALL = (
    "your code was stopped while {doing}: it tried to start a process or run a program (os.fork, os.system, "
    "subprocess, multiprocessing, exec), to reach another process, or to open a network connection. Graded code "
    "may do none of these: compute in your own function, in this process."
)
# the oracle process (grader.sandbox.oracle_worker) runs the worker's code and its own: never the student's worker
ORACLE_RUNTIME = (*WORKER_RUNTIME, "sandbox/oracle_worker.py")
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from grader.sandbox.{module} import main; main()"
MIDCALL = {"worker": "oracle", "oracles": "callback"}  # what each process may ask the judge in a request's middle


# ---- the sandbox ---------------------------------------------------------------------------------


class Sandbox:
    """`role`: "worker", the student's worker; "oracles", the process that runs the course's oracles
    (grader.sandbox.oracle_worker, started by grader.sandbox.relay when a check first puts one in place)."""

    def __init__(self, config: SandboxConfig, role: str = "worker") -> None:
        self.config = config
        self.role = role
        self.on_request = None  # answers what the process asks in the middle of a request (MIDCALL)
        self._relay = None  # grader.sandbox.relay.OracleRelay: the oracle process, once a check needs it
        self.oracle_entries: dict[str, dict] = {}  # role "oracles": each oracle as the process describes it
        self.stats = Stats()
        self.isolation = detect_isolation(config.python, config.isolation)
        self.info: dict = {"isolation": self.isolation.describe()}
        self._imported: set[str] = set()
        self.module_errors: dict[str, SandboxError] = {}
        self.timed_out: set[str] = set()  # functions that ran out of time once: retried briefly
        self.substitution: dict[str, str] = {}  # graded name -> module: oracles in place (see substitute)
        # what the worker's audit hook refused and what of the grader it found changed (grader.sandbox.audit), as
        # {"what", "file" (relative to the staged tree; None: not known), "line", "function", "event"}
        self.refusals: list[dict] = []
        self._substitute_request: dict = {}
        self._seq = 0
        self._pending_setup: tuple[int, float] | None = None  # (seq, deadline) of a start not yet answered
        self._stopped = False  # stop(): no worker is started again
        self._deadline = (time.monotonic() + config.total_timeout) if config.total_timeout else None
        self._tmp = tempfile.TemporaryDirectory(prefix="grader-sandbox-")
        tmp = Path(self._tmp.name)
        self._stderr_path = tmp / "stderr.txt"
        self._stderr = open(self._stderr_path, "ab+")
        self._runtime = tmp / "runtime"
        self._copy_runtime(self._runtime, ORACLE_RUNTIME if role == "oracles" else WORKER_RUNTIME)
        self._workdir = tmp / "work"
        self._workdir.mkdir()
        self._empty = tmp / "empty"
        self._empty.write_bytes(b"")
        if self.isolation.mode == "bwrap":
            self._inside_root = f"{SANDBOX_ROOT}/kit"
            self._inside_work = f"{SANDBOX_ROOT}/work"
            self._inside_runtime = f"{SANDBOX_ROOT}/runtime"
        else:
            self._inside_root, self._inside_work, self._inside_runtime = (
                str(config.root),
                str(self._workdir),
                str(self._runtime),
            )
        # the worker's own address space is limited in the worker; the cgroup bounds it and its children together
        memory = (config.memory_mb + 2048) << 20 if config.device == "cpu" else None
        self._process = Confinement(
            self.isolation.mode,
            f"grader-{os.getpid()}-{id(self):x}",
            max_processes=config.max_processes,
            memory_bytes=memory,
            run_as=config.run_as,
        )
        self._run_as = self._process.run_as
        self.info["isolation"]["cgroup"] = self._process.cgroup.describe()
        if self._run_as:
            # the unprivileged worker reads the staged tree and its own code, and writes only its working folder
            os.chmod(self._tmp.name, 0o711)
            os.chown(self._workdir, *self._run_as)
            make_readable(Path(config.root))
            make_readable(self._runtime)
            self.info["isolation"]["made_unreadable"] = protect(list(config.hide))

    @property
    def proc(self) -> subprocess.Popen | None:
        """The running worker's first process (bubblewrap, or the worker itself), None when none runs."""
        return self._process.proc

    @property
    def _child_pid(self) -> int | None:
        """PID 1 of the worker's PID namespace (bwrap)."""
        return self._process.child_pid

    @property
    def _cgroup(self) -> Cgroup:
        return self._process.cgroup

    @staticmethod
    def _copy_runtime(dest: Path, runtime: tuple[str, ...] = WORKER_RUNTIME) -> None:
        """The worker's own code (WORKER_RUNTIME), copied so the worker needs nothing else of the judge's
        installation and sees none of the judge's code."""
        grader_root = Path(__file__).resolve().parents[1]
        for rel in runtime:
            (dest / "grader" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(grader_root / rel, dest / "grader" / rel)

    # -- life cycle ---------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stop(self) -> None:
        """End the worker now, from another thread than the one using it: its processes are killed (a request
        waiting on it fails at once) and no worker is started again; its pipes are left for close()."""
        self._stopped = True
        self.stats.peak_rss_mb = max(self.stats.peak_rss_mb, self._process.kill())

    def share_clock(self, other: Sandbox) -> None:
        """Run on `other`'s time budget, to the same moment (a second worker of the same grading)."""
        self.config = replace(self.config, total_timeout=other.config.total_timeout)
        self._deadline = other._deadline

    def close(self) -> None:
        if self._relay is not None:
            self._relay.close()
            self._relay = None
        self._kill()
        self._process.close()
        self._stderr.close()
        self._tmp.cleanup()

    def _argv(self, info_fd: int | None) -> list[str]:
        module = "oracle_worker" if self.role == "oracles" else "worker"
        py = [self.config.python, "-I", "-c", BOOT.format(module=module), self._inside_runtime]
        if self.isolation.mode != "bwrap":
            return py
        size = str(self.config.scratch_mb << 20)
        argv = bwrap_base(self.config, self._empty, info_fd)
        argv += [
            "--ro-bind",
            str(self.config.root),
            self._inside_root,
            "--ro-bind",
            str(self._runtime),
            self._inside_runtime,
            "--size",
            size,
            "--tmpfs",
            self._inside_work,
            "--chdir",
            self._inside_work,
        ]
        return argv + bwrap_devices(self.config) + ["--", *py]

    def prestart(self) -> None:
        """Start the worker now without waiting for it: Python and PyTorch load in the worker while the judge
        prepares its first check (a second or two of every grading). The first request waits for it to be ready;
        a start that fails here is tried again there, where its error is reported."""
        if self.proc is not None or self._pending_setup is not None or self.out_of_time():
            return
        try:
            self._spawn()
        except (SandboxError, OSError):
            self._pending_setup = None
            self._kill()

    def _start(self) -> None:
        self._spawn()
        self._complete_start()

    def _spawn(self) -> None:
        """Start the worker process and send it its configuration; `_complete_start` reads its answer."""
        t0 = time.perf_counter()
        env = {
            k: v
            for k, v in os.environ.items()
            if k in ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
        }
        env.update(
            OMP_NUM_THREADS=str(self.config.threads),
            MKL_NUM_THREADS=str(self.config.threads),
            MPLBACKEND="Agg",
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONHASHSEED="0",
            HOME=self._inside_work,
            TMPDIR="/tmp" if self.isolation.mode == "bwrap" else str(self._workdir),
        )
        if self.config.device.startswith("cuda") and nvidia_library_dirs(self.config.hide):
            env["LD_LIBRARY_PATH"] = os.pathsep.join(nvidia_library_dirs(self.config.hide))  # libcuda, found only there
        deadline = time.perf_counter() + self.config.startup_timeout
        try:
            proc = self._process.popen(
                self._argv(self._process.info_fd()),
                deadline,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=self._workdir,
                env=env,
            )
            os.set_blocking(proc.stdin.fileno(), False)
            if self.isolation.mode == "bwrap" and self._child_pid is None:
                err = self.output_since(0, 600).strip()
                self._kill()
                raise SandboxError("crash", f"the sandbox (bubblewrap) could not start: {err or 'no reason given'}")
            self._imported = set()
            self.stats.starts += 1
            cfg = {
                "root": self._inside_root,
                "workdir": self._inside_work,
                "device": self.config.device,
                "student_files": list(self.config.student_files),
                "guarded": list(self.config.guarded),
                "exempt": list(self.config.exempt),
                "exempt_names": list(self.config.exempt_names),
                "memory_mb": self.config.memory_mb,
                "threads": self.config.threads,
                "isolation": self.isolation.mode,
                # the kernel's filter (grader.sandbox.syscalls) must load wherever the code is isolated at all
                "syscall_filter": "require" if self.isolation.mode in ("bwrap", "user") else "try",
                "walls": self.config.walls,
                "guard": self.config.guard,
                "allowed_imports": None if self.config.allowed_imports is None else list(self.config.allowed_imports),
            }  # never the oracles' source: the oracle process gets it below, the student's worker never
            timeout = self._limit(self.config.startup_timeout, "starting")
            seq = self._send({"op": "setup", "config": cfg}, time.perf_counter() + timeout, "starting")
            self._pending_setup = (seq, time.perf_counter() + timeout)
        finally:
            self.stats.start_seconds += time.perf_counter() - t0

    def _complete_start(self) -> None:
        """Wait for the started worker's answer to its configuration, then put in place what it must hold."""
        t0 = time.perf_counter()
        assert self._pending_setup is not None
        seq, deadline = self._pending_setup
        self._pending_setup = None
        req = {"op": "setup"}
        try:
            reply = self._checked(self._receive(seq, deadline, "starting", SMALL_REPLY_BYTES), req)
            if self.role == "oracles":
                self._load_oracles()
            elif self.substitution:  # a worker restarted in the middle of a check judged with oracles
                self._roundtrip(
                    self._substitute_request,
                    self.config.call_timeout,
                    "putting the course's oracles in place",
                    max_reply=SMALL_REPLY_BYTES,
                )
        finally:
            self.stats.start_seconds += time.perf_counter() - t0
        worker = reply.get("info", {}) if isinstance(reply.get("info"), dict) else {}
        # what the worker says of itself is untrusted: kept for diagnostics under its own key
        self.info.update(
            worker={
                k: worker[k]
                for k in ("user", "memory_limited", "syscall_filter")
                if k in worker and isinstance(worker[k], (str, bool))
            }
        )
        # bubblewrap's network namespace, or the one the worker entered before it ran (where the kernel allowed it),
        # as the judge sees it in /proc
        self.info["worker"]["network_isolated"] = bool(self._process.network_isolated())

    def _kill(self) -> None:
        """End the worker and everything it started (grader.sandbox.process.Confinement.kill), and close its pipes."""
        self._pending_setup = None
        proc = self.proc
        if proc is None:
            return
        self.stats.peak_rss_mb = max(self.stats.peak_rss_mb, self._process.kill())
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def peak_rss(self) -> float:
        """The largest peak resident set (MB) of any worker process so far, the running worker included."""
        if self._process.alive():
            self.stats.peak_rss_mb = max(self.stats.peak_rss_mb, self._process.peak_rss_mb())
        return self.stats.peak_rss_mb

    def start_clock(self, total_timeout: float | None) -> None:
        """Start the grading's time budget now: a sandbox opened ahead of its grading (grader.judge.runner.Ahead)
        starts its worker while another grading runs, and that time is not this grading's. A start still waiting for
        its answer gets its whole startup time from now."""
        self.config = replace(self.config, total_timeout=total_timeout)
        self._deadline = (time.monotonic() + total_timeout) if total_timeout else None
        if self._pending_setup is not None:
            seq, _ = self._pending_setup
            self._pending_setup = (seq, time.perf_counter() + self._limit(self.config.startup_timeout, "starting"))

    def out_of_time(self) -> bool:
        """Whether the grading's time budget has run out (every later request fails at once)."""
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _ensure(self) -> None:
        if self._stopped:
            raise SandboxError("crash", "the grading ended before this request (its worker was stopped)")
        if self._pending_setup is not None:  # started ahead (prestart): wait for it now
            self._complete_start()
            return
        if self.proc is None or self.proc.poll() is not None:
            self._limit(1.0, "starting the sandbox")  # no worker is started once the budget is spent
            self._kill()
            self._start()

    # -- transport ----------------------------------------------------------------------------
    def _limit(self, timeout: float, doing: str) -> float:
        """`timeout`, cut to what is left of the grading's budget."""
        if self._deadline is None:
            return timeout
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise SandboxError(
                "timeout",
                f"the time allowed for grading this submission "
                f"({self.config.total_timeout:g} s) ran out before {doing}",
            )
        return min(timeout, left)

    def _roundtrip(self, req: dict, timeout: float, doing: str, max_reply: int | None = None) -> dict:
        assert self.proc is not None
        timeout = self._limit(timeout, doing)
        return self._checked(self.exchange(req, time.perf_counter() + timeout, doing, max_reply), req)

    def _checked(self, reply: dict, req: dict) -> dict:
        """The reply to `req`, its refusals kept; a failure the worker reports raised as a SandboxError."""
        if reply.get("refused"):
            self._note_refusals(reply["refused"], req)
        if not reply.get("ok"):
            where = reply.get("where") if isinstance(reply.get("where"), list) else []
            # the worker cuts these, but its code is the student's to patch: cut them again here
            frames = [
                {k: (v if isinstance(v, int) else str(v)[:300]) for k, v in list(w.items())[:8]}
                for w in where[-5:]
                if isinstance(w, dict)
            ]
            kind = reply.get("kind", "exception")
            raise SandboxError(
                kind if kind in WORKER_FAILURES else Failure.PROTOCOL,
                str(reply.get("message", ""))[:2000],
                type_name=str(reply.get("type", ""))[:100],
                where=frames,
            )
        return reply

    def _note_refusals(self, records: Any, req: dict) -> None:
        """Keep the worker's refusal records, cut to size and to known fields. Student code could forge more of
        them, never fewer: a refusal only ever costs the file it names (none named: the module of the request,
        else every graded file)."""
        target = req.get("target") if isinstance(req.get("target"), dict) else {}
        module = req.get("module") or target.get("module")
        default = module.replace(".", "/") + ".py" if isinstance(module, str) else None
        for r in records[:20] if isinstance(records, list) else []:
            if not isinstance(r, dict) or len(self.refusals) >= 100:
                continue
            file = r.get("file")
            if isinstance(file, str) and file.startswith(self._inside_root + "/"):
                file = os.path.relpath(file, self._inside_root)
            elif isinstance(file, str) and not file.startswith("<"):
                file = os.path.basename(file)
            record = {
                "event": str(r.get("event", ""))[:60],
                "what": str(r.get("what", ""))[:200],
                "file": file[:200] if isinstance(file, str) else default,
                "line": r.get("line") if isinstance(r.get("line"), int) else None,
                "function": str(r.get("function") or "")[:100] or None,
            }
            if record not in self.refusals:  # the same line refused again (each check calls it anew)
                self.refusals.append(record)

    def exchange(self, req: dict, deadline: float, doing: str, max_reply: int | None = None) -> dict:
        """Send one request and read its answer (a dict that echoes the request's sequence number) by `deadline`.
        What the process asks in the meantime (MIDCALL: the student's worker calling the course's oracles, the
        oracle process calling back a student's function) is answered by `on_request` under the same deadline, so
        the time it takes counts against the request's own. Also used for the requests nested in those."""
        return self._receive(self._send(req, deadline, doing), deadline, doing, max_reply)

    def _send(self, req: dict, deadline: float, doing: str) -> int:
        """Send one request by `deadline`; its sequence number."""
        from grader.sandbox import wire

        if self.proc is None or self.proc.poll() is not None:
            raise SandboxError("crash", f"the sandbox is not running while {doing}")
        self._seq += 1
        seq = self._seq
        t0 = time.perf_counter()
        self._write(wire.frame(wire.encode({**req, "seq": seq})), deadline, doing)
        self.stats.io_seconds += time.perf_counter() - t0
        return seq

    def _receive(self, seq: int, deadline: float, doing: str, max_reply: int | None = None) -> dict:
        """The answer to request `seq` by `deadline`, answering what the process asks in the meantime."""
        from grader.sandbox import wire

        while True:
            reply = self._read_message(deadline, doing, max_reply)
            if reply.get("op") == MIDCALL[self.role] and self.on_request is not None and "ok" not in reply:
                answer = self.on_request(reply, deadline)
                t0 = time.perf_counter()
                self._write(wire.frame(wire.encode(answer)), deadline, doing)
                self.stats.io_seconds += time.perf_counter() - t0
                continue
            if reply.get("seq") != seq:
                self._kill()
                raise SandboxError(
                    "protocol",
                    f"the sandbox's answer while {doing} does not belong to the request "
                    "(did your code write to the grader's channel?)",
                )
            return reply

    def _read_message(self, deadline: float, doing: str, max_reply: int | None) -> dict:
        """One message from the process, at most `max_reply` bytes (the configured bound without it), decoded."""
        from grader.sandbox import wire

        fd = self.proc.stdout.fileno()
        header = self._read(fd, 8, deadline, doing)
        (n,) = struct.unpack(">Q", header)
        limit = max_reply or self.config.max_reply_bytes
        if n > limit:
            self._kill()
            raise SandboxError(
                "protocol",
                f"the result of {doing} is too large to take back ({n:,} bytes; at most "
                f"{limit:,}): return only what the function's docstring asks for",
            )
        body = self._read(fd, n, deadline, doing)
        t0 = time.perf_counter()
        try:
            reply = wire.decode(body)
        except wire.WireError as e:
            self._kill()
            raise SandboxError("protocol", f"the sandbox sent back a malformed answer while {doing}: {e}") from None
        self.stats.io_seconds += time.perf_counter() - t0
        self.stats.requests += 1
        if not isinstance(reply, dict):
            self._kill()
            raise SandboxError("protocol", f"the sandbox's answer while {doing} is not a message of the protocol")
        return reply

    def _write(self, data: bytes, deadline: float, doing: str) -> None:
        """Send `data` without ever blocking past `deadline` (a worker that stops reading cannot hang the judge)."""
        fd = self.proc.stdin.fileno()
        view = memoryview(data)
        while view:
            left = deadline - time.perf_counter()
            if left <= 0:
                self._kill()
                raise SandboxError(
                    "timeout", f"{doing} did not finish within the time limit (the inputs could not be delivered)"
                )
            _, ready, _ = select.select([], [fd], [], min(left, 0.25))
            if not ready:
                continue
            try:
                view = view[os.write(fd, view[: 1 << 20]) :]
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.EBADF):
                    raise self._died(doing) from None
                raise

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
                    raise SandboxError(
                        "memory", f"{doing} used more than the memory allowance ({self.config.memory_mb} MB)"
                    )
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
        return self._process.rss_bytes() > (self.config.memory_mb + 3072) * 2**20

    def _died(self, doing: str) -> SandboxError:
        proc = self.proc
        try:
            code = proc.wait(timeout=10) if proc is not None else None
        except subprocess.TimeoutExpired:
            code = None
        started = self._child_pid is not None  # bubblewrap had started the worker (read before the kill forgets it)
        self._kill()
        # bubblewrap reports its child's death by signal N as the status 128 + N
        signum = -code if code is not None and code < 0 else None
        if code is not None and code > 128 and self.isolation.mode == "bwrap" and started:
            signum = code - 128
        if signum == signal.SIGSYS:  # grader.sandbox.syscalls: the kernel's filter killed the worker
            return SandboxError(Failure.FORBIDDEN, FORBIDDEN_CALL.format(doing=doing))
        if code is not None and code < 0:
            sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            hint = " (out of memory?)" if sig == "SIGKILL" else ""
            return SandboxError("crash", f"the process running your code was killed by {sig}{hint} while {doing}")
        if code is not None and code > 128 and self._child_pid is None and self.isolation.mode == "bwrap":
            return SandboxError("crash", f"the process running your code was killed (status {code}) while {doing}")
        if doing == "starting":  # no code of the student's has run yet: the grader's environment is at fault
            said = self.output_since(0, 400).strip()
            return SandboxError(
                "crash",
                f"the grader's sandbox could not start (exit code {code}"
                + (f": {said.splitlines()[-1][:300]}" if said else "")
                + "): this is not your code's doing; tell the course staff",
            )
        return SandboxError(
            "exit",
            f"the process running your code exited (exit code {code}) while {doing}; "
            "your code must not call exit(), sys.exit() or os._exit()",
        )

    # -- requests -----------------------------------------------------------------------------
    def stderr_offset(self) -> int:
        self._stderr.flush()
        return self._stderr_path.stat().st_size

    def output_since(self, offset: int, limit: int = 1500) -> str:
        self._stderr.flush()
        with open(self._stderr_path, "rb") as f:
            f.seek(max(offset, self._stderr_path.stat().st_size - 4 * limit))
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
            self._roundtrip(
                {"op": "import", "module": module},
                timeout or self.config.call_timeout,
                f"importing {module}",
                max_reply=SMALL_REPLY_BYTES,
            )
        except SandboxError as e:
            e.output = self.output_since(offset)
            if e.kind == "timeout":  # a time-out says nothing final about the file if the budget ran out
                e.message += " (code at the top level of the file runs at import: does it loop or train there?)"
            self.module_errors[module] = e
            raise
        self._imported.add(module)

    def call(
        self,
        module: str | None,
        attr: str,
        args: tuple = (),
        kwargs: dict | None = None,
        *,
        handle: Handle | None = None,
        seed: int = 0,
        forbidden: list[str] | None = None,
        keep: bool = False,
        return_args: bool = False,
        timeout: float | None = None,
        max_reply: int | None = None,
    ) -> Reply:
        """Call `module.attr(*args, **kwargs)` (or `handle.attr(...)`) in the worker. A function that has run
        out of time once gets at most `retry_timeout` seconds on later calls."""
        if module is not None:
            self.import_module(module)
        else:
            self._ensure()
        target = {"module": module, "attr": attr} if module is not None else {"handle": handle, "attr": attr}
        req = {
            "op": "call",
            "target": target,
            "args": list(args),
            "kwargs": dict(kwargs or {}),
            "seed": seed,
            "forbidden": list(forbidden or []),
            "keep": keep,
            "return_args": return_args,
        }
        offset = self.stderr_offset()
        name = f"{attr}()" if module is not None else f"{handle.type}.{attr}()"
        key = f"{module or handle.type}.{attr}"
        limit = timeout or self.config.call_timeout
        if key in self.timed_out:
            limit = min(limit, self.config.retry_timeout)
        t0 = time.perf_counter()
        try:
            reply = self._roundtrip(req, limit, f"running {name}", max_reply=max_reply)
        except SandboxError as e:
            e.output = self.output_since(offset)
            if e.kind == "timeout":
                if key in self.timed_out:
                    e.message += f" (it ran out of time in an earlier check too, so it was given {limit:g} s this time)"
                self.timed_out.add(key)
            raise
        finally:
            self.stats.call_seconds += time.perf_counter() - t0
        from grader.sandbox.guard import hit_records

        hits = reply.get("forbidden_hits")
        return Reply(
            value=reply.get("value"),
            seconds=time.perf_counter() - t0,
            forbidden_hits=hit_records(hits),
            aliases=[int(i) for i in reply.get("aliases", []) if isinstance(i, int)],
            args=reply.get("args"),
            ops=reply["ops"] if isinstance(reply.get("ops"), int) and not isinstance(reply.get("ops"), bool) else None,
        )

    def substitute(self, names: dict[str, str]) -> None:
        """Run the course's oracle (the assignment's oracles.py, `config.oracles`) in place of each graded name
        (`name: module`) until `restore`, also in a worker started meanwhile. The oracles run in a process of their
        own (grader.sandbox.relay starts it the first time); the worker gets stand-ins that call them there."""
        if not self.config.oracles:
            raise SandboxError("crash", "the course's oracles are not available here (the student kit has none)")
        if self._relay is None:
            from grader.sandbox.relay import OracleRelay

            self._relay = OracleRelay(self, Sandbox)
        entries = self._relay.entries(sorted(names))
        self.substitution = dict(names)
        self._substitute_request = {"op": "substitute", "names": self.substitution, "entries": entries}
        starts = self.stats.starts
        self._ensure()  # a worker started now puts them in place itself
        if self.stats.starts == starts:
            self._roundtrip(
                self._substitute_request,
                self.config.call_timeout,
                "putting the course's oracles in place",
                max_reply=SMALL_REPLY_BYTES,
            )

    def restore(self) -> None:
        """The student's own code again, everywhere."""
        if not self.substitution:
            return
        self.substitution = {}
        self._substitute_request = {}
        if self._relay is not None:
            self._relay.reset()
        if self.proc is not None and self.proc.poll() is None:
            try:
                self._roundtrip(
                    {"op": "restore"}, self.config.call_timeout, "restoring your code", max_reply=SMALL_REPLY_BYTES
                )
            except SandboxError:
                self._kill()  # the next request starts a fresh worker, with nothing substituted

    def _load_oracles(self) -> None:
        """The oracle process's first request: compile the oracles (role "oracles" only)."""
        spec = self.config.oracles or {}
        entries = self._roundtrip(
            {"op": "load_oracles", "source": spec.get("source", ""), "assignment": spec.get("assignment", "")},
            self.config.startup_timeout,
            "loading the course's oracles",
            max_reply=SMALL_REPLY_BYTES,
        ).get("value")
        if not isinstance(entries, dict):
            raise SandboxError("protocol", "the oracle process did not describe the course's oracles")
        self.oracle_entries = entries

    def put(self, value: Any, timeout: float | None = None) -> Handle:
        """Store `value` in the worker and return its handle (e.g. to time a call without the transfer)."""
        self._ensure()
        return self._roundtrip(
            {"op": "put", "value": value},
            timeout or self.config.call_timeout,
            "sending inputs",
            max_reply=SMALL_REPLY_BYTES,
        )["value"]

    def getattr(self, handle: Handle, attr: str, timeout: float | None = None) -> Any:
        """An attribute (dotted path) of an object in the worker, e.g. a trained classifier's `W`."""
        self._ensure()
        return self._roundtrip(
            {"op": "getattr", "value": handle, "attr": attr},
            timeout or self.config.call_timeout,
            f"reading {handle.type}.{attr}",
        )["value"]

    def release(self, handles: list[Handle]) -> None:
        """Let the worker drop objects it keeps (a no-op when the worker that held them is gone)."""
        if handles and self.proc is not None and self.proc.poll() is None:
            try:
                self._roundtrip(
                    {"op": "release", "handles": [h.id for h in handles]},
                    self.config.call_timeout,
                    "releasing objects",
                    max_reply=SMALL_REPLY_BYTES,
                )
            except SandboxError:
                pass

    def get(self, handle: Handle, timeout: float | None = None) -> Any:
        self._ensure()
        return self._roundtrip(
            {"op": "get", "value": handle}, timeout or self.config.call_timeout, "fetching a result"
        )["value"]
