"""The cost of isolation: starting a worker in each sandbox against a bare `python -c "import torch"`, and the
whole grading of A1 to A3 under bubblewrap against the same grading with no OS isolation."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
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
    return rows
