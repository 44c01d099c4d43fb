"""A CPU and memory limit for a command, as a platform sets one for its container: a cgroup (v1 or v2).

Gradescope's documentation (https://gradescope-autograders.readthedocs.io/en/latest/troubleshooting/): "Our default
memory limit is 768MB" and "By default, each autograder is allocated 1/2 of a virtual CPU". A cgroup is the
mechanism a container runtime uses for both (`docker run --cpus 0.5 --memory 768m` writes cpu.cfs_quota_us /
cpu.max and memory.limit_in_bytes / memory.max). Making one needs root and a writable /sys/fs/cgroup; `available()`
says whether this machine can, and why not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


def _v2() -> bool:
    return (ROOT / "cgroup.controllers").exists()


def _own(controller: str) -> Path:
    """The calling process's cgroup of `controller` ("" for v2's unified hierarchy), as a folder."""
    base = ROOT / controller if controller else ROOT
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if (controller and controller in names.split(",")) or (not controller and names == ""):
            inner = base / path.lstrip("/")
            return inner if inner.is_dir() else base
    return base


def available() -> str | None:
    """None where a limited cgroup can be made here, else why not."""
    if os.geteuid() != 0:
        return "making a cgroup needs root"
    if _v2():
        if not {"cpu", "memory"} <= set((ROOT / "cgroup.subtree_control").read_text().split()):
            return "cgroup v2 without the cpu and memory controllers enabled at the root"
        return None
    for c in ("cpu", "memory"):
        if not (ROOT / c / "cgroup.procs").exists():
            return f"cgroup v1 without a mounted {c} controller"
    try:
        probe = Limited(cpus=1.0, memory_mb=64)
        probe.remove()
    except OSError as e:
        return f"cannot make a cgroup here ({e})"
    return None


@dataclass
class Limited:
    """A cgroup with `cpus` CPUs (a CFS quota) and `memory_mb` of memory, swap included where the kernel
    accounts it. `join()` moves the calling process in (use as preexec_fn); `peak_mb()` is the cgroup's peak
    usage as the kernel counts it for the limit (page cache included: the kernel reclaims cache before it kills)."""

    cpus: float
    memory_mb: int
    dirs: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        name = f"emulated-platform-{uuid.uuid4().hex[:10]}"
        quota = int(self.cpus * PERIOD_US)
        limit = self.memory_mb * 2**20
        if _v2():
            d = ROOT / name  # v2 enables no controller below a cgroup that holds processes (ours does)
            d.mkdir()
            self.dirs.append(d)
            (d / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            (d / "memory.max").write_text(str(limit))
            with contextlib.suppress(OSError):
                (d / "memory.swap.max").write_text("0")
        else:
            cpu = ROOT / "cpu" / name
            cpu.mkdir()
            self.dirs.append(cpu)
            (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (cpu / "cpu.cfs_quota_us").write_text(str(quota))
            mem = _own("memory") / name
            mem.mkdir()
            self.dirs.append(mem)
            (mem / "memory.limit_in_bytes").write_text(str(limit))
            with contextlib.suppress(OSError):  # swap accounting is off on many kernels
                (mem / "memory.memsw.limit_in_bytes").write_text(str(limit))

    def join(self) -> None:
        for d in self.dirs:
            with open(d / "cgroup.procs", "w") as f:
                f.write("0")

    def _memory_dir(self) -> Path:
        return self.dirs[-1]

    def peak_mb(self) -> float:
        d = self._memory_dir()
        for key in ("memory.peak", "memory.max_usage_in_bytes"):
            if (d / key).exists():
                return int((d / key).read_text()) / 2**20
        return float("nan")

    def oom_killed(self) -> int:
        """How many processes the kernel killed for memory in this cgroup."""
        d = self._memory_dir()
        if (d / "memory.events").exists():
            for line in (d / "memory.events").read_text().splitlines():
                k, v = line.split()
                if k == "oom_kill":
                    return int(v)
        if (d / "memory.oom_control").exists():
            for line in (d / "memory.oom_control").read_text().splitlines():
                k, v = line.split()
                if k == "oom_kill":
                    return int(v)
        return 0

    def pids(self) -> list[int]:
        out: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                out |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
        return sorted(out)

    def remove(self) -> None:
        """Kill what is left inside, then remove the cgroup (sub-cgroups the grader made first)."""
        for _ in range(50):
            left = self.pids()
            if not left:
                break
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        for d in self.dirs:
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
        self.dirs = []
