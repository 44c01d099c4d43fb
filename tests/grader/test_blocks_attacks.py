"""Attacks on the building-block mechanism (a composite judged again with the course's oracles in place of blocks).

Each test is a hostile submission to the small course of tests/grader/test_blocks.py and asserts the SAFE
behaviour: a composite whose own code is at fault keeps failing, student code never runs outside the guard while
the judge swaps blocks, the judge survives a block it cannot swap, and the doors the static scan closes stay shut.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
import torch

from grader.judge.doors import dynamic_uses
from tests.grader.test_blocks import MANIFEST, graded, make_course, write_work

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    return make_course(tmp_path_factory.mktemp("course"))


# square passes its own (float64) check but is wrong in float32, where total uses it: by the contract total is
# not excused (a block's checks must cover what its composites use; nothing but (a)/(b)/(c) is excused).
SQUARE_WRONG_IN_FLOAT32 = """
def square(x):
    if x.dtype == torch.float32:
        return x * x + 1e-2
    return x * x


_MINE = square
"""


@pytest.mark.slow
def test_control_a_block_wrong_only_where_the_composite_uses_it_is_not_excused(course, tmp_path):
    checks = graded(course, tmp_path, square=SQUARE_WRONG_IN_FLOAT32)
    assert checks["square"].status == "passed", checks["square"].output
    assert checks["total"].status == "failed" and checks["total"].score == 0, checks["total"].output


@pytest.mark.slow
def test_composite_cannot_choose_the_oracle_by_feeding_its_block_garbage(course, tmp_path):
    # total calls its (correct-on-its-checks) block with None while it is the student's own: square raises in its
    # own lines, the judge blames square and judges total again with the course's square, where total is right.
    checks = graded(
        course,
        tmp_path,
        square=SQUARE_WRONG_IN_FLOAT32,
        total=("def total(x):\n    if square is _MINE:\n        square(None)\n    return square(x).sum()\n"),
    )
    assert checks["square"].status == "passed"
    c = checks["total"]
    assert c.status == "failed" and c.score == 0, c.output


@pytest.mark.slow
def test_a_helper_named_like_a_block_does_not_take_the_blame(course, tmp_path):
    # no door needed: a class statement named `square`, rebound by the real square afterwards, gives its
    # functions the qualified name square.<name>, which the judge reads as "raised in square's own lines"
    spoof = (
        "class square:\n"
        "    def unsupported(x):\n"
        "        raise TypeError('float32 is not supported')\n\n\n"
        "_unsupported = square.unsupported\n\n\n"
    )
    checks = graded(
        course,
        tmp_path / "a",
        square=spoof + SQUARE_WRONG_IN_FLOAT32,
        total="def total(x):\n    return _unsupported(x)\n",
    )
    c = checks["total"]
    assert c.status == "failed"
    assert "your square raised" not in c.output, c.output  # total's own error, blamed on a correct block
    # ... and with the same trick a composite gets the course's square whenever it likes
    checks = graded(
        course,
        tmp_path / "b",
        square=spoof + SQUARE_WRONG_IN_FLOAT32,
        total=("def total(x):\n    if square is _MINE:\n        _unsupported(x)\n    return square(x).sum()\n"),
    )
    c = checks["total"]
    assert c.status == "failed" and c.score == 0, c.output


# A block class whose metaclass runs code when the judge writes the oracle's methods onto it (Worker.substitute,
# setattr on the class): that code runs in the worker with no guard entered, so it may use autograd.
HOOKED_SCALER = """
STASH, ANSWER = [], []


class _Meta(type):
    def __setattr__(cls, name, value):
        if STASH and not ANSWER:
            x = STASH[0].detach().clone().requires_grad_(True)
            (g,) = torch.autograd.grad((x * 2.0).sum(), x)
            ANSWER.append((g * STASH[0]).sum().detach())


class Scaler(metaclass=_Meta):
    def __init__(self, factor):
        self.f = factor

    def apply(self, x):
        return x * self.f
"""


@pytest.mark.slow
def test_student_code_never_runs_unguarded_while_the_judge_swaps_blocks(course, tmp_path):
    checks = graded(
        course,
        tmp_path,
        Scaler=HOOKED_SCALER,
        scaled_total=(
            "def scaled_total(x):\n"
            "    if ANSWER:\n"
            "        return ANSWER.pop()\n"
            "    STASH[:] = [x]\n"
            "    return Scaler(None).apply(x).sum()\n"
        ),
    )
    assert checks["Scaler"].status == "passed", checks["Scaler"].output
    c = checks["scaled_total"]
    assert c.status == "failed" and c.score == 0, c.output  # its answer came from autograd


@pytest.mark.slow
def test_the_judge_survives_blocks_it_cannot_swap(course, tmp_path):
    # square is missing (the oracle has no binding to replace), Scaler is a built-in type (its attributes cannot
    # be set): both fail their own checks, so both composites are judged again -- and the swap itself fails
    checks = graded(course, tmp_path, square="", Scaler="Scaler = dict\n")
    assert set(checks) == {"square", "total", "Scaler", "scaled_total"}
    assert checks["square"].status == "failed" and checks["Scaler"].status == "failed"
    for composite in ("total", "scaled_total"):
        assert checks[composite].status in ("passed", "failed"), checks[composite].output


# ---- the static scan: the doors that make qualified names (and everything else) forgeable --------------------

DOORS = {
    # a getattr with a name built at run time: __code__ -> code.replace(co_qualname="square"), __globals__ -> the
    # oracle module's ORACLES and __builtins__ (exec, __import__) ...
    "string.Formatter.get_field": """
        import string
        import types

        def total(x):
            f = string.Formatter().get_field("0.__co" + "de__", [total], {})[0]
            return types.FunctionType(f.replace(co_qualname="square"), {})
        """,
    "_operator.attrgetter": """
        import _operator

        def total(x):
            return _operator.attrgetter("__glo" + "bals__")(total)
        """,
    "_operator.methodcaller": """
        import _operator

        def total(x):
            return _operator.methodcaller("__getattri" + "bute__", "__glo" + "bals__")(total)
        """,
    # code compiled from a string by TorchScript: the scan cannot read it, and its calls never reach the guard's
    # function mode (torch.nn.functional.linear runs unseen, checked in the sandbox by hand)
    "torch.jit.CompilationUnit": """
        import torch

        def total(x):
            cu = torch.jit.CompilationUnit("def f(x, w):\\n    return torch.nn.functional.linear(x, w)\\n")
            return cu.f(x, x)
        """,
}


@pytest.mark.parametrize("door", sorted(DOORS))
def test_the_static_scan_closes_the_doors_around_it(door):
    source = textwrap.dedent(DOORS[door])
    ast.parse(source)
    assert dynamic_uses(source, "total"), f"{door} passes the scan"


# ---- the oracles never enter the student's process (issue 17, item 3) ----------------------------------------

# The course's oracles, with text a thief would look for (a docstring) and an entry no check puts in place (`cube`).
MARKED_ORACLES = '''
"""ORACLE-SECRET module docstring"""
import torch


def square(x):
    """ORACLE-SECRET square docstring"""
    return x * x


def cube(x):
    """ORACLE-SECRET cube docstring"""
    return x * x * x


class Scaler:
    """ORACLE-SECRET Scaler docstring"""

    def __init__(self, factor):
        self.factor = factor

    def apply(self, x):
        return x * self.factor


ORACLES = {"square": square, "Scaler": Scaler, "cube": cube}
'''

# A composite that searches the whole process for the oracles (the garbage collector sees every object: modules,
# functions, classes, code) and keeps what it finds for later; `later` answers with a kept oracle, if any.
THIEF = """
import gc
import sys
import types

STOLEN = {}
MARK = "ORACLE" + "-SECRET"  # (not in this file's text, which a warning may print)


def _search():
    found = []
    for o in gc.get_objects():
        try:
            if isinstance(o, types.ModuleType) and o.__name__ == "_grader_oracles":
                found.append("module")
                STOLEN.update(o.__dict__.get("ORACLES", {}))
            elif isinstance(o, types.FunctionType) and o.__code__.co_filename.startswith("<oracles"):
                found.append("function " + o.__qualname__)
                STOLEN.update(o.__globals__.get("ORACLES", {}))
            elif isinstance(o, str) and MARK in o:
                found.append("text " + o[:60])
            elif isinstance(o, dict) and isinstance(o.get("source"), str) and MARK in o["source"]:
                found.append("config " + o["source"][:60])
        except Exception:
            pass
    if "_grader_oracles" in sys.modules:
        found.append("sys.modules")
    return found


def total(x):
    found = _search()
    print("THIEF FOUND", found)
    return found, square(x).sum()


def later(x):
    return STOLEN["cube"](x) if "cube" in STOLEN else None
"""


def test_the_students_worker_never_holds_the_oracles(tmp_path):
    from grader.sandbox.host import Sandbox
    from grader.sandbox.isolation import SandboxConfig

    root = tmp_path / "kit"
    write_work(root, {"square": "def square(x):\n    return x * 3\n", "total": THIEF})
    cfg = SandboxConfig(
        root=root,
        student_files=["mini_pkg/work.py"],
        call_timeout=30,
        memory_mb=1024,
        oracles={"source": MARKED_ORACLES, "assignment": "mini"},
        walls=False,  # the audit hook would refuse gc.get_objects first; this shows there is nothing to find
    )
    sent: list[dict] = []
    x = torch.arange(3.0)
    with Sandbox(cfg) as sb:
        send = sb._send  # every request to the worker goes through it, its setup included

        def spy(req, *a, **k):
            sent.append(req)
            return send(req, *a, **k)

        sb._send = spy
        found, value = sb.call("mini_pkg.work", "total", (x,)).value
        assert found == [] and torch.equal(value, torch.tensor(9.0))
        sb.substitute({"square": "mini_pkg.work", "Scaler": "mini_pkg.work"})
        r = sb.call("mini_pkg.work", "total", (x,))
        found, value = r.value
        assert torch.equal(value, torch.tensor(5.0))  # the course's square answered, from elsewhere
        assert found == [], found  # nothing of the oracles is in the student's process
        output = sb.output_since(0, 100_000)
        assert "THIEF FOUND []" in output and "ORACLE-SECRET" not in output
        sb.restore()
        assert sb.call("mini_pkg.work", "later", (x,)).value is None  # nothing was kept to use later
    # what the worker was sent, from its setup on: no oracle source, no oracle text
    setups = [r for r in sent if r.get("op") == "setup"]
    assert setups and all("oracles" not in r["config"] for r in setups)
    assert "ORACLE-SECRET" not in repr(sent)


@pytest.mark.slow
def test_an_oracle_kept_by_a_composite_is_worth_nothing_in_a_later_check(tmp_path):
    # the static scan refuses gc, __globals__ and the like, but a composite judged with the oracles could keep the
    # very objects put in its module (the course's square) and read their docstrings; `sumsq` (no block of its own,
    # judged after total) answers with the kept square
    manifest = MANIFEST_WITH_SUMSQ
    course = make_course(tmp_path / "course", oracles=MARKED_ORACLES.replace(', "cube": cube', ""), manifest=manifest)
    (course / "assignments" / "mini" / "checks.py").write_text(
        (course / "assignments" / "mini" / "checks.py").read_text() + SUMSQ_CHECK
    )
    total = (
        "KEPT = []\n\n\n"
        "def total(x):\n"
        "    KEPT.append(square)\n"
        "    print('DOC', square.__doc__, type(square).__doc__)\n"
        "    return square(x).sum()\n\n\n"
        "def sumsq(x):\n"
        "    return KEPT[-1](x).sum() if KEPT else x.sum()\n"
    )
    checks = graded(course, tmp_path, square="def square(x):\n    return x * 3\n", total=total)
    assert checks["total"].status == "passed", checks["total"].output
    c = checks["sumsq"]
    assert c.status == "failed" and c.score == 0, c.output
    assert all("ORACLE-SECRET" not in r.output for r in checks.values())


MANIFEST_WITH_SUMSQ = MANIFEST.replace("points = 10", "points = 12").replace(
    "scaled_total = 3\n", "scaled_total = 3\nsumsq = 2\n"
)
SUMSQ_CHECK = '''

@check("mini.sumsq", function="sumsq")
def sumsq_check(ctx):
    """sumsq sums the squares"""
    x = ctx.randn(6)
    ctx.expect_tensor(ctx.call("sumsq", x), (x * x).sum(), "sumsq(x)")
'''
