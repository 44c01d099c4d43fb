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

from grader.judge.doors import dynamic_uses
from tests.grader.test_blocks import graded, make_course

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
