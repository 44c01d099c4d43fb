"""Choosing how student code is isolated, and bubblewrap's options for it (the worker and a notebook's kernel
alike). The strongest isolation the machine allows (see `detect_isolation`):

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

Also here: what a request can fail with (`Failure`, `SandboxError`), a worker's configuration and replies.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from grader.sandbox.process import (
    LIVE_USER_PROCESSES,
    Cgroup,
    become_subreaper,
    kill_descendants_of,
    make_readable,
    peak_rss_mb,
    protect,
    user_ids,
)

# the process mechanics (starting, killing, cgroups, the `user` fallback) live in grader.sandbox.process, shared
# with the notebooks' kernel; these names stay importable from here
__all__ = [
    "ISOLATIONS",
    "LIVE_USER_PROCESSES",
    "MAX_REPLY_BYTES",
    "SANDBOX_ROOT",
    "SMALL_REPLY_BYTES",
    "Cgroup",
    "Failure",
    "Isolation",
    "IsolationError",
    "Reply",
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
    FORBIDDEN = "forbidden"  # the kernel stopped the worker for a call graded code may not make (syscalls.py)


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
    # the worker's walls inside its process (grader.sandbox.syscalls, grader.sandbox.audit); off only for `make
    # bench`, which measures what they cost
    walls: bool = True
    # the guard (grader.sandbox.guard): "lazy" watches the operators under a call only where they can break a rule,
    # "eager" under every call, "off" not at all; anything but "lazy" only for `make bench`, which measures its cost
    guard: str = "lazy"
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
    # {"source": the assignment's oracles.py, "assignment": its name}: for the oracle process only
    # (grader.sandbox.relay); the student's worker is never sent it
    oracles: dict | None = None
    # the top-level modules student code may import (the manifest's Manifest.allowed_imports, the kit's packages
    # included); None: no list (the worker imports what it is asked). Sent in the setup message as allowed_imports.
    allowed_imports: list[str] | None = None

    def __post_init__(self) -> None:
        if self.guard not in GUARD_WATCH:
            raise ValueError(f"SandboxConfig.guard: expected one of {', '.join(GUARD_WATCH)}, found {self.guard!r}")


GUARD_WATCH = ("lazy", "eager", "off")


@dataclass
class Reply:
    value: Any
    seconds: float  # timed by the judge, around the request
    forbidden_hits: list[dict]  # grader.sandbox.guard records: name, op, file, function, line
    aliases: list[int]
    args: list | None = None
    function: str = ""  # what was called, as feedback names it (set by the check's context)
    ops: int | None = None  # PyTorch operators the guard saw run during a guarded call (None: not guarded)


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
