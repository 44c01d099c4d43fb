"""Gradescope's defaults: each assignment's reference (a zip with its notebooks, hidden checks, --report) graded by
the bundle's run_autograder on an emulated /autograder (tests/emulation/gradescope.py) inside a cgroup of 0.5 CPU
and 768 MB, against the same run with no limits as the baseline: wall time against the 600 s default, the cgroup's
peak against 768 MB, and each process's own peak resident set (judge, worker, notebook kernel).

The image is built once by the bundle's own setup.sh (minutes; $GRADER_TEST_IMAGE reuses one). Where no cgroup can
be made (not root, no writable hierarchy) the limited rows are left out and a note says why."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.common import Row

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = ("a1_knn", "a2_linear", "a3_networks")


def _torch_build(image) -> str:
    py = image.root / "venv" / "bin" / "python"
    out = subprocess.run([str(py), "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def run(repeat: int = 1) -> list[Row]:
    from grader.course import manifest as manifests
    from grader.kit.release import release
    from tests.emulation import cgroups
    from tests.emulation.gradescope import CPUS, MEMORY_MB, TIMEOUT, Image
    from tests.platforms.test_gradescope import reference_files, zipped

    if os.geteuid() != 0:
        return [Row("gs", "Gradescope emulation", float("nan"), "", None, "s", note="skipped: setup.sh needs root")]
    why_not = cgroups.available()
    keep = os.environ.get("GRADER_TEST_IMAGE")
    work = Path(tempfile.mkdtemp(prefix="bench-gradescope-", dir="/var/tmp"))
    work.chmod(0o755)  # as an image's /autograder: every user reaches its Python
    rows: list[Row] = []
    try:
        paths = release(ROOT, work / "release")
        root = Path(keep) if keep else work / "autograder"
        for name in ASSIGNMENTS:
            image = Image(root, paths[f"autograder {name}"])
            files = {f"{name}_submission.zip": zipped(reference_files(manifests.load(name, ROOT)))}
            free = image.run(files, cpus=None, memory_mb=None)
            build = _torch_build(image)
            rows.append(Row("gs", f"{name}: run_autograder, no limits (wall)", free.seconds, "", None, "s", note=build))
            if why_not:
                rows.append(Row("gs", f"{name}: 0.5 CPU, 768 MB", float("nan"), "", None, "s", note=why_not))
                continue
            limited = image.run(files, cpus=CPUS, memory_mb=MEMORY_MB)
            score = limited.results.get("score") if limited.results else None
            free_score = free.results.get("score") if free.results else None
            # the worker is the kernel's first victim (oom_score_adj): a run short of memory still ends with a
            # results.json, with the checks whose worker was killed failed, so the score tells
            ok = limited.returncode == 0 and limited.oom_kills == 0 and score is not None and score == free_score
            rows.append(
                Row(
                    "gs",
                    f"{name}: 0.5 CPU, 768 MB (wall)",
                    limited.seconds,
                    "no limits (wall)",
                    free.seconds,
                    "s",
                    note=f"{'ok' if ok else 'FAILED'}: score {score} (no limits: {free_score}); of the "
                    f"{TIMEOUT:.0f} s default: {100 * limited.seconds / TIMEOUT:.0f}%",
                )
            )
            rows.append(
                Row(
                    "gs",
                    f"{name}: cgroup peak (page cache included)",
                    limited.peak_mb,
                    "Gradescope's default",
                    float(MEMORY_MB),
                    "MB",
                    note=f"{limited.oom_kills} killed for memory",
                )
            )
            extra = (free.results or {}).get("extra_data", {})
            peaks = dict(extra.get("sandbox", {}).get("memory_peak_rss_mb", {}))
            kernels = [n.get("kernel_peak_rss_mb", 0) for n in extra.get("notebooks", {}).get("notebooks", [])]
            peaks["kernel"] = max(kernels, default=0.0)
            for who in ("judge", "worker", "kernel"):
                if who in peaks:
                    rows.append(Row("gs", f"  {name}: {who} peak resident set", peaks[who], "", None, "MB", note=build))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows
