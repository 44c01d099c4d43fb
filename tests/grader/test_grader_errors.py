"""A check that crashes is the course's error, never the student's: it is marked not judged, its points are held out
of the total (with a line saying so), no building block is put in the dock for it, the student reads no traceback
(hidden checks' code would show in one), and the staff get the error with the check file and line, in results.json,
in JUnit's own `error` element, and in `grader batch`'s review list instead of Canvas's import."""

from __future__ import annotations

import json
import re

import pytest

from grader.course import manifest
from grader.judge.runner import grade
from grader.reports import formats
from tests.conftest import ROOT, copy_submission, course_allowing, replace_function

A1 = manifest.load("a1_knn", ROOT)
POINTS = {f: pts for p in A1.parts for f, pts in p.functions.items()}


def crashing_course(tmp_path, doc: str):
    """A copy of the course whose A1 check with docstring `doc` raises KeyError right after it (the course's bug)."""
    course = course_allowing(tmp_path / "course", "a1_knn", [])
    path = course / "assignments" / "a1_knn" / "checks.py"
    text, head = path.read_text(), f'    """{doc}"""\n'
    assert text.count(head) == 1
    path.write_text(text.replace(head, head + '    table = {}\n    return table["pi"]  # a key its table lacks\n'))
    line = next(i for i, s in enumerate(path.read_text().splitlines(), 1) if 'return table["pi"]' in s)
    return course, line


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crash")
    course, line = crashing_course(tmp, "create_tensor_of_pi returns (M, N) float32 filled with 3.14")
    result = grade(copy_submission(tmp / "sub"), "a1_knn", device="cpu", parts=["warmup"], kit=course)
    return result, line


def test_a_crashed_check_holds_its_points_out_and_says_so(crashed):
    result, line = crashed
    c = next(c for c in result.checks if c.function == "create_tensor_of_pi")
    assert c.status == "error" and not c.passed
    assert (c.score, c.max_score, c.held_out) == (0.0, 0.0, POINTS["create_tensor_of_pi"])
    warmup = next(p for p in A1.parts if p.name == "warmup")
    assert result.max_score == pytest.approx(warmup.points - c.held_out)
    assert result.score == pytest.approx(result.max_score)  # everything else right: nothing lost for the crash
    assert any(f"their {c.held_out:g} point(s) are held out" in p and c.number in p for p in result.problems)
    # the student reads no traceback, no check code, not even the error's words
    assert "Traceback" not in c.output and "table" not in c.output and "KeyError" not in c.output
    assert "could not judge create_tensor_of_pi" in c.output and "held out of your total" in c.output
    # the staff get the error and where it happened
    assert c.grader_errors == [f"KeyError: 'pi' (at assignments/a1_knn/checks.py:{line} in create_tensor_of_pi)"]
    assert all(x.grader_errors == [] and x.status == "passed" for x in result.checks if x is not c)


def test_the_reports_show_a_crash_as_not_judged(crashed, tmp_path):
    result, _ = crashed
    gs = formats.gradescope(result)
    test = next(t for t in gs["tests"] if "create_tensor_of_pi" in t["name"])
    assert (test["status"], test["score"], test["max_score"]) == ("failed", 0, 0)  # Gradescope's two statuses
    said = next(c for c in gs["extra_data"]["checks"] if c["id"] == "a1.warmup.create_tensor_of_pi")
    assert said["held_out"] > 0 and said["grader_errors"][0].startswith("KeyError")
    xml = formats.junit(result)
    import xmlschema

    xmlschema.XMLSchema(str(ROOT / "tests" / "grader" / "JUnit.xsd")).validate(xml)
    assert re.search(r'<testsuite [^>]*failures="0"', xml) and re.search(r'<testsuite [^>]*errors="1"', xml)
    assert '<error message="The grader could not judge' in xml and 'type="grader error"' in xml
    assert "NOT JUDGED" in formats.table(result)


def test_a_crash_puts_no_block_in_the_dock(tmp_path):
    """KnnClassifier's check crashes while its block predict_labels is broken: no second judgement with the course's
    predict_labels, and no note blaming either function."""
    course, _ = crashing_course(tmp_path, "KnnClassifier reaches the accuracy target")
    sub = copy_submission(tmp_path / "sub")
    replace_function(
        sub / "a1_knn" / "knn.py",
        "predict_labels",
        "def predict_labels(dists, y_train, k=1):\n    return y_train.new_zeros(dists.shape[1])\n",
    )
    result = grade(sub, "a1_knn", device="cpu", parts=["knn"], kit=course)
    crash = next(c for c in result.checks if c.id == "a1.knn.classifier_accuracy")
    assert crash.status == "error" and crash.held_out > 0
    assert "course's own" not in crash.output and "predict_labels" not in crash.output
    assert any(c.function == "predict_labels" and c.status == "failed" for c in result.checks)


def test_batch_sends_a_submission_with_a_crashed_check_to_review_not_to_canvas(crashed, tmp_path):
    from grader.classroom.gradebook import canvas_notes, canvas_review_rows, canvas_rows
    from grader.classroom.inputs import Student, Submission
    from grader.classroom.store import _summary

    result, _ = crashed
    record = {"status": "graded", **_summary(json.dumps(formats.gradescope(result)).encode())}
    assert record["not_judged"] == 1
    subs = [Submission([Student("s1", name="Ada")], None, slug="s1")]
    assert len(canvas_rows(A1, subs, {"s1": record}, 7)) == 2  # the header and Points Possible: no score row
    review = canvas_review_rows(subs, {"s1": record})
    assert review[1][:2] == ["not judged", "s1"] and "could not be judged" in review[1][4]
    assert any("canvas-review.csv" in n for n in canvas_notes(A1, 7, subs, {"s1": record}))
