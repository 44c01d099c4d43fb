"""GitHub Actions output for a student's repository: `python -m grader.reports.annotate [RESULTS_DIR]`.

After `make report`, each failed check becomes an annotation on the student's file, at the line of the function it
grades (or the line of the first rule it found broken there: results.json's extra_data.checks[].rule_hits), at most
MAX_ANNOTATIONS of them, and the points are printed and written
(base64 JSON under `result` in $GITHUB_OUTPUT) in the form GitHub Classroom's grading reporter reads
(classroom-resources/autograding-grading-reporter@v1: see `classroom`). The `Points` line printed is the one the
reporter sends Classroom. A grading that did not finish (no results.json, or one without checks) sends no points
(Classroom keeps the grade it has: an install that failed says nothing of the student's code) and fails the step
with an error that says why.
"""

from __future__ import annotations

import ast
import base64
import itertools
import json
import math
import os
import re
import sys
from fractions import Fraction
from pathlib import Path

from grader.course import manifest as manifests
from grader.errors import GraderError
from grader.reports.formats import clean_text

MAX_ANNOTATIONS = 10


def _escape(text: str, prop: bool = False) -> str:
    """A workflow command's data (or property value): %, CR and LF encoded, and : , in properties."""
    text = clean_text(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def _def_line(path: Path, name: str) -> int:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, SyntaxError, RecursionError):
        return 1
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return node.lineno
    return 1


def _functions(assignment: str, kit: Path) -> tuple[dict[str, str], dict[str, str]]:
    """check id -> graded function, and function -> its file (from the assignment's public checks)."""
    from grader.judge.loading import load_checks

    m = manifests.load(assignment, kit)
    specs = load_checks(m, hidden=False)
    return {s.id: s.function for s in specs}, {f: p.file for p in m.parts for f in p.functions}


def _checks_data(results: dict) -> dict[str, dict]:
    """check id -> what results.json's extra_data says of the check (seconds, mistakes, rule_hits, ...)."""
    extra = results.get("extra_data")
    checks = extra.get("checks") if isinstance(extra, dict) else None
    return {str(c.get("id")): c for c in checks if isinstance(c, dict)} if isinstance(checks, list) else {}


def _rule_line(check: dict, file: str) -> int | None:
    """The line of the first rule hit with a line in `file` (the guard names files by their base name)."""
    hits = check.get("rule_hits")
    for h in hits if isinstance(hits, list) else []:
        line = h.get("line") if isinstance(h, dict) else None
        if not isinstance(line, int) or isinstance(line, bool) or line < 1:
            continue
        where = h.get("file")
        if where is None or (isinstance(where, str) and (where == file or where == Path(file).name)):
            return line
    return None


def _where(
    t: dict, by_id: dict[str, str], files: dict[str, str], root: Path, cache: dict, data: dict[str, dict]
) -> tuple[str, int]:
    """The student's file a check grades and the line to point at: the line of the first rule hit found in that
    file (results.json's data, `data`: check id -> its extra_data entry), else the line of the graded function's
    definition (1 when not found); ("", 0) when the check's file is unknown."""
    m = re.match(r"(.*) \[([^\]]+)\]$", str(t.get("name", "")))
    function = by_id.get(m.group(2), "") if m else ""
    file = files.get(function, "")
    if not file:
        return "", 0
    named = _rule_line(data.get(m.group(2), {}), file) if m and t.get("status") != "passed" else None
    if named:
        return file, named
    if (file, function) not in cache:
        cache[file, function] = _def_line(root / file, function)
    return file, cache[file, function]


def _lookup(results: dict, kit: Path) -> tuple[dict[str, str], dict[str, str]]:
    try:
        return _functions(results.get("extra_data", {}).get("assignment", ""), kit)
    except (GraderError, ImportError, OSError):
        return {}, {}


def annotations(results: dict, kit: Path, root: Path, limit: int = MAX_ANNOTATIONS) -> list[str]:
    """`::error file=...,line=...,title=...::message` lines for the failed checks of one results.json."""
    by_id, files = _lookup(results, kit)
    cache: dict = {}
    data = _checks_data(results)
    out = []
    for t in results.get("tests", []):
        if t.get("status") == "passed" or len(out) >= limit:
            continue
        m = re.match(r"(.*) \[([^\]]+)\]$", str(t.get("name", "")))
        title, cid = (m.group(1), m.group(2)) if m else (str(t.get("name", "")), "")
        text = str(t.get("output", "")).strip() or "failed"
        file, line = _where(t, by_id, files, root, cache, data)
        where = f"file={_escape(file, True)},line={line}," if file else ""
        out.append(f"::error {where}title={_escape(f'{title} ({cid})', True)}::{_escape(text[:2000])}")
    return out


# -- GitHub Classroom ----------------------------------------------------------------------------------------------
#
# classroom-resources/autograding-grading-reporter@v1 (src/notify-classroom.js) sends Classroom "Points
# ${totalPoints}/${maxPoints}": maxPoints adds up each runner's max_score, totalPoints each test's score, in order,
# as JavaScript numbers (IEEE doubles) from 0. A check's share of a unit's points is often a third (2.666667 three
# times is 8.000001, and 0.67 + 0.67 + 0.66 as doubles need not be 2 either), so each score sent is a whole number
# of cents, placed by largest remainder so the cents add up to the total, and sent as the double (c / 100, or one
# a few ulps from it) that keeps the reporter's running sum on the cents grid: its sum is then exactly the total,
# which `Points` below prints as the reporter does. Its table and "Total points for <runner>" are another matter:
# src/helpers/test-helpers.js's getTestScore counts passed tests (passed / tests x max_score), whatever their
# points, so they differ wherever checks are worth different points.


def _spread(exact: list[Fraction], total: int) -> list[int]:
    """Whole numbers near `exact` that add up to `total`: each value's floor, plus one for the largest
    remainders (ties to the earlier) until the total is reached."""
    out = [math.floor(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: (out[i] - exact[i], i))[: total - sum(out)]:
        out[i] += 1
    return out


def _cents(values: list, units: list | None = None) -> list[int]:
    """Each value in cents (whole numbers) adding up to the values' exact sum rounded to the cent (half up), by
    largest remainder: first among the units (the graded functions: `units[i]` is value i's), then within each, so
    a unit's checks add up to the unit's points (8 in thirds: 2.67, 2.67, 2.66)."""
    exact = [Fraction(repr(float(v))) * 100 if _number(v) else Fraction(0) for v in values]
    units = units if units is not None else list(range(len(values)))
    members: dict = {}
    for i, u in enumerate(units):
        members.setdefault(u, []).append(i)
    groups = list(members.values())
    sums = [sum((exact[i] for i in g), Fraction(0)) for g in groups]
    out = [0] * len(values)
    for g, cents in zip(groups, _spread(sums, math.floor(sum(sums, Fraction(0)) + Fraction(1, 2)))):
        for i, c in zip(g, _spread([exact[i] for i in g], cents)):
            out[i] = c
    return out


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _on_grid(cents: list[int]) -> list[float]:
    """Doubles for `cents` whose left-to-right double sum from 0 (the reporter's) ends exactly on the total in
    cents divided by 100 (correctly rounded): each is c / 100, or the double within a few ulps of it that keeps
    the running sum on the cents grid (or, where rounding ties make that impossible, an ulp beside it, to
    come back on a later step). Zero stays zero."""
    nonzero = [j for j, c in enumerate(cents) if c]
    wants = [r / 100 for r in itertools.accumulate(cents[j] for j in nonzero)]  # int / int: correctly rounded
    accs, values, tried = [0.0], [], [0] * len(nonzero)
    k = budget = 0
    while 0 <= k < len(nonzero) and budget < 10_000:
        budget += 1
        w = wants[k]  # where the running sum should be after entry k: on the grid, else beside it (not the last)
        targets = [w] if k == len(nonzero) - 1 else [w, math.nextafter(w, math.inf), math.nextafter(w, -math.inf)]
        c, acc = cents[nonzero[k]], accs[k]
        while tried[k] < len(targets):
            t = targets[tried[k]]
            tried[k] += 1
            d = t - acc
            v = next(
                (v for v in (c / 100, d, math.nextafter(d, math.inf), math.nextafter(d, -math.inf)) if acc + v == t),
                None,
            )
            if v is not None:
                del accs[k + 1 :], values[k:]
                accs.append(t)
                values.append(v)
                k += 1
                break
        else:
            tried[k] = 0
            k -= 1
    if k != len(nonzero):  # never seen: plain cents, whatever their sum
        values = [cents[j] / 100 for j in nonzero]
    out: list[float] = [0] * len(cents)
    for j, v in zip(nonzero, values):
        out[j] = int(v) if v.is_integer() else v
    return out


def reporter_sum(scores: list) -> float:
    """What the reporter adds up: `acc.totalPoints += score` over the tests in order, from 0 (no fsum)."""
    acc = 0.0
    for s in scores:
        acc = acc + s
    return acc


def js_number(x: float) -> str:
    """A number as JavaScript's template literals print it (`${x}`): shortest round-trip digits, no `.0` on whole
    numbers (Python's repr agrees from 1e-4 to 1e16, the range of points)."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else repr(float(x))


def classroom(
    results: list[dict], root: Path | None = None, kit: Path | None = None, possible: list[float] | None = None
) -> dict:
    """The grading reporter's form: version, status, max_score and one entry per check (name, status, score,
    line_no, message). Scores and max_score are cents whose double sum, in the reporter's order, is the total
    exactly. A results file without checks (grading failed) is one entry with status "error", worth
    `possible[i]` points (0 when not given): the reporter would fail its step on it (main sends none of it)."""
    tests, maxima, units, errors = [], [], [], False
    for i, r in enumerate(results):
        by_id, files = _lookup(r, kit) if kit else ({}, {})
        cache: dict = {}
        data = _checks_data(r)
        checks = r.get("tests") or []
        if not checks:
            errors = True
            # the reporter prints an error's message ("Error: ..."): one line, so no line of it reads as a command
            why = " ".join(clean_text(r.get("output", "")).split()) or "grading failed: no checks were run"
            tests.append({"name": "grading", "status": "error", "score": 0, "line_no": 0, "message": why[:500]})
            maxima.append(possible[i] if possible and _number(possible[i]) else 0)
            units.append((i, "grading"))
        for n, t in enumerate(checks):
            _, line = _where(t, by_id, files, root, cache, data) if root else ("", 0)
            m = re.match(r".* \[([^\]]+)\]$", str(t.get("name", "")))
            units.append((i, by_id.get(m.group(1), n) if m else n))
            tests.append(
                {
                    "name": " ".join(clean_text(t.get("name", "")).split())[:200],  # printed, one line
                    "status": "pass" if t.get("status") == "passed" else "fail",
                    "score": t.get("score", 0),
                    "line_no": line,
                    "message": clean_text(str(t.get("output", "")))[:500],
                }
            )
            maxima.append(t.get("max_score", 0))
    for t, score in zip(tests, _on_grid(_cents([t["score"] for t in tests], units))):
        t["score"] = score
    top = sum(_cents(maxima))
    if errors:
        status = "error"
    else:
        status = "pass" if tests and all(t["status"] == "pass" for t in tests) else "fail"
    return {"version": 1, "status": status, "max_score": top // 100 if top % 100 == 0 else top / 100, "tests": tests}


def points(report: dict) -> str:
    """The reporter's notice for this report: `Points ${totalPoints}/${maxPoints}`."""
    return f"Points {js_number(reporter_sum(t['score'] for t in report['tests']))}/{js_number(report['max_score'])}"


def _possible(result: dict | None, path: Path | None, folder: Path, kit: Path) -> float:
    """What an assignment that was not graded is worth: the one its results name (extra_data, or the folder
    grader-results/<name>/), else every assignment of the kit (what `make report` grades); 0 when unknown."""
    name = (result or {}).get("extra_data", {}).get("assignment", "")
    if not name and path is not None and path.parent != folder:
        name = path.parent.name
    try:
        names = [name] if name else manifests.available(kit)
        return sum(manifests.load(n, kit).points for n in names)
    except (GraderError, OSError, ValueError):
        return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0] if argv else "grader-results")
    found = sorted([*folder.glob("results.json"), *folder.glob("*/results.json")])
    kit, root = manifests.course_root(), Path.cwd()
    results, paths = [], []
    for p in found:
        try:
            r = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            r = {"output": f"{p} could not be read ({type(e).__name__}): grading did not finish", "tests": []}
        results.append(r if isinstance(r, dict) else {"output": f"{p} is not a results file", "tests": []})
        paths.append(p)
    if not found:
        print(f"::warning::{_escape(f'no results.json under {folder}: grading did not finish')}")
        why = f"No results under {folder}: grading did not finish (the log of `make report` says why)."
        results, paths = [{"output": why, "tests": []}], [None]
    possible = [_possible(r, p, folder, kit) if not r.get("tests") else 0 for r, p in zip(results, paths)]
    lines = [a for r in results for a in annotations(r, kit, root)][:MAX_ANNOTATIONS]
    if lines:
        print("\n".join(lines))
    report = classroom(results, root, kit, possible)
    if report["status"] == "error":
        # a grading that did not finish (an install that failed, a crash of the grader) says nothing about the
        # student's code: no points are sent, so Classroom keeps the grade it has, and this step fails, in red
        for t in report["tests"]:
            if t["status"] == "error":
                print(f"::error title=Grading did not finish::{_escape(t['message'])}")
        print("No points sent to GitHub Classroom: grading did not finish (its grade stays as it was).")
        return 1
    print(points(report))
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        encoded = base64.b64encode(json.dumps(report).encode()).decode()
        with open(target, "a", encoding="utf-8") as f:
            f.write(f"result={encoded}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
