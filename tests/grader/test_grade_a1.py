"""Grading A1 end to end: the reference, broken submissions, and submissions that attack the grader."""

import json
import subprocess
import sys
import time

import pytest
import torch

from grader.course import manifest
from grader.judge.checks import CheckFailed
from grader.judge.runner import grade
from tests.conftest import ROOT, copy_submission, course_allowing, replace_function
from tests.grader.gradescope_schema import validate
from tests.grader.spy import SandboxSpy

pytestmark = pytest.mark.assignment("a1_knn")  # make test-assignment A=a1_knn

A1 = manifest.load("a1_knn", ROOT)
POINTS = {f: pts for p in A1.parts for f, pts in p.functions.items()}


def failed(result):
    return {c.function for c in result.checks if not c.passed}


@pytest.mark.parametrize("hidden", [False, True], ids=["public", "hidden"])
def test_the_reference_scores_full_marks(hidden, monkeypatch):
    spy = SandboxSpy(monkeypatch)
    result = grade(ROOT, "a1_knn", device="cpu", hidden=hidden)
    assert [c.output for c in result.checks if not c.passed] == []
    assert result.score == pytest.approx(100) and result.max_score == pytest.approx(100)
    assert any(c.hidden for c in result.checks) == hidden
    assert result.dataset == "digits"  # the data set is recorded (no CIFAR-10 here)
    assert_the_test_split_stays_with_the_judge(spy)


def assert_the_test_split_stays_with_the_judge(spy):
    """No request into the sandbox holds a test label (nor a run of them); test images go only to
    KnnClassifier.predict, the one place where the student must label them (the judge scores the labels)."""
    from dlcv.data import load_dataset

    x_train, y_train, x_test, y_test, _ = load_dataset(None)
    assert spy.requests > 40 and any(what == "call predict" for what, _ in spy.sent)  # the spy saw the run
    assert spy.label_leaks(y_test) == []
    assert spy.label_leaks(y_train) != []  # it would see labels: the training labels do cross
    sent_images = spy.row_leaks(x_test, known=x_train)
    assert sent_images and set(sent_images) == {"call predict"}


BREAKS = {
    "count_tensor_elements": (
        "warmup",
        """
        def count_tensor_elements(x):
            return int(x.shape[0])
        """,
        "Likely bug: you returned the size of the first dimension only",
    ),  # proven on two shapes
    "compute_distances_no_loops": (
        "knn",
        """
        def compute_distances_no_loops(x_train, x_test):
            a = x_train.reshape(x_train.shape[0], -1)
            b = x_test.reshape(x_test.shape[0], -1)
            return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.t()).sqrt()
        """,
        "squared",
    ),
    "predict_labels": (
        "knn",
        """
        def predict_labels(dists, y_train, k=1):
            idx = dists.topk(k, dim=0, largest=False).indices
            votes = y_train[idx]
            counts = torch.stack([(votes == c).sum(0) for c in range(int(y_train.max()) + 1)])
            return (counts.shape[0] - 1 - counts.flip(0).argmax(0)).to(torch.int64)   # ties to the LARGEST label
        """,
        "tie",
    ),
    "knn_cross_validate": (
        "knn",
        """
        def knn_cross_validate(x_train, y_train, num_folds=5, k_choices=None):
            k_choices = [1, 3, 5, 8, 10, 12, 15, 20, 50, 100] if k_choices is None else k_choices
            x_folds, y_folds = torch.chunk(x_train, num_folds), torch.chunk(y_train, num_folds)
            out = {k: [] for k in k_choices}
            for i in range(len(x_folds)):
                rest = KnnClassifier(torch.cat(x_folds[:i] + x_folds[i + 1:]), torch.cat(y_folds[:i] + y_folds[i + 1:]))
                for k in k_choices:
                    out[k].append(rest.check_accuracy(x_folds[i], y_folds[i], k=k, quiet=True).item())
            return out
        """,
        "AttributeError",
    ),  # raised in its own lines (check_accuracy returns a float): never excused
}


@pytest.mark.parametrize("function", sorted(BREAKS))
def test_one_wrong_function_loses_exactly_its_points(tmp_path, function):
    part, source, words = BREAKS[function]
    sub = copy_submission(tmp_path)
    replace_function(sub / A1.part_of(function).file, function, source)
    result = grade(sub, "a1_knn", device="cpu", parts=[part])
    part_points = next(p.points for p in A1.parts if p.name == part)
    assert failed(result) == {function}
    assert result.score == pytest.approx(part_points - POINTS[function])
    feedback = "\n".join(c.output for c in result.checks if not c.passed)
    assert words.lower() in feedback.lower()


def test_a_no_loop_distance_that_calls_cdist_is_flagged(tmp_path):
    sub = copy_submission(tmp_path)
    replace_function(
        sub / "a1_knn/knn.py",
        "compute_distances_no_loops",
        """
        def compute_distances_no_loops(x_train, x_test):
            a = x_train.reshape(x_train.shape[0], -1)
            b = x_test.reshape(x_test.shape[0], -1)
            return torch.cdist(a, b) ** 2
        """,
    )
    result = grade(sub, "a1_knn", device="cpu", parts=["knn"])
    assert failed(result) == {"compute_distances_no_loops"}
    out = [c.output for c in result.checks if not c.passed]
    assert all("torch.cdist" in o and "may not use" in o for o in out)


def test_a_forbidden_call_hidden_behind_getattr_is_caught_at_run_time(tmp_path):
    sub = copy_submission(tmp_path)
    replace_function(
        sub / "a1_knn/knn.py",
        "compute_distances_no_loops",
        """
        def compute_distances_no_loops(x_train, x_test):
            fn = getattr(torch, "cdist")     # a literal name is allowed, and out of the static scan's sight
            a = x_train.reshape(x_train.shape[0], -1)
            b = x_test.reshape(x_test.shape[0], -1)
            return fn(a, b) ** 2
        """,
    )
    result = grade(sub, "a1_knn", device="cpu", parts=["knn"])
    assert failed(result) == {"compute_distances_no_loops"}
    assert "called torch.cdist" in next(c.output for c in result.checks if not c.passed)


def test_monkeypatching_torch_or_the_grader_cannot_raise_the_score(tmp_path):
    sub = copy_submission(tmp_path)
    knn = sub / "a1_knn/knn.py"
    knn.write_text(
        knn.read_text()
        + """

# an attempt to fool the judge from inside the submission
import grader, grader.judge.checks
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.cdist = lambda a, b, *r, **k: a.new_zeros(a.shape[0], b.shape[0])
grader.judge.checks.rel_error = lambda *a, **k: 0.0
grader.judge.checks.Ctx.expect_tensor = lambda *a, **k: None
"""
    )
    replace_function(
        knn,
        "compute_distances_two_loops",
        """
        def compute_distances_two_loops(x_train, x_test):
            return x_train.new_zeros(x_train.shape[0], x_test.shape[0])
        """,
    )
    result = grade(sub, "a1_knn", device="cpu", parts=["knn"])
    assert "compute_distances_two_loops" in failed(result)
    assert result.score <= 40 - POINTS["compute_distances_two_loops"] + 1e-9


ATTACKS = {
    "hang": (
        "def compute_distances_two_loops(x_train, x_test):\n    while True:\n        pass\n",
        "compute_distances_two_loops",
        "time limit",
    ),
    "exit_at_import": ("import os\nos._exit(0)\n", None, "exit code 0"),
    "raise_at_import": ("raise RuntimeError('broken on purpose')\n", None, "broken on purpose"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_hostile_submissions_still_yield_complete_results(tmp_path, attack):
    """Graded against a copy of the course that allows `os` (`course_allowing`): the static scan refuses it in the
    real course, and the exit at import must reach the sandbox to be tested."""
    code, function, words = ATTACKS[attack]
    sub = copy_submission(tmp_path / "sub")
    knn = sub / "a1_knn/knn.py"
    if function:
        replace_function(knn, function, code)
    else:
        knn.write_text(knn.read_text() + "\n" + code)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader",
            "--course",
            str(course_allowing(tmp_path / "course", "a1_knn", ["os"])),  # `import os` would be refused unrun
            "grade",
            str(sub),
            "-a",
            "a1_knn",
            "--device",
            "cpu",
            "--timeout",
            "3",
            "--out",
            str(out),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert time.perf_counter() - t0 < 300
    results = json.loads((out / "results.json").read_text())
    validate(results)
    assert len(results["tests"]) == len(grade_ids())
    knn_tests = [t for t in results["tests"] if ".knn." in t["name"]]
    warmup = [t for t in results["tests"] if ".warmup." in t["name"]]
    assert all(t["status"] == "passed" for t in warmup)  # the other file is graded as usual
    if function:
        broken = [t for t in knn_tests if "distances_two_loops" in t["name"]]
        assert broken and all(t["status"] == "failed" and words in t["output"] for t in broken)
    else:
        assert all(t["status"] == "failed" and words in t["output"] for t in knn_tests)
    assert "Traceback" not in proc.stdout
    assert (out / "junit.xml").is_file() and (out / "summary.md").is_file()


def grade_ids():
    from grader.judge.loading import load_checks

    return [s.id for s in load_checks(A1, hidden=False)]


# ---- fairness: correct code in the idioms students use passes; blame lands on the function at fault ----------------

FAIR = {  # (file, function): source. Each was refused before: loops read in the body only, a whole-torch.nn ban
    ("a1_knn/pytorch101.py", "batched_matrix_multiply"): """
        def _products(x, y):
            return torch.stack([x[i] @ y[i] for i in range(x.shape[0])])


        def batched_matrix_multiply(x, y, use_loop=True):
            if not use_loop:
                return torch.bmm(x, y)
            return _products(x, y)            # the loop the lesson asks for, in a helper
        """,
    ("a1_knn/knn.py", "compute_distances_one_loop"): """
        def _columns(a, b):
            return torch.stack([((a - b[j]) ** 2).sum(dim=1) for j in range(b.shape[0])], dim=1)


        def compute_distances_one_loop(x_train, x_test):
            return _columns(x_train.reshape(x_train.shape[0], -1), x_test.reshape(x_test.shape[0], -1))
        """,
    ("a1_knn/knn.py", "compute_distances_no_loops"): """
        import torch.nn.functional as F


        def compute_distances_no_loops(x_train, x_test):
            a = x_train.reshape(x_train.shape[0], -1)
            b = x_test.reshape(x_test.shape[0], -1)
            d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.t()
            return F.relu(d)                  # rounding can make a distance slightly negative: torch.nn is not banned
        """,
}


def test_loops_in_helpers_and_torch_nn_utilities_are_accepted(tmp_path):
    sub = copy_submission(tmp_path)
    for (file, function), source in FAIR.items():
        replace_function(sub / file, function, source)
    result = grade(sub, "a1_knn", device="cpu")
    assert [c.output for c in result.checks if not c.passed] == []
    assert result.score == pytest.approx(100)


UNFAIR = {  # function: (source, words its feedback has, words it must not have)
    "count_tensor_elements": (
        """
        def count_tensor_elements(x):
            if 0 in x.shape:                  # wrong for empty tensors only: 3 for shape (2, 0, 3)
                return x.shape[-1]
            n = 1
            for s in x.shape:
                n *= s
            return n
        """,
        "shape (2, 0, 3): expected 0, found 3",
        "number of dimensions",
    ),
    "batched_matrix_multiply": (
        """
        def _products(x, y):
            return torch.stack([x[i] @ y[i] for i in range(x.shape[0])])


        def batched_matrix_multiply(x, y, use_loop=True):
            return _products(x, y)            # the same loop whatever use_loop says
        """,
        "in _products, which batched_matrix_multiply calls",
        "found no loop",
    ),
    "zero_row_min": (
        """
        def _zero(y, cols):
            for i, j in enumerate(cols.tolist()):
                y[i, j] = 0
            return y


        def zero_row_min(x):
            return _zero(x.clone(), x.argmin(dim=1))
        """,
        "in _zero, which zero_row_min calls",
        "Likely bug",
    ),
    "compute_distances_one_loop": (
        """
        def compute_distances_one_loop(x_train, x_test):
            a, b = x_train.reshape(x_train.shape[0], -1), x_test.reshape(x_test.shape[0], -1)
            return torch.stack([torch.linalg.vector_norm(a - b[j], dim=1) ** 2 for j in range(b.shape[0])], dim=1)
        """,
        "torch.linalg.vector_norm",
        "Likely bug",
    ),
}


def test_each_broken_function_loses_its_points_with_feedback_that_names_only_what_is_proven(tmp_path):
    sub = copy_submission(tmp_path)
    for function, (source, _, _) in UNFAIR.items():
        replace_function(sub / A1.part_of(function).file, function, source)
    result = grade(sub, "a1_knn", device="cpu")
    assert failed(result) == set(UNFAIR)
    # batched_matrix_multiply does loop when use_loop=True: it loses the points of its use_loop=False check only
    assert {c.id for c in result.checks if c.function == "batched_matrix_multiply" and not c.passed} == {
        "a1.warmup.batched_matrix_multiply_no_loop"
    }
    lost = sum(POINTS[f] for f in UNFAIR) - POINTS["batched_matrix_multiply"] / 2
    assert result.score == pytest.approx(100 - lost)
    for function, (_, words, not_words) in UNFAIR.items():
        feedback = "\n".join(c.output for c in result.checks if c.function == function and not c.passed)
        assert words in feedback and not_words not in feedback, (function, feedback)


def test_a_composite_keeps_its_points_when_only_a_block_it_calls_raises(tmp_path):
    """knn_cross_validate measures with KnnClassifier, whose predict raises: only KnnClassifier loses points. (A
    knn_cross_validate wrong in its own lines loses its own: see BREAKS.)"""
    sub = copy_submission(tmp_path)
    knn = sub / "a1_knn/knn.py"
    replace_function(
        knn,
        "KnnClassifier.predict",
        """
        def predict(self, x_test, k=1):
            raise RuntimeError("predict is broken on purpose")
        """,
    )
    replace_function(
        knn,
        "knn_cross_validate",
        """
        def knn_cross_validate(x_train, y_train, num_folds=5, k_choices=None):
            k_choices = [1, 3, 5, 8, 10, 12, 15, 20, 50, 100] if k_choices is None else k_choices
            x_folds, y_folds = torch.chunk(x_train, num_folds), torch.chunk(y_train, num_folds)
            out = {k: [] for k in k_choices}
            for i in range(len(x_folds)):
                rest = KnnClassifier(torch.cat(x_folds[:i] + x_folds[i + 1:]), torch.cat(y_folds[:i] + y_folds[i + 1:]))
                for k in k_choices:
                    out[k].append(rest.check_accuracy(x_folds[i], y_folds[i], k=k, quiet=True))
            return out
        """,
    )
    result = grade(sub, "a1_knn", device="cpu", parts=["knn"])
    assert failed(result) == {"KnnClassifier"}
    assert result.score == pytest.approx(40 - POINTS["KnnClassifier"])
    assert all("KnnClassifier" in c.output for c in result.checks if c.function == "knn_cross_validate")


def test_judge_ints_names_a_mistake_only_when_two_inputs_prove_it():
    checks = a1_checks()

    class Ctx:
        def fail(self, message, mistakes=()):
            raise CheckFailed(message, mistakes=mistakes)

    ndim = {"you returned the number of dimensions": [3, 3]}
    with pytest.raises(CheckFailed) as one:  # (3, 4, 5) right, (2, 0, 3) wrong: a coincidence of that shape
        checks.judge_ints(Ctx(), [("(3, 4, 5)", 60, 60), ("(2, 0, 3)", 3, 0)], ndim)
    assert "Likely bug" not in str(one.value) and "expected 0, found 3" in str(one.value) and not one.value.mistakes
    with pytest.raises(CheckFailed) as two:
        checks.judge_ints(Ctx(), [("(3, 4, 5)", 3, 60), ("(2, 0, 3)", 3, 0)], ndim)
    assert "2 of 2 answers are wrong" in str(two.value) and "number of dimensions" in str(two.value)
    assert two.value.mistakes == ["you returned the number of dimensions"]
    checks.judge_ints(Ctx(), [("(7,)", 7, 7)], ndim)
    with pytest.raises(CheckFailed, match="expected a Python int, found a tensor"):
        checks.judge_ints(Ctx(), [("(7,)", torch.tensor(7), 7)])


def a1_checks():
    """A1's checks module, as the grader loads it."""
    import sys

    from grader.judge.loading import load_checks

    return sys.modules[load_checks(A1, hidden=False)[0].body.__module__]


def test_distances_summed_over_every_dimension_are_named(tmp_path):
    sub = copy_submission(tmp_path)
    replace_function(
        sub / "a1_knn/knn.py",
        "compute_distances_one_loop",
        """
        def compute_distances_one_loop(x_train, x_test):
            dists = x_train.new_zeros(x_train.shape[0], x_test.shape[0])
            for j in range(x_test.shape[0]):
                dists[:, j] = ((x_train - x_test[j]) ** 2).sum()
            return dists
        """,
    )
    result = grade(sub, "a1_knn", device="cpu", parts=["knn"])
    assert failed(result) == {"compute_distances_one_loop"}
    feedback = "\n".join(c.output for c in result.checks if not c.passed)
    assert "Likely bug: you summed over every dimension (`.sum()` without `dim`)" in feedback, feedback
