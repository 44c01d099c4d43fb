"""Notebook reports: executing and rendering A1's notebooks on the reference (grade --report), next to grading A1
without the report, the share of the notebooks' time spent waiting for sandboxed kernels, and the notebooks run
with each next kernel started while the one before runs against one kernel at a time."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import Row

ROOT = Path(__file__).resolve().parent.parent


def run(repeat: int = 1) -> list[Row]:
    from grader.judge.runner import grade
    from grader.notebooks.report import attach

    t0 = time.perf_counter()
    result = grade(ROOT, "a1_knn", device="cpu")
    grading = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="bench-report-") as out:
        t1 = time.perf_counter()
        lines = attach(result, ROOT, "a1_knn", kit=ROOT, out=Path(out))
        report = time.perf_counter() - t1
    info = result.notebooks
    if "error" in info:
        raise RuntimeError(f"the A1 report could not be made: {info['error']} ({lines})")
    runs = info["notebooks"]
    execute, render = info["seconds"]["execute"], info["seconds"]["render"]
    kernels = sum(r["kernel_seconds"] for r in runs)
    ran = sum(r["seconds"] for r in runs)
    return [
        Row(
            "notebooks", "grading A1, public checks (wall)", grading, "", None, "s", note=f"{len(result.checks)} checks"
        ),
        Row(
            "notebooks",
            "A1 --report: notebooks + report (wall)",
            report,
            "grading A1 (wall)",
            grading,
            "s",
            note=f"{len(runs)} notebooks, {sum(r['kernel_starts'] for r in runs)} kernel start(s)",
        ),
        Row(
            "notebooks",
            "  executing A1's notebooks in the sandbox",
            execute,
            "the report (wall)",
            report,
            "s",
            note=", ".join(f"{Path(r['notebook']).name} {r['seconds']:.1f} s" for r in runs),
        ),
        Row("notebooks", "  share: waiting for the sandboxed kernels", kernels, "running the notebooks", ran, "s"),
        Row("notebooks", "  rendering report.html + report.ipynb", render, "the report (wall)", report, "s"),
        _ahead(result),
    ]


def _ahead(result) -> Row:
    """A1's notebooks run with each next kernel started while the notebook before runs (where the machine has room
    for two kernels, as here) against one kernel at a time; back to back in both orders, so that the machine's
    drift weighs on both alike."""
    from unittest import mock

    from grader.notebooks import execute
    from grader.notebooks.report import attach

    seconds = {"ahead": 0.0, "one": 0.0}
    waits = {"ahead": 0.0, "one": 0.0}
    for order in (("ahead", "one"), ("one", "ahead")):
        for how in order:
            with (
                tempfile.TemporaryDirectory(prefix="bench-report-") as out,
                mock.patch.object(execute, "room_for_two_kernels", lambda _mb, how=how: how == "ahead"),
            ):
                attach(result, ROOT, "a1_knn", kit=ROOT, out=Path(out))
            runs = result.notebooks["notebooks"]
            seconds[how] += sum(r["seconds"] for r in runs) / 2
            waits[how] += sum(r["kernel_seconds"] for r in runs) / 2
            if not all(r["status"] == "ran" for r in runs) or any(r["kernel_ahead"] for r in runs) != (how == "ahead"):
                raise RuntimeError(f"the A1 notebooks did not run as asked ({how}): {runs}")
    return Row(
        "notebooks",
        "  A1's notebooks, each next kernel started ahead (mean of 2)",
        seconds["ahead"],
        "one kernel at a time",
        seconds["one"],
        "s",
        note=f"waiting for kernels {waits['ahead']:.1f} s against {waits['one']:.1f} s",
    )
