"""Grading A1 end to end: the reference, broken submissions, and submissions that attack the grader."""

import json
import subprocess
import sys
import time

import pytest

from grader import manifest
from grader.runner import grade
from tests.conftest import ROOT, copy_submission, replace_function
from tests.grader.gradescope_schema import validate
from tests.grader.spy import SandboxSpy

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
    assert result.dataset == "digits"       # the data set is recorded (no CIFAR-10 here)
    assert_the_test_split_stays_with_the_judge(spy)


def assert_the_test_split_stays_with_the_judge(spy):
    """No request into the sandbox holds a test label (nor a run of them); test images go only to
    KnnClassifier.predict, the one place where the student must label them (the judge scores the labels)."""
    from dlcv.data import load_dataset
    x_train, y_train, x_test, y_test, _ = load_dataset(None)
    assert spy.requests > 40 and any(what == "call predict" for what, _ in spy.sent)    # the spy saw the run
    assert spy.label_leaks(y_test) == []
    assert spy.label_leaks(y_train) != []           # it would see labels: the training labels do cross
    sent_images = spy.row_leaks(x_test, known=x_train)
    assert sent_images and set(sent_images) == {"call predict"}


BREAKS = {
    "count_tensor_elements": ("warmup", '''
        def count_tensor_elements(x):
            return int(x.shape[0])
        ''', "count_tensor_elements"),
    "compute_distances_no_loops": ("knn", '''
        def compute_distances_no_loops(x_train, x_test):
            a = x_train.reshape(x_train.shape[0], -1)
            b = x_test.reshape(x_test.shape[0], -1)
            return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.t()).sqrt()
        ''', "squared"),
    "predict_labels": ("knn", '''
        def predict_labels(dists, y_train, k=1):
            idx = dists.topk(k, dim=0, largest=False).indices
            votes = y_train[idx]
            counts = torch.stack([(votes == c).sum(0) for c in range(int(y_train.max()) + 1)])
            return (counts.shape[0] - 1 - counts.flip(0).argmax(0)).to(torch.int64)   # ties to the LARGEST label
        ''', "tie"),
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
    replace_function(sub / "a1_knn/knn.py", "compute_distances_no_loops", '''
        def compute_distances_no_loops(x_train, x_test):
            a = x_train.reshape(x_train.shape[0], -1)
            b = x_test.reshape(x_test.shape[0], -1)
            return torch.cdist(a, b) ** 2
        ''')
    result = grade(sub, "a1_knn", device="cpu", parts=["knn"])
    assert failed(result) == {"compute_distances_no_loops"}
    out = [c.output for c in result.checks if not c.passed]
    assert all("torch.cdist" in o and "may not use" in o for o in out)


def test_a_forbidden_call_hidden_behind_getattr_is_caught_at_run_time(tmp_path):
    sub = copy_submission(tmp_path)
    replace_function(sub / "a1_knn/knn.py", "compute_distances_no_loops", '''
        def compute_distances_no_loops(x_train, x_test):
            fn = getattr(torch, "cdist")     # a literal name is allowed, and out of the static scan's sight
            a = x_train.reshape(x_train.shape[0], -1)
            b = x_test.reshape(x_test.shape[0], -1)
            return fn(a, b) ** 2
        ''')
    result = grade(sub, "a1_knn", device="cpu", parts=["knn"])
    assert failed(result) == {"compute_distances_no_loops"}
    assert "called torch.cdist" in next(c.output for c in result.checks if not c.passed)


def test_monkeypatching_torch_or_the_grader_cannot_raise_the_score(tmp_path):
    sub = copy_submission(tmp_path)
    knn = sub / "a1_knn/knn.py"
    knn.write_text(knn.read_text() + '''

# an attempt to fool the judge from inside the submission
import grader, grader.checks
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.cdist = lambda a, b, *r, **k: a.new_zeros(a.shape[0], b.shape[0])
grader.checks.rel_error = lambda *a, **k: 0.0
grader.checks.Ctx.expect_tensor = lambda *a, **k: None
''')
    replace_function(knn, "compute_distances_two_loops", '''
        def compute_distances_two_loops(x_train, x_test):
            return x_train.new_zeros(x_train.shape[0], x_test.shape[0])
        ''')
    result = grade(sub, "a1_knn", device="cpu", parts=["knn"])
    assert "compute_distances_two_loops" in failed(result)
    assert result.score <= 40 - POINTS["compute_distances_two_loops"] + 1e-9


ATTACKS = {
    "hang": ("def compute_distances_two_loops(x_train, x_test):\n    while True:\n        pass\n",
             "compute_distances_two_loops", "time limit"),
    "exit_at_import": ("import os\nos._exit(0)\n", None, "exit code 0"),
    "raise_at_import": ("raise RuntimeError('broken on purpose')\n", None, "broken on purpose"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_hostile_submissions_still_yield_complete_results(tmp_path, attack):
    code, function, words = ATTACKS[attack]
    sub = copy_submission(tmp_path)
    knn = sub / "a1_knn/knn.py"
    if function:
        replace_function(knn, function, code)
    else:
        knn.write_text(knn.read_text() + "\n" + code)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "grader", "grade", str(sub), "-a", "a1_knn", "--device", "cpu",
                           "--timeout", "3", "--out", str(out), "--no-color"], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert time.perf_counter() - t0 < 300
    results = json.loads((out / "results.json").read_text())
    validate(results)
    assert len(results["tests"]) == len(grade_ids())
    knn_tests = [t for t in results["tests"] if ".knn." in t["name"]]
    warmup = [t for t in results["tests"] if ".warmup." in t["name"]]
    assert all(t["status"] == "passed" for t in warmup)         # the other file is graded as usual
    if function:
        broken = [t for t in knn_tests if "distances_two_loops" in t["name"]]
        assert broken and all(t["status"] == "failed" and words in t["output"] for t in broken)
    else:
        assert all(t["status"] == "failed" and words in t["output"] for t in knn_tests)
    assert "Traceback" not in proc.stdout
    assert (out / "junit.xml").is_file() and (out / "summary.md").is_file()


def grade_ids():
    from grader.runner import load_checks
    return [s.id for s in load_checks(A1, hidden=False)]
