"""GitHub Actions output for a student's repository: `python -m grader.annotate [RESULTS_DIR]`.

After `make grade`, each failed check becomes an annotation on the student's file, at the line of the function it
grades (or the line its feedback names), at most MAX_ANNOTATIONS of them, and the points are printed and written
(base64 JSON under `result` in $GITHUB_OUTPUT) in the form GitHub Classroom's grading reporter reads.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import sys
from pathlib import Path

from grader import manifest as manifests
from grader.manifest import GraderError
from grader.report import clean_text

MAX_ANNOTATIONS = 10
LINE = re.compile(r"\(line (\d+)")


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
    from grader.runner import load_checks

    m = manifests.load(assignment, kit)
    specs = load_checks(m, hidden=False)
    return {s.id: s.function for s in specs}, {f: p.file for p in m.parts for f in p.functions}


def annotations(results: dict, kit: Path, root: Path, limit: int = MAX_ANNOTATIONS) -> list[str]:
    """`::error file=...,line=...,title=...::message` lines for the failed checks of one results.json."""
    assignment = results.get("extra_data", {}).get("assignment", "")
    try:
        by_id, files = _functions(assignment, kit)
    except (GraderError, ImportError, OSError):
        by_id, files = {}, {}
    out = []
    for t in results.get("tests", []):
        if t.get("status") == "passed" or len(out) >= limit:
            continue
        m = re.match(r"(.*) \[([^\]]+)\]$", str(t.get("name", "")))
        title, cid = (m.group(1), m.group(2)) if m else (str(t.get("name", "")), "")
        function = by_id.get(cid, "")
        file = files.get(function, "")
        text = str(t.get("output", "")).strip() or "failed"
        named = LINE.search(text)
        line = int(named.group(1)) if named else (_def_line(root / file, function) if file else 1)
        where = f"file={_escape(file, True)},line={line}," if file else ""
        out.append(f"::error {where}title={_escape(f'{title} ({cid})', True)}::{_escape(text[:2000])}")
    return out


def classroom(results: list[dict]) -> dict:
    """The grading reporter's form: version, status, max_score and one entry per check with its score."""
    tests = [
        {
            "name": str(t.get("name", ""))[:200],
            "status": "pass" if t.get("status") == "passed" else "fail",
            "score": t.get("score", 0),
            "message": clean_text(str(t.get("output", "")))[:500],
        }
        for r in results
        for t in r.get("tests", [])
    ]
    return {
        "version": 1,
        "status": "pass" if all(t["status"] == "pass" for t in tests) else "fail",
        "max_score": round(sum(t.get("max_score", 0) for r in results for t in r.get("tests", [])), 4),
        "tests": tests,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0] if argv else "grader-results")
    found = sorted([*folder.glob("results.json"), *folder.glob("*/results.json")])
    if not found:
        print(f"::warning::no results.json under {folder}: grading did not finish")
        return 0
    kit, root = manifests.course_root(), Path.cwd()
    results = [json.loads(p.read_text(encoding="utf-8")) for p in found]
    lines = [a for r in results for a in annotations(r, kit, root)][:MAX_ANNOTATIONS]
    print("\n".join(lines))
    report = classroom(results)
    points = sum(t["score"] for t in report["tests"])
    print(f"Points {points:g}/{report['max_score']:g}")
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        encoded = base64.b64encode(json.dumps(report).encode()).decode()
        with open(target, "a", encoding="utf-8") as f:
            f.write(f"result={encoded}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
