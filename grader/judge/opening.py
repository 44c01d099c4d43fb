"""Opening a grading: the submission staged and its sandbox's worker started, before the judge loads its checks.

A worker's start is mostly `import torch` (1.5 s to 2 s). Nothing here imports PyTorch, so `grader grade` opens
its first grading before the judge imports PyTorch for its checks, and the two imports run side by side; while one
assignment is graded, the next one's grading is opened (grader.judge.runner.Ahead). An opened grading serves
only the grading it was opened for (`GradingKey`): grade() closes one opened for anything else.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from grader.course import manifest as manifests
from grader.course.datafiles import label_files
from grader.course.intake import Staged, stage
from grader.course.manifest import AUTOGRAD_NAMES, Manifest
from grader.errors import GraderError
from grader.sandbox.host import Sandbox
from grader.sandbox.isolation import Isolation, IsolationError, SandboxConfig, detect_isolation

ORACLES_FILE = "oracles.py"
# device files without one of which no CUDA device can be used (NVIDIA's; WSL's GPU bridge; ROCm's, which
# PyTorch also calls cuda): where none is there, `auto` means the CPU without asking PyTorch
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/dxg", "/dev/kfd")

WEAK_SANDBOX_HELP = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; `make install` does it where it "
    "can) and allow user namespaces, or run the grader as root where Python is readable by other "
    "users; --allow-weak-sandbox grades anyway"
)


def resolve_device(device: str) -> str:
    """`auto`, `cpu` or `cuda` as the device a grading runs on; PyTorch is asked only where a GPU could be there."""
    if device not in ("auto", "cpu", "cuda"):
        raise GraderError(f"expected auto, cpu or cuda, found {device!r}", option="device")
    if device == "cpu" or (device == "auto" and not any(os.path.exists(f) for f in GPU_DEVICE_FILES)):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise GraderError(
            "cuda was asked for, but no CUDA device is available on this machine (use cpu or auto)", option="device"
        )
    return device


def choose_isolation(want: str, *, hidden: bool, allow_weak: bool) -> Isolation:
    """The isolation a grading run will use; refuses a run with hidden checks and no OS isolation."""
    try:
        chosen = detect_isolation(sys.executable, want)
    except IsolationError as e:
        raise GraderError(f"{want} is not possible here: {e}", option="isolation") from None
    if hidden and not chosen.strong and not allow_weak:
        why = chosen.why_not_stronger or "no isolation was asked for ($GRADER_SANDBOX or --sandbox none)"
        raise GraderError(
            f"refusing to grade with hidden checks without an OS sandbox ({why}). "
            f"To enable isolation, {WEAK_SANDBOX_HELP}."
        )
    return chosen


def time_limit(m: Manifest, cap: float | None, requested: float | None = None) -> float:
    """Seconds one call into student code may take: what a check asks for, else the manifest's call_timeout,
    never more than --timeout (`cap`). The only place the cap is applied."""
    limit = requested or m.call_timeout
    return min(limit, cap) if cap else limit


def oracle_source(m: Manifest) -> str | None:
    """The source of the assignment's oracles.py (the oracle process compiles it; grader.judge.loading checks its
    table), None where there is none (the student kit)."""
    path = m.dir / ORACLES_FILE
    return path.read_text() if path.is_file() else None


def sandbox_config(
    m: Manifest,
    kit: Path,
    staged: Staged,
    device: str,
    call_timeout: float | None,
    sandboxing: Isolation,
    source: str | None,
) -> SandboxConfig:
    """The worker's sandbox for this grading: the staged tree, the guard's names, the limits, what it must not
    read (the course, the data's labels). Its time budget is set when the grading starts (Sandbox.start_clock)."""
    return SandboxConfig(
        root=staged.root,
        student_files=staged.present,
        device=device,
        guarded=m.guarded_names(),
        exempt=m.autograd_allowed_in,
        exempt_names=AUTOGRAD_NAMES,
        call_timeout=time_limit(m, call_timeout),
        memory_mb=m.memory_mb,
        isolation=sandboxing.mode,
        hide=[str(kit), *label_files()],
        allowed_imports=list(m.allowed_imports),
        oracles={"source": source, "assignment": m.name} if source else None,
    )


class GradingKey(NamedTuple):
    """What a grading is opened for: an opened grading serves only the grading it was opened for."""

    submission: str
    assignment: str
    kit: str
    device: str  # resolved: cpu or cuda
    hidden: bool
    dataset: str | None
    call_timeout: float | None
    isolation: str
    allow_weak_sandbox: bool


def grading_key(
    submission: Path,
    assignment: str,
    *,
    kit: Path | None = None,
    device: str = "auto",
    hidden: bool = False,
    dataset: str | None = None,
    call_timeout: float | None = None,
    isolation: str = "auto",
    allow_weak_sandbox: bool = False,
) -> GradingKey:
    """The key of grade()'s grading with these options (grade()'s defaults)."""
    kit = kit or manifests.course_root()
    return GradingKey(
        str(submission),
        assignment,
        str(kit),
        resolve_device(device),
        hidden,
        dataset,
        call_timeout,
        isolation,
        allow_weak_sandbox,
    )


@dataclass
class Opened:
    """A grading made ready before its checks run (`open_grading`): the submission staged, the isolation chosen,
    and the sandbox with its worker starting. Closing it ends the worker and removes the staged copy."""

    key: GradingKey
    staged: Staged
    sandbox: Sandbox
    sandboxing: Isolation
    stack: contextlib.ExitStack

    def close(self) -> None:
        self.stack.close()

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_grading(key: GradingKey, m: Manifest | None = None) -> Opened:
    """Stage the submission and start its worker without waiting for it (Python and PyTorch load there while the
    judge loads its checks, or grades another assignment). `m`: the assignment's manifest, read already. Raises
    what the isolation or the staging refuses."""
    kit = Path(key.kit)
    # read before PyTorch is imported: grade() reads it again with every forbidden name checked
    m = m or manifests.load(key.assignment, kit, check_names=False)
    sandboxing = choose_isolation(key.isolation, hidden=key.hidden, allow_weak=key.allow_weak_sandbox)
    stack = contextlib.ExitStack()
    try:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="grader-stage-"))
        staged = stage(m, kit, Path(key.submission), Path(tmp) / "kit")
        config = sandbox_config(m, kit, staged, key.device, key.call_timeout, sandboxing, oracle_source(m))
        sandbox = stack.enter_context(Sandbox(config))
        if not staged.refused:
            sandbox.prestart()
    except BaseException:
        stack.close()
        raise
    return Opened(key, staged, sandbox, sandboxing, stack)


def open_ahead(submission: Path, assignment: str, **options) -> Opened | None:
    """open_grading for grade()'s options, or None where it fails: the grading itself opens it again and reports
    what went wrong there, in its place among the gradings."""
    try:
        return open_grading(grading_key(submission, assignment, **options))
    except Exception:
        return None
