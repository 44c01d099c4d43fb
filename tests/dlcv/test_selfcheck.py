"""The notebooks' self-check prints what `make grade` prints in a terminal, word for word: a student who sees a
failure in the notebook and then runs the grader reads the same text (no seed line, no other layout)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from dlcv import selfcheck
from tests.conftest import ROOT, copy_submission, replace_function


def test_terminal_table_stops_before_the_sandbox_line():
    out = "A1  (data set: digits)\n  1.1 a check   0/1 FAIL\n          feedback\nSandbox: bwrap\nReports: x\n"
    assert selfcheck.terminal_table(out) == "A1  (data set: digits)\n  1.1 a check   0/1 FAIL\n          feedback"
    assert selfcheck.terminal_table("no sandbox line\n") == "no sandbox line"


@pytest.mark.slow
def test_self_check_prints_the_terminal_table(tmp_path, monkeypatch, capsys):
    course = copy_submission(tmp_path / "course")
    for folder in ("grader", "dlcv"):
        shutil.copytree(ROOT / folder, course / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "assignments" / "a1_knn", course / "assignments" / "a1_knn")
    replace_function(
        course / "a1_knn" / "knn.py",
        "compute_distances_two_loops",
        "def compute_distances_two_loops(x_train, x_test):\n"
        "    return torch.zeros(x_train.shape[0], x_test.shape[0])\n",
    )
    monkeypatch.chdir(course)
    results = selfcheck.check("a1_knn", "knn")
    shown = capsys.readouterr().out
    assert any(t["status"] == "failed" for t in results["tests"])
    assert any("(seed " in t["output"] for t in results["tests"])  # Gradescope's results carry the seed ...

    grade = subprocess.run(
        [sys.executable, "-m", "grader", "--course", str(course), "grade", str(course), "-a", "a1_knn",
         "--part", "knn", "--no-color", "--out", str(tmp_path / "out"),
         "--seed-secret", results["extra_data"]["seed_secret"]],  # the same inputs as the self-check's run
        capture_output=True, text=True, cwd=course,
    )  # fmt: skip
    assert grade.returncode in (0, 1), grade.stderr
    terminal = grade.stdout.split("\nSandbox: ")[0]
    assert "FAIL" in terminal and "compute_distances_two_loops" in terminal
    assert "(seed " not in shown  # ... the terminal's table does not, and neither does the notebook
    # the same lines, but for the run's wall time on the total line
    strip = lambda text: [line.split("  (")[0] if line.startswith("Total:") else line for line in text.splitlines()]  # noqa: E731
    assert strip(shown.rstrip("\n")) == strip(terminal)
