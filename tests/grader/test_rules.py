"""Rules stated = rules enforced: each graded module's docstring carries the block rendered from the manifest
(what the grader enforces), and `grader list --rules` prints the same rules with their reasons."""

from __future__ import annotations

import ast
import textwrap

import pytest

from grader.cli import main
from grader.course import manifest
from grader.course.rules import HEADER, rules_block, rules_table
from tests.conftest import ROOT

PARTS = [(name, p.name) for name in manifest.available(ROOT) for p in manifest.load(name, ROOT).parts]


def docstring_of(path) -> str:
    """The module docstring, read without importing the student's module."""
    return ast.get_docstring(ast.parse(path.read_text()), clean=False) or ""


@pytest.mark.parametrize("assignment, part", PARTS, ids=[f"{a}-{p}" for a, p in PARTS])
def test_each_graded_module_states_the_rules_its_manifest_enforces(assignment, part):
    m = manifest.load(assignment, ROOT)
    p = next(q for q in m.parts if q.name == part)
    block, doc = rules_block(m, p), docstring_of(ROOT / p.file)
    if not block:
        assert HEADER not in doc, f"{p.file} states rules, but the manifest enforces none for part {part}"
        return
    assert doc.count(HEADER) == 1, (
        f"{p.file}: the module docstring should carry the rules block once; paste the "
        f"output of `grader list --rules -a {assignment} --docstring`"
    )
    stated = doc[doc.index(HEADER) :].split("\n\n")[0].rstrip()
    assert stated == block, (
        f"{p.file}: the rules in the module docstring differ from what the grader enforces; "
        f"paste the output of `grader list --rules -a {assignment} --docstring`"
    )


DEMO = """
name = "demo"
title = "Demo"
forbid_autograd = true
[[parts]]
name = "p"
module = "demo.a"
file = "demo/a.py"
points = 10
[parts.functions]
dist_one = 3
dist_none = 3
plain = 4
[parts.forbidden]
dist_one = ["torch.cdist", "torch.norm"]
dist_none = ["torch.cdist", "torch.norm"]
[parts.max_loops]
dist_one = 1
dist_none = 0
[[parts]]
name = "q"
module = "demo.b"
file = "demo/b.py"
points = 1
[parts.functions]
free = 1
[why]
"torch.cdist" = "it computes the distances you are asked to compute"
"torch.norm" = "it computes the distances you are asked to compute"
"""


@pytest.fixture
def demo(tmp_path):
    d = tmp_path / "assignments" / "demo"
    d.mkdir(parents=True)
    (d / "assignment.toml").write_text(textwrap.dedent(DEMO))
    return tmp_path


def test_the_block_groups_functions_and_names_that_share_a_rule(demo):
    m = manifest.load("demo", demo)
    assert rules_block(m, m.parts[0]) == textwrap.dedent("""\
        Rules the grader enforces in this file (see `grader list --rules`):
        - dist_one, dist_none may not use:
          - torch.cdist, torch.norm: it computes the distances you are asked to compute.
        - dist_one: at most 1 loop (for, while, comprehensions, map, filter, functools.reduce, itertools or
          recursion; loops in the helpers it calls count too).
        - dist_none: no loops (for, while, comprehensions, map, filter, functools.reduce, itertools or
          recursion; loops in the helpers it calls count too).
        - every function: no autograd (requires_grad, .backward(), torch.autograd, torch.func): gradients
          are computed by hand.
        - the file may use: only the modules torch, math, random, statistics, typing, abc, enum,
          collections, functools, itertools, dataclasses, demo, dlcv (a use of another module holds back
          every function of the file; an import that nothing uses only earns a warning).""")
    assert all(len(line) <= 100 for line in rules_block(m, m.parts[0]).splitlines())


def test_a_part_without_rules_of_its_own_still_states_the_autograd_ban_and_the_modules(demo):
    m = manifest.load("demo", demo)
    assert rules_block(m, m.parts[1]).splitlines()[1:3] == [
        "- every function: no autograd (requires_grad, .backward(), torch.autograd, torch.func): gradients",
        "  are computed by hand.",
    ]
    text = (demo / "assignments/demo/assignment.toml").read_text().replace("forbid_autograd = true\n", "")
    text += '[rules]\nallowed_imports = ["numpy"]\n'
    (demo / "assignments/demo/assignment.toml").write_text(text)
    m = manifest.load("demo", demo)
    assert rules_block(m, m.parts[1]).splitlines()[1:] == [
        "- the file may use: only the modules torch, math, random, statistics, typing, abc, enum,",
        "  collections, functools, itertools, dataclasses, demo, dlcv, numpy (a use of another module holds",
        "  back every function of the file; an import that nothing uses only earns a warning).",
    ]


def test_the_table_lists_each_function_with_what_it_may_not_use_and_why(demo):
    table = rules_table(manifest.load("demo", demo))
    assert "  every graded function: no autograd" in table
    assert "  every graded file may use only the modules torch, math, random," in table
    assert "    dist_one\n      loops: at most 1\n      torch.cdist" in table
    assert "it computes the distances you are asked to compute" in table
    assert "  q (demo/b.py)\n    (no rules beyond the assignment's)" in table


def test_grader_list_rules_prints_the_table_and_the_docstring_blocks(demo, capsys):
    assert main(["--course", str(demo), "list", "--rules"]) == 0
    assert capsys.readouterr().out.strip() == rules_table(manifest.load("demo", demo))
    assert main(["--course", str(demo), "list", "--rules", "-a", "demo", "--docstring"]) == 0
    out = capsys.readouterr().out
    m = manifest.load("demo", demo)
    assert "# demo/a.py (demo, part p): paste into the module docstring\n" + rules_block(m, m.parts[0]) in out
    assert "# demo/b.py (demo, part q)" in out


def test_the_course_rules_table_names_every_forbidden_call(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["list", "--rules"]) == 0
    out = capsys.readouterr().out
    for name in manifest.available(ROOT):
        m = manifest.load(name, ROOT)
        for p in m.parts:
            for names in p.forbidden.values():
                for n in names:
                    assert f"{n:<42} {m.why[n]}" in out
