"""A4's corpus: alternative correct solutions, in the idioms real students use, score full marks with the hidden
checks. Each file of tests/corpus/a4_rnn/ holds replacement definitions under `# file: <path>` comments (read as
A3's corpus is); a function replaces the reference's of that name, and a class's methods replace that class's
methods one by one (the rest of the class, its given __init__ included, stays)."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from grader.judge.runner import grade
from tests.conftest import ROOT, copy_submission, replace_function
from tests.corpus.test_corpus_a3_networks import patches

pytestmark = pytest.mark.assignment("a4_rnn")  # make test-assignment A=a4_rnn

CORPUS = Path(__file__).parent / "a4_rnn"


def apply(path: Path, definitions: list[str]) -> None:
    for source in definitions:
        node = ast.parse(source).body[0]
        if not isinstance(node, ast.ClassDef):
            replace_function(path, node.name, source)
            continue
        lines = source.splitlines()
        for method in node.body:
            if isinstance(method, ast.FunctionDef):
                body = textwrap.dedent("\n".join(lines[method.lineno - 1 : method.end_lineno]))
                replace_function(path, f"{node.name}.{method.name}", body)


@pytest.mark.slow
@pytest.mark.parametrize("idioms", sorted(p.stem for p in CORPUS.glob("*.py")))
def test_alternative_correct_solutions_score_full_marks(tmp_path, idioms):
    sub = copy_submission(tmp_path / "submission", packages=("a4_rnn",))
    for file, definitions in patches(CORPUS / f"{idioms}.py").items():
        apply(sub / file, definitions)
    result = grade(sub, "a4_rnn", device="cpu", hidden=True, kit=ROOT)
    assert [f"{c.id}: {c.output}" for c in result.checks if not c.passed] == []
    assert result.score == pytest.approx(100)
    assert not any("in place of yours" in c.output or "a right" in c.output for c in result.checks)
