"""Results as data: the known mistakes a check's feedback names, the grader's own errors and the rule hits travel as
fields (CheckResult, results.json's extra_data.checks), so the class report and the Classroom annotations read them
whatever the feedback's words. A1's warm-up grades in seconds: a reference, and one submission with planted bugs
graded with every feedback sentence reworded."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from grader.classroom.batch import Student, Submission
from grader.classroom.classreport import write_class_report
from grader.course import manifest as manifests
from grader.judge import checks, judging, runner
from grader.judge.runner import grade
from grader.reports import annotate, formats
from tests.conftest import ROOT, copy_submission, replace_function

A1 = manifests.load("a1_knn", ROOT)
REVERSED = "you reversed the columns; reverse the order of the rows"  # a1.warmup.reverse_rows: judging's sentence
FIRST_DIM = "you returned the size of the first dimension only"  # a1.warmup.count_tensor_elements: the check's own
CRASHES = "a1.warmup.create_tensor_of_pi"  # its check crashes (the course's fault)
PLANTED = {
    "reverse_rows": """
        def reverse_rows(x):
            return x[:, torch.arange(x.shape[1] - 1, -1, -1, device=x.device)]
        """,
    "count_tensor_elements": """
        def count_tensor_elements(x):
            return int(x.shape[0])
        """,
    "normalize_columns": """
        def normalize_columns(x):
            mu = x.mean(dim=0, keepdim=True)
            sigma = ((x - mu) ** 2).sum(dim=0, keepdim=True).div(x.shape[0] - 1).sqrt()
            return (x - mu) / sigma
        """,
}
REWORDED = "Reworded feedback: the words are the course's to change."


def _reworded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sentence a reader could have parsed says something else: judging's mistake sentences, the forbidden-call
    and static-scan sentences, and at last every check's whole feedback."""
    monkeypatch.setattr(judging, "LIKELY_BUG", "Probable cause, {mistake}!")
    monkeypatch.setattr(judging, "SEVERAL_MISTAKES", "One of these, {mistakes}!")
    monkeypatch.setattr(checks, "forbidden_feedback", lambda *a, **k: "That call is not allowed here!")
    static_problem = runner.Run.static_problem
    monkeypatch.setattr(
        runner.Run, "static_problem", lambda self, f: static_problem(self, f) and "Not like that, please!"
    )
    cut = runner._cut
    monkeypatch.setattr(runner, "_cut", lambda text: REWORDED if text else cut(text))
    load_checks = runner.load_checks

    def crash(ctx, **params):
        raise KeyError("the course's oracle table has no 'pi'")

    def crashing(m, hidden):
        return [dataclasses.replace(s, body=crash) if s.id == CRASHES else s for s in load_checks(m, hidden)]

    monkeypatch.setattr(runner, "load_checks", crashing)


@pytest.fixture(scope="module")
def reference():
    return grade(ROOT, "a1_knn", device="cpu", parts=["warmup"])


@pytest.fixture(scope="module")
def buggy(tmp_path_factory):
    sub = copy_submission(tmp_path_factory.mktemp("buggy"))
    for function, source in PLANTED.items():
        replace_function(sub / A1.part_of(function).file, function, source)
    with pytest.MonkeyPatch.context() as mp:
        _reworded(mp)
        seen: list = []
        mp.setattr(judging, "known_mistakes", _spy(judging.known_mistakes, seen))
        result = grade(sub, "a1_knn", device="cpu", parts=["warmup"])
    return sub, result, seen


def _spy(known_mistakes, seen):
    def spy(*a, **k):
        text = known_mistakes(*a, **k)
        seen.append(text)
        return text

    return spy


def by_id(result):
    return {c.id: c for c in result.checks}


def test_a_correct_submission_names_no_mistake_no_error_no_rule(reference):
    assert result_is_full(reference)
    for c in reference.checks:
        assert (c.mistakes, c.grader_errors, c.rule_hits) == ([], [], []), c.id
    data = formats.gradescope(reference)["extra_data"]["checks"]
    assert all(d["mistakes"] == [] and d["grader_errors"] == [] and d["rule_hits"] == [] for d in data)


def result_is_full(result) -> bool:
    return result.score == pytest.approx(result.max_score) and all(c.passed for c in result.checks)


def test_a_planted_bug_is_named_as_data_whatever_the_words(buggy):
    _, result, seen = buggy
    checks_ = by_id(result)
    failed = {c.function for c in result.checks if not c.passed}
    assert failed == {"reverse_rows", "count_tensor_elements", "normalize_columns", "create_tensor_of_pi"}
    assert checks_["a1.warmup.reverse_rows"].mistakes == [REVERSED]
    assert checks_["a1.warmup.count_tensor_elements"].mistakes == [FIRST_DIM]
    for c in result.checks:
        if c.status == "failed":  # (a check that crashed says only that it could not judge: test_grader_errors)
            assert c.output == REWORDED  # no feedback word survives the rewording
        if c.passed or c.function in ("normalize_columns", "create_tensor_of_pi"):
            assert c.mistakes == [], c.id
    assert any(s and s.startswith("Probable cause, you reversed the columns") for s in seen)  # judging's new words
    # the grader's own error, and nothing else, where the check crashed
    pi = checks_[CRASHES]
    assert len(pi.grader_errors) == 1 and pi.grader_errors[0].startswith("KeyError:") and pi.rule_hits == []
    assert all(c.grader_errors == [] for c in result.checks if c.id != CRASHES)
    # the forbidden call, with where it is
    hits = checks_["a1.warmup.normalize_columns"].rule_hits
    line = _line_of(buggy[0] / "a1_knn/pytorch101.py", "x.mean(")
    assert hits and hits[0] == {
        "rule": "forbidden",
        "name": "torch.Tensor.mean",
        "file": "a1_knn/pytorch101.py",
        "line": line,
        "function": "normalize_columns",
        "found": "source",
    }


def _line_of(path: Path, text: str) -> int:
    return next(i for i, s in enumerate(path.read_text().splitlines(), 1) if text in s)


def test_results_json_and_the_class_report_read_the_data(buggy, reference, tmp_path):
    sub, result, _ = buggy
    subs, records = [], {}
    for slug, r in (("buggy", result), ("reference", reference)):
        paths = formats.write_all(r, tmp_path / slug)
        subs.append(Submission([Student(slug, name=slug)], None, slug=slug))
        records[slug] = {
            "status": "graded",
            "score": r.score,
            "max_score": r.max_score,
            "parts": {p.name: p.score for p in r.parts},
            "files": ["results.json"],
        }
    data = json.loads(paths["json"].read_text())  # the reference's: the keys are there, empty
    assert {"id", "seconds", "call_seconds", "out_of_time", "mistakes", "grader_errors", "rule_hits"} <= set(
        data["extra_data"]["checks"][0]
    )
    # each check's time, and the part of it spent in student calls (all but a check that needs a GPU call them)
    checks = data["extra_data"]["checks"]
    assert all(0 <= c["call_seconds"] <= c["seconds"] for c in checks), checks
    assert {c["id"] for c in checks if c["call_seconds"] == 0} <= {"a1.warmup.mm_on_gpu"}
    data = json.loads((tmp_path / "buggy" / "results.json").read_text())
    said = {c["id"]: c for c in data["extra_data"]["checks"]}
    assert said["a1.warmup.reverse_rows"]["mistakes"] == [REVERSED]
    assert said[CRASHES]["grader_errors"][0].startswith("KeyError:")
    assert said["a1.warmup.normalize_columns"]["rule_hits"][0]["name"] == "torch.Tensor.mean"
    assert not any("Likely bug" in t["output"] for t in data["tests"])

    page = write_class_report(tmp_path, A1, subs, records, ROOT).read_text()
    rows = dict(re.findall(r"<code>(a1\.[^<]+)</code>(.*?)</tr>", page, re.S))
    assert f"Likely bug: {REVERSED} <span class='n'>(1)</span>" in rows["a1.warmup.reverse_rows"]
    assert f"Likely bug: {FIRST_DIM} <span class='n'>(1)</span>" in rows["a1.warmup.count_tensor_elements"]
    assert "Grader error: KeyError: " in rows[CRASHES] and "Likely bug" not in rows[CRASHES]
    assert "Rule: uses torch.Tensor.mean <span class='n'>(1)</span>" in rows["a1.warmup.normalize_columns"]
    assert "Likely bug" not in rows["a1.warmup.normalize_columns"]
    assert "Reworded feedback" not in page  # every failure here is said as data

    # GitHub Classroom's annotation points at the forbidden call, from the data
    lines = annotate.annotations(data, ROOT, sub)
    mean = next(line for line in lines if "a1.warmup.normalize_columns" in line)
    assert f"file=a1_knn/pytorch101.py,line={_line_of(sub / 'a1_knn/pytorch101.py', 'x.mean(')}," in mean


def test_mistakes_are_recorded_as_given_never_read_back_from_the_words():
    with pytest.raises(checks.CheckFailed) as info:
        checks.Ctx.fail(None, "wrong. Likely bug: labels are off by one.", mistakes=["a sign"])
    assert info.value.mistakes == ["a sign"]  # "Likely bug: labels are off by one." in the message is words only
    with judging.recording_mistakes() as named:
        judging.name_mistakes(["a sign", "a sign", "a shape"])
    assert named == ["a sign", "a shape"]
    judging.name_mistakes(["outside any check"])  # nothing records it, nothing fails
