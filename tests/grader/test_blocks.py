"""Building blocks: a composite whose block is broken is judged again with the course's oracle in its place.

A small course of its own (one part: two blocks, two composites) is graded in the sandbox with submissions that
break a block in each way a student does (wrong values, an error only in float32, a forbidden call), a composite
that is wrong on its own, and one that tries to reach the oracles. Both directions: the broken block loses its
points, the composite keeps its points only when it is right with the oracle.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from grader.errors import GraderError
from grader.judge.runner import grade

MANIFEST = """
name = "mini"
title = "Mini"
files = ["mini_pkg/work.py"]
sandbox_paths = ["mini_pkg"]
forbid_autograd = true

[[parts]]
name = "work"
title = "Work"
module = "mini_pkg.work"
file = "mini_pkg/work.py"
points = 10

[parts.functions]
total = 3
square = 2
Scaler = 2
scaled_total = 3

[parts.blocks]
total = ["square"]
scaled_total = ["Scaler"]
"""

# The oracles: correct, and free to use autograd (d/dx x^3/3 = x^2), which the students' code may not.
ORACLES = """
import torch


def square(x):
    t = x.detach().double().requires_grad_(True)
    (g,) = torch.autograd.grad((t ** 3 / 3).sum(), t)
    return g.to(x.dtype)


class Scaler:
    def __init__(self, factor):
        self.factor = factor

    def apply(self, x):
        return x * self.factor


ORACLES = {"square": square, "Scaler": Scaler}
"""

CHECKS = """
import torch
from grader.judge.checks import check


@check("mini.square", function="square")
def square_check(ctx):
    \"\"\"square squares every entry (float64)\"\"\"
    x = ctx.randn(5)
    ctx.expect_tensor(ctx.call("square", x), x * x, "square(x)")


@check("mini.scaler", function="Scaler")
def scaler_check(ctx):
    \"\"\"Scaler multiplies by its factor\"\"\"
    x = ctx.randn(4)
    s = ctx.call("Scaler", 3.0, keep=True)
    ctx.expect_tensor(ctx.method(s, "apply", x), 3 * x, "Scaler(3).apply(x)")


@check("mini.total", function="total")
def total_check(ctx):
    \"\"\"total sums the squares (float32)\"\"\"
    x = ctx.randn(6, dtype=torch.float32)
    ctx.expect_tensor(ctx.call("total", x), (x.double() ** 2).sum().float(), "total(x)", bound=1e-5)


@check("mini.scaled_total", function="scaled_total")
def scaled_total_check(ctx):
    \"\"\"scaled_total sums the entries scaled by 2\"\"\"
    x = ctx.randn(6)
    ctx.expect_tensor(ctx.call("scaled_total", x), 2 * x.sum(), "scaled_total(x)")
"""

REFERENCE = {
    "square": "def square(x):\n    return x * x\n",
    "total": "def total(x):\n    return square(x).sum()\n",
    "Scaler": (
        "class Scaler:\n    def __init__(self, factor):\n        self.f = factor\n\n"
        "    def apply(self, x):\n        return x * self.f\n"
    ),
    "scaled_total": "def scaled_total(x):\n    return Scaler(2.0).apply(x).sum()\n",
}


BROKEN_SCALER = (
    "class Scaler:\n    def __init__(self, factor):\n        self.f = factor\n\n"
    "    def apply(self, x):\n        return x + self.f\n"
)


def make_course(root: Path, oracles: str = ORACLES, manifest: str = MANIFEST) -> Path:
    a = root / "assignments" / "mini"
    a.mkdir(parents=True)
    (a / "assignment.toml").write_text(manifest)
    (a / "checks.py").write_text(CHECKS)
    if oracles is not None:
        (a / "oracles.py").write_text(oracles)
    (root / "mini_pkg").mkdir()
    (root / "mini_pkg" / "__init__.py").write_text("")
    write_work(root, {})
    return root


def write_work(folder: Path, replace: dict[str, str]) -> Path:
    (folder / "mini_pkg").mkdir(parents=True, exist_ok=True)
    (folder / "mini_pkg" / "__init__.py").write_text("")
    code = {**REFERENCE, **{k: textwrap.dedent(v) for k, v in replace.items()}}
    (folder / "mini_pkg" / "work.py").write_text("import torch\n\n\n" + "\n\n".join(code.values()))
    return folder


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    return make_course(tmp_path_factory.mktemp("course"))


def graded(course: Path, tmp_path: Path, **replace: str):
    sub = write_work(tmp_path / "sub", replace)
    result = grade(sub, "mini", kit=course, device="cpu")
    return {c.function: c for c in result.checks}


@pytest.mark.slow
def test_reference_passes_and_blocks_come_first(course, tmp_path):
    checks = graded(course, tmp_path)
    assert all(c.status == "passed" for c in checks.values()), {k: c.output for k, c in checks.items()}
    assert list(checks) == ["square", "total", "Scaler", "scaled_total"]  # each block before its composite


@pytest.mark.slow
def test_wrong_block_costs_only_its_own_points(course, tmp_path):
    checks = graded(course, tmp_path, square="def square(x):\n    return x * 3\n", Scaler=BROKEN_SCALER)
    assert checks["square"].status == "failed" and checks["Scaler"].status == "failed"
    for composite, block in (("total", "square"), ("scaled_total", "Scaler")):
        c = checks[composite]
        assert c.status == "passed" and c.score == c.max_score, c.output
        assert f"the course's own {block} in place of yours" in c.output
        assert "because yours failed its own checks" in c.output


@pytest.mark.slow
def test_composite_wrong_on_its_own_still_fails(course, tmp_path):
    checks = graded(
        course,
        tmp_path,
        square="def square(x):\n    return x * 3\n",
        total="def total(x):\n    return square(x).mean()\n",
    )
    c = checks["total"]
    assert c.status == "failed" and c.score == 0
    assert "relative error" in c.output and "this problem is total's own" in c.output


@pytest.mark.slow
def test_error_in_the_composites_own_lines_is_never_excused(course, tmp_path):
    checks = graded(
        course,
        tmp_path,
        square="def square(x):\n    return x * 3\n",
        total=("def total(x):\n    s = square(x)\n    return s.to('cuda').sum() if True else s\n"),
    )
    c = checks["total"]
    assert c.status == "failed" and c.score == 0
    assert "raised" in c.output and "total's own" in c.output


@pytest.mark.slow
def test_only_a_blocks_own_checks_can_put_the_oracle_in_its_place(course, tmp_path):
    # square passes its own (float64) check but raises on float32, which total uses. A composite can make its
    # blocks raise on purpose, so an error raised in a block's lines while the composite runs excuses nothing:
    # it is the block's checks that must cover float32 (and then square loses its points, total keeps its).
    checks = graded(
        course,
        tmp_path,
        square=(
            "def square(x):\n"
            "    if x.dtype != torch.float64:\n"
            "        raise TypeError('expected float64')\n"
            "    return x * x\n"
        ),
    )
    assert checks["square"].status == "passed"
    c = checks["total"]
    assert c.status == "failed" and "raised TypeError: expected float64" in c.output, c.output
    assert "course's own" not in c.output


@pytest.mark.slow
def test_forbidden_call_in_a_block_is_the_blocks_alone(course, tmp_path):
    checks = graded(
        course,
        tmp_path,
        square=(
            "def square(x):\n"
            "    t = x.detach().clone().requires_grad_(True)\n"
            "    (g,) = torch.autograd.grad((t ** 3 / 3).sum(), t)\n"
            "    return g.detach()\n"
        ),
    )
    assert checks["square"].status == "failed" and "autograd" in checks["square"].output
    assert checks["total"].status == "passed", checks["total"].output


@pytest.mark.slow
def test_student_code_cannot_reach_the_oracles_or_gain_from_them(course, tmp_path):
    # the oracle module is in no import path and not in sys.modules; a composite that goes looking fails. The static
    # scan refuses the import of a module outside the manifest's list before it runs, so this part grades against a
    # course that allows it ([rules] allowed_imports): the import must reach the worker to be tested there
    allowing = make_course(tmp_path / "allowing")
    toml = allowing / "assignments" / "mini" / "assignment.toml"
    toml.write_text(toml.read_text() + '\n[rules]\nallowed_imports = ["_grader_oracles"]\n')
    checks = graded(
        allowing,
        tmp_path / "first",
        square="def square(x):\n    return x * 3\n",
        total=("def total(x):\n    import _grader_oracles\n    return _grader_oracles.square(x).sum()\n"),
    )
    assert checks["total"].status == "failed" and "ModuleNotFoundError" in checks["total"].output
    # autograd in the composite itself is caught even while the (exempt) oracle stands in for its block
    checks = graded(
        course,
        tmp_path,
        square="def square(x):\n    return x * 3\n",
        total=("def total(x):\n    t = x.detach().clone().requires_grad_(True)\n    return square(t).sum().detach()\n"),
    )
    assert checks["total"].status == "failed" and checks["total"].score == 0


def test_every_block_needs_an_oracle(tmp_path):
    course = make_course(tmp_path / "c", oracles="ORACLES = {'square': lambda x: x * x}\n")
    with pytest.raises(GraderError, match=r"\[parts.blocks\] scaled_total.*'Scaler'.*oracles.py"):
        grade(write_work(tmp_path / "sub", {}), "mini", kit=course, device="cpu")
    course = make_course(tmp_path / "d", oracles="ORACLES = {'cube': None}\n")
    with pytest.raises(GraderError, match=r"ORACLES names \['cube'\], which no part of the manifest grades"):
        grade(write_work(tmp_path / "sub2", {}), "mini", kit=course, device="cpu")


def test_oracles_stay_in_place_across_a_worker_restart_and_go_with_restore(tmp_path):
    from grader.sandbox.host import Sandbox
    from grader.sandbox.isolation import SandboxConfig

    root = tmp_path / "kit"
    write_work(root, {"square": "def square(x):\n    return x * 3\n", "Scaler": BROKEN_SCALER})
    cfg = SandboxConfig(
        root=root,
        student_files=["mini_pkg/work.py"],
        call_timeout=20,
        memory_mb=512,
        oracles={"source": ORACLES, "assignment": "mini"},
    )
    x = torch.arange(3.0)
    with Sandbox(cfg) as sb:
        assert torch.equal(sb.call("mini_pkg.work", "total", (x,)).value, torch.tensor(9.0))
        sb.substitute({"square": "mini_pkg.work", "Scaler": "mini_pkg.work"})
        assert torch.equal(sb.call("mini_pkg.work", "total", (x,)).value, torch.tensor(5.0))
        s = sb.call("mini_pkg.work", "Scaler", (2.0,)).value
        assert torch.equal(sb.call(None, "apply", (x,), handle=s).value, 2 * x)
        # the oracle's autograd is exempt; a student function still may not use it
        r = sb.call("mini_pkg.work", "total", (x,), forbidden=["torch.autograd", "torch.Tensor.requires_grad_"])
        assert r.forbidden_hits == [] and torch.equal(r.value, torch.tensor(5.0))
        sb._kill()  # e.g. a time-out in the middle of a check judged with oracles
        assert torch.equal(sb.call("mini_pkg.work", "total", (x,)).value, torch.tensor(5.0))
        assert sb.stats.starts == 2
        sb.restore()
        assert torch.equal(sb.call("mini_pkg.work", "total", (x,)).value, torch.tensor(9.0))
        s = sb.call("mini_pkg.work", "Scaler", (2.0,)).value
        assert torch.equal(sb.call(None, "apply", (x,), handle=s).value, x + 2)


@pytest.mark.slow
def test_an_oracle_kept_by_student_code_is_refused_once_restored(tmp_path):
    # the student's worker never holds the oracle, only a stand-in that asks the judge, which refuses a name that is
    # not in place now (and the oracle's autograd, run elsewhere, is no hit of the student's)
    from grader.sandbox.host import Sandbox
    from grader.sandbox.isolation import SandboxConfig, SandboxError

    root = tmp_path / "kit"
    total = (
        "KEPT = []\n\n\ndef total(x):\n    KEPT.append(square)\n    return square(x).sum()\n\n\n"
        "def later(x):\n    return KEPT[0](x)\n"
    )
    write_work(root, {"square": "def square(x):\n    return x * 3\n", "total": total})
    cfg = SandboxConfig(
        root=root,
        student_files=["mini_pkg/work.py"],
        call_timeout=20,
        memory_mb=512,
        oracles={"source": ORACLES, "assignment": "mini"},
    )
    rules = ["torch.autograd", "torch.autograd.grad", "torch.Tensor.requires_grad_"]
    x = torch.arange(3.0)
    with Sandbox(cfg) as sb:
        sb.substitute({"square": "mini_pkg.work"})
        assert sb.call("mini_pkg.work", "total", (x,), forbidden=rules).forbidden_hits == []
        sb.restore()
        with pytest.raises(SandboxError, match=r"the course's square: it is not in place now"):
            sb.call("mini_pkg.work", "later", (x,), forbidden=rules)


@pytest.mark.slow
def test_without_oracles_the_kit_says_the_autograder_judges_again(tmp_path):
    course = make_course(tmp_path / "kit", oracles=None)  # the student kit ships no oracles.py
    checks = graded(course, tmp_path, square="def square(x):\n    return x * 3\n")
    c = checks["total"]
    assert c.status == "failed" and c.score == 0
    assert "The autograder judges total again with the course's own square" in c.output


@pytest.mark.slow
def test_a_composite_not_written_yet_gets_no_note_about_its_blocks(tmp_path):
    """A stub is its own problem: neither the kit's note nor a judgement with the course's blocks."""
    stub = "def total(x):\n    raise NotImplementedError\n"
    square = "def square(x):\n    return x * 3\n"
    for oracles in (None, ORACLES):  # the kit, and the autograder
        course = make_course(tmp_path / f"kit-{oracles is None}", oracles=oracles)
        checks = graded(course, tmp_path / f"sub-{oracles is None}", square=square, total=stub)
        c = checks["total"]
        assert c.status == "failed" and c.output.startswith("total is not implemented yet"), c.output
        assert "course's own" not in c.output and "judges total again" not in c.output, c.output


# ---- the stand-ins: what crosses to the oracle process and back ------------------------------------------------

MECHANICS_ORACLES = """
import torch


def square(x):
    return x * x


def train(step, x, n):
    for _ in range(n):
        x = step(x)
    return x


def bump(config):
    config["count"] = config.get("count", 0) + 1
    config["velocity"] = torch.ones(2) * config["count"]
    return config["count"], config


class Norm:
    @staticmethod
    def forward(x):
        return x / x.norm(), (x.shape, x)

    @staticmethod
    def backward(dout, cache):
        shape, x = cache
        return dout.reshape(shape) / x.norm()


class Counter:
    def __init__(self, start):
        self.params = {"n": torch.tensor(float(start))}
        self.history = []

    def step(self):
        self.params["n"] = self.params["n"] + 1
        self.history.append(float(self.params["n"]))
        return self.params["n"]


ORACLES = {"square": square, "train": train, "bump": bump, "Norm": Norm, "Counter": Counter}
"""

MECHANICS_STUDENT = """
import torch


def square(x):
    return x * 3


def train(step, x, n):
    return x


def bump(config):
    return 0, config


class Norm:
    pass


class Counter:
    mine = "the student's own attribute"

    def __init__(self, start):
        pass


def double(x):
    return x * 2


def sneaky(x):
    t = x.detach().clone().requires_grad_(True)
    return (t * 2).sum().detach() * 0 + x


def use_all(x):
    out = {}
    out["train_student_fn"] = train(double, x, 3)       # the oracle calls back the student's function
    out["train_stand_in"] = train(square, x, 2)         # ... or another stand-in
    config = {"lr": 0.5}
    value, returned = bump(config)
    out["bump"] = (value, config, returned is config)
    y, cache = Norm.forward(x)
    out["norm"] = (y, Norm.backward(torch.ones_like(x), cache), type(cache[0]).__name__, repr(cache[0]))
    c = Counter(5)
    params = c.params
    out["counter"] = (c.step(), c.step(), c.history, c.params is params, c.mine, isinstance(c, Counter))
    return out


def use_autograd_in_call_back(x):
    return train(sneaky, x, 1)


def forge(x):
    from grader.sandbox.wire import Handle
    return Norm.backward(x, (Handle(-999_999, "Size"), x))
"""


@pytest.mark.slow
def test_stand_ins_call_back_write_back_and_keep_caches_in_the_oracle_process(tmp_path):
    from grader.sandbox.host import Sandbox
    from grader.sandbox.isolation import SandboxConfig, SandboxError

    root = tmp_path / "kit"
    (root / "mini_pkg").mkdir(parents=True)
    (root / "mini_pkg" / "__init__.py").write_text("")
    (root / "mini_pkg" / "work.py").write_text(MECHANICS_STUDENT)
    cfg = SandboxConfig(
        root=root,
        student_files=["mini_pkg/work.py"],
        call_timeout=30,
        memory_mb=1024,
        oracles={"source": MECHANICS_ORACLES, "assignment": "mini"},
    )
    x = torch.tensor([3.0, 4.0])
    names = dict.fromkeys(("square", "train", "bump", "Norm", "Counter"), "mini_pkg.work")
    with Sandbox(cfg) as sb:
        sb.substitute(names)
        out = sb.call("mini_pkg.work", "use_all", (x,)).value
        assert torch.equal(out["train_student_fn"], x * 8)
        assert torch.equal(out["train_stand_in"], x**4)
        value, config, same = out["bump"]
        assert value == 1 and config["lr"] == 0.5 and config["count"] == 1 and same  # written back, in place
        assert torch.equal(config["velocity"], torch.ones(2))
        y, dx, cache_type, cache_repr = out["norm"]
        assert torch.allclose(y, x / 5) and torch.allclose(dx, torch.ones(2) / 5)
        assert cache_type == "Remote" and "Size" in cache_repr  # the torch.Size stayed in the oracle process
        n1, n2, history, same_params, mine, is_counter = out["counter"]
        assert (float(n1), float(n2), history) == (6.0, 7.0, [6.0, 7.0])
        assert same_params and mine == "the student's own attribute" and is_counter
        # a student's function called back by an oracle runs under the guard of the call it is part of
        r = sb.call(
            "mini_pkg.work",
            "use_autograd_in_call_back",
            (x,),
            forbidden=["torch.autograd", "torch.Tensor.requires_grad_"],
        )
        assert {h["function"] for h in r.forbidden_hits} == {"sneaky"}, r.forbidden_hits
        # a handle the oracle process never gave out is refused
        with pytest.raises(SandboxError, match="never gave out"):
            sb.call("mini_pkg.work", "forge", (x,))
