"""End-to-end attacks on a grading run, as a student who has read this repository would try them: read the
reference or the hidden checks, kill the judge at import, leave processes behind to rewrite the results.

The static scan refuses a graded file that uses os, signal, subprocess or sys (modules the lesson never needs), so
the attacks that test the sandbox beneath it grade against a copy of the course whose manifest allows them
(`course_allowing`: `[rules] allowed_imports`): without that, the planted code would never run."""

import os
import shutil
import time
from pathlib import Path

import pytest

from grader.course import manifest
from grader.errors import GraderError
from grader.judge.runner import grade
from grader.sandbox.isolation import detect_isolation
from tests.conftest import ROOT, copy_submission, course_allowing, processes_with
from tests.grader.spy import sandbox_calls_naming

needs_bwrap = pytest.mark.skipif(detect_isolation().mode != "bwrap", reason="bubblewrap is not usable here")

# A knn.py that keeps nothing of its own: it looks for the instructor's reference wherever a student could guess
# it is (next to the grader's code, above the working folder, the usual checkouts) and runs it in its place.
SHIM = """
import os, glob
import grader
_here = os.path.dirname(os.path.abspath(grader.__file__))
_guesses = [os.path.join(_here, "..", "a1_knn", "knn.py"), *glob.glob("/work/*/a1_knn/knn.py"),
            *glob.glob("/autograder/source/a1_knn/knn.py"), os.path.join(os.getcwd(), "..", "a1_knn", "knn.py"),
            {reference!r}]
for _path in _guesses:
    try:
        with open(_path) as _f:
            _code = _f.read()
    except OSError:
        continue
    if "def compute_distances_no_loops" in _code and "NotImplementedError(\\"TODO" not in _code:
        exec(compile(_code, _path, "exec"))
        break
else:
    _path = None


def where_found():
    return _path
"""

READ_HIDDEN = """
def compute_distances_two_loops(x_train, x_test):
    texts = []
    for path in [{hidden!r}, "/autograder/source/assignments/a1_knn/hidden.py"]:
        try:
            texts.append(open(path).read())
        except OSError as e:
            texts.append(str(e))
    raise RuntimeError("\\n".join(texts))
"""

KILLER = """
import os, signal
try:
    os.kill(os.getppid(), signal.SIGKILL)
except OSError:
    pass
os.kill(-1, signal.SIGKILL)
"""

LINGER = """
import subprocess, sys
_code = "import time, sys\\nwhile True:\\n    time.sleep(0.05)\\n"
for _ in range(5):
    subprocess.Popen([sys.executable, "-c", _code, {marker!r}], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""


def knn_submission(tmp_path: Path, source: str) -> Path:
    sub = copy_submission(tmp_path / "sub")
    (sub / "a1_knn" / "knn.py").write_text(source)
    return sub


def knn_points(result) -> float:
    return sum(c.score for c in result.checks if c.part == "knn")


@needs_bwrap
def test_a_shim_cannot_find_the_reference(tmp_path):
    sub = knn_submission(tmp_path, SHIM.format(reference=str(ROOT / "a1_knn" / "knn.py")))
    result = grade(sub, "a1_knn", device="cpu", hidden=True, parts=["knn"])
    assert result.sandbox["isolation"]["mode"] == "bwrap"
    assert knn_points(result) == 0 and all(not c.passed for c in result.checks)


@pytest.mark.parametrize("isolation", ["none", pytest.param("bwrap", marks=needs_bwrap)])
def test_the_shim_finds_the_reference_only_without_the_sandbox(tmp_path, isolation):
    """The attack above is real: without OS isolation the same file finds the reference and runs it."""
    from grader.sandbox.host import Sandbox
    from grader.sandbox.isolation import SandboxConfig

    root = tmp_path / "kit"
    (root / "a1_knn").mkdir(parents=True)
    (root / "a1_knn" / "__init__.py").write_text("")
    shutil.copy(ROOT / "a1_knn" / "given.py", root / "a1_knn" / "given.py")  # kit code the reference imports
    (root / "a1_knn" / "shim.py").write_text(SHIM.format(reference=str(ROOT / "a1_knn" / "knn.py")))
    with Sandbox(
        SandboxConfig(root=root, student_files=["a1_knn/shim.py"], isolation=isolation, hide=[str(ROOT)])
    ) as sb:
        found = sb.call("a1_knn.shim", "where_found").value
    assert (found is not None) == (isolation == "none")


@needs_bwrap
def test_hidden_checks_do_not_reach_feedback(tmp_path):
    source = (ROOT / "a1_knn" / "knn.py").read_text() + READ_HIDDEN.format(
        hidden=str(ROOT / "assignments" / "a1_knn" / "hidden.py")
    )
    result = grade(knn_submission(tmp_path, source), "a1_knn", device="cpu", hidden=True, parts=["knn"])
    two_loops = [c for c in result.checks if c.function == "compute_distances_two_loops"]
    assert two_loops and all(not c.passed for c in two_loops)
    text = "\n".join(c.output for c in result.checks)
    assert "No such file" in text
    assert "variant(" not in text and "import" not in "\n".join(c.output for c in two_loops).split("RuntimeError")[-1]


@needs_bwrap
def test_code_that_kills_everything_at_import_cannot_stop_the_judge(tmp_path):
    sub = knn_submission(tmp_path, (ROOT / "a1_knn" / "knn.py").read_text() + KILLER)
    course = course_allowing(tmp_path / "course", "a1_knn", ["os", "signal"])  # else refused before it runs
    result = grade(sub, "a1_knn", device="cpu", hidden=True, kit=course)
    knn = [c for c in result.checks if c.part == "knn"]
    assert knn and all(not c.passed for c in knn)
    assert "could not be imported" in knn[0].output
    # the other file of the assignment is graded as usual: the judge lived on
    assert sum(c.score for c in result.checks if c.part == "warmup") == pytest.approx(60)


@needs_bwrap
def test_a_submission_cannot_start_processes_that_outlive_the_grading(tmp_path):
    """Processes started at import (in sessions of their own): the kernel's filter (grader.sandbox.syscalls) stops
    the first one, so the file cannot be imported and earns nothing, with feedback that says why; none of them
    outlives the grading."""
    marker = f"lingering-{os.getpid()}-{time.time_ns()}"
    sub = knn_submission(tmp_path, (ROOT / "a1_knn" / "knn.py").read_text() + LINGER.format(marker=marker))
    course = course_allowing(tmp_path / "course", "a1_knn", ["subprocess", "sys"])  # else refused before it runs
    result = grade(sub, "a1_knn", device="cpu", hidden=True, parts=["knn"], kit=course)
    assert knn_points(result) == 0
    assert "starts a process" in result.checks[0].output or "start a process" in result.checks[0].output
    assert processes_with(marker) == []


def test_hidden_checks_are_refused_without_isolation(tmp_path):
    sub = copy_submission(tmp_path / "sub")
    with pytest.raises(GraderError, match="without an OS sandbox.*bubblewrap.*--allow-weak-sandbox"):
        grade(sub, "a1_knn", device="cpu", hidden=True, parts=["knn"], isolation="none")
    result = grade(sub, "a1_knn", device="cpu", hidden=True, parts=["knn"], isolation="none", allow_weak_sandbox=True)
    assert result.sandbox["isolation"]["mode"] == "none"
    assert knn_points(result) == pytest.approx(40)


@pytest.mark.parametrize("assignment", manifest.available(ROOT))
def test_no_check_passes_the_test_labels_into_the_sandbox(assignment):
    m = manifest.load(assignment, ROOT)
    for f in [*m.checks, *m.hidden_checks]:
        assert sandbox_calls_naming((m.dir / f).read_text(), {"y_test"}) == [], f
    assert sandbox_calls_naming("ctx.put({'y': data['y_test']})\ncall(ctx, 'f', y_test)", {"y_test"}) == [1, 2]
