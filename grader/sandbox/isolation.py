"""The judge's side of the trust boundary: isolate, start, feed, time and replace sandbox workers.

A `Sandbox` owns at most one worker process at a time. The worker runs under the strongest isolation the
machine allows (see `detect_isolation`):

- ``bwrap``: bubblewrap gives it its own user, mount, PID, IPC, UTS and network namespaces. It sees, read-only,
  the Python installation, a few files of /etc, the staged tree (the kit's given code and the student's files)
  and the worker's own code; writable, two small private tmpfs folders (its working folder and /tmp). It does
  not see the course repository, the reference, the checks, the data sets' label files, the results folder or
  the judge. Ending its PID namespace ends every process it started, `setsid` or not.
- ``user``: where namespaces are refused (Docker's default seccomp profile, as on Gradescope) and the judge is
  root, the worker drops to `nobody`, which can read only Python and the staged tree (the paths to protect are
  made unreadable to other users first).
- ``none``: the worker runs as the judge's user. Good enough for a student checking their own work; hidden and
  batch grading refuse it unless told otherwise (`--allow-weak-sandbox`).

Every request has a deadline for its write and its read, a bound on the size of its reply, and a sequence
number the reply must echo; the whole grading has a time budget. A worker that hangs, exits, is killed,
blows its memory allowance or breaks the protocol is killed and a fresh one is started for the next request.
What comes back is decoded with `grader.sandbox.wire` (never pickle).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from grader.sandbox import wire
from grader.sandbox.guard import hit_records
from grader.sandbox.process import (
    LIVE_USER_PROCESSES,
    Cgroup,
    Confinement,
    become_subreaper,
    kill_descendants_of,
    make_readable,
    peak_rss_mb,
    protect,
    user_ids,
)
from grader.sandbox.wire import Handle

# the process mechanics (starting, killing, cgroups, the `user` fallback) live in grader.sandbox.process, shared
# with the notebooks' kernel; these names stay importable from here
__all__ = [
    "BOOT",
    "ISOLATIONS",
    "LIVE_USER_PROCESSES",
    "MAX_REPLY_BYTES",
    "SANDBOX_ROOT",
    "SMALL_REPLY_BYTES",
    "WORKER_RUNTIME",
    "Cgroup",
    "Failure",
    "Isolation",
    "IsolationError",
    "Reply",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "Stats",
    "become_subreaper",
    "bwrap_base",
    "bwrap_devices",
    "bwrap_gpu_nodes",
    "detect_isolation",
    "kill_descendants_of",
    "make_readable",
    "nvidia_device_nodes",
    "nvidia_library_dirs",
    "peak_rss_mb",
    "protect",
    "python_paths",
    "python_readable_by_others",
    "user_ids",
]

ISOLATIONS = ("bwrap", "user", "none")
MAX_REPLY_BYTES = 64 << 20  # default bound on one reply (a call's return value)
SMALL_REPLY_BYTES = 1 << 20  # replies that carry no student value (setup, import, release)
SANDBOX_ROOT = "/sandbox"  # where the staged tree and the worker's files appear inside bubblewrap
NOBODY = 65534
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "nsswitch.conf",
    "passwd",
    "group",
    "localtime",
    "alternatives",
    "hosts",
)
# The files of the grader package the worker runs, relative to it: what worker.py imports, and no more
# (tests/grader/test_layout.py keeps this list equal to the worker's imports).
WORKER_RUNTIME = (
    "__init__.py",
    "sandbox/__init__.py",
    "sandbox/worker.py",
    "sandbox/wire.py",
    "sandbox/guard.py",
)
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from grader.sandbox.worker import main; main()"


class Failure(StrEnum):
    """How a request into the sandbox failed (SandboxError.kind); a member equals its string."""

    EXCEPTION = "exception"  # the student's code raised
    EXIT = "exit"  # it called exit() or raised SystemExit
    TIMEOUT = "timeout"  # it did not finish within its time
    CRASH = "crash"  # the worker died (a signal, a status) or could not start
    MEMORY = "memory"  # the worker ran out of its memory
    IMPORT = "import"  # the student's module could not be imported
    UNSENDABLE = "unsendable"  # a value could not cross the wire
    PROTOCOL = "protocol"  # the worker's answer was malformed or not the request's


# what a worker may say of a failure (its code runs beside the student's, so anything else it says is refused)
WORKER_FAILURES = (Failure.EXCEPTION, Failure.EXIT, Failure.UNSENDABLE)


class SandboxError(Exception):
    """A request the student's code made fail: `kind` says how (a Failure), `message` is written for the
    student."""

    def __init__(
        self, kind: str, message: str, *, type_name: str = "", where: list | None = None, output: str = ""
    ) -> None:
        super().__init__(message)
        self.kind, self.message, self.type_name = Failure(kind), message, type_name
        self.where = where or []
        self.output = output

    def __str__(self) -> str:
        return self.message


class IsolationError(Exception):
    """The isolation asked for cannot be had on this machine."""


@dataclass
class SandboxConfig:
    root: Path  # the staged tree the worker imports from
    student_files: list[str]  # paths (relative to root) that came from the submission
    device: str = "cpu"
    guarded: list[str] = field(default_factory=list)  # callables to wrap (forbidden-call guard)
    exempt: list[str] = field(default_factory=list)  # given files (in root) the guard ignores ...
    exempt_names: list[str] = field(default_factory=list)  # ... when it calls these names (autograd)
    call_timeout: float = 60.0
    startup_timeout: float = 120.0
    retry_timeout: float = 10.0  # a call of a function that has timed out before gets this much at most
    total_timeout: float | None = None  # the whole grading's budget (every request of this sandbox)
    memory_mb: int = 4096
    scratch_mb: int = 256  # each private tmpfs (working folder, /tmp) under bubblewrap
    max_processes: int = 256  # processes and threads of the worker together (where a cgroup can be made)
    max_reply_bytes: int = MAX_REPLY_BYTES
    threads: int = 1
    python: str = sys.executable
    isolation: str = "auto"  # auto (the strongest available), bwrap, user or none
    hide: list[str] = field(default_factory=list)  # paths the worker must not read (the course, data files)
    run_as: str | None = "nobody"  # the user of the `user` fallback
    oracles: dict | None = None  # {"source": the assignment's oracles.py, "assignment": its name}


@dataclass
class Reply:
    value: Any
    seconds: float  # timed by the judge, around the request
    forbidden_hits: list[dict]  # grader.sandbox.guard records: name, op, file, function, line
    aliases: list[int]
    args: list | None = None
    function: str = ""  # what was called, as feedback names it (set by the check's context)


@dataclass
class Stats:
    starts: int = 0
    start_seconds: float = 0.0  # spawning workers and waiting for them to be ready
    io_seconds: float = 0.0  # encoding, sending, receiving, decoding
    call_seconds: float = 0.0  # round trips of calls (includes the student's compute)
    requests: int = 0
    peak_rss_mb: float = 0.0  # the largest peak resident set of a worker process (VmHWM), over every worker


@dataclass(frozen=True)
class Isolation:
    mode: str  # one of ISOLATIONS
    detail: str  # one line for results and the terminal
    why_not_stronger: str = ""  # what stronger isolation would need here

    @property
    def strong(self) -> bool:
        return self.mode in ("bwrap", "user")

    def describe(self) -> dict:
        return {
            "mode": self.mode,
            "detail": self.detail,
            **({"weaker_because": self.why_not_stronger} if self.why_not_stronger else {}),
        }


# ---- the Python installation the worker needs --------------------------------------------------


@functools.lru_cache(maxsize=8)
def python_paths(python: str) -> tuple[str, ...]:
    """The folders of `python`'s installation the worker must read: its prefixes (a venv and its base) and the
    folders of its standard library and site-packages, outermost first, without folders nested in another."""
    code = (
        "import sys, sysconfig, os, json; p = sysconfig.get_paths(); "
        "print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, "
        "os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))), "
        "*(p[k] for k in ('stdlib', 'platstdlib', 'purelib', 'platlib'))]))"
    )
    out = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    try:
        found = [os.path.realpath(p) for p in json.loads(out.stdout)] + [os.path.dirname(python)]
    except ValueError:
        raise IsolationError(f"could not ask {python} where it is installed: {out.stderr.strip()[:300]}") from None
    found += [os.path.abspath(p) for p in json.loads(out.stdout)]  # a venv reached through a link
    keep: list[str] = []
    for p in sorted(set(found), key=len):
        if os.path.isdir(p) and p != "/" and not any(p == k or p.startswith(k + "/") for k in keep):
            keep.append(p)
    return tuple(keep)


def python_readable_by_others(python: str) -> bool:
    """Whether another user could run `python` and import its standard library and packages (a Python
    installed under /root, as pyenv does, is not)."""
    for p in python_paths(python):
        for d in [Path(p), *Path(p).parents]:
            try:
                mode = d.stat().st_mode
            except OSError:
                return False
            if not mode & 0o001 or (str(d) == p and not mode & 0o004):
                return False
    return True


# ---- choosing the isolation -----------------------------------------------------------------------


def _bwrap_probe() -> str:
    """'' when bubblewrap can make the namespaces the worker needs here, else why not."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        r = subprocess.run(
            [exe, *_bwrap_namespace_args(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bubblewrap could not run ({e})"
    if r.returncode != 0:
        return (
            f"bubblewrap cannot create namespaces here ({r.stderr.strip()[:200]}); unprivileged user "
            "namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1) or a seccomp "
            "profile may refuse them (Docker: --security-opt seccomp=unconfined)"
        )
    return ""


@functools.lru_cache(maxsize=8)
def detect_isolation(python: str = sys.executable, want: str = "auto") -> Isolation:
    """The strongest isolation available for a worker running `python` (or exactly `want`).
    `$GRADER_SANDBOX` (auto, bwrap, user, none) overrides `want` = auto."""
    want = (os.environ.get("GRADER_SANDBOX") or want) if want == "auto" else want
    if want not in ("auto", *ISOLATIONS):
        raise IsolationError(f"sandbox isolation: expected auto, bwrap, user or none, found {want!r}")
    reasons = []
    if want in ("auto", "bwrap"):
        why = _bwrap_probe()
        if not why:
            return Isolation(
                "bwrap",
                "bubblewrap: own user, mount, PID, IPC and network namespaces; read-only "
                "Python and staged tree; private tmpfs",
            )
        if want == "bwrap":
            raise IsolationError(why)
        reasons.append(why)
    if want in ("auto", "user"):
        if os.getuid() != 0:
            why = "the grader does not run as root, so it cannot switch the worker to an unprivileged user"
        elif not python_readable_by_others(python):
            why = (
                f"the Python installation ({python_paths(python)[0]}) is not readable by an unprivileged "
                "user (install Python outside /root, or install bubblewrap)"
            )
        elif user_ids("nobody") is None:
            why = "there is no user 'nobody'"
        else:
            return Isolation(
                "user",
                "unprivileged user 'nobody': reads Python and the staged tree only; no "
                "network where the kernel allows a new network namespace",
                "; ".join(reasons),
            )
        if want == "user":
            raise IsolationError(why)
        reasons.append(why)
    return Isolation(
        "none",
        "none: the worker runs as the grader's own user, with time, memory and file limits only",
        "; ".join(reasons),
    )


def _bwrap_namespace_args() -> list[str]:
    return [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--uid",
        str(NOBODY),
        "--gid",
        str(NOBODY),
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
    ]


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


# ---- bubblewrap's options, shared by the worker and a notebook's kernel ---------------------------------


def bwrap_base(config: SandboxConfig, empty: Path, info_fd: int | None = None) -> list[str]:
    """The options of `bwrap` that every sandboxed process gets (the worker, a notebook's kernel): its own
    namespaces; /proc and /dev made harmless; a private /tmp; the system's folders, a few files of /etc and the
    Python installation, read-only; and each of `config.hide` covered where it lies inside a folder bound here
    (`empty`: an empty file to cover a file with). The caller adds its own folders, then "--" and the command."""
    size = str(config.scratch_mb << 20)
    # the process's uid maps to root outside (bubblewrap runs as root to read a Python under /root): whatever
    # root could write in /proc is made read-only, and /dev gets no room to fill. These come first, so that
    # what is bound below stays visible even where it lives under /tmp (a checkout there, a staged tree).
    argv = [
        "bwrap",
        *_bwrap_namespace_args(),
        *(["--info-fd", str(info_fd)] if info_fd is not None else []),
        "--proc",
        "/proc",
        "--ro-bind",
        "/proc/sys",
        "/proc/sys",
        "--ro-bind-try",
        "/proc/sysrq-trigger",
        "/proc/sysrq-trigger",
        "--dev",
        "/dev",
        *bwrap_gpu_nodes(config),  # before /dev is made read-only: bubblewrap creates their mount points there
        "--size",
        str(1 << 20),
        "--tmpfs",
        "/dev/shm",
        "--remount-ro",
        "/dev",
        "--size",
        size,
        "--tmpfs",
        "/tmp",
    ]
    bound: list[str] = []
    for d in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
            bound.append(d)
    for f in ETC_FILES:
        argv += ["--ro-bind-try", f"/etc/{f}", f"/etc/{f}"]
    python = [p for p in python_paths(config.python) if not any(_within(p, b) for b in bound)]
    for p in python:
        argv += ["--ro-bind", p, p]
    bound += python
    # what must stay unseen but lies inside a folder bound above: an empty folder or file over it
    for h in sorted({os.path.realpath(h) for h in config.hide}, key=len):
        if not any(_within(h, b) for b in bound) or not os.path.exists(h):
            continue
        if os.path.isdir(h):
            argv += ["--tmpfs", h]
            argv += [a for p in python if _within(p, h) and p != h for a in ("--ro-bind", p, p)]
        else:
            argv += ["--ro-bind", str(empty), h]
    return argv


# ---- an NVIDIA GPU inside bubblewrap (only for a process on a CUDA device) ----------------------------------
# `--dev /dev` gives a minimal /dev (null, zero, random, tty, ...) with no GPU in it. A CUDA process needs:
# - the driver's device files, bound with their device semantics (--dev-bind; a plain --bind is mounted nodev):
#   /dev/nvidiactl, /dev/nvidia0..N (one per GPU), /dev/nvidia-uvm and /dev/nvidia-uvm-tools (unified memory;
#   recent drivers open both), /dev/nvidia-caps/ (MIG). Not /dev/nvidia-modeset: that is the display's.
#   They are bound in bwrap_base, before `--remount-ro /dev` (bubblewrap cannot create a mount point in a
#   read-only /dev, and then refuses to start).
# - /sys, read-only: without it cuInit fails with CUDA_ERROR_OPERATING_SYSTEM (it reads the PCI devices, NUMA
#   nodes and /sys/module/nvidia*). /proc/driver/nvidia comes with the sandbox's own /proc.
# - the driver's user-space library, libcuda.so.1: under /usr or /lib (bound for every process) where the
#   driver or the NVIDIA container toolkit installs it; a folder on $LD_LIBRARY_PATH holding it (some images
#   keep it only there, e.g. /usr/local/nvidia/lib64) is bound too, and the worker's $LD_LIBRARY_PATH names it.
NVIDIA_DISPLAY_ONLY = ("nvidia-modeset",)


def nvidia_device_nodes(dev: str = "/dev") -> list[str]:
    """The NVIDIA driver's device files (and /dev/nvidia-caps) present on this machine, without the display's."""
    return [str(p) for p in sorted(Path(dev).glob("nvidia*")) if p.name not in NVIDIA_DISPLAY_ONLY]


def nvidia_library_dirs(hide: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Folders on this process's $LD_LIBRARY_PATH that hold libcuda (the driver's library), outside `hide`."""
    hidden = [os.path.realpath(h) for h in hide]
    found = []
    for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if not d or not os.path.isabs(d) or not any(Path(d).glob("libcuda.so*")):
            continue
        real = os.path.realpath(d)
        if not any(_within(real, h) for h in hidden):
            found.append(real)
    return list(dict.fromkeys(found))


def bwrap_gpu_nodes(config: SandboxConfig) -> list[str]:
    """For a process on a CUDA device: the GPU's device files, bound into the sandbox's /dev (nothing otherwise;
    a file that vanished meanwhile is skipped)."""
    if not config.device.startswith("cuda"):
        return []
    return [a for dev in nvidia_device_nodes() for a in ("--dev-bind-try", dev, dev)]


def bwrap_devices(config: SandboxConfig) -> list[str]:
    """For a process on a CUDA device, what else CUDA reads: /sys (read-only) and the folders of the driver's
    library that only $LD_LIBRARY_PATH names (see above; the device files come with bwrap_base)."""
    argv: list[str] = []
    if config.device.startswith("cuda"):
        argv += ["--ro-bind-try", "/sys", "/sys"]
        for d in nvidia_library_dirs(config.hide):
            argv += ["--ro-bind-try", d, d]
    return argv


# ---- the sandbox ---------------------------------------------------------------------------------


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.isolation = detect_isolation(config.python, config.isolation)
        self.info: dict = {"isolation": self.isolation.describe()}
        self._imported: set[str] = set()
        self.module_errors: dict[str, SandboxError] = {}
        self.timed_out: set[str] = set()  # functions that ran out of time once: retried briefly
        self.substitution: dict[str, str] = {}  # graded name -> module: oracles in place (see substitute)
        self._seq = 0
        self._deadline = (time.monotonic() + config.total_timeout) if config.total_timeout else None
        self._tmp = tempfile.TemporaryDirectory(prefix="grader-sandbox-")
        tmp = Path(self._tmp.name)
        self._stderr_path = tmp / "stderr.txt"
        self._stderr = open(self._stderr_path, "ab+")
        self._runtime = tmp / "runtime"
        self._copy_runtime(self._runtime)
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
    def _copy_runtime(dest: Path) -> None:
        """The worker's own code (WORKER_RUNTIME), copied so the worker needs nothing else of the judge's
        installation and sees none of the judge's code."""
        grader_root = Path(__file__).resolve().parents[1]
        for rel in WORKER_RUNTIME:
            (dest / "grader" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(grader_root / rel, dest / "grader" / rel)

    # -- life cycle ---------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._kill()
        self._process.close()
        self._stderr.close()
        self._tmp.cleanup()

    def _argv(self, info_fd: int | None) -> list[str]:
        py = [self.config.python, "-I", "-c", BOOT, self._inside_runtime]
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

    def _start(self) -> None:
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
        try:
            proc = self._process.popen(
                self._argv(self._process.info_fd()),
                time.perf_counter() + self.config.startup_timeout,
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
                "oracles": self.config.oracles,
            }
            reply = self._roundtrip(
                {"op": "setup", "config": cfg}, self.config.startup_timeout, "starting", max_reply=SMALL_REPLY_BYTES
            )
            if self.substitution:  # a worker restarted in the middle of a check judged with oracles
                self._roundtrip(
                    {"op": "substitute", "names": self.substitution},
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
                k: worker[k] for k in ("user", "memory_limited") if k in worker and isinstance(worker[k], (str, bool))
            }
        )
        # bubblewrap's network namespace, or the one the worker entered before it ran (where the kernel allowed it),
        # as the judge sees it in /proc
        self.info["worker"]["network_isolated"] = bool(self._process.network_isolated())

    def _kill(self) -> None:
        """End the worker and everything it started (grader.sandbox.process.Confinement.kill), and close its pipes."""
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

    def out_of_time(self) -> bool:
        """Whether the grading's time budget has run out (every later request fails at once)."""
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _ensure(self) -> None:
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
        self._seq += 1
        req = {**req, "seq": self._seq}
        t0 = time.perf_counter()
        deadline = t0 + timeout
        self._write(wire.frame(wire.encode(req)), deadline, doing)
        t1 = time.perf_counter()
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
        t3 = time.perf_counter()
        try:
            reply = wire.decode(body)
        except wire.WireError as e:
            self._kill()
            raise SandboxError("protocol", f"the sandbox sent back a malformed answer while {doing}: {e}") from None
        self.stats.io_seconds += (t1 - t0) + (time.perf_counter() - t3)
        self.stats.requests += 1
        if not isinstance(reply, dict) or reply.get("seq") != self._seq:
            self._kill()
            raise SandboxError(
                "protocol",
                f"the sandbox's answer while {doing} does not belong to the request "
                "(did your code write to the grader's channel?)",
            )
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
        self._kill()
        if code is not None and code < 0:
            sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            hint = " (out of memory?)" if sig == "SIGKILL" else ""
            return SandboxError("crash", f"the process running your code was killed by {sig}{hint} while {doing}")
        if code is not None and code > 128 and self._child_pid is None and self.isolation.mode == "bwrap":
            return SandboxError("crash", f"the process running your code was killed (status {code}) while {doing}")
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
        hits = reply.get("forbidden_hits")
        return Reply(
            value=reply.get("value"),
            seconds=time.perf_counter() - t0,
            forbidden_hits=hit_records(hits),
            aliases=[int(i) for i in reply.get("aliases", []) if isinstance(i, int)],
            args=reply.get("args"),
        )

    def substitute(self, names: dict[str, str]) -> None:
        """Run the course's oracle (the assignment's oracles.py) in place of each graded name (`name: module`)
        until `restore`, also in a worker started meanwhile."""
        self.substitution = dict(names)
        starts = self.stats.starts
        self._ensure()  # a worker started now puts them in place itself
        if self.stats.starts == starts:
            self._roundtrip(
                {"op": "substitute", "names": self.substitution},
                self.config.call_timeout,
                "putting the course's oracles in place",
                max_reply=SMALL_REPLY_BYTES,
            )

    def restore(self) -> None:
        """The student's own code again, everywhere."""
        if not self.substitution:
            return
        self.substitution = {}
        if self.proc is not None and self.proc.poll() is None:
            try:
                self._roundtrip(
                    {"op": "restore"}, self.config.call_timeout, "restoring your code", max_reply=SMALL_REPLY_BYTES
                )
            except SandboxError:
                self._kill()  # the next request starts a fresh worker, with nothing substituted

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
