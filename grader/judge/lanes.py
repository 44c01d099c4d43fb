"""A second worker beside the first: the checks that train a model, graded ahead of their turn.

A grading's checks run one after the other against one worker, single-threaded, while the judge mostly waits: on a
machine with two CPUs or more, one of them idles. Where the machine has room (`beside_room`), a second sandboxed
worker, started with the same configuration on the same staged tree, takes the checks that train (a call allowed
HEAVY_SECONDS or more), the longest first, while the first worker grades the rest in order. The results are the
ones one worker would give:

- a check goes beside only when nothing waits on its result: its function is no other checked function's
  building block ([parts.blocks]); so the first worker grades every other check in order first, then takes the
  checks that train that are left, and the ones the second worker took are judged last, each with the set of
  functions that failed before it in the order (which decides whether a composite is judged again with the
  course's blocks); their results take their places in the order;
- a check that passes while both workers run stands; one that fails then (or errs, or runs out of time) is
  graded again by the first worker once the second has ended, alone, exactly as with one worker: its feedback,
  its judging again with the course's blocks, the budget left. So neither the other worker's load on the
  machine (a training cut by its time limit) nor a second worker that could not start or ran out of memory
  costs the student anything;
- its file is in the submission, reads, and holds no statically refused code (those checks fail at once anyway);
  with a syntax error in any graded file, no check goes beside (its feedback names the file once, in order);
- the time budget is the same for both workers, to the same moment (`Sandbox.share_clock`);
- both workers run the same student's code, each in its own sandbox (bubblewrap only: its own namespaces, /tmp
  and cgroup; the staged tree read-only for both); what either worker's audit hook refused fails the file's checks.

Nothing of the check's own code changes: the same `body(ctx)` runs with a `Ctx` on a `Run` whose sandbox is the
second worker, in a thread of the judge. Values a check caches for the run (`Ctx.cache`) are the judge's own (data,
models trained here), computed once for both threads (Run.cached, under the run's lock), as the data set is.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from grader.judge.checks import CheckSpec
from grader.sandbox.host import Sandbox

HEAVY_SECONDS = 300.0  # a check whose calls may take this long trains a model: the second worker may take it


def beside_room(memory_mb: int) -> bool:
    """Two CPUs or more to run on and a worker's memory limit free (grader.sandbox.process.headroom): not a
    platform's half CPU or 768 MB. Should both workers still fill the memory, the kernel ends a worker before the
    judge (each worker's oom_score_adj is 1000), and what failed beside is graded again alone."""
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
            and not run.static_problem(s.function)
        ):
            out.append(s)
    return out


@dataclass
class Early:
    """A check's body run while the other worker ran too (by the second worker, or by the first once it had
    graded the rest)."""

    body: Any = None  # the runner's _Body
    error: BaseException | None = None  # what the body raised (a GraderError): raised again in its turn
    seconds: float = 0.0
    call_seconds: float = 0.0


def run_early(run_body: Callable[[Any, CheckSpec], Any], run: Any, spec: CheckSpec, catch: bool = False) -> Early:
    """`run_body(run, spec)`, timed; with `catch`, what it raises is kept for the first worker's thread."""
    entry = Early()
    t0, calls0 = time.perf_counter(), run.sandbox.stats.call_seconds
    try:
        entry.body = run_body(run, spec)
    except BaseException as e:
        if not catch:
            raise
        entry.error = e
    entry.seconds = time.perf_counter() - t0
    entry.call_seconds = run.sandbox.stats.call_seconds - calls0
    return entry


class Beside:
    """The second worker and the thread that feeds it the checks of `specs`, one at a time, with
    `run_body(run, spec)`. The first worker grades every other check in order first (`has` says which to pass
    by), then takes what is left of `specs` (`claim`); the longest first on both sides: by the time limit its
    calls are allowed, a check that may train longer is started earlier (then by their order). `finish` waits for
    the second worker's last check and ends it: what did not pass is graded again after that, alone."""

    def __init__(self, run: Any, specs: list[CheckSpec], run_body: Callable[[Any, CheckSpec], Any]) -> None:
        self.run_body = run_body
        self.ids = {s.id for s in specs}
        self.queue = sorted(specs, key=lambda s: -(s.timeout or 0))  # stable: their order among equals
        self.sandbox = Sandbox(replace(run.sandbox.config))
        self.sandbox.share_clock(run.sandbox)  # the grading's budget, to the same moment
        self.run = copy.copy(run)  # the same run (its manifest, staged tree, caches, data set), its own worker
        self.run.sandbox = self.sandbox
        self.entries: dict[str, Early] = {}  # the checks the second worker took
        self.again: list[str] = []  # checks that did not pass beside the other worker: graded again alone
        self._lock = threading.Lock()
        self._stop = False
        self.sandbox.prestart()
        self._thread = threading.Thread(target=self._work, name="grader-beside", daemon=True)
        self._thread.start()

    def has(self, spec: CheckSpec) -> bool:
        return spec.id in self.ids

    def claim(self) -> CheckSpec | None:
        """The next check the first worker runs itself, None once every one is taken."""
        with self._lock:
            return self.queue.pop(0) if self.queue else None

    def _work(self) -> None:
        while not self.sandbox.out_of_time():
            with self._lock:  # taken and recorded at once: the first worker sees it in `entries` or in `queue`
                if self._stop or not self.queue:
                    return
                spec = self.queue.pop(0)
                entry = self.entries[spec.id] = Early()
            done = run_early(self.run_body, self.run, spec, catch=True)
            entry.body, entry.error, entry.seconds, entry.call_seconds = (
                done.body,
                done.error,
                done.seconds,
                done.call_seconds,
            )

    def finish(self) -> dict[str, Early]:
        """Once the first worker has claimed what is left: wait for the second worker's last check, end the
        worker, and return what it ran (by check id)."""
        self._thread.join()
        self.sandbox.stop()
        return dict(self.entries)

    def close(self) -> None:
        """End the second worker (a body still running fails at once) and its thread, then its sandbox."""
        with self._lock:
            self._stop = True
        self.sandbox.stop()
        self._thread.join()
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
            "graded_again": sorted(self.again),
            "worker_starts": stats.starts,
            "start_seconds": round(stats.start_seconds, 3),
            "call_seconds": round(stats.call_seconds, 3),
            "requests": stats.requests,
            "peak_rss_mb": round(self.sandbox.peak_rss(), 1),
        }
