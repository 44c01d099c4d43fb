"""A second worker beside the first: the checks that train a model, graded ahead of their turn.

A grading's checks run one after the other against one worker, single-threaded, while the judge mostly waits: on a
machine with two CPUs or more, one of them idles. Where the machine has room (`beside_room`), a second sandboxed
worker, started with the same configuration on the same staged tree, takes the checks that train (a call allowed
HEAVY_SECONDS or more), the longest first, while the first worker grades the rest in order; each check
the second worker took is judged in its own turn, from what its body found, exactly as if it had run there:

- a check only goes beside when nothing waits on its result: its function is no other checked function's
  building block ([parts.blocks]), so the set of functions that failed earlier, which decides whether a composite
  is judged again with the course's blocks, is the same for every check; that judging again (`run_check`) happens
  in the check's turn, on the first worker, as it always did;
- its file is in the submission, reads, and holds no statically refused code (those checks fail at once anyway);
  with a syntax error in any graded file, no check goes beside (its feedback names the file once, in order);
- the time budget is the same for both workers, started together; a check the second worker finished within it
  stands, one it never began is graded by the first in its turn;
- the first worker grades the other checks in order first, then takes the checks that train that are left; the
  ones the second worker took are judged at the end, in the first worker's thread (their results take their
  places in the order; nothing else depends on them);
- both workers run the same student's code, each in its own sandbox (bubblewrap only: its own namespaces, /tmp
  and cgroup; the staged tree read-only for both); what either worker's audit hook refused fails the file's checks.

Nothing of the check's own code changes: the same `body(ctx)` runs with a `Ctx` on a `Run` whose sandbox is the
second worker. Values a check caches for the run (`Ctx.cache`) are the judge's own (data, models trained here),
computed once for both threads (Run.cached, under the run's lock), as the data set is.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from grader.judge.checks import CheckSpec
from grader.sandbox.host import Sandbox

HEAVY_SECONDS = 300.0  # a check whose calls may take this long trains a model: the second worker may take it


def beside_room(memory_mb: int) -> bool:
    """Two CPUs or more to run on and a worker's memory limit free (grader.sandbox.process.headroom): not a
    platform's half CPU or 768 MB."""
    from grader.sandbox.process import headroom

    cpus, free_mb = headroom()
    return cpus >= 2 and free_mb >= memory_mb


def beside_checks(run: Any, specs: list[CheckSpec]) -> list[CheckSpec]:
    """The checks, in order, that the second worker may grade ahead of their turn (see the module's docstring)."""
    m, staged = run.manifest, run.staged
    if staged.refused or staged.syntax_errors:  # feedback that names a broken file once, under its first check
        return []
    blocks = {b for s in specs for b in m.blocks_of(s.function)}
    out = []
    for s in specs:
        file = m.part_of(s.function).file
        if (
            (s.timeout or 0) >= HEAVY_SECONDS
            and s.function not in blocks
            and file not in staged.missing
            and file not in staged.rejected
            and file not in staged.syntax_errors
            and not run.static_problem(s.function)
        ):
            out.append(s)
    return out


@dataclass
class Early:
    """A check's body run ahead of its turn by the second worker."""

    body: Any = None  # the runner's _Body
    error: BaseException | None = None  # what the body raised (a GraderError): raised again in its turn
    seconds: float = 0.0
    call_seconds: float = 0.0
    late: bool = False  # the time budget ran out while it ran
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self) -> Early:
        """Once the body is done: this, or what it raised."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self


class Beside:
    """The second worker and the thread that feeds it the checks of `specs`, one at a time, with
    `run_body(run, spec)`. The first worker grades every other check in order first (`has` says which to pass
    by), then takes the rest of `specs` itself (`claim`); the longest first on both sides: by the time limit
    its calls are allowed, a check that may train longer is started earlier (then by their order)."""

    def __init__(
        self, run: Any, specs: list[CheckSpec], budget: float | None, run_body: Callable[[Any, CheckSpec], Any]
    ) -> None:
        self.run_body = run_body
        self.ids = {s.id for s in specs}
        self.queue = sorted(specs, key=lambda s: -(s.timeout or 0))  # stable: their order among equals
        self.sandbox = Sandbox(replace(run.sandbox.config))
        self.run = copy.copy(run)  # the same run (its manifest, staged tree, caches), its own worker
        self.run.sandbox = self.sandbox
        self.entries: dict[str, Early] = {}  # the checks the second worker took
        self._lock = threading.Lock()
        self._stop = False
        self.sandbox.start_clock(budget)
        self.sandbox.prestart()
        self._thread = threading.Thread(target=self._work, name="grader-beside", daemon=True)
        self._thread.start()

    def has(self, spec: CheckSpec) -> bool:
        return spec.id in self.ids

    def _pop(self) -> CheckSpec | None:
        with self._lock:
            return self.queue.pop(0) if self.queue and not self._stop else None

    def claim(self) -> CheckSpec | None:
        """The next check the first worker grades itself, None once every one is taken."""
        return self._pop()

    def _work(self) -> None:
        while not self.sandbox.out_of_time() and (spec := self._pop()) is not None:
            entry = self.entries[spec.id] = Early()
            t0, calls0 = time.perf_counter(), self.sandbox.stats.call_seconds
            try:
                entry.body = self.run_body(self.run, spec)
            except BaseException as e:  # raised again where the first worker judges it
                entry.error = e
            entry.seconds = time.perf_counter() - t0
            entry.call_seconds = self.sandbox.stats.call_seconds - calls0
            entry.late = entry.body is not None and entry.body.status != "passed" and self.sandbox.out_of_time()
            entry.done.set()

    def taken(self) -> dict[str, Early]:
        """Once the first worker has claimed what is left: the checks the second worker took (by id)."""
        with self._lock:
            return dict(self.entries)

    def close(self) -> None:
        """End the second worker (a body still running fails at once) and its thread, then its sandbox."""
        with self._lock:
            self._stop = True
        self.sandbox.stop()
        self._thread.join(timeout=30)
        self.sandbox.close()

    def __enter__(self) -> Beside:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> dict:
        """What the results say of the second worker."""
        stats = self.sandbox.stats
        return {
            "checks": sorted(self.entries),
            "worker_starts": stats.starts,
            "start_seconds": round(stats.start_seconds, 3),
            "call_seconds": round(stats.call_seconds, 3),
            "requests": stats.requests,
            "peak_rss_mb": round(self.sandbox.peak_rss(), 1),
        }
