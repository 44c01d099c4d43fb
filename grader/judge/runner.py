"""The judge: grade one submission of one assignment.

`grade()` stages the submission, loads the assignment's checks (trusted code from the kit), runs each
against a sandbox worker, and scores them. It never imports the student's code. A function's points
are shared by its checks in the run (public, or public + hidden) in proportion to their weights, so a
run scores out of the assignment's points either way, and a wrong function loses exactly its points.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as _dt
import hashlib
import hmac
import re
import resource
import secrets
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dlcv.data import load_dataset  # imported before any student code runs
from grader import __version__
from grader.course import manifest as manifests
from grader.course.intake import Staged
from grader.course.manifest import Manifest
from grader.course.rules import LOOP_KINDS
from grader.errors import GraderError
from grader.judge import judging
from grader.judge.checks import CheckFailed, CheckSpec, Ctx
from grader.judge.doors import describe_dynamic, file_doors
from grader.judge.feedback import describe_refusals, hit_record, reasons
from grader.judge.imports import ImportScan, describe_imports, describe_unused, import_uses
from grader.judge.lanes import Beside, Early, beside_checks, beside_room, run_early
from grader.judge.loading import load_checks, load_oracles
from grader.judge.opening import Opened, grading_key, open_ahead, open_grading, time_limit
from grader.judge.results import CheckResult, GradeResult, PartResult
from grader.judge.staticscan import Use, find_function, loop_sites, scan
from grader.sandbox.host import Sandbox
from grader.sandbox.isolation import Isolation, SandboxError


@dataclass(frozen=True)
class _FileScan:
    imports: ImportScan
    doors: list[Use]


class Run:
    """One grading run's context, passed explicitly to every check (through its Ctx)."""

    def __init__(
        self, m: Manifest, staged: Staged, sandbox: Sandbox | None, device: str, dataset: str | None, kit: Path
    ) -> None:
        self.manifest, self.staged, self.sandbox, self.device, self.kit = m, staged, sandbox, device, kit
        self.dataset_request = dataset
        # what the run computes once, shared with a second worker's thread (grader.judge.lanes: a shallow copy of
        # this run): the data set and the checks' cached values, each computed under the lock
        self._once: dict[str, Any] = {"dataset": None, "dataset_name": "none (no check used a data set)"}
        self._lock = threading.RLock()
        self._scans: dict[str, str | None] = {}
        self._scan_hits: dict[str, list[dict]] = {}  # what static_problem found, as rule hits
        self._file_scans: dict[str, _FileScan] = {}  # what holds back every function of a file (see file_scan)
        self.timeout_cap: float | None = None  # --timeout: caps every call's time limit
        self.cache: dict = {}  # values the checks compute once per run (Ctx.cache)
        self._said: set[str] = set()  # files whose syntax error a check's feedback has shown in full

    def time_limit(self, requested: float | None = None) -> float:
        """Seconds one call into student code may take: what a check asks for, else the manifest's
        call_timeout, never more than --timeout. The only place the cap is applied."""
        return time_limit(self.manifest, self.timeout_cap, requested)

    def file_of(self, module: str) -> str:
        return next((p.file for p in self.manifest.parts if p.module == module), module.replace(".", "/") + ".py")

    def module_for(self, called: str, graded: str) -> str:
        part = self.manifest.part_of(graded)
        if part.file in self.staged.missing:
            raise CheckFailed(f"{part.file} is missing from your submission, so {graded} could not be graded.")
        if part.file in self.staged.rejected:  # a link, too large, not UTF-8, or a refused archive
            raise CheckFailed(self.staged.rejected[part.file])
        if part.file in self.staged.syntax_errors:
            if part.file in self._said:  # once in full (the first of the file's checks), then named
                raise CheckFailed(
                    f"{part.file} has a syntax error (shown in full under the first of its checks), so {graded} "
                    "cannot run."
                )
            self._said.add(part.file)
            raise CheckFailed(
                f"{part.file} has a syntax error, so none of its functions can run:\n  "
                + self.staged.syntax_errors[part.file]
            )
        return part.module

    def static_problem(self, function: str) -> str | None:
        """What reading the submitted source finds wrong with `function` (forbidden calls, loops)."""
        if function not in self._scans:
            part = self.manifest.part_of(function)
            src = self.staged.sources.get(part.file)
            problem = None
            hits: list[dict] = []
            if src is not None and part.file not in self.staged.syntax_errors:
                uses = scan(
                    src, function, self.manifest.forbidden_for(function), part.file, self.manifest.blocks_of(function)
                )
                if uses:
                    hits += [
                        hit_record(
                            "forbidden",
                            u.name,
                            file=part.file,
                            line=u.line,
                            function=u.where or function,
                            found="source",
                        )
                        for u in uses
                    ]
                    listed = ", ".join(
                        f"{u.text} (line {u.line}" + (f", in {u.where}, which {function} runs)" if u.where else ")")
                        for u in uses
                    )
                    names = sorted({u.name for u in uses})
                    problem = (
                        f"{function} uses {listed}; {function} may not use {', '.join(names)} in this "
                        f"assignment{reasons(names, self.manifest.why)}."
                    )
                allowed = part.max_loops.get(function)
                found = loop_sites(src, function) if allowed is not None else []
                if allowed is not None and len(found) > allowed:
                    hits += [
                        hit_record("loops", "loop", file=part.file, line=n, function=fn, found="source")
                        for n, fn in found
                    ]
                    lines = ", ".join(
                        str(n) if fn == function else f"{n} in {fn}, which {function} calls" for n, fn in found
                    )
                    problem = (
                        f"{function} may contain {'no loops' if allowed == 0 else f'at most {allowed} loop'}"
                        f" ({LOOP_KINDS}); found {len(found)} (line {lines}). "
                        "Use vectorised tensor operations instead."
                    )
                refused = self.file_scan(part.file, src).imports.refused
                if refused:
                    problem = describe_imports(function, refused, self.manifest.allowed_imports, part.file) + (
                        f" {problem}" if problem else ""
                    )
                    hits = [
                        hit_record("import", u.name, file=part.file, line=u.line, function=function, found="source")
                        for u in refused
                    ] + hits
                # a file's doors count against each function it defines (grader.judge.doors.dynamic_uses)
                dynamic = self.file_scan(part.file, src).doors if find_function(ast.parse(src), function) else []
                if dynamic:
                    problem = describe_dynamic(function, dynamic, part.file) + (f" {problem}" if problem else "")
                    hits = [
                        hit_record("dynamic", u.name, file=part.file, line=u.line, function=function, found="source")
                        for u in dynamic
                    ] + hits
            self._scans[function] = problem
            self._scan_hits[function] = hits[:MAX_RULE_HITS]
        return self._scans[function]

    def file_scan(self, file: str, source: str) -> _FileScan:
        """What reading a graded file finds that holds back every function of it (imports outside the list, doors),
        read once per file and run: the file and the judge's loaded modules do not change within a run."""
        if file not in self._file_scans:
            self._file_scans[file] = _FileScan(import_uses(source, self.manifest.allowed_imports), file_doors(source))
        return self._file_scans[file]

    def static_hits(self, function: str) -> list[dict]:
        """What `static_problem` found in `function`'s source, as rule hits (see grader.judge.feedback.hit_record)."""
        self.static_problem(function)
        return self._scan_hits.get(function, [])

    @property
    def dataset_name(self) -> str:
        return self._once["dataset_name"]

    def dataset(self):
        with self._lock:
            if self._once["dataset"] is None:
                with contextlib.redirect_stdout(sys.stderr):  # stdout may carry --format json
                    *arrays, info = load_dataset(self.dataset_request)
                self._once["dataset"] = (*arrays, info)
                self._once["dataset_name"] = info["name"] if isinstance(info, dict) else info.name
            return self._once["dataset"]

    def cached(self, key: Any, factory: Callable[[], Any]) -> Any:
        """`factory()`, computed once per run under `key` (see Ctx.cache)."""
        with self._lock:
            if key not in self.cache:
                self.cache[key] = factory()
            return self.cache[key]

    def target(self, key: str) -> float:
        self.dataset()
        table = self.manifest.targets.get(self.dataset_name)
        if table is None or key not in table:
            raise GraderError(
                f"{self.manifest.dir / 'assignment.toml'}: no target {key!r} for data set "
                f"{self.dataset_name!r} under [targets.{self.dataset_name}]"
            )
        return table[key]


def _points(m: Manifest, specs: list[CheckSpec]) -> dict[str, float]:
    out = {}
    for p in m.parts:
        for f, pts in p.functions.items():
            mine = [s for s in specs if s.function == f]
            total = sum(s.weight for s in mine)
            for s in mine:
                out[s.id] = pts * s.weight / total
    return out


MAX_RULE_HITS = 50  # rule hits kept per check


@dataclass
class Judgement:
    """What one check found: its status and feedback, and as data the known mistakes the feedback names, the
    grader's own errors (the check crashed: the course's fault, not the student's) and the rule hits."""

    status: str
    text: str
    mistakes: list[str] = field(default_factory=list)
    grader_errors: list[str] = field(default_factory=list)
    rule_hits: list[dict] = field(default_factory=list)


def run_check(
    run: Run,
    spec: CheckSpec,
    failed: set[str] | frozenset = frozenset(),
    oracles: set[str] | frozenset = frozenset(),
    first: _Body | None = None,
) -> Judgement:
    """Run one check; returns its Judgement (status, feedback, and what the feedback names as data). `failed`: the
    graded functions that failed a check earlier in this run; `oracles`: the graded names the assignment's
    oracles.py covers.

    A composite (a function with building blocks in the manifest) that fails is judged again with the course's
    oracle in place of each of its blocks that failed its own checks, and the second judgement stands. So a
    broken block costs its own points only, and a composite's own mistakes (an error in its own lines, a wrong
    result with correct blocks) still cost the composite's. Only a block's own checks can put the oracle in its
    place: what happens while the composite runs (an error raised in a block's lines, say) is the composite's
    to answer for, since a composite can make its blocks fail on purpose.

    `first`: the check's body run already, ahead of its turn, by a second worker (grader.judge.lanes)."""
    first = first or _run_body(run, spec)
    status, text, ctx = first.status, first.text, first.ctx
    if status == "error":  # the check crashed: nobody's verdict, so no block is put in the dock either
        return first.judgement(text)
    if status != "passed" and _unwritten(text, spec.function):  # its own stub: no block is to blame
        return first.judgement(_cut("\n".join(t for t in [text, *ctx.notes] if t)))
    broken = [b for b in run.manifest.blocks_of(spec.function) if b in failed]
    culprits = [b for b in broken if b in oracles]
    if status != "passed" and broken and not oracles:  # the student kit: no oracles to judge with
        text += (
            f"\n(The autograder judges {spec.function} again with the course's own {', '.join(broken)} in "
            f"place of yours, which failed its own checks: fix those first, or trust its score for this one.)"
        )
    if status == "passed" or not culprits:
        return first.judgement(_cut("\n".join(t for t in [text, *ctx.notes] if t)))
    try:
        run.sandbox.substitute({b: run.manifest.part_of(b).module for b in culprits})
    except SandboxError:  # the file cannot be imported (or is missing): the first judgement stands
        run.sandbox.restore()
        return first.judgement(_cut("\n".join(t for t in [text, *ctx.notes] if t)))
    try:
        second = _run_body(run, spec)
    finally:
        run.sandbox.restore()
    status, again, ctx = second.status, second.text, second.ctx
    blocks = ", ".join(culprits)
    if status == "error":  # the check, or the course's oracle in it, crashed: the staff's error, as above
        return second.judgement(again)
    if status == "passed":
        text = (
            f"{spec.function} is judged with the course's own {blocks} in place of yours, because yours failed "
            f"its own checks; with it, {spec.function} is right. {blocks} loses points in its own checks only."
        )
    else:
        text = (
            f"{again}\n(Judged with the course's own {blocks} in place of yours, which failed its own checks: "
            f"this problem is {spec.function}'s own.)"
        )
    return second.judgement(_cut("\n".join(t for t in [text, *ctx.notes] if t)))  # the second judgement stands


def _unwritten(text: str, function: str) -> bool:
    """Whether feedback says `function` itself (or a method of its own) is not written yet."""
    return (
        re.match(rf"{re.escape(function)}(\.\w+)? is not implemented yet \(it raises NotImplementedError\)\.", text)
        is not None
    )


@dataclass
class _Body:
    """One run of a check's body: status, feedback, its Ctx, and what was recorded as data while it ran."""

    status: str
    text: str
    ctx: Ctx
    mistakes: list[str]
    grader_errors: list[str]
    rule_hits: list[dict]

    def judgement(self, text: str) -> Judgement:
        failed = self.status != "passed"
        return Judgement(
            self.status,
            text,
            mistakes=list(self.mistakes) if failed else [],
            grader_errors=list(self.grader_errors) if failed else [],
            rule_hits=list(self.rule_hits[:MAX_RULE_HITS]) if failed else [],
        )


MAX_GRADER_ERROR = 1000  # characters of an error of the check itself, kept as data


def _run_body(run: Run, spec: CheckSpec) -> _Body:
    ctx = Ctx(run, spec)
    grader_errors: list[str] = []
    hits: list[dict] = []
    with judging.recording_mistakes() as mistakes:
        status, text = _judge(run, spec, ctx, grader_errors, hits)
    return _Body(status, text, ctx, mistakes, grader_errors, hits + ctx.rule_hits)


def _judge(run: Run, spec: CheckSpec, ctx: Ctx, grader_errors: list[str], hits: list[dict]) -> tuple[str, str]:
    try:
        problem = run.static_problem(spec.function)
        if problem:
            hits.extend(run.static_hits(spec.function))
            raise CheckFailed(problem)
        starts = run.sandbox.stats.starts
        try:
            spec.body(ctx, **spec.params)
        finally:
            if run.sandbox.stats.starts == starts:  # the handles belong to the worker still running
                run.sandbox.release(ctx.handles)
        status, text = "passed", ""
    except CheckFailed as e:
        status, text = "failed", str(e)
        name = spec.function.split(".")[0]
        if name not in text:  # every failure names the function it is about
            text = f"{spec.function}: {text}"
    except GraderError:
        raise
    except SandboxError as e:  # a check that called the sandbox directly
        status, text = "failed", e.message
    except Exception as e:  # the check itself crashed: the course's error, judged by nobody (see run_check)
        status = "error"
        text = GRADER_ERROR_TEXT.format(function=spec.function)
        grader_errors.append(f"{type(e).__name__}: {e}{_where_in_checks(e, run.manifest)}"[:MAX_GRADER_ERROR])
    return status, text


# The student reads this; the error itself (type, message, the check's file and line) goes to the staff only, in
# results.json's grader_errors: a traceback would show the course's check code, hidden checks included.
GRADER_ERROR_TEXT = (
    "The grader could not judge {function} here: this check itself failed, an error in the course's grader rather "
    "than a verdict on your code. Its points are held out of your total until the course staff have fixed the check "
    "and graded it again; nothing for you to do (if it persists, tell the staff)."
)


def held_out_problem(results: list[CheckResult]) -> list[str]:
    """The line that says which checks could not be judged (the grader's error) and what is held out."""
    errors = [r for r in results if r.status == "error"]
    if not errors:
        return []
    points = sum(r.held_out for r in errors)
    return [
        f"{len(errors)} check(s) could not be judged because of an error in the course's grader, not in your code "
        f"({', '.join(r.number for r in errors)}): their {points:g} point(s) are held out of the total until the "
        "staff have fixed the checks and graded again."
    ]


def _where_in_checks(e: BaseException, m: Manifest) -> str:
    """' (at assignments/<name>/<file>:<line> in <function>)': the deepest frame of the assignment's own check
    files in the traceback, for the staff; '' where none is (the engine's own code failed)."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename).parent == m.dir]
    if not frames:
        return ""
    f = frames[-1]
    return f" (at assignments/{m.name}/{Path(f.filename).name}:{f.lineno} in {f.name})"


MAX_FEEDBACK = 8000  # characters of feedback per check (text from student code must not bloat the reports)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_FEEDBACK else text[:MAX_FEEDBACK] + "\n... (feedback cut: too long)"


class Ahead:
    """Grade assignments of one submission one after the other, each one's worker started while the one before it
    is graded: a worker's start (`import torch`, 1.5 s to 2 s) is most of what a short grading waits for.
    `open_options` are grade()'s options that decide a grading's sandbox (kit, device, hidden, dataset,
    call_timeout, isolation, allow_weak_sandbox); the rest are given to each `grade` call. `first`: the first
    grading, opened before the judge imported PyTorch (`grader grade` does)."""

    def __init__(self, submission: Path, names: list[str], first: Opened | None = None, **open_options: Any) -> None:
        self.submission, self.names, self.options = submission, list(names), open_options
        self._next: Opened | None = first  # the first grading, opened already (`open_ahead`)

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc) -> None:
        if self._next is not None:
            self._next.close()
            self._next = None

    def grade(self, name: str, **options: Any) -> GradeResult:
        """grade(submission, name, ...); once its first check is in (its worker ready), the next name's grading
        is opened."""
        opened, self._next = self._next, None
        at = self.names.index(name) + 1 if name in self.names else len(self.names)
        pending = self.names[at : at + 1]  # the grading to open once this one's first check is in
        on_result = options.pop("on_result", None)

        def then(r: CheckResult) -> None:
            if pending:
                self._next = open_ahead(self.submission, pending.pop(), **self.options)
            if on_result:
                on_result(r)

        try:
            return grade(self.submission, name, opened=opened, on_result=then, **self.options, **options)
        finally:
            if opened is not None:  # closed by grade(), unless it refused its options before opening anything
                opened.close()


def grade(
    submission: Path,
    assignment: str,
    *,
    device: str = "auto",
    hidden: bool = False,
    parts: list[str] | None = None,
    dataset: str | None = None,
    kit: Path | None = None,
    call_timeout: float | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
    isolation: str = "auto",
    allow_weak_sandbox: bool = False,
    time_budget: float | None = None,
    seed_secret: str | None = None,
    opened: Opened | None = None,
    workers: int | None = None,
) -> GradeResult:
    """Grade `submission` (a folder or a zip) against `assignment`; returns the result (writes nothing).

    Each check's seed (its inputs, and the student's code's random state) is derived from a secret drawn for this
    run (`seed_secret`, to replay a run; recorded in the result), so no two runs share inputs and a seed tells
    student code nothing of which check called it.

    The grading's time budget is the manifest's grading_timeout, or `time_budget` seconds where that is shorter
    (a platform's clock: `grader grade --deadline`). Once it is spent, every check still waiting fails at once,
    marked out_of_time, so a slow or hanging submission still ends with a result that says which checks ran out.

    Student code runs under the strongest isolation the machine allows (`isolation`: auto, bwrap, user or
    none; see grader.sandbox.isolation). With `hidden`, a run without OS isolation is refused unless
    `allow_weak_sandbox`: hidden checks are what a clever student would most like to read.

    `opened`: this grading opened ahead (`open_grading`, through `Ahead`), its worker started; closed and opened
    again when it was opened for another grading (another submission, assignment or option).

    `workers`: 2 grades the checks that train on a second worker beside the first (grader.judge.lanes), 1 never;
    None (the default) where the machine has room for it (two CPUs, a worker's memory free) under bubblewrap."""
    if workers not in (None, 1, 2):
        raise GraderError(f"expected 1 or 2 workers, found {workers!r}", option="workers")
    t_start = time.perf_counter()
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    kit = kit or manifests.course_root()
    m = manifests.load(assignment, kit)
    if call_timeout is not None and call_timeout <= 0:
        raise GraderError(f"expected a positive number of seconds, found {call_timeout:g}", option="call_timeout")
    if seed_secret is not None and not (0 < len(seed_secret) <= 200):
        raise GraderError(f"expected 1 to 200 characters, found {len(seed_secret)}", option="seed_secret")
    if time_budget is not None and time_budget <= 0:
        raise GraderError(f"no time is left for grading (a budget of {time_budget:g} s)", option="time_budget")
    key = grading_key(
        submission,
        m.name,
        kit=kit,
        device=device,
        hidden=hidden,
        dataset=dataset,
        call_timeout=call_timeout,
        isolation=isolation,
        allow_weak_sandbox=allow_weak_sandbox,
    )  # the device resolved: cpu or cuda
    device = key.device
    if opened is not None and opened.key != key:  # opened for another grading: never used for this one
        opened.close()
        opened = None
    with opened or open_grading(key, m) as opened:  # the worker starts while the checks load
        staged, sandbox, sandboxing = opened.staged, opened.sandbox, opened.sandboxing
        secret = seed_secret or secrets.token_hex(16)
        specs = [replace(s, seed=run_seed(secret, s)) for s in _chosen_checks(m, load_checks(m, hidden), parts)]
        _, oracle_names = load_oracles(m)
        points = _points(m, specs)
        budget = m.grading_timeout if time_budget is None else min(m.grading_timeout, time_budget)
        problems = [f"{f} is missing from the submission." for f in staged.missing]
        problems += [f"syntax error in {msg}" for msg in staged.syntax_errors.values()]
        problems += list(dict.fromkeys(staged.rejected.values()))
        run = Run(m, staged, sandbox, device, dataset, kit)
        run.timeout_cap = call_timeout
        problems += unused_imports(m, staged, run)
        sandbox.start_clock(budget)
        if not staged.refused:
            for f in dict.fromkeys(s.function for s in specs):
                run.static_problem(f)
        numbers = _numbers(m, specs)
        failed: set[str] = set()  # graded functions that failed a check so far
        early = _beside(run, specs, workers, sandboxing)
        judged: dict[int, CheckResult] = {}
        with early or contextlib.nullcontext():
            index = {s.id: i for i, s in enumerate(specs)}

            def judge(spec: CheckSpec, failed: set[str], ahead: Early | None = None) -> None:
                r = _check_result(run, spec, failed, oracle_names, points[spec.id], numbers[spec.id], budget, ahead)
                judged[index[spec.id]] = r
                if on_result:
                    on_result(r)

            for spec in specs:
                if not (early and early.has(spec)):  # a check that trains waits for the second worker, or the end
                    judge(spec, failed)
            if early:
                mine = {}  # what is left of the checks that train, run here while the second worker runs its last
                while (spec := early.claim()) is not None:
                    mine[spec.id] = run_early(_run_body, run, spec)
                ran = {**early.finish(), **mine}  # the second worker has ended
                for spec in sorted((s for s in specs if s.id in ran), key=lambda s: index[s.id]):
                    # no other check has its function as a block: what failed before it decides as in order
                    before = {r.function for j, r in judged.items() if j < index[spec.id] and r.status == "failed"}
                    ahead = ran[spec.id]
                    if ahead.error is not None:
                        raise ahead.error
                    if ahead.body.status == "passed":
                        judge(spec, before, ahead)
                    else:  # graded again alone, exactly as with one worker (its feedback, its time)
                        early.again.append(spec.id)
                        judge(spec, before)
        results = [judged[i] for i in range(len(specs))]
        beside = early.sandbox.refusals if early else []
        refusals = sandbox.refusals + [r for r in beside if r not in sandbox.refusals]
        results = _apply_refusals(m, results, refusals)
        problems += held_out_problem(results)
        sandbox_info = _sandbox_info(sandbox, results, budget, sandboxing)
        if early:
            sandbox_info["beside"] = early.info()
        dataset_name = run.dataset_name
    part_results = [
        PartResult(p.name, p.title, sum(r.score for r in mine), sum(r.max_score for r in mine))
        for p in m.parts
        if (mine := [r for r in results if r.part == p.name])
    ]
    return GradeResult(
        assignment=m.name,
        title=m.title,
        score=round(sum(r.score for r in results), 6),
        max_score=round(sum(r.max_score for r in results), 6),
        checks=results,
        parts=part_results,
        execution_time=time.perf_counter() - t_start,
        dataset=dataset_name,
        device=device,
        hidden=hidden,
        submission=str(submission),
        digest=staged.digest,
        problems=problems,
        sandbox=sandbox_info,
        grader_version=__version__,
        started_at=started,
        seed_secret=secret,
    )


def _beside(run: Run, specs: list[CheckSpec], workers: int | None, sandboxing: Isolation) -> Beside | None:
    """The second worker for the checks that train (grader.judge.lanes), where `workers` asks for two, or (None)
    where the machine has room for it; only under bubblewrap, where each worker has its own namespaces."""
    if workers == 1 or run.sandbox is None or sandboxing.mode != "bwrap":
        return None
    chosen = beside_checks(run, specs)
    if not chosen or (workers is None and not beside_room(run.manifest.memory_mb)):
        return None
    try:
        return Beside(run, chosen, _run_body)
    except (OSError, SandboxError):  # no second worker to be had: one grades every check
        return None


def run_seed(secret: str, spec: CheckSpec) -> int:
    """A check's seed in one run: HMAC-SHA256 of its id (and its own seed, so a variant asked for another seed
    keeps another one) under the run's secret; without the secret, a seed says nothing of the check."""
    digest = hmac.new(secret.encode(), f"{spec.id}\0{spec.seed}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


def unused_imports(m: Manifest, staged: Staged, run: Run | None = None) -> list[str]:
    """A warning per graded file that imports modules outside the manifest's list and never uses them: such an
    import costs nothing (a use of the module would hold the file back: see Run.static_problem). `run`: the
    grading's, whose reading of each file its checks reuse."""
    out = []
    for f in m.files:
        src = staged.sources.get(f)
        if src is None or f in staged.syntax_errors:
            continue
        unused = (run.file_scan(f, src).imports if run else import_uses(src, m.allowed_imports)).unused
        if unused:
            out.append(describe_unused(unused, m.allowed_imports, f))
    return out


def _chosen_checks(m: Manifest, specs: list[CheckSpec], parts: list[str] | None) -> list[CheckSpec]:
    """The checks of the parts asked for (all of them without `parts`)."""
    if not parts:
        return specs
    unknown = set(parts) - {p.name for p in m.parts}
    if unknown:
        raise GraderError(f"{sorted(unknown)} not in {m.name} (parts: {[p.name for p in m.parts]})", option="parts")
    return [s for s in specs if m.part_of(s.function).name in parts]


def _numbers(m: Manifest, specs: list[CheckSpec]) -> dict[str, str]:
    """Each check's number as the table shows it: part.check, counted within its part."""
    part_index = {p.name: i + 1 for i, p in enumerate(m.parts)}
    counters: dict[str, int] = {}
    numbers = {}
    for spec in specs:
        part = m.part_of(spec.function).name
        counters[part] = counters.get(part, 0) + 1
        numbers[spec.id] = f"{part_index[part]}.{counters[part]}"
    return numbers


def _check_result(
    run: Run,
    spec: CheckSpec,
    failed: set[str],
    oracle_names: set[str],
    points: float,
    number: str,
    budget: float,
    early: Early | None = None,
) -> CheckResult:
    """One check's result: judged, or failed at once when the archive was refused or the time is spent. `early`:
    its body, run and passed by the second worker ahead of its turn (it stands)."""
    t0 = time.perf_counter()
    calls0 = run.sandbox.stats.call_seconds
    late = run.sandbox.out_of_time() and early is None
    verdict = None
    if run.staged.refused:  # a refused archive (corrupt, hostile): every check fails with the reason
        status, text = "failed", run.staged.refused
    elif late:
        status, text = "failed", OUT_OF_TIME.format(function=spec.function, budget=budget)
    else:
        verdict = run_check(run, spec, failed, oracle_names, first=early.body if early else None)
        status, text = verdict.status, verdict.text
        late = status != "passed" and run.sandbox.out_of_time()  # (what the second worker ran passed)
        if late:
            text += (
                f"\n(The time allowed for grading this submission ({budget:g} s) ran out during this "
                "check; the checks after it were not judged.)"
            )
    if status == "failed":  # a check that crashed says nothing of the function: no composite is judged again for it
        failed.add(spec.function)
    held_out = status == "error"  # its points count neither for nor against the student until the staff regrade
    return CheckResult(
        id=spec.id,
        title=spec.title,
        function=spec.function,
        part=run.manifest.part_of(spec.function).name,
        number=number,
        score=points if status == "passed" else 0.0,
        max_score=0.0 if held_out else points,
        status=status,
        visibility=spec.visibility,
        hidden=spec.hidden,
        output=text,
        seed=spec.seed,
        seconds=time.perf_counter() - t0 + (early.seconds if early else 0.0),
        call_seconds=run.sandbox.stats.call_seconds - calls0 + (early.call_seconds if early else 0.0),
        out_of_time=late,
        held_out=points if held_out else 0.0,
        mistakes=verdict.mistakes if verdict else [],
        grader_errors=verdict.grader_errors if verdict else [],
        rule_hits=verdict.rule_hits if verdict else [],
    )


def _apply_refusals(m: Manifest, results: list[CheckResult], refusals: list[dict]) -> list[CheckResult]:
    """Every check of a graded file whose code the worker refused at run time fails, before or after the refusal
    (grader.sandbox.audit; a refusal that names no graded file costs them all): what reached into the grader
    once may have changed any of the file's results."""
    files = {p.file for p in m.parts}
    by_file: dict[str, list[dict]] = {}
    for r in refusals:
        for f in [r["file"]] if r.get("file") in files else sorted(files):
            by_file.setdefault(f, []).append(r)
    out = []
    for r in results:
        file = m.part_of(r.function).file
        records = by_file.get(file)
        if not records:
            out.append(r)
            continue
        hits = [
            hit_record(
                "refused", x["event"] or "refused", file=file, line=x["line"], function=x["function"], found="run"
            )
            for x in records[:MAX_RULE_HITS]
        ]
        text = describe_refusals(file, records)
        out.append(
            replace(
                r,
                status="failed",
                score=0.0,
                max_score=r.max_score + r.held_out,  # a crash after a refusal is no longer the grader's to answer for
                held_out=0.0,
                output=_cut(text if r.passed else f"{text}\n{r.output}"),
                rule_hits=(hits + r.rule_hits)[:MAX_RULE_HITS],
            )
        )
    return out


def _sandbox_info(sandbox: Sandbox, results: list[CheckResult], budget: float, sandboxing: Isolation) -> dict:
    """What the results say of the sandbox: its work, each process's peak memory, the time budget, the isolation
    chosen (and why nothing stronger was possible here)."""
    stats = sandbox.stats
    return {
        "worker_starts": stats.starts,
        "start_seconds": stats.start_seconds,
        "io_seconds": stats.io_seconds,
        "call_seconds": stats.call_seconds,
        "requests": stats.requests,
        "memory_peak_rss_mb": {  # each process's peak in RAM (VmHWM), read by the judge
            "judge": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "worker": round(sandbox.peak_rss(), 1),
        },
        "time_budget_seconds": budget,
        "out_of_time": sum(r.out_of_time for r in results),
        **sandbox.info,
        "isolation": {**sandbox.info.get("isolation", {}), **sandboxing.describe()},
    }


OUT_OF_TIME = (
    "{function}: not judged: the time allowed for grading this submission ({budget:g} s) ran out before this "
    "check. The checks before it took the time (each check's time is in the results); make your code faster, "
    "or ask the course staff."
)
