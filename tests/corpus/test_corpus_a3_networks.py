"""A3's corpus: alternative correct solutions, in the idioms real students use, score full marks with the hidden
checks. Each file of tests/corpus/a3_networks/ holds replacement definitions (classes, functions, helpers) under
`# file: <path>` comments; the test puts them in place of the same names in a copy of the reference solution (a name
the reference lacks, such as a helper, is appended) and grades the copy."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from grader.judge.runner import grade
from tests.conftest import ROOT

pytestmark = pytest.mark.assignment("a3_networks")  # make test-assignment A=a3_networks

CORPUS = Path(__file__).parent / "a3_networks"


def patches(path: Path) -> dict[str, list[str]]:
    """file -> the source of each top-level definition that goes into it, in order."""
    text = path.read_text()
    tree = ast.parse(text)
    marks = sorted(
        (i + 1, line.split(":", 1)[1].strip()) for i, line in enumerate(text.splitlines()) if line.startswith("# file:")
    )
    out: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            target = [f for line, f in marks if line < node.lineno][-1]
            out.setdefault(target, []).append(ast.get_source_segment(text, node))
    return out


def apply(path: Path, definitions: list[str]) -> None:
    """Replace the top-level definitions of `path` named like `definitions` (append the others)."""
    text = path.read_text()
    for source in definitions:
        name = ast.parse(source).body[0].name
        node = next(
            (n for n in ast.parse(text).body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name), None
        )
        if node is None:
            text = text.rstrip("\n") + "\n\n\n" + source + "\n"
            continue
        lines = text.splitlines(keepends=True)
        start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
        text = "".join(lines[:start]) + source + "\n" + "".join(lines[node.end_lineno :])
    path.write_text(text)


@pytest.mark.slow
@pytest.mark.parametrize("idioms", sorted(p.stem for p in CORPUS.glob("*.py")))
def test_alternative_correct_solutions_score_full_marks(tmp_path, idioms):
    sub = tmp_path / "submission"
    shutil.copytree(ROOT / "a3_networks", sub / "a3_networks", ignore=shutil.ignore_patterns("__pycache__"))
    for file, definitions in patches(CORPUS / f"{idioms}.py").items():
        apply(sub / file, definitions)
    result = grade(sub, "a3_networks", device="cpu", hidden=True, kit=ROOT)
    assert [f"{c.id}: {c.output}" for c in result.checks if not c.passed] == []
    assert result.score == pytest.approx(100)
    assert not any("in place of yours" in c.output for c in result.checks)  # nothing judged with an oracle block
