"""Timing and peak-memory helpers shared by the benchmark suites."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    suite: str
    measure: str  # what is measured
    value: float
    baseline_name: str  # what it is compared with, measured in the same run ("" for none)
    baseline: float | None
    unit: str  # "s", "MB", "%" ...
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


PEAK_SCRIPT = r"""
import json, resource, sys, torch
torch.manual_seed(0)
module, attr, shapes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
import importlib
fn = getattr(importlib.import_module(module), attr) if module != "torch" else getattr(torch, attr)
args = [torch.randn(*s) for s in shapes]
fn(*args)                                    # warm-up: lazy allocations happen once
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
fn(*args)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mb": max(after - before, 0) / 1024}))
"""


def peak_memory_mb(module: str, attr: str, shapes: list[list[int]], cwd: str) -> float:
    """Peak resident memory added by one call of `module.attr` on random inputs of `shapes`, measured in a
    fresh process (so nothing else in this run inflates it). The warm-up call's peak is the baseline."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, module, attr, json.dumps(shapes)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def render(rows: list[Row]) -> str:
    head = f"{'suite':<6} {'measure':<46} {'value':>12} {'baseline (same run)':<30} {'baseline':>12} {'ratio':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        base = _fmt(r.baseline, r.unit) if r.baseline is not None else "-"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        lines.append(
            f"{r.suite:<6} {r.measure:<46} {_fmt(r.value, r.unit):>12} {r.baseline_name or '-':<30} "
            f"{base:>12} {ratio:>8}" + (f"  {r.note}" if r.note else "")
        )
    return "\n".join(lines)


def _fmt(v: float, unit: str) -> str:
    if unit == "s":
        return f"{v * 1e3:.2f} ms" if v < 1 else f"{v:.2f} s"
    return f"{v:.1f} {unit}"


def slowest_checks(suite: str, result, wall: float, n: int = 10) -> list[Row]:
    """The `n` slowest checks of a grading, each against the grading's wall time (its share), with the part of it
    spent inside student calls (the student's code and the guard around it)."""
    rows = []
    for c in sorted(result.checks, key=lambda c: -c.seconds)[:n]:
        rows.append(
            Row(
                suite,
                f"  slow check: {c.id}"[:46],
                c.seconds,
                "the grading (wall)",
                wall,
                "s",
                note=f"student calls {c.call_seconds:.2f} s; {c.id}",
            )
        )
    return rows
