"""The worker's run-time walls (grader.sandbox.audit): the audit hook refuses the interpreter's doors to student
code (frames, gc, tracing, ctypes, other classes' code) even where the error is caught, the integrity check finds
the grader changed by a plain assignment, and a refusal costs every function of the file. The grader's own work
(tracebacks, the guard's stack walks, namedtuples and dataclasses in student code) is never refused."""

from __future__ import annotations

import textwrap

import pytest
import torch

from grader.judge.runner import grade
from grader.sandbox.host import Sandbox
from grader.sandbox.isolation import SandboxConfig, SandboxError, detect_isolation
from grader.sandbox.lowering import GUARD_REMOVED
from tests.conftest import copy_submission, replace_function

needs_bwrap = pytest.mark.skipif(detect_isolation().mode != "bwrap", reason="bubblewrap is not usable here")

ATTACKS = textwrap.dedent("""
    import collections, dataclasses, typing
    import torch

    def caught(fn):
        try:
            fn()
        except RuntimeError as e:
            return str(e)
        return "not refused"

    def enumerate_objects():
        return caught(lambda: __import__("gc").get_objects())

    def own_frame():
        return caught(lambda: torch.sys._getframe())

    def frame_through_inspect():
        return caught(lambda: torch.inspect.currentframe())

    def frame_of_a_traceback():
        def go():
            try:
                raise ValueError
            except ValueError as e:
                return e.__traceback__.tb_frame
        return caught(go)

    def tracing():
        return caught(lambda: torch.sys.settrace(lambda *a: None))

    def raw_memory():
        return caught(lambda: torch.ctypes.string_at(id(torch), 8))

    def switch_off_the_guard(a, b):
        guard = torch.sys.modules["grader.sandbox.guard"]
        guard.Guard.hit = lambda self, name, op: False
        return torch.cdist(a, b)

    def rewrite_a_torch_function():
        def mine():
            return 1
        return caught(lambda: setattr(torch.nn.functional.relu, "__code__", mine.__code__))

    Point = collections.namedtuple("Point", "x y")

    @dataclasses.dataclass
    class Pair:
        a: int = 1
        b: int = 2

    class Mine(typing.NamedTuple):
        x: int

    def ordinary(a):
        Pair.__doc__ = "mine"
        def f(x=1):
            return x
        f.__defaults__ = (2,)
        return Point(1, 2).x + Pair().b + Mine(3).x + f() + int(a.sum())

    def fails_honestly():
        return [][1]
""")


@pytest.fixture
def sandbox(tmp_path):
    root = tmp_path / "kit"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "attacks.py").write_text(ATTACKS)
    cfg = SandboxConfig(root=root, student_files=["pkg/attacks.py"], call_timeout=30, guarded=["cdist"])
    with Sandbox(cfg) as sb:
        yield sb


@pytest.mark.parametrize(
    "attack, event",
    [
        ("enumerate_objects", "gc.get_objects"),
        ("own_frame", "sys._getframe"),
        ("frame_through_inspect", "sys._getframe"),
        ("frame_of_a_traceback", "object.__getattr__"),
        ("tracing", "sys.settrace"),
        ("raw_memory", "ctypes"),
        ("rewrite_a_torch_function", "object.__"),
    ],
)
def test_the_interpreters_doors_are_refused_even_when_the_error_is_caught(sandbox, attack, event):
    said = sandbox.call("pkg.attacks", attack).value
    assert said.startswith("graded code may not do this"), said
    assert sandbox.refusals, "the refusal must be recorded where student code cannot undo it"
    r = sandbox.refusals[0]
    assert r["event"].startswith(event) and r["file"] == "pkg/attacks.py" and isinstance(r["line"], int)


def test_a_guard_switched_off_by_assignment_is_found(sandbox):
    a = torch.ones(3, 2)
    reply = sandbox.call("pkg.attacks", "switch_off_the_guard", (a, a), forbidden=["cdist"])
    found = [r["what"] for r in sandbox.refusals]
    assert any("grader.sandbox.guard.Guard" in w for w in found), found
    assert reply.value.shape == (3, 3)


def test_the_grader_own_reflection_and_ordinary_code_are_not_refused(sandbox):
    assert sandbox.call("pkg.attacks", "ordinary", (torch.ones(2),)).value == 1 + 2 + 3 + 2 + 2
    with pytest.raises(SandboxError) as err:  # the worker reads the traceback to name the line
        sandbox.call("pkg.attacks", "fails_honestly")
    assert err.value.where and err.value.where[-1]["function"] == "fails_honestly"
    assert sandbox.refusals == []


@needs_bwrap
def test_a_refusal_costs_every_function_of_the_file(tmp_path):
    """End to end on A1: one function of knn.py switches the guard off (the others are right): every check of
    knn.py fails with feedback naming the line; warmup.py, another file, keeps its points."""
    sub = copy_submission(tmp_path / "sub")
    replace_function(
        sub / "a1_knn" / "knn.py",
        "compute_distances_two_loops",
        """
        def compute_distances_two_loops(x_train, x_test):
            torch.sys.modules["grader.sandbox.guard"].Guard.hit = lambda self, name, op: False
            a, b = x_test.flatten(1), x_train.flatten(1)
            return (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.t()
        """,
    )
    result = grade(sub, "a1_knn", device="cpu")
    knn = [c for c in result.checks if c.part == "knn"]
    assert knn and all(not c.passed and c.score == 0 for c in knn)
    assert all("knn.py" in c.output for c in knn)
    assert any(h["rule"] in ("refused", "dynamic", "forbidden") for c in knn for h in c.rule_hits)
    warmup = [c for c in result.checks if c.part == "warmup"]
    assert warmup and all(c.passed for c in warmup)


IMPORTS = textwrap.dedent("""
    import math
    import multiprocessing.pool            # imported, never used: costs nothing
    import numpy as np
    from os import path

    def never_uses_them(x):
        return math.sqrt(x)

    def uses_numpy(x):
        try:
            return float(np.sqrt(x))
        except ImportError as e:
            return str(e)

    def uses_os():
        return path.join("a", "b")
""")


def test_a_module_outside_the_list_may_be_imported_but_not_used(tmp_path):
    root = tmp_path / "kit"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "imp.py").write_text(IMPORTS)
    cfg = SandboxConfig(
        root=root, student_files=["pkg/imp.py"], call_timeout=30, allowed_imports=["torch", "math", "pkg"]
    )
    with Sandbox(cfg) as sb:
        assert sb.call("pkg.imp", "never_uses_them", (4.0,)).value == 2.0
        assert sb.refusals == []
        assert sb.call("pkg.imp", "uses_numpy", (4.0,)).value == "graded code may not use numpy in this assignment"
        with pytest.raises(SandboxError, match="may not use os"):
            sb.call("pkg.imp", "uses_os")
    assert [(r["event"], r["file"]) for r in sb.refusals] == [("import", "pkg/imp.py")] * 2
    assert "uses numpy" in sb.refusals[0]["what"] and isinstance(sb.refusals[0]["line"], int)


MEMO = textwrap.dedent("""
    import torch
    _ANSWERS = {}

    def distances(a, b):
        key = (id(a), id(b))    # a memo on the inputs' identity: looking it up runs no operator
        if key not in _ANSWERS:
            _ANSWERS[key] = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return _ANSWERS[key]
""")


def test_a_result_computed_by_no_operator_is_suspect(tmp_path):
    """The judge does not believe a guarded call that returned a new tensor while the guard saw nothing run."""
    from grader.judge.checks import CheckFailed, CheckSpec, Ctx

    root = tmp_path / "kit"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "memo.py").write_text(MEMO)
    cfg = SandboxConfig(root=root, student_files=["pkg/memo.py"], call_timeout=30, guarded=["cdist"])
    a, b = torch.randn(4, 3), torch.randn(5, 3)
    with Sandbox(cfg) as sb:
        ha, hb = sb.put(a), sb.put(b)
        first = sb.call("pkg.memo", "distances", (ha, hb), forbidden=["cdist"])
        again = sb.call("pkg.memo", "distances", (ha, hb), forbidden=["cdist"])
    assert first.ops > 0 and again.ops == 0

    class FakeRun:
        sandbox, device = None, "cpu"

    ctx = Ctx(FakeRun(), CheckSpec(id="t.memo", function="distances", body=lambda c: None))
    ctx._judge_reply(first, "distances")  # computed: believed
    with pytest.raises(CheckFailed, match="without computing anything in this call"):
        ctx._judge_reply(again, "distances")


# -- an attacker's review of the walls: each finding as a test ----------------------------------------------------

REVIEW = textwrap.dedent("""
    import functools
    import torch

    STASH = []

    class D(torch.Tensor):
        @classmethod
        def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
            a, b = STASH
            return torch.cdist(a, b) ** 2

    def through_a_subclass(a, b):
        STASH[:] = [a, b]
        return torch.neg(a.as_subclass(D))

    BOX = []

    @functools.singledispatch
    def _probe(x):
        return x

    def string_annotation(x):
        BOX[:] = [x.shape]

        def lookup(y: "BOX.append(BOX.pop().numel()) or int"):
            return y

        _probe.register(lookup)
        return torch.tensor(BOX[0])

    def _never(*args):
        return False

    def blind_functional(x):
        torch.nn.functional.has_torch_function_variadic = _never
        return torch.nn.functional.normalize(x, dim=1)

    def warns(x):
        y = torch.tensor(x)            # PyTorch warns: copy construct from a tensor
        z = torch.nn.functional.softmax(torch.ones(2, 3))   # and: implicit dim
        return y.sum() + z.sum()
""")


@pytest.fixture
def review(tmp_path):
    root = tmp_path / "kit"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "review.py").write_text(REVIEW)
    guarded = ["cdist", "numel", "torch.nn.functional.normalize"]
    with Sandbox(SandboxConfig(root=root, student_files=["pkg/review.py"], call_timeout=30, guarded=guarded)) as sb:
        yield sb


def test_a_tensor_subclass_handler_is_seen_as_a_guard_removed(review):
    a = torch.ones(3, 2)
    reply = review.call("pkg.review", "through_a_subclass", (a, a), forbidden=["cdist"])
    assert any(h["name"] == GUARD_REMOVED for h in reply.forbidden_hits), reply.forbidden_hits


def test_a_string_annotation_evaluated_as_code_is_refused(review):
    with pytest.raises(SandboxError, match="evaluates a string annotation"):
        review.call("pkg.review", "string_annotation", (torch.ones(3, 5),), forbidden=["numel"])
    assert review.refusals and review.refusals[0]["file"] == "pkg/review.py"


def test_changing_pytorchs_own_python_is_found(review):
    review.call("pkg.review", "blind_functional", (torch.ones(3, 2),), forbidden=["torch.nn.functional.normalize"])
    assert any("PyTorch's torch.nn.functional" in r["what"] for r in review.refusals), review.refusals


def test_pytorchs_warnings_are_not_a_change_of_the_grader(review):
    review.call("pkg.review", "warns", (torch.ones(2),), forbidden=["cdist"])
    assert review.refusals == []


def test_the_static_scan_refuses_what_the_review_found():
    from grader.judge.doors import dynamic_uses

    match = (
        "import torch\ndef f(x):\n    match torch.nn.functional.torch:\n        case object(_C=c):\n            pass\n"
    )
    assert [u.name for u in dynamic_uses(match, "f")] == ["a match/case class pattern"]
    assert "__torch_dispatch__" in {u.name for u in dynamic_uses(REVIEW, "through_a_subclass")}
    peer = "def f(x):\n    return x._peer\n"
    assert [u.name for u in dynamic_uses(peer, "f")] == ["_peer"]
