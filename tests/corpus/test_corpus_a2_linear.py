"""A2's corpus of alternative correct solutions: each folder of tests/corpus/a2_linear/ holds replacements for the
reference's functions, one file per module of the package (linear_classifier.py, two_layer_net.py), in the idioms
real students use (see each file's docstring). Applied onto a copy of the reference, every folder must score full
marks with the hidden checks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from grader.judge.runner import grade
from tests.conftest import ROOT, copy_submission

pytestmark = pytest.mark.assignment("a2_linear")  # make test-assignment A=a2_linear

CORPUS = Path(__file__).resolve().parent / "a2_linear"
COPIES = sorted(d for d in CORPUS.iterdir() if d.is_dir() and any(d.glob("*.py")))


def _span(node: ast.AST) -> tuple[int, int]:
    """Lines (0-based start, end exclusive) of a top-level definition, its decorators included."""
    start = node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else node.lineno
    return start - 1, node.end_lineno


def apply_patch(patch: str, target: str) -> str:
    """`target` with each top-level function of `patch` in place of the one of the same name (new ones appended),
    and the patch's imports that the target lacks added after the target's own. Imports from the a2_linear package
    are there for the linter only: the target already has those names."""
    tree, lines = ast.parse(target), target.splitlines(keepends=True)
    plines = patch.splitlines(keepends=True)
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    own_imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    have = {ast.unparse(n) for n in own_imports}
    edits: list[tuple[int, int, str]] = []
    new_imports: list[str] = []
    appended: list[str] = []
    for node in ast.parse(patch).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            text = ast.unparse(node)
            if text not in have and not (
                isinstance(node, ast.ImportFrom) and (node.module or "").startswith("a2_linear")
            ):
                new_imports.append(text + "\n")
        elif isinstance(node, ast.FunctionDef):
            a, b = _span(node)
            body = "".join(plines[a:b])
            if node.name in defs:
                edits.append((*_span(defs[node.name]), body))
            else:
                appended.append("\n\n" + body)
    for a, b, body in sorted(edits, reverse=True):
        lines[a:b] = [body]
    after = own_imports[-1].end_lineno
    lines[after:after] = new_imports
    return "".join(lines) + "".join(appended)


def test_a_patch_replaces_functions_adds_helpers_and_imports():
    target = (
        "import torch\n\nfrom a2_linear.classifiers import K\n\n\ndef f(x):\n    return 1\n\n\ndef g(x):\n"
        "    return f(x)\n"
    )
    patch = (
        '"""doc"""\n\nimport math\n\nimport torch\n\nfrom a2_linear.linear_classifier import g\n\n\n'
        "def _helper():\n    return math.pi\n\n\ndef f(x):\n    return _helper()\n"
    )
    out = apply_patch(patch, target)
    assert out.count("import torch") == 1 and "import math" in out and "linear_classifier" not in out
    ns: dict = {"__name__": "patched"}
    exec(compile(out.replace("from a2_linear.classifiers import K\n", ""), "<patched>", "exec"), ns)
    assert ns["g"](0) > 3 and ns["_helper"]() > 3


@pytest.mark.slow
@pytest.mark.parametrize("copy", COPIES, ids=lambda d: d.name)
def test_each_alternative_correct_solution_scores_full_marks_with_hidden_checks(tmp_path, copy):
    sub = copy_submission(tmp_path, packages=("a2_linear",))
    for patch in sorted(copy.glob("*.py")):
        target = sub / "a2_linear" / patch.name
        assert target.is_file(), f"{patch} names no module of a2_linear"
        patched = apply_patch(patch.read_text(), target.read_text())
        target.write_text(patched)
        replaced = [n.name for n in ast.parse(patch.read_text()).body if isinstance(n, ast.FunctionDef)]
        assert all(f"def {name}(" in patched for name in replaced)
    result = grade(sub, "a2_linear", device="cpu", hidden=True, kit=ROOT)
    assert [(c.id, c.output) for c in result.checks if not c.passed] == []
    assert result.score == pytest.approx(100) and any(c.hidden for c in result.checks)
