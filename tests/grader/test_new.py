"""`grader new NAME`: a new assignment's skeleton, written into a copy of the course, works as generated: the
reference scores 100 public and hidden, the kit's stub 0, its notebook runs top to bottom on the reference with its
self-check passing, and its own generated tests pass when pytest runs them. Nothing is overwritten, and a bad name is
refused with what a good one looks like."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from grader.errors import GraderError
from grader.judge.runner import grade
from grader.kit.new import new_assignment
from grader.kit.release import stub_source
from tests.conftest import ROOT, copy_submission

NAME = "a9_demo"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    c = tmp_path_factory.mktemp("course")
    for d in ("grader", "dlcv", "assignments/a1_knn", "a1_knn"):
        shutil.copytree(ROOT / d, c / d, ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("pyproject.toml", "conftest.py", "tests/__init__.py", "tests/conftest.py"):
        (c / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, c / f)
    written = new_assignment(c, NAME, "A9: a demo")
    assert {p.relative_to(c).as_posix() for p in written} >= {
        f"{NAME}/layers.py",
        f"assignments/{NAME}/assignment.toml",
        f"assignments/{NAME}/checks.py",
        f"assignments/{NAME}/hidden.py",
        f"assignments/{NAME}/oracles.py",
        f"notebooks/{NAME}.ipynb",
        f"tests/{NAME}/test_{NAME}.py",
    }
    return c


@pytest.mark.parametrize("hidden", [False, True], ids=["public", "hidden"])
def test_the_skeletons_reference_scores_full_marks(course, hidden):
    result = grade(course, NAME, device="cpu", hidden=hidden, kit=course)
    assert result.score == result.max_score == 100, [c.output for c in result.checks if not c.passed]
    assert len(result.checks) == (2 if hidden else 1)


def test_the_skeletons_kit_scores_nothing(course, tmp_path):
    sub = copy_submission(tmp_path, packages=())
    shutil.copytree(course / NAME, sub / NAME)
    layers = sub / NAME / "layers.py"
    layers.write_text(stub_source(layers.read_text(), f"{NAME}/layers.py")[0])
    result = grade(sub, NAME, device="cpu", kit=course)
    assert result.score == 0 and "affine_forward is not implemented yet" in result.checks[0].output


def test_the_skeleton_states_its_rules_and_what_is_graded_by_hand(course):
    doc = (course / NAME / "layers.py").read_text()
    assert "Rules the grader enforces in this file" in doc and "torch.nn.functional.linear: it is the layer" in doc
    nb = nbformat.read(str(course / "notebooks" / f"{NAME}.ipynb"), as_version=4)
    assert "**Graded by hand.**" in nb.cells[0].source and "1 inline question" in nb.cells[0].source
    assert any(f"question:{NAME}_bias" in c.metadata.get("tags", []) for c in nb.cells)
    assert any(f'dlcv.selfcheck.check("{NAME}", "layers")' in c.source for c in nb.cells)


@pytest.mark.slow
def test_the_skeletons_notebook_runs_and_its_self_check_passes(course):
    from nbclient import NotebookClient

    path = course / "notebooks" / f"{NAME}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Correct: True" in text and "Total: 100 / 100" in text and "FAIL" not in text, text


@pytest.mark.slow
def test_the_skeletons_own_tests_pass(course):
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--assignment={NAME}", f"tests/{NAME}"],
        cwd=course,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0 and "4 passed" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]


def test_nothing_is_overwritten_and_a_bad_name_is_refused(course, tmp_path):
    before = (course / NAME / "layers.py").read_text()
    with pytest.raises(GraderError, match="already exists"):
        new_assignment(course, NAME)
    assert (course / NAME / "layers.py").read_text() == before
    (course / "b2_taken").mkdir()  # a folder of the same name, not an assignment: still nothing written
    (course / "b2_taken" / "__init__.py").write_text("")
    with pytest.raises(GraderError, match="b2_taken/__init__.py already exists; nothing was written"):
        new_assignment(course, "b2_taken")
    assert not (course / "assignments" / "b2_taken").exists()
    for bad in ("A4", "4rnn", "rnn-4", "class", "x"):
        with pytest.raises(GraderError, match="expected a lower-case Python package name"):
            new_assignment(course, bad)
