"""A1's corpus of alternative correct solutions: each folder of tests/corpus/a1_knn/ holds replacements for the
reference's functions and classes in the idioms real students use (see each file's docstring). Applied onto a
copy of the reference, every folder must score full marks with the hidden checks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from grader.judge.runner import grade
from tests.conftest import ROOT, copy_submission

pytestmark = pytest.mark.assignment("a1_knn")  # make test-assignment A=a1_knn

CORPUS = Path(__file__).resolve().parent / "a1_knn"
COPIES = sorted(d for d in CORPUS.iterdir() if d.is_dir() and any(d.glob("*.py")))


def _span(node: ast.AST) -> tuple[int, int]:
    """Lines (0-based start, end exclusive) of a definition, its decorators included."""
    start = node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else node.lineno
    return start - 1, node.end_lineno


def apply_patch(patch: str, target: str) -> str:
    """`target` with each top-level function of `patch` replacing the one of the same name, each method of a patch
    class replacing the same method of the target's class (the class's other methods, e.g. given ones, stay), new
    definitions and missing imports appended at the end."""
    tree, lines = ast.parse(target), target.splitlines(keepends=True)
    plines = patch.splitlines(keepends=True)
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    imports = {ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
    edits: list[tuple[int, int, str]] = []
    extra: list[str] = []

    def text(node: ast.AST, indent: str = "") -> str:
        a, b = _span(node)
        body = "".join(plines[a:b])
        src_indent = " " * node.col_offset
        return "".join(
            indent + line[len(src_indent) :] if line.strip() else line for line in body.splitlines(keepends=True)
        )

    for node in ast.parse(patch).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the patch's docstring
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if ast.unparse(node) not in imports:
                extra.append(ast.unparse(node) + "\n")
            continue
        old = defs.get(getattr(node, "name", None))
        if isinstance(node, ast.ClassDef) and isinstance(old, ast.ClassDef):
            methods = {m.name: m for m in old.body if isinstance(m, ast.FunctionDef)}
            indent = " " * (old.body[0].col_offset)
            for m in node.body:
                if not isinstance(m, ast.FunctionDef):
                    continue
                if m.name in methods:
                    edits.append((*_span(methods[m.name]), text(m, indent)))
                else:
                    edits.append((old.end_lineno, old.end_lineno, "\n" + text(m, indent)))
        elif old is not None:
            edits.append((*_span(old), text(node)))
        else:
            extra.append("\n\n" + text(node))
    for a, b, new in sorted(edits, reverse=True):
        lines[a:b] = [new if new.endswith("\n") else new + "\n"]
    return "".join(lines) + "\n" + "".join(extra)


def test_a_patch_replaces_functions_and_methods_and_keeps_the_given_ones():
    target = (
        "import torch\n\n\ndef f(x):\n    return 1\n\n\nclass K:\n    def a(self):\n        return 1\n\n"
        "    def given(self):\n        return 2\n"
    )
    patch = (
        "import math\nimport torch\n\n\ndef f(x):\n    return 2\n\n\nclass K:\n    def a(self):\n"
        "        return 3\n\n\ndef helper():\n    return math.pi\n"
    )
    out = apply_patch(patch, target)
    ns: dict = {}
    exec(compile(out, "<patched>", "exec"), ns)
    assert ns["f"](0) == 2 and ns["K"]().a() == 3 and ns["K"]().given() == 2 and ns["helper"]() > 3
    assert out.count("import torch") == 1


@pytest.mark.slow
@pytest.mark.parametrize("copy", COPIES, ids=lambda d: d.name)
def test_each_alternative_correct_solution_scores_full_marks_with_hidden_checks(tmp_path, copy):
    sub = copy_submission(tmp_path)
    for patch in sorted(copy.glob("*.py")):
        target = sub / "a1_knn" / patch.name
        patched = apply_patch(patch.read_text(), target.read_text())
        target.write_text(patched)
        replaced = [n.name for n in ast.parse(patch.read_text()).body if isinstance(n, ast.FunctionDef)]
        assert all(f"def {name}(" in patched for name in replaced)
    result = grade(sub, "a1_knn", device="cpu", hidden=True, kit=ROOT)
    assert [(c.id, c.output) for c in result.checks if not c.passed] == []
    assert result.score == pytest.approx(100) and any(c.hidden for c in result.checks)
