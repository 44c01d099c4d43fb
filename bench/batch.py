"""Grading a class: a synthetic class of 24 submissions of a tiny course (`grader batch`), with `--jobs 1` and
`--jobs 2` (throughput, scaling efficiency), and through a local Dask cluster (its overhead against `--jobs 2`),
with the time one real submission (A1, the reference) takes, and the projection for 400 students on 16 cores.

The tiny course is also what tests/grader/test_batch.py grades (`make_course`, `write_submission`, VARIANTS).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench.common import Row

ROOT = Path(__file__).resolve().parent.parent

MANIFEST = """
name = "mini"
title = "Mini: squares and scales"
files = ["mini_pkg/work.py", "mini_pkg/more.py"]
sandbox_paths = ["mini_pkg"]

[limits]
call_timeout = 4

[[parts]]
name = "basics"
title = "Basics"
module = "mini_pkg.work"
file = "mini_pkg/work.py"
points = 6

[parts.functions]
square = 3
total = 3

[[parts]]
name = "more"
title = "More"
module = "mini_pkg.more"
file = "mini_pkg/more.py"
points = 4

[parts.functions]
scale = 4
"""

CHECKS = '''
import torch
from grader.judge.checks import check


@check("mini.square", function="square")
def square_check(ctx):
    """square squares every entry"""
    x = ctx.randn(5)
    ctx.expect_tensor(ctx.call("square", x), x * x, "square(x)")


@check("mini.total", function="total")
def total_check(ctx):
    """total sums the squares"""
    x = ctx.randn(6)
    ctx.expect_tensor(ctx.call("total", x), (x * x).sum(), "total(x)", n=6)


@check("mini.scale", function="scale")
def scale_check(ctx):
    """scale multiplies by k"""
    x = ctx.randn(4)
    ctx.expect_tensor(ctx.call("scale", x, 3.0), 3 * x, "scale(x, 3)",
                      mistakes={"you add k instead of multiplying by it": x + 3})
'''

# The kit's files, with solution regions as the release writes them.
KIT_WORK = '''import torch


def square(x):
    """Every entry of x squared."""
    # TODO: square x
    # BEGIN SOLUTION
    return x * x
    # END SOLUTION


def total(x):
    """The sum of the squares of x's entries."""
    # BEGIN SOLUTION
    return square(x).sum()
    # END SOLUTION
'''

KIT_MORE = '''import torch


def scale(x, k):
    """x times k."""
    # BEGIN SOLUTION
    return x * k
    # END SOLUTION
'''

REFERENCE = {
    "work.py": "import torch\n\n\ndef square(x):\n    return x * x\n\n\ndef total(x):\n    return square(x).sum()\n",
    "more.py": "import torch\n\n\ndef scale(x, k):\n    return x * k\n",
}

# name -> (file -> source): single-function bugs and the unfinished kit
VARIANTS = {
    "reference": {},
    "kit": {
        "work.py": "def square(x):\n    raise NotImplementedError\n\n\ndef total(x):\n    raise NotImplementedError\n",
        "more.py": "def scale(x, k):\n    raise NotImplementedError\n",
    },
    "square_twice": {"work.py": REFERENCE["work.py"].replace("return x * x", "return 2 * x * x")},
    "total_mean": {"work.py": REFERENCE["work.py"].replace("square(x).sum()", "square(x).mean()")},
    "scale_adds": {"more.py": "def scale(x, k):\n    return x + k\n"},
}


def make_course(root: Path) -> Path:
    """A course folder with the tiny assignment `mini` (its kit holds the reference between solution markers)."""
    a = root / "assignments" / "mini"
    a.mkdir(parents=True)
    (a / "assignment.toml").write_text(MANIFEST)
    (a / "checks.py").write_text(textwrap.dedent(CHECKS))
    pkg = root / "mini_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "work.py").write_text(KIT_WORK)
    (pkg / "more.py").write_text(KIT_MORE)
    return root


def write_submission(folder: Path, files: dict[str, str]) -> Path:
    """A student's folder: the reference with `files` (work.py, more.py) replaced."""
    pkg = folder / "mini_pkg"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    for name, text in {**REFERENCE, **files}.items():
        (pkg / name).write_text(text)
    return folder


def make_class(folder: Path, n: int) -> Path:
    names = list(VARIANTS)
    for i in range(n):
        variant = names[i % len(names)]
        write_submission(folder / f"s{i:03d}_{variant}", VARIANTS[variant])
    return folder


def _batch(course: Path, class_dir: Path, out: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grader",
            "--course",
            str(course),
            "batch",
            str(class_dir),
            "-a",
            "mini",
            "--out",
            str(out),
            "--no-similarity",
            *extra,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "CI": "1"},
    )
    return time.perf_counter() - t0


def run(repeat: int = 1) -> list[Row]:
    rows: list[Row] = []
    n = 24
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        tmp = Path(tmp)
        course = make_course(tmp / "course")
        klass = make_class(tmp / "class", n)
        walls = {j: _batch(course, klass, tmp / f"out{j}", "--jobs", str(j)) for j in (1, 2)}
        for j, w in walls.items():
            rows.append(
                Row(
                    "batch",
                    f"{n} submissions, --jobs {j} (per submission)",
                    w / n,
                    "--jobs 1" if j > 1 else "",
                    walls[1] / n if j > 1 else None,
                    "s",
                    note=f"{n / w * 60:.1f} submissions/min",
                )
            )
        efficiency = walls[1] / (2 * walls[2])
        rows.append(
            Row(
                "batch",
                "scaling efficiency, --jobs 2",
                100 * efficiency,
                "",
                None,
                "%",
                note=f"{os.cpu_count()} core(s) here",
            )
        )
        rerun = _batch(course, klass, tmp / "out2", "--jobs", "2")
        rows.append(Row("batch", "rerun, nothing changed (all skipped)", rerun, "--jobs 2, first run", walls[2], "s"))
        dask = _dask(course, klass, tmp / "outd")
        if dask is None:
            rows.append(Row("batch", "through Dask", 0.0, "", None, "s", note="skipped: dask.distributed missing"))
        else:
            rows.append(
                Row(
                    "batch",
                    f"{n} submissions through Dask (2 workers)",
                    dask,
                    "--jobs 2",
                    walls[2],
                    "s",
                    note=f"overhead {dask - walls[2]:+.1f} s",
                )
            )
        real = _real_submission(tmp)
        per = real if real else walls[1] / n
        projection = 400 * per / (16 * min(efficiency, 1.0))  # never better than linear
        rows.append(
            Row(
                "batch",
                "A1 reference, one `grader grade` (wall)" if real else "tiny course per submission",
                per,
                "",
                None,
                "s",
            )
        )
        rows.append(
            Row(
                "batch",
                "projected: 400 students, 16 cores",
                projection,
                "",
                None,
                "s",
                note=f"{projection / 60:.1f} min at the scaling efficiency measured here",
            )
        )
    return rows


def _dask(course: Path, klass: Path, out: Path) -> float | None:
    try:
        from distributed import LocalCluster
    except ImportError:
        return None
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        return _batch(course, klass, out, "--scheduler", cluster.scheduler_address)


def _real_submission(tmp: Path) -> float | None:
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader",
            "grade",
            str(ROOT),
            "-a",
            "a1_knn",
            "--device",
            "cpu",
            "--out",
            str(tmp / "a1"),
            "--format",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
    )
    return time.perf_counter() - t0 if done.returncode in (0, 1) else None
