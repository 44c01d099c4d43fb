"""`grader batch`: grade a whole class into a gradebook, resumably, on this machine or on a Dask cluster.

INPUT is a folder (or a .zip of one) holding one subfolder or .zip per student, a Gradescope export or a folder of
GitHub Classroom repositories (grader.classroom.inputs). Each submission is graded by `grader grade` in a fresh
process (grader.classroom.jobs); the batch process never runs student code: it reads the submitted files (to hash
them and to compare them for similarity) and writes what the grading processes return. Results are written
atomically to `DIR/<student>/`, last `batch.json` (grader.classroom.store), the record keyed by the content hash
of the graded files, the assignment's checks and kit, the grader version and the options (grader.classroom.keys):
a second run skips every unchanged submission, and a killed run loses only those in flight.
`DIR/gradebook.csv`, `DIR/canvas.csv` and `DIR/canvas-review.csv` (grader.classroom.gradebook) are rewritten as
each result arrives; `DIR/similarity.csv` and `DIR/class.html` at the end.

This module is the orchestration: the options, the progress shown, run_batch, and `cli` for grader.cli. The names
of the modules it uses are importable from here too.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.classroom.gradebook import (
    CANVAS_TOTALS,
    canvas_id_help,
    canvas_notes,
    canvas_title,
    number_cell,
    write_tables,
)
from grader.classroom.inputs import STATE, Student, Submission, assign_slugs, discover, unpack_class
from grader.classroom.jobs import DaskRunner, LocalRunner, stop_all
from grader.classroom.keys import assignment_hash, engine_files, prepare, result_key
from grader.classroom.store import Lock, load_record, save_result
from grader.course import manifest as manifests
from grader.course.manifest import Manifest
from grader.errors import GraderError

__all__ = [  # this module's own names, and those of its helpers that callers (tests, grader.cli) take from here
    "CANVAS_TOTALS",
    "STATE",
    "Lock",
    "Options",
    "Progress",
    "Student",
    "Submission",
    "Summary",
    "assign_slugs",
    "assignment_hash",
    "canvas_id_option",
    "canvas_notes",
    "canvas_title",
    "cli",
    "discover",
    "engine_files",
    "grade_args",
    "prepare",
    "run_batch",
    "save_result",
    "unpack_class",
    "write_tables",
]

LIMIT_MARGIN = 300.0  # seconds a grading process gets beyond the manifest's own grading budget


@dataclass
class Options:
    input: Path
    assignment: str
    out: Path
    kit: Path
    hidden: bool = False
    report: bool = False
    jobs: int = 0
    scheduler: str | None = None
    force: bool = False
    retry_errors: bool = False
    only: list[str] = field(default_factory=list)
    device: str = "cpu"
    dataset: str | None = None
    sandbox: str = "auto"
    allow_weak_sandbox: bool = False
    limit: float | None = None
    similarity: bool = True
    canvas_id: int | None = None  # the Canvas assignment id for canvas.csv (default: the manifest's)


@dataclass
class Summary:
    graded: int = 0  # gradings run in this run
    skipped: int = 0  # unchanged, reused
    failed: int = 0  # error or timeout, in this run
    total: int = 0
    where: str = ""
    seconds: float = 0.0
    run_id: str = ""
    paths: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what to know before importing (canvas.csv)


def grade_args(o: Options, jobs: int = 1) -> list[str]:
    """`grader grade`'s options for each job; `jobs`: gradings run at once on this machine."""
    args = ["--device", o.device, "--sandbox", o.sandbox]
    if o.scheduler or jobs > 1:  # the jobs fill the cores: no second worker inside one grading
        args += ["--workers", "1"]
    if o.hidden:
        args.append("--hidden")
    if o.allow_weak_sandbox:
        args.append("--allow-weak-sandbox")
    if o.report:
        args.append("--report")
    if o.dataset:
        args += ["--dataset", o.dataset]
    return args


def canvas_id_option(value: Any) -> int:
    """--canvas-id: the Canvas assignment id, a positive whole number (not the assignment's title or address)."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isascii() or not text.isdigit() or int(text) <= 0:
        raise GraderError(
            f"--canvas-id: expected the assignment's id in Canvas, a positive whole number (the number ending its "
            f"Canvas address, .../assignments/12345), found {value!r}"
        )
    return int(text)


def run_batch(o: Options, on_progress: Callable[[int, int], None] | None = None, stream: Any = None) -> Summary:
    """Grade every submission in `o.input` into `o.out` (see the module docstring)."""
    from grader.judge.opening import choose_isolation, resolve_device

    t0 = time.perf_counter()
    if o.canvas_id is not None:
        o.canvas_id = canvas_id_option(o.canvas_id)
    m = manifests.load(o.assignment, o.kit)
    if o.scheduler is None:
        resolve_device(o.device)  # a bad --device fails here, not once per student
        choose_isolation(o.sandbox, hidden=o.hidden, allow_weak=o.allow_weak_sandbox)
    o.out.mkdir(parents=True, exist_ok=True)
    lock = Lock(o.out / STATE)
    try:
        return _run(o, m, t0, on_progress, stream or sys.stderr)
    finally:
        lock.release()


def _run(o: Options, m: Manifest, t0: float, on_progress: Callable | None, stream: Any) -> Summary:
    run_id = uuid.uuid4().hex[:12]
    subs = discover(o.input.resolve(), o.out / STATE)
    kit_hash = assignment_hash(o.kit, m.name)
    options = {"hidden": o.hidden, "report": o.report, "device": o.device, "dataset": o.dataset}
    only = {x.lower() for x in o.only}
    unknown = only - {st.id.lower() for s in subs for st in s.students} - {s.slug.lower() for s in subs}
    if unknown:
        raise GraderError(f"--only: no submission for {sorted(unknown)} in {o.input}")
    records: dict[str, dict] = {}
    todo: list[Submission] = []
    for s in subs:
        prepare(s, m, o.kit)
        # with --report the stored result holds the notebook report: a changed notebook is a change
        s.key = result_key(s.digest, kit_hash, {**options, "notebooks": s.notebooks} if o.report else options)
        old = load_record(o.out / s.slug)
        chosen = not only or s.slug.lower() in only or any(st.id.lower() in only for st in s.students)
        if old is not None and (
            not chosen or (old["key"] == s.key and not o.force and not (o.retry_errors and old["status"] != "graded"))
        ):
            records[s.slug] = old
        elif not chosen:
            continue
        elif s.error:
            records[s.slug] = save_result(o.out, s, {"status": "error", "error": s.error}, run_id)
        else:
            todo.append(s)
    subs = [s for s in subs if s.slug in records or s in todo]
    canvas_id = o.canvas_id or m.canvas_assignment_id
    write_tables(o.out, m, subs, records, canvas_id)
    unreadable = sum(1 for s in subs if records.get(s.slug, {}).get("run") == run_id)
    summary = Summary(total=len(subs), skipped=len(subs) - len(todo) - unreadable, failed=unreadable, run_id=run_id)
    limit = o.limit or m.grading_timeout + LIMIT_MARGIN
    jobs_n = o.jobs or os.cpu_count() or 1
    threads = max(1, (os.cpu_count() or 1) // jobs_n)
    args = grade_args(o, jobs_n)
    runner = DaskRunner(o.scheduler) if o.scheduler else LocalRunner(jobs_n)
    summary.where = runner.where
    print(
        f"grader batch: {m.name}: {len(subs)} submission(s), {summary.skipped} unchanged, {len(todo)} to grade "
        f"on {runner.where}",
        file=stream,
        flush=True,
    )
    if not canvas_id:
        print(
            f"grader batch: canvas.csv will have no Canvas assignment id: {canvas_id_help(m)}", file=stream, flush=True
        )
    progress = Progress(len(todo), stream)
    jobs = [
        (
            s,
            {
                "slug": s.slug,
                "path": str(s.path.resolve()),
                "assignment": m.name,
                "kit": str(o.kit),
                "kit_hash": kit_hash,
                "args": args,
                "limit": limit,
                "threads": threads,
            },
        )
        for s in todo
    ]
    try:
        for s, reply in runner.run(jobs):
            r = save_result(o.out, s, reply, run_id)
            records[s.slug] = r
            summary.graded += 1
            summary.failed += r["status"] != "graded"
            write_tables(o.out, m, subs, records, canvas_id)
            progress.update(
                s.id,
                r["status"],
                f"{number_cell(r.get('score'))}/{number_cell(r.get('max_score'))}" if r.get("max_score") else "",
            )
            if on_progress:
                on_progress(summary.graded, len(todo))
    except BaseException:
        stop_all()
        raise
    finally:
        progress.close()
        runner.close()
    summary.paths = {
        "gradebook": o.out / "gradebook.csv",
        "canvas": o.out / "canvas.csv",
        "canvas review": o.out / "canvas-review.csv",
    }
    summary.notes = canvas_notes(m, canvas_id, subs, records)
    pairs = []
    if o.similarity:
        from grader.classroom.similarity import find_similar, write_csv

        pairs = find_similar({s.slug: s.sources for s in subs if s.sources}, m, o.kit)
        names = {s.slug: s.id for s in subs}
        summary.paths["similarity"] = write_csv(o.out / "similarity.csv", pairs, names)
    from grader.classroom.classreport import write_class_report

    summary.paths["class report"] = write_class_report(
        o.out, m, subs, records, o.kit, hidden=o.hidden, similar=len(pairs)
    )
    summary.seconds = time.perf_counter() - t0
    return summary


# -- progress ---------------------------------------------------------------------------------------------------


class Progress:
    """A tqdm bar (done, failed, ETA) on a terminal; plain lines elsewhere (CI, a log file)."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.total, self.done, self.failed, self.t0 = total, 0, 0, time.perf_counter()
        tty = getattr(self.stream, "isatty", lambda: False)() and not os.environ.get("CI")
        self.bar = None
        if tty and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=self.stream, unit="submission", dynamic_ncols=True)

    def update(self, who: str, status: str, score: str) -> None:
        self.done += 1
        self.failed += status != "graded"
        if self.bar is not None:
            self.bar.set_postfix_str(f"failed {self.failed}, last {who}: {status} {score}".strip())
            self.bar.update(1)
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        print(
            f"[{self.done}/{self.total}] {who}: {status} {score}".rstrip()
            + f" (failed {self.failed}, ETA {_duration(eta)})",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


# -- the command --------------------------------------------------------------------------------------------------


def cli(args: Any) -> int:
    """`grader batch` (called by grader.cli)."""
    kit = Path(args.course).resolve() if args.course else manifests.course_root()
    o = Options(
        input=Path(args.input),
        assignment=args.assignment,
        out=Path(args.out),
        kit=kit,
        hidden=args.hidden,
        report=args.report,
        jobs=args.jobs or 0,
        scheduler=args.scheduler,
        force=args.force,
        retry_errors=args.retry_errors,
        only=args.only or [],
        device=args.device,
        dataset=args.dataset,
        sandbox=args.sandbox,
        allow_weak_sandbox=args.allow_weak_sandbox,
        limit=args.limit,
        similarity=not args.no_similarity,
        canvas_id=canvas_id_option(args.canvas_id) if getattr(args, "canvas_id", None) is not None else None,
    )
    if o.jobs < 0:
        raise GraderError(f"--jobs: expected a positive number, found {o.jobs}")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        s = run_batch(o)
    except KeyboardInterrupt:
        print(
            f"grader batch: interrupted; {o.out / 'gradebook.csv'} holds what was graded. Run the same command "
            "again to go on.",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, old)
    print(
        f"graded {s.graded} ({s.failed} error or timeout), {s.skipped} unchanged and skipped, "
        f"{s.total} in all, in {_duration(s.seconds)}"
    )
    for k, v in s.paths.items():
        print(f"{k}: {v}")
    for note in s.notes:
        print(f"note: {note}")
    return 0
