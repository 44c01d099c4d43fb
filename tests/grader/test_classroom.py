"""GitHub Classroom gets exact points from `python -m grader.reports.annotate`.

The kit's workflow hands annotate's output (`result` in $GITHUB_OUTPUT, base64 JSON) to
classroom-resources/autograding-grading-reporter@v1, which prints it and sends Classroom the points. `Reporter`
below emulates that action from its source (github.com/classroom-resources/autograding-grading-reporter, tag v1 =
main's src/ at ca700ea, built into dist/main.js), quoted where each step comes from. JavaScript numbers are IEEE
doubles, as Python's floats are; the sums below are plain left-to-right additions, as `reduce`/`+=` do (not
math.fsum, nor sum(), which compensates since Python 3.12).

It runs on what annotate writes for a perfect A3 grading, a failing one and a grading that crashed, and the points
Classroom records must be the grader's total to the cent, exactly (==), with `line_no` on every entry.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from grader.course import manifest
from grader.judge.runner import grade
from grader.reports import annotate
from grader.reports import formats as report
from tests.conftest import ROOT, copy_submission

A3 = manifest.load("a3_networks", ROOT)
UNDEFINED = object()  # a field the JSON does not have: JavaScript reads it as `undefined`


def js(value) -> str:
    """`${value}` in a JavaScript template literal: Number.prototype.toString (shortest round-trip digits, no
    ".0" on a whole number), undefined, NaN."""
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        if math.isnan(value):
            return "NaN"
        if float(value).is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(float(value))
    return str(value)


def to_fixed_2(x: float) -> str:
    """Number.prototype.toFixed(2): the double's exact value rounded to 2 decimals, a tie to the larger."""
    return "NaN" if math.isnan(x) else str(Decimal(x).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


@dataclass
class Reporter:
    """What the reporter prints (log), the table rows, its notices (what Classroom records) and its verdict."""

    log: list[str] = field(default_factory=list)
    table: list[tuple[str, str, str]] = field(default_factory=list)
    notices: list[tuple[str, str]] = field(default_factory=list)
    failed: str | None = None
    total_points: float | None = None
    max_points: float | None = None


def run_reporter(encoded: str, runner: str = "grade") -> Reporter:
    out = Reporter()
    # src/main.js: `const encodedResults = process.env[`${runner.trim().toUpperCase()}_RESULTS`];`
    #              `const json = Buffer.from(encodedResults, "base64").toString("utf-8");`
    #              `return { runner, results: JSON.parse(json) };`
    results = json.loads(base64.b64decode(encoded).decode("utf-8"))
    runner_results = [(runner, results)]

    # src/helpers/test-helpers.js
    #   `const getMaxScoreForTest = (runnerResult) => runnerResult.max_score || 0;`
    #   getTestScore: `status === "pass" ? acc + 1 : acc` over the tests, then
    #   `return (score / tests.length) * (getMaxScoreForTest(runnerResult) || 0);` -- it counts passed tests
    def max_score(r):
        return r.get("max_score") or 0

    def test_score(r):
        passed = sum(1 for t in r["tests"] if t.get("status") == "pass")
        return (passed / len(r["tests"]) if r["tests"] else math.nan) * max_score(r)

    # src/console-results.js
    for name, r in runner_results:
        out.log.append(f"🔄 Processing: {name}")
        for t in r["tests"]:
            line_no = t.get("line_no", UNDEFINED)
            # `if (test.line_no !== 0) { console.log(`✅ ${test.name} - line ${test.line_no}`) } else { ... }`
            # (a strict comparison: only the number 0 leaves the line out; a missing line_no prints "undefined")
            zero = isinstance(line_no, (int, float)) and not isinstance(line_no, bool) and line_no == 0
            where = "" if zero else f" - line {js(line_no)}"
            if t.get("status") == "pass":
                out.log.append(f"✅ {js(t.get('name', UNDEFINED))}{where}")
            elif t.get("status") == "error":
                # `console.log(`Error: ${test.message || `Failed to run test '${test.name}'`}\n...`)`
                fallback = f"Failed to run test '{js(t.get('name', UNDEFINED))}'"
                out.log.append(f"Error: {t.get('message') or fallback}")
            else:
                out.log.append(f"❌ {js(t.get('name', UNDEFINED))}{where}")
            if t.get("test_code"):
                out.log.append(f"Test code:\n{t['test_code']}\n")
        # `if (maxScore !== 0) { console.log(`Total points for ${runner}: ${score.toFixed(2)}/${maxScore}\n`) }`
        if max_score(r) != 0:
            out.log.append(f"Total points for {name}: {to_fixed_2(test_score(r))}/{js(max_score(r))}")

    # src/aggregate-results.js: `pushToTable([testName, score, maxScore])` per runner, then
    # `const totalTestScores = totals.reduce((acc, curr) => acc + curr.score, 0)` (likewise the max scores)
    total_score = total_max = 0
    for name, r in runner_results:
        out.table.append((name.strip(), js(test_score(r)), js(max_score(r))))
        total_score, total_max = total_score + test_score(r), total_max + max_score(r)
    out.table.append(("Total: ", js(total_score), js(total_max)))

    # src/notify-classroom.js:
    #   `if (!results.max_score) return acc;`
    #   `acc.maxPoints += results.max_score;`
    #   `results.tests.forEach(({ score }) => { acc.totalPoints += score; });`
    #       (from `{ totalPoints: 0, maxPoints: 0 }`)
    #   `if (!maxPoints) return;`
    #   `const text = `Points ${totalPoints}/${maxPoints}`;`
    #   `const summary = JSON.stringify({ totalPoints, maxPoints })`
    #   `core.notice(text, { title: "Autograding complete", })`
    #   `core.notice(summary, { title: "Autograding report", })`
    total_points = max_points = 0
    for _, r in runner_results:
        if not r.get("max_score"):
            continue
        max_points += r["max_score"]
        for t in r["tests"]:
            total_points += t["score"] if "score" in t else math.nan  # undefined + a number is NaN
    if max_points:
        out.total_points, out.max_points = total_points, max_points
        out.notices.append(("Autograding complete", f"Points {js(total_points)}/{js(max_points)}"))
        # JSON.stringify writes a number as toString does (100, not 100.0), NaN as null
        number = {k: "null" if math.isnan(v) else js(v) for k, v in (("t", total_points), ("m", max_points))}
        summary = f'{{"totalPoints":{number["t"]},"maxPoints":{number["m"]}}}'
        out.notices.append(("Autograding report", summary))

    # src/main.js: `if (runnerResults.some((r) => r.results.status === "fail")) {`
    #                `core.setFailed("Some tests failed.");`
    #              `} else if (runnerResults.some((r) => r.results.status === 'error')) {`
    #                `core.setFailed("Some tests errored.");`
    if any(r.get("status") == "fail" for _, r in runner_results):
        out.failed = "Some tests failed."
    elif any(r.get("status") == "error" for _, r in runner_results):
        out.failed = "Some tests errored."
    return out


def run_annotate(folder: Path, cwd: Path, tmp_path: Path, monkeypatch, capsys) -> tuple[list[str], str, dict]:
    """`python -m grader.reports.annotate FOLDER` as the workflow runs it: (its lines, the `result` output, decoded)."""
    github_output = tmp_path / "github_output"
    github_output.unlink(missing_ok=True)
    monkeypatch.setenv("GITHUB_OUTPUT", str(github_output))
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    assert annotate.main([str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    key, _, encoded = github_output.read_text().strip().partition("=")
    assert key == "result"
    return lines, encoded, json.loads(base64.b64decode(encoded))


def graded(result, tmp_path: Path) -> Path:
    out = tmp_path / "grader-results"
    report.write_all(result, out)
    return out


def def_line(path: Path, name: str) -> int:
    return next(
        i for i, line in enumerate(path.read_text().splitlines(), 1) if re.match(rf"(class|def) {name}\b", line)
    )


# -- (a) a perfect A3 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parts",
    [["fully_connected"], pytest.param(None, marks=pytest.mark.slow)],  # the slow one: all of A3, out of 100
    ids=["fully_connected", "all"],
)
def test_a_perfect_a3_reports_exactly_full_marks(parts, tmp_path, monkeypatch, capsys):
    result = grade(ROOT, "a3_networks", device="cpu", parts=parts)
    assert [c.output for c in result.checks if not c.passed] == []
    # the thirds: a unit's points shared by three checks (FullyConnectedNet's 8; in all of A3, SpatialBatchNorm's 5)
    assert {round(c.max_score, 6) for c in result.checks} >= ({2.666667} if parts else {2.666667, 1.666667})
    full = 40 if parts else 100
    assert result.max_score == full and result.score == pytest.approx(full)

    lines, encoded, sent = run_annotate(graded(result, tmp_path), ROOT, tmp_path, monkeypatch, capsys)
    seen = run_reporter(encoded)
    # exactly (the reporter added the checks' 6-decimal shares: 40.00000100000001/40, 100.00000200000001/100)
    assert seen.total_points == full and seen.max_points == full
    assert seen.total_points == round(result.score, 2) and seen.max_points == result.max_score
    assert seen.notices == [
        ("Autograding complete", f"Points {full}/{full}"),
        ("Autograding report", f'{{"totalPoints":{full},"maxPoints":{full}}}'),
    ]
    assert lines[-1] == f"Points {full}/{full}"  # what annotate prints is the reporter's notice
    assert seen.failed is None and sent["status"] == "pass"
    assert seen.table[-1] == ("Total: ", str(full), str(full))
    # each unit's checks add up to the unit's points (8 in thirds: 2.67 + 2.67 + 2.66), never 7.99 or 8.01
    by_function: dict[str, list] = {}
    for c, t in zip(result.checks, sent["tests"], strict=True):
        by_function.setdefault(c.function, []).append(t["score"])
    points = {f: pts for p in A3.parts if not parts or p.name in parts for f, pts in p.functions.items()}
    assert {f: round(sum(s), 9) for f, s in by_function.items()} == points
    # (each a cent value, or a double a few ulps from it that keeps the reporter's running sum on the cents grid)
    assert sorted(round(v, 9) for v in by_function["FullyConnectedNet"]) == [2.66, 2.67, 2.67]
    # line_no on every entry, a number: the graded unit's line in the student's file
    assert all(type(t["line_no"]) is int and t["line_no"] > 0 for t in sent["tests"])
    assert not any("undefined" in line for line in seen.log)
    fc = ROOT / A3.part_of("FullyConnectedNet").file
    entry = next(t for t in sent["tests"] if t["name"].endswith("[a3.fully_connected.fc_init]"))
    assert f"✅ {entry['name']} - line {def_line(fc, 'FullyConnectedNet')}" in seen.log


# -- (b) a failing one: one check worth a third of a unit's points fails ------------------------------------------


def test_a_failed_check_worth_a_third_costs_exactly_its_share(tmp_path, monkeypatch, capsys):
    sub = copy_submission(tmp_path / "sub", packages=("a3_networks",))
    fc = sub / A3.part_of("FullyConnectedNet").file
    text = fc.read_text()
    assert text.count("self.use_dropout = dropout != 0") == 1
    fc.write_text(text.replace("self.use_dropout = dropout != 0", "self.use_dropout = False"))  # dropout ignored
    result = grade(sub, "a3_networks", device="cpu", parts=["fully_connected"])
    failed = [c for c in result.checks if not c.passed]
    assert [c.id for c in failed] == ["a3.fully_connected.fc_loss.dropout"]
    assert failed[0].max_score == pytest.approx(8 / 3)

    lines, encoded, sent = run_annotate(graded(result, tmp_path), sub, tmp_path, monkeypatch, capsys)
    seen = run_reporter(encoded)
    assert round(result.score, 2) == 37.33 and result.max_score == 40
    assert seen.total_points == round(result.score, 2) and seen.max_points == 40  # exactly, not approx
    assert seen.notices[0] == ("Autograding complete", "Points 37.33/40")
    assert seen.notices[1] == ("Autograding report", '{"totalPoints":37.33,"maxPoints":40}')
    assert lines[-1] == "Points 37.33/40"
    assert seen.failed == "Some tests failed." and sent["status"] == "fail"
    # the failed entry's line is its annotation's; the passed ones point at their unit's definition
    error = next(line for line in lines if line.startswith("::error "))
    assert error.startswith(f"::error file={A3.part_of('FullyConnectedNet').file},line=")
    entry = next(t for t in sent["tests"] if t["status"] == "fail")
    assert f"line={entry['line_no']}," in error and entry["score"] == 0
    assert f"❌ {entry['name']} - line {entry['line_no']}" in seen.log
    assert not any("undefined" in line for line in seen.log)
    # the reporter's own table counts passed checks, not points (src/helpers/test-helpers.js getTestScore): 21 of
    # 22 checks is 38.18..., whatever the failed one was worth. Classroom records the notices, not the table.
    assert seen.table[0] == ("grade", js(21 / 22 * 40), "40")
    assert "Total points for grade: 38.18/40" in seen.log


# -- (c) a grading that crashed ------------------------------------------------------------------------------------


def kit_points(names) -> float:
    return sum(manifest.load(n, ROOT).points for n in names)


@pytest.mark.parametrize(
    "layout",
    ["nothing", "bundle_failure_file", "failure_file_in_its_folder", "unreadable"],
)
def test_a_crashed_grading_sends_no_points_and_fails_the_step(layout, tmp_path, monkeypatch, capsys):
    """Nothing Classroom has is overwritten by a grading that did not finish: no `result` output (the workflow's
    reporter step is skipped: `if: ... steps.points.outputs.result != ''`), an error saying why, exit status 1.
    The report annotate would have sent is still well formed for the reporter (an error entry worth 0)."""
    folder = tmp_path / "grader-results"
    folder.mkdir()
    why = "The autograder could not grade this submission (exit status 1). Please tell the course staff."
    failure = {"score": 0, "output": why, "tests": []}  # what the Gradescope bundle's run_autograder leaves
    if layout == "bundle_failure_file":
        (folder / "results.json").write_text(json.dumps(failure))
    elif layout == "failure_file_in_its_folder":
        (folder / "a3_networks").mkdir()
        (folder / "a3_networks" / "results.json").write_text(json.dumps(failure))
    elif layout == "unreadable":
        (folder / "results.json").write_text('{"score": 0, "tests": [')  # cut off
    github_output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(github_output))
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    assert annotate.main([str(folder)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert not github_output.exists() or "result=" not in github_output.read_text()
    assert not any(line.startswith("Points ") for line in lines)
    assert "No points sent to GitHub Classroom" in lines[-1]
    errors = [line for line in lines if line.startswith("::error title=Grading did not finish::")]
    assert len(errors) == 1
    # what would have been sent: the reporter would fail on it too, and it names the same reason
    results = [json.loads(p.read_text()) for p in folder.rglob("results.json") if layout != "unreadable"]
    sent = annotate.classroom(results or [{"output": errors[0].split("::", 2)[2], "tests": []}], ROOT, ROOT, [100])
    seen = run_reporter(base64.b64encode(json.dumps(sent).encode()).decode())
    assert sent["status"] == "error" and seen.failed == "Some tests errored."
    assert [t["line_no"] for t in sent["tests"]] == [0]
    message = errors[0]
    if layout == "nothing":
        assert lines[0].startswith("::warning::no results.json under ") and "did not finish" in message
    elif layout == "unreadable":
        assert "could not be read" in message
    else:
        assert message.endswith(why)


# -- the sum, over many shapes of results --------------------------------------------------------------------------


def test_the_reporter_sum_is_the_total_to_the_cent_for_any_split():
    """Units of 1 to 40 points shared by 1 to 9 checks (thirds, sevenths, ...), each check passed or not: the
    reporter's left-to-right double sum is the exact total rounded to the cent, as a double, every time."""
    rng = random.Random(20240917)
    for _ in range(300):
        tests, exact, top = [], 0.0, 0
        for u in range(rng.randint(1, 30)):
            pts, n = rng.randint(1, 40), rng.randint(1, 9)
            top += pts
            for k in range(n):
                passed = rng.random() < 0.8
                share = round(pts / n, 6)  # as results.json holds it
                exact += pts / n if passed else 0
                name = f"unit {u} check {k} [u{u}.c{k}]"
                tests.append({"name": name, "status": "passed" if passed else "failed", "score": share * passed})
                tests[-1]["max_score"] = share
        encoded = base64.b64encode(json.dumps(annotate.classroom([{"tests": tests}])).encode()).decode()
        seen = run_reporter(encoded)
        total = sum(Decimal(repr(t["score"])) for t in tests)  # exactly what the results hold
        assert seen.total_points == float(total.quantize(Decimal("0.01"), ROUND_HALF_UP)), (seen.total_points, exact)
        assert seen.max_points == top
        assert abs(seen.total_points - exact) < 0.006


# -- the workflow --------------------------------------------------------------------------------------------------


def test_the_kit_workflow_is_the_one_classroom_takes_points_from():
    yaml = pytest.importorskip("yaml")
    from grader.kit.release import GITHUB_WORKFLOW

    wf = yaml.safe_load(GITHUB_WORKFLOW)
    # the names of the workflow GitHub Classroom writes (.github/workflows/classroom.yml)
    assert wf["name"] == "Autograding Tests"
    assert list(wf["jobs"]) == ["run-autograding-tests"]
    # no wider than needed: the reporter writes annotations (core.notice), no check runs since its v1 dropped
    # `checks: write`; everything read-only
    assert set(wf["permissions"]) <= {"actions", "contents"} and set(wf["permissions"].values()) == {"read"}
    assert {"push", "workflow_dispatch"} <= set(wf[True])  # `on:` (YAML 1.1 reads the key as True)
    steps = wf["jobs"]["run-autograding-tests"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert any(r.startswith("make report") for r in runs)
    assert any("$GITHUB_STEP_SUMMARY" in r for r in runs)
    points = next(s for s in steps if "grader.reports.annotate" in s.get("run", ""))
    reporter = next(
        s for s in steps if s.get("uses", "").startswith("classroom-resources/autograding-grading-reporter")
    )
    assert reporter["uses"].endswith("@v1") and reporter["with"] == {"runners": "grade"}
    # `process.env[`${runner.trim().toUpperCase()}_RESULTS`]`
    assert reporter["env"] == {"GRADE_RESULTS": f"${{{{ steps.{points['id']}.outputs.result }}}}"}
    assert all(s.get("if", "").startswith("always()") for s in steps[steps.index(points) :])
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in steps)
