"""Running a submission's notebooks, top to bottom, each in a fresh sandboxed kernel (grader.notebooks.kernel),
driven by nbclient. It runs on the offline data set unless told otherwise; it may see labels, as it decides no
score.

A cell that raises is recorded and the next cell runs. A cell that runs past its time limit is interrupted
(and if the kernel does not answer, the kernel is restarted: later cells then lack earlier variables); the
whole notebook has a time limit too, after which the remaining cells are marked as not run. Outputs taken from
the kernel are bounded per cell and per notebook.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.course.manifest import Manifest
from grader.notebooks.answers import never_run, read_notebook
from grader.notebooks.kernel import KernelSandbox
from grader.sandbox.isolation import Isolation

CELL_TIMEOUT = 300.0  # seconds per cell ([limits] notebook_cell_timeout)
NOTEBOOK_TIMEOUT = 1800.0  # seconds per notebook, kernel start included ([limits] notebook_timeout)
STARTUP_TIMEOUT = 120.0  # a kernel that is not ready by then is given up
MIN_NOTEBOOK_SECONDS = 20.0  # a notebook is not started with less of the run's budget left (a kernel starts first)
INTERRUPT_GRACE = 10.0  # after an interrupt, how long the kernel has to become responsive again
MAX_CELL_OUTPUT_BYTES = 8 << 20  # outputs taken from the kernel per cell; the rest is dropped, with a note
MAX_NOTEBOOK_OUTPUT_BYTES = 48 << 20  # ... and per notebook


# -- the manifest: questions and limits -------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    cell_timeout: float = CELL_TIMEOUT
    notebook_timeout: float = NOTEBOOK_TIMEOUT
    memory_mb: int = 4096
    training_scale: float = 1.0  # share of each dlcv.Solver training's iterations the kernel trains


def limits(m: Manifest) -> Limits:
    """The manifest's [limits] for a report run: notebook_cell_timeout, notebook_timeout, memory_mb and
    notebook_training_scale (checked when the manifest loads)."""
    return Limits(m.notebook_cell_timeout, m.notebook_timeout, m.memory_mb, m.notebook_training_scale)


# -- running notebooks --------------------------------------------------------------------------------------------


@dataclass
class NotebookRun:
    path: str  # the manifest's path of the notebook
    status: str  # ran | missing | unreadable | failed (the kernel could not start) | skipped (no time left)
    message: str = ""
    nb: Any = None  # the executed NotebookNode (None when it could not be read)
    cells: dict[int, str] = field(default_factory=dict)  # cell index -> what happened (raised, timed out, ...)
    seconds: float = 0.0
    kernel_seconds: float = 0.0  # starting kernels (included in seconds)
    kernel_starts: int = 0
    never_run: bool = False  # the submitted file had no output at all (the student never ran it)
    peak_rss_mb: float = 0.0  # the kernel's largest peak resident set while it ran this notebook (VmHWM)
    kernel_ahead: bool = False  # its kernel was started while the notebook before ran (kernel_seconds: the wait)

    def summary(self) -> dict:
        return {
            "notebook": self.path,
            "status": self.status,
            "message": self.message,
            "seconds": round(self.seconds, 3),
            "kernel_seconds": round(self.kernel_seconds, 3),
            "kernel_starts": self.kernel_starts,
            "kernel_ahead": self.kernel_ahead,
            "kernel_peak_rss_mb": round(self.peak_rss_mb, 1),
            "cells": {str(k + 1): v for k, v in sorted(self.cells.items())},
        }


def _client_class() -> type:
    from nbclient import NotebookClient

    class BoundedClient(NotebookClient):
        """nbclient's client, taking at most MAX_CELL_OUTPUT_BYTES of outputs per cell from the kernel."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.used: dict[int, int] = {}
            self.total = 0
            self.cut: set[int] = set()

        def process_message(self, msg: dict, cell: Any, cell_index: int) -> Any:
            kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
            if kind in ("stream", "display_data", "execute_result", "error", "update_display_data"):
                size = len(json.dumps(msg.get("content", {}), default=str))
                self.used[cell_index] = self.used.get(cell_index, 0) + size
                self.total += size
                if self.used[cell_index] > MAX_CELL_OUTPUT_BYTES or self.total > MAX_NOTEBOOK_OUTPUT_BYTES:
                    self.cut.add(cell_index)
                    return None
            return super().process_message(msg, cell, cell_index)

    return BoundedClient


async def _responsive(kc: Any, timeout: float) -> bool:
    """Whether the kernel answers a kernel_info request within `timeout` seconds (it answers only when idle)."""
    try:
        msg_id = kc.kernel_info()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            reply = await kc.get_shell_msg(timeout=left)
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return True
    except Exception:
        return False
    return False


async def _execute(
    nb: Any,
    kernel: KernelSandbox,
    lim: Limits,
    run: NotebookRun,
    out_of_time: str = "the notebook's time limit",
    *,
    started: bool = False,
    on_ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run `nb`'s cells in `kernel` (its process started already when `started`); `on_ready` is awaited once the
    kernel answers, before the first cell (the next notebook's kernel starts then)."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    t0 = time.monotonic()
    deadline = t0 + lim.notebook_timeout
    client = _client_class()(
        nb,
        timeout=int(lim.cell_timeout),
        allow_errors=True,
        kernel_name="python3",
        startup_timeout=int(STARTUP_TIMEOUT),
        iopub_timeout=5,
        record_timing=False,
        interrupt_on_timeout=False,
        raise_on_iopub_timeout=False,
    )

    async def fresh(launch: bool = True) -> None:  # never outlasts the notebook's time (a kernel that hangs)
        if launch:
            await asyncio.wait_for(kernel.start(), max(1.0, min(STARTUP_TIMEOUT, deadline - time.monotonic())))
        await asyncio.wait_for(kernel.connect(client), max(1.0, min(STARTUP_TIMEOUT, deadline - time.monotonic())))

    try:
        await fresh(launch=not started)
    except Exception as e:
        run.status = "failed"
        run.message = (
            f"the notebook's kernel could not start in the sandbox ({type(e).__name__}: "
            f"{str(e)[:200]}). {kernel.output(600).strip()}"
        ).strip()
        return
    if on_ready is not None:
        await on_ready()
    alive = True
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        left = deadline - time.monotonic()
        if left < 1:
            run.cells[index] = f"not run: {out_of_time} ran out"
            cell.outputs = []
            continue
        if not alive:
            if left < MIN_NOTEBOOK_SECONDS:  # no time for a new kernel and the cell
                run.cells[index] = f"not run: {out_of_time} ran out"
                cell.outputs = []
                continue
            try:
                await fresh()
                alive = True
            except Exception as e:
                run.cells[index] = f"not run: the kernel could not be restarted ({type(e).__name__})"
                cell.outputs = []
                continue
        client.timeout = max(1, int(min(lim.cell_timeout, left)))
        try:
            await client.async_execute_cell(cell, index, store_history=True)
        except CellTimeoutError:
            run.cells[index] = f"timed out after {client.timeout} s (interrupted)"
            with contextlib.suppress(Exception):
                await kernel.km.interrupt_kernel()
            if not await _responsive(kernel.kc, INTERRUPT_GRACE):
                run.cells[index] = (
                    f"timed out after {client.timeout} s; the kernel did not stop, so it was "
                    "restarted: later cells run without the variables of earlier ones"
                )
                kernel.kill()
                alive = False
        except DeadKernelError:
            run.cells[index] = (
                "the kernel died while running this cell (out of memory? exit()?); it was "
                "restarted: later cells run without the variables of earlier ones"
            )
            kernel.kill()
            alive = False
        except Exception as e:
            run.cells[index] = f"could not be run ({type(e).__name__}: {str(e)[:200]}); the kernel was restarted"
            kernel.kill()
            alive = False
        else:
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if errors:
                run.cells[index] = f"raised {str(errors[0].get('ename', 'an error'))[:100]}"
        if index in client.cut:
            note = "output cut: it was larger than the grader keeps"
            run.cells[index] = f"{run.cells[index]}; {note}" if index in run.cells else note
    kernel.kill()


class _Kernels:
    """The sandboxed kernels of one report: a fresh kernel for each notebook and, where the machine has room for
    two (`ahead`), the next notebook's kernel started as soon as the one before answers, so that its start
    (`import torch`, one to three seconds) runs beside that notebook's cells instead of after them. At most two
    sandboxes, each running one kernel at a time; all on one event loop."""

    def __init__(self, make: Callable[[], KernelSandbox], ahead: bool) -> None:
        self.make, self.ahead = make, ahead
        self.runner = asyncio.Runner()
        self.made: list[KernelSandbox] = []
        self.idle: list[KernelSandbox] = []  # sandboxes whose kernel has ended
        self.spare: KernelSandbox | None = None  # its kernel's process started ahead, nothing run in it yet

    def _sandbox(self) -> KernelSandbox:
        if self.idle:
            return self.idle.pop()
        kernel = self.make()
        self.made.append(kernel)
        return kernel

    def take(self) -> tuple[KernelSandbox, bool]:
        """The next notebook's kernel sandbox, and whether its kernel's process was started ahead."""
        if self.spare is not None:
            kernel, self.spare = self.spare, None
            return kernel, True
        return self._sandbox(), False

    def done(self, kernel: KernelSandbox) -> None:
        kernel.kill()
        self.idle.append(kernel)

    async def start_next(self) -> None:
        """Start the next notebook's kernel's process now (where there is room), without waiting for it."""
        if not self.ahead or self.spare is not None:
            return
        kernel = self._sandbox()
        try:
            await kernel.start()
        except Exception:  # the next notebook starts its own and reports why it could not
            self.done(kernel)
            return
        self.spare = kernel

    def close(self) -> None:
        try:
            for kernel in self.made:
                kernel.close()
        finally:
            self.runner.close()


def room_for_two_kernels(memory_mb: int) -> bool:
    """Whether a second kernel may start while one runs: two CPUs or more to run on (affinity and cgroup CPU
    quotas: not Gradescope's default half CPU) and at least a kernel's memory limit free (MemAvailable and cgroup
    limits: not a 768 MB container)."""
    from grader.sandbox.process import headroom

    cpus, free_mb = headroom()
    return cpus >= 2 and free_mb >= memory_mb


def execute_notebooks(
    m: Manifest,
    staged_root: Path,
    notebooks: dict[str, Path],
    isolation: Isolation,
    *,
    problems: dict[str, str] | None = None,
    dataset: str | None = None,
    device: str = "cpu",
    hide: list[str] | None = None,
    lim: Limits | None = None,
    budget: float | None = None,
    ahead: bool | None = None,
) -> list[NotebookRun]:
    """Run each of the manifest's notebooks that the submission holds (`notebooks`: manifest path -> the
    submitted copy) on the staged tree `staged_root`, one fresh sandboxed kernel each; in manifest order.

    `budget`: seconds for all of them (what a platform's clock leaves after grading). A notebook gets what is left
    of it, at most its own limit; one that would start with less than MIN_NOTEBOOK_SECONDS left is not run (status
    skipped; its answers are still read from the file as submitted), and cells that the budget cuts off say so.
    `ahead`: start each next notebook's kernel while the one before runs (None: where `room_for_two_kernels`),
    under bubblewrap only."""
    lim = lim or limits(m)
    budget_end = time.monotonic() + budget if budget is not None else None
    problems = problems or {}
    env, read_only = _dataset_env(dataset)
    if lim.training_scale < 1:
        env["DLCV_TRAINING_SCALE"] = repr(lim.training_scale)
    runs: list[NotebookRun] = []
    submitted = [path for path in m.notebooks if path in notebooks]
    kernels = _Kernels(
        lambda: KernelSandbox(
            staged_root, isolation, memory_mb=lim.memory_mb, device=device, env=env, hide=hide, read_only=read_only
        ),
        # under bubblewrap only: elsewhere a notebook's code could reach the next kernel before the judge does
        # (the same user, the host's /tmp, the connection folder it may write until the judge connects)
        ahead=(room_for_two_kernels(lim.memory_mb) if ahead is None else ahead)
        and len(submitted) > 1
        and isolation.mode == "bwrap",
    )
    try:
        for path in m.notebooks:
            if path not in notebooks:
                runs.append(
                    NotebookRun(
                        path,
                        "missing",
                        problems.get(path) or f"{path} is missing from the submission, so it was not run.",
                    )
                )
                continue
            try:
                data = Path(notebooks[path]).read_bytes()
            except OSError as e:
                runs.append(NotebookRun(path, "unreadable", f"{path} could not be read ({e.strerror or e})."))
                continue
            nb, why = read_notebook(data, path)
            if nb is None:
                runs.append(NotebookRun(path, "unreadable", why))
                continue
            run = NotebookRun(path, "ran", nb=nb, never_run=never_run(nb))
            own, why = lim, "the notebook's time limit"
            if budget_end is not None:
                left = budget_end - time.monotonic()
                if left < MIN_NOTEBOOK_SECONDS:
                    run.status = "skipped"
                    run.message = (
                        f"{path} was not run: the autograder's time for running notebooks ran out (the platform "
                        "limits each run). Its answers are read from the file as you submitted it."
                    )
                    runs.append(run)
                    continue
                if left < lim.notebook_timeout:
                    own = dataclasses.replace(lim, notebook_timeout=left)
                    why = "the autograder's time for running notebooks"
            kernel, run.kernel_ahead = kernels.take()
            then = kernels.start_next if path != submitted[-1] else None  # the next kernel, once this one answers
            starts, seconds = kernel.starts, kernel.start_seconds
            t0 = time.perf_counter()
            try:
                kernels.runner.run(_execute(nb, kernel, own, run, why, started=run.kernel_ahead, on_ready=then))
            finally:
                kernels.done(kernel)
            run.seconds = time.perf_counter() - t0
            run.kernel_seconds = kernel.start_seconds - seconds
            run.kernel_starts = kernel.starts - starts + run.kernel_ahead
            run.peak_rss_mb, kernel.peak_rss_mb = kernel.peak_rss_mb, 0.0
            runs.append(run)
    finally:
        kernels.close()
    return runs


def _dataset_env(dataset: str | None) -> tuple[dict[str, str], list[str]]:
    """The kernel's data set: the offline one (digits) unless `dataset` (or $DLCV_DATASET) says otherwise; for
    CIFAR-10 its folder is bound read-only."""
    name = dataset or "digits"
    env = {"DLCV_DATASET": name}
    read_only: list[str] = []
    if name in ("cifar10", "auto"):
        from dlcv.data import _resolve_root

        root = os.path.realpath(_resolve_root(None))
        if os.path.isdir(root):
            env["DLCV_CIFAR_ROOT"] = root
            read_only.append(root)
    return env, read_only
