"""`make cuda-check`: grade the reference solution of every assignment, hidden checks included, on the GPU and on
the CPU, and compare check by check: the verdict and the points must be the same on both devices.

    python -m bench.cuda_check                          # --devices cuda cpu: what `make cuda-check` runs
    python -m bench.cuda_check --devices cpu cpu -a a1_knn --part warmup   # the comparison itself, on any machine

Each (assignment, device) grading is `grader.judge.runner.grade()` in a process of its own (spawned, so CUDA is never
forked), several at a time (`--jobs`, default: one per grading up to the cores), each judge with
cores / jobs torch threads; the sandbox worker keeps its single thread. Before grading on CUDA, a sandbox worker
(the same isolation as the gradings) is asked whether it sees the GPU, so a sandbox that hides it fails in seconds
with the reason, not after every check has failed. The whole run has a time budget (`--budget`, 540 s: a
10-minute command limit with room to spare); a grading still running then is stopped and reported.

It prints a Markdown table (per check: the verdict, points and seconds on each device; per assignment: the score
and the wall time; the total wall time) and writes it to grader-results/cuda-check.md, with every number in
grader-results/cuda-check.json (`--out` changes the folder).

Exit status: 0 the verdicts and points are the same on both devices; 1 they differ somewhere (each difference
is listed, naming the assignment and the check); 2 the comparison could not be made (a grading failed or ran out of
time, CUDA works here but not inside the sandbox, a GPU is present but PyTorch cannot use it);
77 skipped: CUDA is asked for and this machine has no NVIDIA GPU at all (no /dev/nvidia*; the conventional
"skipped" status of Automake and Meson). `make cuda-check` turns 77 into 0 after saying "skipped: no CUDA device"
(make itself exits 2 whenever a recipe fails, so it could not pass 77 on); a GPU that is there but unusable is 2.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing as mp
import os
import secrets
import signal
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

EXIT_SAME, EXIT_DIFFERENT, EXIT_ERROR, EXIT_SKIPPED = 0, 1, 2, 77
POINTS_TOLERANCE = 1e-6
DEFAULT_BUDGET = 540.0
ROOT = Path(__file__).resolve().parent.parent


# ---- what one grading produced, and the comparison of two ----------------------------------------------------


@dataclass
class Outcome:
    """One check on one device."""

    status: str  # passed | failed
    score: float
    max_score: float
    seconds: float
    title: str = ""
    output: str = ""  # the feedback's first characters (for a difference's message)


@dataclass
class Side:
    """One device's grading of one assignment (`error` set: it could not be graded)."""

    assignment: str
    device: str
    checks: dict[str, Outcome] = field(default_factory=dict)  # by check id, in grading order
    score: float = 0.0
    max_score: float = 0.0
    seconds: float = 0.0  # wall time of grade()
    isolation: str = ""
    dataset: str = ""
    error: str = ""


@dataclass
class Difference:
    assignment: str
    check: str  # a check id, or "(grading)" when a whole grading failed
    kind: str  # verdict | points | missing | error
    message: str

    def __str__(self) -> str:
        return f"{self.assignment} {self.check}: {self.message}"


def side_from_result(result, device: str, seconds: float) -> Side:
    """A `grader.judge.results.GradeResult` as a Side."""
    return Side(
        assignment=result.assignment,
        device=device,
        checks={
            c.id: Outcome(c.status, float(c.score), float(c.max_score), float(c.seconds), c.title, c.output[:300])
            for c in result.checks
        },
        score=float(result.score),
        max_score=float(result.max_score),
        seconds=seconds,
        isolation=str(result.sandbox.get("isolation", {}).get("mode", "")),
        dataset=str(result.dataset),
    )


def _first_line(text: str) -> str:
    line = next((t.strip() for t in text.splitlines() if t.strip()), "")
    return line if len(line) <= 200 else line[:200] + "..."


def compare(a: Side, b: Side, label_a: str, label_b: str) -> list[Difference]:
    """Every way `b` differs from `a` (the same assignment on two devices): a grading that failed, a check on one
    side only, a verdict or points that differ. Empty when both agree check by check."""
    name = a.assignment
    out: list[Difference] = []
    for side, label in ((a, label_a), (b, label_b)):
        if side.error:
            out.append(Difference(name, "(grading)", "error", f"could not be graded on {label}: {side.error}"))
    if out:
        return out
    for cid in list(a.checks) + [c for c in b.checks if c not in a.checks]:
        x, y = a.checks.get(cid), b.checks.get(cid)
        if x is None or y is None:
            ran, absent = (label_b, label_a) if x is None else (label_a, label_b)
            out.append(Difference(name, cid, "missing", f"ran on {ran} but not on {absent}"))
            continue
        if x.status != y.status:
            bad_label, bad = (label_a, x) if x.status != "passed" else (label_b, y)
            why = _first_line(bad.output)
            out.append(
                Difference(
                    name,
                    cid,
                    "verdict",
                    f"{x.status} on {label_a}, {y.status} on {label_b}"
                    + (f" ({bad_label} said: {why})" if why else ""),
                )
            )
        elif abs(x.score - y.score) > POINTS_TOLERANCE or abs(x.max_score - y.max_score) > POINTS_TOLERANCE:
            out.append(
                Difference(
                    name,
                    cid,
                    "points",
                    f"{x.score:g}/{x.max_score:g} points on {label_a}, {y.score:g}/{y.max_score:g} on {label_b}",
                )
            )
    return out


def labels_for(devices: list[str]) -> list[str]:
    """Names for the two sides: the devices, told apart when they are the same (cpu, cpu#2)."""
    return [d if devices.index(d) == i else f"{d}#{i + 1}" for i, d in enumerate(devices)]


# ---- the report ----------------------------------------------------------------------------------------------


def _cell(o: Outcome | None) -> list[str]:
    if o is None:
        return ["—", "—", "—"]
    return [o.status, f"{o.score:.2f}/{o.max_score:.2f}", f"{o.seconds:.2f}"]


def render(
    pairs: list[tuple[Side, Side]],
    labels: list[str],
    differences: list[Difference],
    *,
    header: list[str] | None = None,
    total_seconds: float | None = None,
) -> str:
    """The Markdown report: a row per check with both devices side by side, a total row per assignment, then the
    differences and the verdict of the run."""
    la, lb = labels
    lines = [f"# CUDA check: the reference graded on {la} and on {lb}", ""]
    lines += [f"- {h}" for h in header or []]
    if total_seconds is not None:
        lines.append(f"- total wall time: {total_seconds:.1f} s")
    lines += [
        "",
        f"| assignment | check | {la} | points | s | {lb} | points | s | same |",
        "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    by_check = {(d.assignment, d.check): d for d in differences}
    for a, b in pairs:
        for cid in list(a.checks) + [c for c in b.checks if c not in a.checks]:
            d = by_check.get((a.assignment, cid))
            same = "yes" if d is None else f"**NO: {d.kind}**"
            lines.append(
                "| "
                + " | ".join([a.assignment, cid, *_cell(a.checks.get(cid)), *_cell(b.checks.get(cid)), same])
                + " |"
            )
        total = []
        for s in (a, b):
            total += (
                ["error", "—", f"{s.seconds:.1f}"]
                if s.error
                else [f"{sum(o.status == 'passed' for o in s.checks.values())}/{len(s.checks)} passed"]
                + [f"{s.score:.2f}/{s.max_score:.2f}", f"{s.seconds:.1f}"]
            )
        same = "yes" if not any(x.assignment == a.assignment for x in differences) else "**NO**"
        lines.append("| " + " | ".join([f"**{a.assignment}**", "**total**", *total, same]) + " |")
    lines.append("")
    if differences:
        lines.append(f"## Differences ({len(differences)})")
        lines.append("")
        lines += [f"- `{d.assignment}` `{d.check}` ({d.kind}): {d.message.replace(chr(10), ' ')}" for d in differences]
        lines += ["", f"**FAILED**: {la} and {lb} disagree on {len(differences)} check(s)."]
    else:
        n = sum(len(a.checks) for a, _ in pairs)
        lines.append(f"**OK**: the same verdict and points on {la} and {lb} for all {n} checks.")
    return "\n".join(lines) + "\n"


# ---- grading, one process per (assignment, device) -------------------------------------------------------------


@dataclass
class Job:
    assignment: str
    device: str
    side: int  # 0 or 1: which of the two devices
    hidden: bool
    parts: list[str] | None
    sandbox: str
    threads: int
    kit: str
    seed_secret: str  # the same on both devices: the same inputs, so the results compare


def _stop(signum, frame):  # SIGTERM from the parent at the budget: unwind, so the sandbox is closed
    raise SystemExit(124)


def _child(job: Job, conn) -> None:
    signal.signal(signal.SIGTERM, _stop)
    try:
        import torch

        torch.set_num_threads(job.threads)
        from grader.judge.runner import grade

        t0 = time.perf_counter()
        result = grade(
            Path(job.kit),
            job.assignment,
            device=job.device,
            hidden=job.hidden,
            parts=job.parts,
            kit=Path(job.kit),
            isolation=job.sandbox,
            allow_weak_sandbox=True,  # the reference is the course's own code
            seed_secret=job.seed_secret,
        )
        side = side_from_result(result, job.device, time.perf_counter() - t0)
    except Exception as e:
        side = Side(job.assignment, job.device, error=f"{type(e).__name__}: {e}"[:2000])
        traceback.print_exc()
    conn.send(side)
    conn.close()


def run_jobs(jobs: list[Job], parallel: int, budget: float) -> dict[tuple[str, int], Side]:
    """Run `jobs` (longest first, as given) `parallel` at a time, each in a spawned process; a job still running
    when `budget` seconds have passed is stopped, and it and the jobs not started yet come back as errors."""
    ctx = mp.get_context("spawn")
    deadline = time.monotonic() + budget
    pending = list(jobs)
    running: dict = {}  # connection -> (process, job, start)
    done: dict[tuple[str, int], Side] = {}
    while pending or running:
        while pending and len(running) < parallel and time.monotonic() < deadline:
            job = pending.pop(0)
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(job, w), name=f"grade-{job.assignment}-{job.device}")
            p.start()
            w.close()
            running[r] = (p, job, time.perf_counter())
        if not running:
            break
        ready = wait(list(running), timeout=max(0.0, deadline - time.monotonic()))
        for r in ready:
            p, job, t0 = running.pop(r)
            try:
                side = r.recv()
            except (EOFError, OSError):
                p.join(10)
                side = Side(job.assignment, job.device, error=f"the grading process died (exit code {p.exitcode})")
            side.seconds = side.seconds or time.perf_counter() - t0
            done[(job.assignment, job.side)] = side
            p.join(30)
            r.close()
        if not ready and time.monotonic() >= deadline:
            for p, _, _ in running.values():
                p.terminate()  # SIGTERM: the child unwinds and closes its sandbox
            for r, (p, job, t0) in running.items():
                p.join(20)
                if p.is_alive():
                    p.kill()
                    p.join(5)
                done[(job.assignment, job.side)] = Side(
                    job.assignment,
                    job.device,
                    seconds=time.perf_counter() - t0,
                    error=f"still grading when the time budget ({budget:g} s) ran out",
                )
                r.close()
            running = {}
    for job in pending:
        done[(job.assignment, job.side)] = Side(
            job.assignment, job.device, error=f"not started: the time budget ({budget:g} s) ran out"
        )
    return done


# ---- is there a GPU, and does the sandbox show it? ----------------------------------------------------------


def cuda_status() -> tuple[int | None, str]:
    """(None, a description of the GPU) where PyTorch can use CUDA here, else (exit status, why not): EXIT_SKIPPED
    where this machine has no NVIDIA GPU, EXIT_ERROR where it has one that PyTorch cannot use."""
    import torch

    from grader.sandbox.isolation import nvidia_device_nodes

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if available:
        p = torch.cuda.get_device_properties(0)
        return None, (
            f"{torch.cuda.device_count()} × {p.name} ({p.total_memory / 2**30:.0f} GiB); torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}"
        )
    nodes = nvidia_device_nodes()
    said = "; ".join(str(w.message).strip().splitlines()[0] for w in caught if str(w.message).strip())
    if not nodes:
        return EXIT_SKIPPED, "skipped: no CUDA device (no NVIDIA GPU on this machine: no /dev/nvidia* device files)"
    if torch.version.cuda is None:
        why = f"this PyTorch ({torch.__version__}) was built without CUDA"
    elif os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        why = f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']!r} hides it"
    else:
        why = said or "torch.cuda.is_available() is False"
    return EXIT_ERROR, (
        f"a GPU is present ({', '.join(nodes)}) but PyTorch {torch.__version__} cannot use it: {why}"
        + (f" ({said})" if said and said not in why else "")
    )


def sandbox_sees_cuda(kit: Path, isolation: str) -> tuple[bool, str, dict]:
    """Start one sandbox worker on CUDA, as a grading would (same isolation, same hidden paths), and ask it for
    the GPU: (True, its name, the isolation) or (False, the reason, the isolation)."""
    from grader.course.datafiles import label_files
    from grader.judge.opening import choose_isolation
    from grader.sandbox.host import Sandbox
    from grader.sandbox.isolation import SandboxConfig, SandboxError

    mode = choose_isolation(isolation, hidden=True, allow_weak=True).mode
    with tempfile.TemporaryDirectory(prefix="cuda-check-") as tmp:
        config = SandboxConfig(
            root=Path(tmp), student_files=[], device="cuda", isolation=mode, hide=[str(kit), *label_files()]
        )
        with Sandbox(config) as sb:
            try:
                available = sb.call("torch.cuda", "is_available").value
                name = sb.call("torch.cuda", "get_device_name").value if available else ""
            except SandboxError as e:
                return False, f"{e.kind}: {e.message} {e.output.strip()[-500:]}".strip(), sb.info["isolation"]
            if not available:
                return False, "torch.cuda.is_available() is False in the worker", sb.info["isolation"]
            return True, str(name), sb.info["isolation"]


# ---- the command ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bench.cuda_check",
        description="Grade the reference on two devices (hidden checks included) and compare verdicts and points.",
    )
    ap.add_argument("--devices", nargs=2, default=["cuda", "cpu"], metavar=("A", "B"), choices=["cpu", "cuda"])
    ap.add_argument("--assignment", "-a", action="append", help="only this assignment (repeatable; default: all)")
    ap.add_argument("--part", action="append", help="only this part (repeatable; assignments without it are left out)")
    ap.add_argument("--public-only", action="store_true", help="leave the hidden checks out")
    ap.add_argument("--jobs", "-j", type=int, help="gradings at a time (default: all of them, at most the cores)")
    ap.add_argument("--sandbox", choices=["auto", "bwrap", "user", "none"], default="auto")
    ap.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS", help="time for the whole run")
    ap.add_argument("--out", default="grader-results", help="folder for cuda-check.md and cuda-check.json")
    ap.add_argument("--course", help="the course root (default: this repository)")
    return ap


def _write(out: Path, markdown: str, record: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "cuda-check.md", out / "cuda-check.json"
    md.write_text(markdown)
    js.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return [md, js]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t_start = time.perf_counter()
    from grader.course import manifest as manifests
    from grader.errors import GraderError

    kit = Path(args.course).resolve() if args.course else ROOT
    devices = list(args.devices)
    labels = labels_for(devices)
    out = Path(args.out)
    record: dict = {
        "devices": devices,
        "labels": labels,
        "started_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "hidden": not args.public_only,
    }

    def finish(status: int, markdown: str) -> int:
        record.update(exit_status=status, total_seconds=round(time.perf_counter() - t_start, 2))
        paths = _write(out, markdown, record)
        print(markdown, end="")
        print(f"\nwritten to {', '.join(map(str, paths))}; exit status {status}")
        return status

    try:
        import torch
    except ImportError as e:
        return finish(
            EXIT_ERROR,
            f"# CUDA check\n\nerror: this Python ({sys.executable}) cannot import torch ({e}): run `make install`, "
            "or `make cuda-check PY=/path/to/a/python/with/the/kit's/requirements`\n",
        )
    header = [f"Python {sys.executable}, torch {torch.__version__}"]
    if "cuda" in devices:
        status, what = cuda_status()
        record["gpu"] = what
        if status is not None:
            return finish(status, f"# CUDA check\n\n{what}\n")
        header.append(f"GPU: {what}")
    try:
        names = args.assignment or manifests.available(kit)
        ms = [manifests.load(n, kit) for n in names]
    except GraderError as e:
        return finish(EXIT_ERROR, f"# CUDA check\n\nerror: {e}\n")
    if args.part:
        known = {p.name for m in ms for p in m.parts}
        unknown = sorted(set(args.part) - known)
        if unknown:
            return finish(EXIT_ERROR, f"# CUDA check\n\nerror: --part {unknown}: no such part in {names}\n")
        ms = [m for m in ms if any(p.name in args.part for p in m.parts)]
    if "cuda" in devices:
        try:
            ok, what, isolation = sandbox_sees_cuda(kit, args.sandbox)
        except GraderError as e:
            return finish(EXIT_ERROR, f"# CUDA check\n\nerror: {e}\n")
        record["sandbox_cuda"] = {"ok": ok, "detail": what, "isolation": isolation}
        if not ok:
            return finish(
                EXIT_ERROR,
                f"# CUDA check\n\nerror: PyTorch uses the GPU here, but not inside the sandbox "
                f"({isolation.get('mode')}): {what}\n\n(`--sandbox none`, i.e. `make cuda-check ARGS=--sandbox=none`, "
                "grades without OS isolation, which is fine for the reference; the grader's bubblewrap options for "
                "a GPU are in grader/sandbox/isolation.py)\n",
            )
        header.append(f"sandbox worker on CUDA: sees {what} ({isolation.get('mode')} isolation)")
    cores = os.cpu_count() or 1
    jobs_total = 2 * len(ms)
    parallel = max(1, min(args.jobs or cores, jobs_total))
    threads = max(1, cores // parallel)
    secret = secrets.token_hex(16)
    # longest first (the later assignments train networks), so the last to finish started early
    jobs = [
        Job(
            m.name,
            devices[i],
            i,
            not args.public_only,
            [p.name for p in m.parts if p.name in args.part] if args.part else None,
            args.sandbox,
            threads,
            str(kit),
            secret,
        )
        for m in reversed(ms)
        for i in (0, 1)
    ]
    header.append(
        f"{cores} cores: {parallel} gradings at a time, {threads} torch thread(s) in each judge, 1 in each worker; "
        f"{'hidden checks included' if not args.public_only else 'public checks only'}"
        + (f"; parts {', '.join(args.part)}" if args.part else "")
    )
    header.append("seconds: wall time in the judge; the first check of a grading includes starting its worker")
    done = run_jobs(jobs, parallel, args.budget)
    pairs = [(done[(m.name, 0)], done[(m.name, 1)]) for m in ms]
    isolations = sorted({s.isolation for pair in pairs for s in pair if s.isolation})
    datasets = sorted({s.dataset for pair in pairs for s in pair if s.dataset})
    if isolations:
        header.append(f"sandbox: {', '.join(isolations)}; data set: {', '.join(datasets)}")
    differences = [d for a, b in pairs for d in compare(a, b, *labels)]
    total = time.perf_counter() - t_start
    markdown = render(pairs, labels, differences, header=header, total_seconds=total)
    record.update(
        header=header,
        assignments=[{"a": asdict(a), "b": asdict(b)} for a, b in pairs],
        differences=[asdict(d) for d in differences],
    )
    if any(d.kind == "error" for d in differences):
        status = EXIT_ERROR
    else:
        status = EXIT_DIFFERENT if differences else EXIT_SAME
    return finish(status, markdown)


if __name__ == "__main__":
    sys.exit(main())
