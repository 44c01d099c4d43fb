"""The cost of isolation: starting a worker in each sandbox against a bare `python -c "import torch"`, and the
whole grading of A1 to A3 under bubblewrap against the same grading with no OS isolation."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.common import Row, median_time

ROOT = Path(__file__).resolve().parent.parent


def run(repeat: int = 5) -> list[Row]:
    from grader.judge.runner import grade
    from grader.sandbox.host import Sandbox
    from grader.sandbox.isolation import SandboxConfig, detect_isolation

    rows: list[Row] = []
    bare = median_time(lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True), repeat)
    strongest = detect_isolation().mode
    modes = [m for m in (strongest, "none") if m != "none"] + ["none"]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pkg").mkdir()
        (Path(tmp) / "pkg" / "__init__.py").write_text("")
        for mode in modes:

            def start(mode=mode):
                with Sandbox(SandboxConfig(root=Path(tmp), student_files=[], isolation=mode)) as sb:
                    sb._ensure()

            rows.append(
                Row(
                    "sandbox",
                    f"start a worker ({mode}), torch imported",
                    median_time(start, repeat),
                    'python -c "import torch"',
                    bare,
                    "s",
                )
            )
    if strongest == "none":
        rows.append(
            Row(
                "sandbox",
                "grading under OS isolation",
                0.0,
                "",
                None,
                "s",
                note="skipped: no OS sandbox on this machine (install bubblewrap)",
            )
        )
        return rows
    for name in ("a1_knn", "a2_linear", "a3_networks"):
        walls = {}
        for mode in (strongest, "none"):
            t0 = time.perf_counter()
            result = grade(ROOT, name, device="cpu", hidden=False, isolation=mode)
            walls[mode] = (time.perf_counter() - t0, result)
        (w_iso, r_iso), (w_none, _) = walls[strongest], walls["none"]
        rows.append(
            Row(
                "sandbox",
                f"grading {name}, public, {strongest} (wall)",
                w_iso,
                "the same, no isolation",
                w_none,
                "s",
                note=f"{r_iso.sandbox['worker_starts']} worker start(s), score {r_iso.score:g}",
            )
        )
    rows.append(_command_line(ROOT, repeat))
    rows += _walls(ROOT, strongest, repeat)
    rows += _guard(ROOT, strongest)
    rows.append(_ahead(ROOT, strongest))
    rows.append(_lanes(ROOT, strongest))
    return rows


def _lanes(root: Path, mode: str) -> Row:
    """A1 to A3, hidden, with the checks that train graded by a second worker beside the first (grader.judge.lanes;
    grade()'s default where the machine has room, as here) against one worker for every check; back to back, in
    both orders, so that the machine's drift weighs on both alike."""
    from grader.judge import runner

    names = ["a1_knn", "a2_linear", "a3_networks"]
    walls: dict[int, float] = {2: 0.0, 1: 0.0}
    scores: dict[int, float] = {2: 0.0, 1: 0.0}
    taken = 0
    for order in ((2, 1), (1, 2)):
        for workers in order:
            t0 = time.perf_counter()
            for name in names:
                result = runner.grade(root, name, device="cpu", hidden=True, isolation=mode, workers=workers)
                scores[workers] += result.score / 2
                taken += len(result.sandbox.get("beside", {}).get("checks", [])) if workers == 2 else 0
            walls[workers] += (time.perf_counter() - t0) / 2
    return Row(
        "sandbox",
        f"grading A1 to A3, hidden, {mode}, checks that train on a second worker (wall, mean of 2)",
        walls[2],
        "one worker for every check",
        walls[1],
        "s",
        note=f"{taken // 2} checks on the second worker; target: <= 30 s; scores {scores[2]:g} and {scores[1]:g}",
    )


CLI = "import sys; from grader.cli import main; sys.exit(main(sys.argv[1:]))"


def _command_line(root: Path, repeat: int) -> Row:
    """`grader grade` on A1 with hidden checks, the whole process, against the same process importing PyTorch
    before it starts the worker (as it did before grader.judge.opening): the two imports one after the other."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["grade", str(root), "--assignment", "a1_knn", "--hidden", "--out", tmp]
        times: dict[str, list[float]] = {"now": [], "after": []}
        for i in range(repeat + 1):  # alternating; the first pair warms the caches
            for how, code in (("now", CLI), ("after", "import torch; " + CLI)):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, cwd=tmp)
                if i:
                    times[how].append(time.perf_counter() - t0)
    return Row(
        "sandbox",
        "`grader grade -a a1_knn --hidden`, whole process",
        statistics.median(times["now"]),
        "the same, the judge importing PyTorch first",
        statistics.median(times["after"]),
        "s",
        note="the worker starts before the judge imports PyTorch: their imports run side by side",
    )


def _guard(root: Path, mode: str) -> list[Row]:
    """The reference's A1 to A3, public and hidden checks, graded with the guard as it runs (lazy), with the guard
    watching the operators under every call (eager, as before), and with no guard (the baseline), alternating.
    Target: A1 to A3 in at most 30 s with every protection on."""
    from unittest import mock

    from grader.judge import opening, runner

    def watching(how: str):
        real = opening.sandbox_config
        return mock.patch.object(opening, "sandbox_config", lambda *a, **k: replace(real(*a, **k), guard=how))

    total = {"lazy": 0.0, "eager": 0.0, "off": 0.0}
    scores = dict.fromkeys(total, 0.0)
    for name in ("a1_knn", "a2_linear", "a3_networks"):
        for how in total:
            t0 = time.perf_counter()
            with watching(how):
                result = runner.grade(root, name, device="cpu", hidden=True, isolation=mode)
            total[how] += time.perf_counter() - t0
            scores[how] += result.score
    rows = [
        Row(
            "sandbox",
            f"grading A1 to A3, hidden, {mode}, guard (wall)",
            total["lazy"],
            "the same, no guard",
            total["off"],
            "s",
            note=f"target: <= 30 s in all; scores {scores['lazy']:g} and {scores['off']:g}",
        ),
        Row(
            "sandbox",
            "  the guard watching every call (before)",
            total["eager"],
            "the same, no guard",
            total["off"],
            "s",
            note=f"score {scores['eager']:g}",
        ),
    ]
    return rows


def _ahead(root: Path, mode: str) -> Row:
    """A1 to A3, hidden, as `grader grade` grades them (each worker started while the assignment before it is
    graded: grader.judge.runner.Ahead) against the same one after the other, each worker started by its own
    grading; the two runs back to back, in both orders, so that the machine's drift weighs on both alike."""
    from grader.judge import runner

    names = ["a1_knn", "a2_linear", "a3_networks"]
    walls: dict[str, float] = {"ahead": 0.0, "apart": 0.0}
    scores: dict[str, float] = {"ahead": 0.0, "apart": 0.0}
    for order in (("ahead", "apart"), ("apart", "ahead")):
        for how in order:
            t0 = time.perf_counter()
            if how == "ahead":
                with runner.Ahead(root, names, device="cpu", hidden=True, isolation=mode) as ahead:
                    scores[how] += sum(ahead.grade(name).score for name in names)
            else:
                for name in names:
                    scores[how] += runner.grade(root, name, device="cpu", hidden=True, isolation=mode).score
            walls[how] += (time.perf_counter() - t0) / 2
    return Row(
        "sandbox",
        f"grading A1 to A3, hidden, {mode}, as `grader grade` does (wall, mean of 2)",
        walls["ahead"],
        "each worker started by its own grading",
        walls["apart"],
        "s",
        note=f"each worker started while the one before is graded; target: <= 30 s; scores {scores['ahead'] / 2:g}"
        f" and {scores['apart'] / 2:g}",
    )


def _walls(root: Path, mode: str, repeat: int) -> list[Row]:
    """The worker's walls inside its process (the seccomp filter, the audit hook, the integrity check after each
    request): a worker's start and a full public grading of A1 to A3 with them against the same without them
    (SandboxConfig.walls, which only this bench turns off). Target: at most 10% more grading time."""
    from unittest import mock

    from grader.judge import opening, runner
    from grader.sandbox.host import Sandbox
    from grader.sandbox.isolation import SandboxConfig

    def without_walls():
        real = opening.sandbox_config
        return mock.patch.object(opening, "sandbox_config", lambda *a, **k: replace(real(*a, **k), walls=False))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pkg").mkdir()
        (Path(tmp) / "pkg" / "__init__.py").write_text("")

        def start(walls: bool) -> None:
            with Sandbox(SandboxConfig(root=Path(tmp), student_files=[], isolation=mode, walls=walls)) as sb:
                sb._ensure()

        rows.append(
            Row(
                "sandbox",
                f"start a worker ({mode}) with its walls",
                median_time(lambda: start(True), repeat),
                "the same without them",
                median_time(lambda: start(False), repeat),
                "s",
            )
        )
    total = {True: 0.0, False: 0.0}
    scores = {True: 0.0, False: 0.0}
    for name in ("a1_knn", "a2_linear", "a3_networks"):
        for walls in (True, False):  # alternating, so a busy machine slows both alike
            t0 = time.perf_counter()
            if walls:
                result = runner.grade(root, name, device="cpu", isolation=mode)
            else:
                with without_walls():
                    result = runner.grade(root, name, device="cpu", isolation=mode)
            total[walls] += time.perf_counter() - t0
            scores[walls] += result.score
    rows.append(
        Row(
            "sandbox",
            f"grading A1 to A3, public, {mode}, with the walls (wall)",
            total[True],
            "the same without them",
            total[False],
            "s",
            note=f"target: ratio <= 1.10; scores {scores[True]:g} and {scores[False]:g}",
        )
    )
    return rows
