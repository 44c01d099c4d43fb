"""The guard watches the operators under a call only where they can break a rule (grader.sandbox.guard: the
function mode passes a call on unwatched once the same function, with arguments of the same kinds, ran no
operator a rule names). Each test here first makes a call look harmless, then tries to profit from it; each must
still be caught, and the same code without the rule is left alone."""

from __future__ import annotations

import gc

import pytest
import torch

from grader.course.manifest import AUTOGRAD_NAMES
from grader.judge import doors
from grader.sandbox.guard import Guard
from grader.sandbox.host import Sandbox
from grader.sandbox.isolation import SandboxConfig
from grader.sandbox.lowering import GUARD_REMOVED

STUDENT = '''
import torch
import torch.nn.functional as F

def absolute_error(x, reduction):
    """A mean by the back door: l1_loss reaches aten::mean only with reduction="mean"."""
    return F.l1_loss(x, torch.zeros_like(x), reduction=reduction)

def in_a_callback(a, b, use):
    """PyTorch calls the lambda back from inside Tensor.apply_, with the function mode switched off."""
    found = [a]
    if use:
        torch.zeros(1, dtype=torch.float64).apply_(lambda v: found.append(torch.cdist(a, b)) or v)
    else:
        torch.zeros(1, dtype=torch.float64).apply_(lambda v: v)
    return found[-1]

class Size:
    """An object PyTorch turns into an int by calling its __index__, inside the call it was passed to."""
    def __init__(self, a, b, use):
        self.a, self.b, self.use, self.found = a, b, use, [a]
    def __index__(self):
        if self.use:
            self.found.append(torch.cdist(self.a, self.b))
        return 2

def in_an_index(a, b, use):
    size = Size(a, b, use)
    torch.zeros(size)
    return size.found[-1]

def after_plain_indexing(x):
    """The same method with plain arguments first (quiet), then with a tensor that requires grad."""
    total = x[0, 0] + x[1, 1]
    w = x.detach().clone()
    w.requires_grad = True
    return total + (w[0, 0] * 2).detach()
'''

A, B = torch.randn(3, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
MEAN = ["torch.mean", "torch.Tensor.mean"]
AUTOGRAD = list(AUTOGRAD_NAMES)


def _load(path, source: str) -> tuple:
    """Student code in a file of its own (the guard tells it by its file), and its namespace."""
    path.write_text(source)
    namespace: dict = {}
    exec(compile(source, str(path), "exec"), namespace)
    return path, namespace


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("lazy")
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "student.py").write_text(STUDENT)
    cfg = SandboxConfig(
        root=root,
        student_files=["pkg/student.py"],
        guarded=sorted({"torch.cdist", *MEAN, *AUTOGRAD}),
        call_timeout=60,
        memory_mb=2048,
    )
    with Sandbox(cfg) as sb:
        yield sb


def _names(reply) -> list[str]:
    return [h["name"] for h in reply.forbidden_hits]


def test_a_function_seen_harmless_is_watched_again_when_an_argument_changes_what_it_runs(sandbox):
    x = torch.randn(4, 3)
    for _ in range(3):  # harmless: the sum of absolute values
        assert _names(sandbox.call("pkg.student", "absolute_error", (x, "sum"), forbidden=MEAN)) == []
    r = sandbox.call("pkg.student", "absolute_error", (x, "mean"), forbidden=MEAN)
    assert "torch.mean" in _names(r) or "torch.Tensor.mean" in _names(r), r.forbidden_hits
    assert sandbox.call("pkg.student", "absolute_error", (x, "mean"), forbidden=[]).forbidden_hits == []


@pytest.mark.parametrize("function", ["in_a_callback", "in_an_index"])
def test_student_code_pytorch_calls_back_is_watched(sandbox, function):
    for _ in range(2):  # harmless first: the same PyTorch call with the student's object, doing nothing forbidden
        assert _names(sandbox.call("pkg.student", function, (A, B, False), forbidden=["torch.cdist"])) == []
    for _ in range(2):
        r = sandbox.call("pkg.student", function, (A, B, True), forbidden=["torch.cdist"])
        assert "torch.cdist" in _names(r), (function, r.forbidden_hits)
        assert torch.allclose(r.value, torch.cdist(A, B))
    assert sandbox.call("pkg.student", function, (A, B, True), forbidden=[]).forbidden_hits == []


def test_a_graph_on_a_tensor_that_requires_grad_is_watched_after_plain_calls(sandbox):
    x = torch.randn(3, 3)
    r = sandbox.call("pkg.student", "after_plain_indexing", (x,), forbidden=AUTOGRAD)
    assert _names(r) and set(_names(r)) <= set(AUTOGRAD) | {"torch.autograd"}, r.forbidden_hits
    # the first hit is the requires_grad flag itself; the indexing of w builds a graph, which is also seen
    assert _names(r)[0] == "torch.Tensor.requires_grad"


def test_a_finaliser_run_by_a_collection_inside_an_unwatched_call_is_watched(tmp_path):
    """In this process: a collection that starts while the function mode is off (as inside a call it passed on)
    runs a finaliser that uses the forbidden operation; the guard's collection hook puts the dispatch mode back."""
    student = tmp_path / "student.py"
    student.write_text(
        "import torch\n"
        "class Cycle:\n"
        "    def __init__(self, a, b, out):\n"
        "        self.me, self.a, self.b, self.out = self, a, b, out\n"
        "    def __del__(self):\n"
        "        self.out.append(torch.cdist(self.a, self.b))\n"
    )
    namespace: dict = {}
    exec(compile(student.read_text(), str(student), "exec"), namespace)
    guard = Guard(str(tmp_path), {str(student)}, guarded=["torch.cdist"])
    out: list = []
    gc.collect()
    guard.enter(["torch.cdist"])
    try:
        namespace["Cycle"](A, B, out)  # unreachable at once: only a collection frees it
        with torch._C.DisableTorchFunction():
            gc.collect()
    finally:
        hits = guard.exit()
    assert out and torch.allclose(out[0], torch.cdist(A, B))
    assert [(h["name"], h["function"]) for h in hits] == [("torch.cdist", "Cycle.__del__")], hits


def test_the_lazy_guard_sees_what_watching_every_call_sees(tmp_path):
    """The same calls under a guard that watches every call and one that watches only where a rule can be
    broken: the same hits (the door tests of test_guard.py run under the lazy one)."""
    student, namespace = _load(tmp_path / "student.py", STUDENT)
    x = torch.randn(4, 3)
    calls = [
        ("absolute_error", (x, "sum"), MEAN),
        ("absolute_error", (x, "mean"), MEAN),
        ("in_a_callback", (A, B, False), ["torch.cdist"]),
        ("in_a_callback", (A, B, True), ["torch.cdist"]),
        ("in_an_index", (A, B, False), ["torch.cdist"]),
        ("in_an_index", (A, B, True), ["torch.cdist"]),
        ("after_plain_indexing", (torch.randn(3, 3),), AUTOGRAD),
    ]
    seen = {}
    for lazy in (True, False):
        guard = Guard(str(tmp_path), {str(student)}, guarded=sorted({"torch.cdist", *MEAN, *AUTOGRAD}), lazy=lazy)
        got = []
        for name, args, forbidden in calls * 2:
            guard.enter(forbidden)
            try:
                namespace[name](*args)
            finally:
                got.append(sorted({h["name"] for h in guard.exit()}))
        seen[lazy] = got
    assert seen[True] == seen[False]
    assert [bool(h) for h in seen[True]] == [False, True, False, True, False, True, True] * 2, seen[True]


@pytest.mark.parametrize("how", ["lazy", "eager", "off"])
def test_the_worker_runs_the_guard_as_configured(tmp_path, how):
    """SandboxConfig.guard: the worker's guard watches lazily (grading), eagerly, or not at all (make bench's
    baseline); a value it does not know is refused before any worker starts."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "student.py").write_text(STUDENT)
    cfg = SandboxConfig(
        root=tmp_path, student_files=["pkg/student.py"], guarded=MEAN, call_timeout=60, memory_mb=2048, guard=how
    )
    with Sandbox(cfg) as sb:
        r = sb.call("pkg.student", "absolute_error", (torch.randn(4, 3), "mean"), forbidden=MEAN)
    assert bool(r.forbidden_hits) == (how != "off"), r.forbidden_hits
    with pytest.raises(ValueError, match="SandboxConfig.guard: expected one of lazy, eager, off, found 'lazzy'"):
        SandboxConfig(root=tmp_path, student_files=[], guard="lazzy")


# ---- attack review (branch attack-review): calls whose key was remembered quiet, then reached a forbidden operator

ATTACKS = '''
import torch
import torch.nn.functional as F

def lp_max(x, p):
    """norm_type=inf makes lp_pool2d call max_pool2d (a float: keyed by its type only)."""
    return F.lp_pool2d(x, p, 2)

def global_pool(x, size):
    """output size 1 makes adaptive_avg_pool2d a mean over H and W (an int: keyed by its type only)."""
    return F.adaptive_avg_pool2d(x, size)

def hinge_mean(x, reduction):
    """torch.hinge_embedding_loss takes the reduction as an int (1 = mean): with y = 1 and margin 0 it is x.mean()."""
    return torch.hinge_embedding_loss(x, torch.ones_like(x), 0.0, reduction)

def smooth_mean(x, beta):
    """beta == 0.0 makes smooth_l1_loss call l1_loss, whose reduction is aten::mean."""
    return F.smooth_l1_loss(x, torch.zeros_like(x), beta=beta)

def area_mean(x, scale):
    """mode="area" is adaptive_avg_pool2d: a scale that leaves 1x1 is a mean."""
    return F.interpolate(x, scale_factor=scale, mode="area")

class Note:
    def __init__(self, a, b, out):
        self.a, self.b, self.out = a, b, out
    def __del__(self):
        self.out.append(torch.cdist(self.a, self.b))

def on_release(a, b, use):
    """A tensor kept only as another's .grad is freed inside the grad setter (a call the function mode passed on
    unwatched, with the mode off): its attributes' finalisers run there."""
    x = torch.zeros(2)
    out = [a]
    g = torch.zeros(2)
    if use:
        g.note = Note(a, b, out)
    x.grad = g
    del g
    x.grad = None
    return out[-1]
'''

X4 = torch.randn(2, 3, 4, 4)
_MAXPOOL = ["torch.nn.functional.max_pool2d", "torch.max_pool2d"]
ATTACK_CASES = {
    "lp_pool2d_inf": ("lp_max", (X4.abs(), 2.0), (X4.abs(), float("inf")), _MAXPOOL),
    "adaptive_avg_pool2d_1": ("global_pool", (X4, 2), (X4, 1), MEAN),
    "hinge_embedding_loss_int_reduction": ("hinge_mean", (X4, 0), (X4, 1), MEAN),
    "smooth_l1_loss_beta_0": ("smooth_mean", (X4, 1.0), (X4, 0.0), MEAN),
    "interpolate_area_to_1x1": ("area_mean", (X4, 0.5), (X4, 0.25), MEAN),
    "finaliser_in_grad_setter": ("on_release", (A, B, False), (A, B, True), ["torch.cdist"]),
}


@pytest.mark.parametrize("case", sorted(ATTACK_CASES))
def test_a_call_remembered_quiet_cannot_hide_a_forbidden_operator(tmp_path, case):
    """The same function with arguments of the same kinds, first harmless, then reaching a forbidden operator
    (a value PyTorch branches on: an int, a float; or a finaliser run inside the call): the lazy guard must see
    what the guard watching every call sees."""
    function, harmless, forbidden_use, forbidden = ATTACK_CASES[case]
    student, namespace = _load(tmp_path / "attacks.py", ATTACKS)
    seen = {}
    for lazy in (False, True):
        guard = Guard(str(tmp_path), {str(student)}, guarded=forbidden, lazy=lazy)
        got = []
        for args in (harmless, harmless, forbidden_use):
            guard.enter(forbidden)
            try:
                namespace[function](*args)
            finally:
                got.append(sorted({h["name"] for h in guard.exit()}))
        seen[lazy] = got
    assert seen[False][:2] == [[], []] and seen[False][2], seen[False]  # watching every call: caught
    assert seen[True] == seen[False], (case, seen)


def test_a_call_that_dispatched_nothing_is_not_counted_as_an_operator(tmp_path):
    """reply.ops == 0 is how the judge finds a result remembered from an earlier call (checks.py); the lazy guard
    counts every function call, so x.data_ptr() (no operator) hides a remembered result."""
    src = (
        "import torch\n"
        "_memo = {}\n"
        "def twice(x):\n"
        "    k = x.data_ptr()\n"
        "    if k not in _memo:\n"
        "        _memo[k] = x * 2\n"
        "    return _memo[k]\n"
    )
    student = tmp_path / "memo.py"
    student.write_text(src)
    x = torch.randn(3)
    ops = {}
    for lazy in (False, True):
        namespace: dict = {}
        exec(compile(src, str(student), "exec"), namespace)
        guard = Guard(str(tmp_path), {str(student)}, guarded=["torch.cdist"], lazy=lazy)
        for _ in range(2):
            guard.enter(["torch.cdist"])
            try:
                namespace["twice"](x)
            finally:
                guard.exit()
        ops[lazy] = guard.last_ops
    assert ops[False] == 0
    assert ops[True] == ops[False], ops


EAGER_GAPS = '''
import torch
import torch.nn.functional as F

def softmax_by_attention(x):
    """softmax(x @ I) @ I: CPU's fused attention kernel, no softmax operator."""
    n, c = x.shape
    eye = torch.eye(c, dtype=x.dtype).view(1, 1, c, c)
    return F.scaled_dot_product_attention(x.view(1, 1, n, c), eye, eye, scale=1.0).view(n, c)

def cdist_by_pdist(a, b):
    """pdist of the rows of both: the a-b block of the condensed matrix is cdist(a, b)."""
    n, m = a.shape[0], b.shape[0]
    d = F.pdist(torch.cat([a, b]))
    rows = torch.arange(n).view(n, 1)
    cols = torch.arange(m).view(1, m) + n
    N = n + m
    return d[rows * N - rows * (rows + 1) // 2 + cols - rows - 1]
'''


@pytest.mark.parametrize(
    "function,args,forbidden,expected",
    [
        ("softmax_by_attention", (torch.randn(5, 4),), ["torch.nn.functional.softmax"], "softmax"),
        ("cdist_by_pdist", (A, B), ["torch.cdist"], "cdist"),
    ],
)
def test_forbidden_work_done_by_another_operator_is_seen(tmp_path, function, args, forbidden, expected):
    """Not the lazy guard's doing (watching every call misses them too): PyTorch operators that do a forbidden
    name's whole work under another operator's name."""
    student, namespace = _load(tmp_path / "gaps.py", EAGER_GAPS)
    value = namespace[function](*args)
    want = torch.softmax(args[0], -1) if expected == "softmax" else torch.cdist(*args)
    assert torch.allclose(value, want, atol=1e-6)
    guard = Guard(str(tmp_path), {str(student)}, guarded=forbidden, lazy=False)
    guard.enter(forbidden)
    try:
        namespace[function](*args)
    finally:
        hits = guard.exit()
    assert hits, (function, "no hit")


# ---- attack review 2 (branch attack-review2): what a passed-on call's arguments can still hold, the operators it
# counts, and finalisers the modes cannot see

ATTACKS2 = '''
import torch

class Start:
    """An index of the student's own: PyTorch calls __index__ inside the indexing call that received it."""
    def __init__(self, a, b, out):
        self.a, self.b, self.out = a, b, out
    def __index__(self):
        self.out.append(torch.cdist(self.a, self.b))
        return 0

def rows_from(a, b, use):
    """x[start:]: a slice is keyed as a slice, whatever its start, stop and step are."""
    out = [a]
    start = Start(a, b, out) if use else 0
    torch.zeros(4, 4)[start:]
    return out[-1]

def rows_into(a, b, use):
    """The same in an assignment, inside an index tuple."""
    out = [a]
    start = Start(a, b, out) if use else 0
    torch.zeros(4, 4)[start:, 0] = 1.0
    return out[-1]

class Node:
    """A symbolic size of the student's own: PyTorch asks it whether it is an int inside the call."""
    def __init__(self, a, b, out):
        self.a, self.b, self.out = a, b, out
    def is_int(self):
        self.out.append(torch.cdist(self.a, self.b))
        return True
    def is_constant(self): return False
    def is_symbolic(self): return False
    def is_nested_int(self): return False
    def is_bool(self): return False
    def is_float(self): return False
    def has_hint(self): return True
    def guard_int(self, *a): return 2
    def int_(self, *a): return 2
    def expect_size(self, *a): return True
    def constant_int(self): return None
    def maybe_as_int(self): return None

def sized(a, b, use):
    """torch.Size is keyed as a Size, whatever it holds: here a SymInt around the student's node."""
    out = [a]
    n = torch.SymInt(Node(a, b, out)) if use else 2
    try:
        torch.zeros(4).view(torch.Size([n, 2]))
    except RuntimeError:  # PyTorch refuses the size afterwards: the node's code has run by then
        pass
    return out[-1]
'''

ATTACK2_CASES = {
    "student_object_in_a_slice": "rows_from",
    "student_object_in_a_slice_in_an_index_tuple": "rows_into",
    "symint_in_a_size": "sized",
}


def _cdist_uses(tmp_path, student, function, lazy: bool) -> list[list[str]]:
    """The names a guard (forbidding torch.cdist) found in each of three calls: harmless twice, then the use."""
    guard = Guard(str(tmp_path), {str(student)}, guarded=["torch.cdist"], lazy=lazy)
    got = []
    for use in (False, False, True):
        guard.enter(["torch.cdist"])
        try:
            function(A, B, use)
        finally:
            got.append(sorted({h["name"] for h in guard.exit()}))
    return got


@pytest.mark.parametrize("case", sorted(ATTACK2_CASES))
def test_student_code_inside_an_argument_of_a_plain_kind_is_watched(tmp_path, case):
    """A slice (and a torch.Size) is an argument of a plain kind by its type alone, but it holds any object: PyTorch
    calls that object's Python (__index__, a SymInt's node) inside the call, with the function mode off. A call seen
    harmless with plain ints must not pass on unwatched the same call with the student's object."""
    function = ATTACK2_CASES[case]
    student, namespace = _load(tmp_path / "attacks2.py", ATTACKS2)
    assert torch.allclose(namespace[function](A, B, True), torch.cdist(A, B))
    seen = {lazy: _cdist_uses(tmp_path, student, namespace[function], lazy) for lazy in (False, True)}
    assert seen[False] == [[], [], ["torch.cdist"]], seen[False]  # watching every call: caught
    assert seen[True] == seen[False], (case, seen)


OPS_COUNT = '''
import torch

_memo = {}

def seed(x):
    """Any earlier call of contiguous() on a transposed matrix (1 operator: the copy)."""
    return x.t().contiguous()

def remembered(x):
    """contiguous() of a contiguous tensor dispatches nothing: the result is remembered, yet operators are counted."""
    x = x.contiguous()
    if "r" not in _memo:
        _memo["r"] = x * 2
    return _memo["r"]

def packed(x):
    """Honest: a contiguous copy (1 operator when x is not contiguous, none when it is)."""
    return x.contiguous()
'''


@pytest.mark.parametrize(
    "calls",
    [
        # lazy counts 1 operator for the last call, which computes nothing: the judge's check for a remembered
        # result (reply.ops == 0) is passed
        [("seed", "c"), ("remembered", "c"), ("remembered", "c")],
        # lazy counts none for a call that copies: an honest result is judged remembered
        [("packed", "c"), ("packed", "nc")],
    ],
    ids=["remembered_result_counted", "honest_copy_not_counted"],
)
def test_a_call_passed_on_counts_the_operators_it_dispatches_this_time(tmp_path, calls):
    """reply.ops is the number of operators dispatched in the call; a call passed on unwatched adds those its key
    ran the first time. But the same key can dispatch a different number: contiguous() copies or returns the tensor
    itself by its strides, flatten(d, d) returns it by the ints' values."""
    student = tmp_path / "ops.py"
    student.write_text(OPS_COUNT)
    x = torch.randn(3, 4)
    inputs = {"c": x, "nc": x.t()}
    ops = {}
    for lazy in (False, True):
        namespace: dict = {}
        exec(compile(OPS_COUNT, str(student), "exec"), namespace)
        guard = Guard(str(tmp_path), {str(student)}, guarded=["torch.cdist"], lazy=lazy)
        got = []
        for function, which in calls:
            guard.enter(["torch.cdist"])
            try:
                namespace[function](inputs[which])
            finally:
                guard.exit()
            got.append(guard.last_ops)
        ops[lazy] = got
    assert (ops[False][-1] == 0) == (calls[-1][0] == "remembered"), ops
    assert ops[True] == ops[False], ops


# -- not the lazy guard's doing: watching every call misses these too

KERNEL_FINALISER = '''
import torch

class Note:
    def __init__(self, a, b, out):
        self.a, self.b, self.out = a, b, out
    def __del__(self):
        self.out.append(torch.cdist(self.a, self.b))

def sparse_release(a, b, use):
    """The values of a sparse tensor keep their storage alive (PyTorch keeps the storage's Python object, with the
    attribute, while C++ holds it); zero_ replaces them inside its kernel, where both modes are off their stacks."""
    out = [a]
    v = torch.ones(2, dtype=torch.float64)
    if use:
        v.untyped_storage().note = Note(a, b, out)
    s = torch.sparse_coo_tensor(torch.tensor([[0, 1]]), v, (3,))
    del v
    s.zero_()
    return out[-1]
'''


@pytest.mark.parametrize("lazy", [False, True])
def test_a_finaliser_run_inside_an_operators_kernel_is_watched(tmp_path, lazy):
    student, namespace = _load(tmp_path / "kernel.py", KERNEL_FINALISER)
    guard = Guard(str(tmp_path), {str(student)}, guarded=["torch.cdist"], lazy=lazy)
    guard.enter(["torch.cdist"])
    try:
        value = namespace["sparse_release"](A, B, True)
    finally:
        hits = guard.exit()
    assert torch.allclose(value, torch.cdist(A, B))  # the forbidden work was done
    # where no mode can follow: reaching the storage counts as going around the guard (the static scan refuses it)
    assert {h["name"] for h in hits} & {"torch.cdist", GUARD_REMOVED}, hits
    assert any(h["name"] == GUARD_REMOVED and h["function"] == "sparse_release" for h in hits), hits
    assert any("untyped_storage" in u.text for u in doors.dynamic_uses(KERNEL_FINALISER, "sparse_release"))


AFTER_THE_CALL = '''
import torch

class Filler:
    def __init__(self, r, a, b):
        self.r, self.a, self.b = r, a, b
    def __del__(self):
        self.r.copy_(torch.cdist(self.a, self.b))

def distances(a, b):
    """Returns zeros; the argument a (the worker's until its next request) carries a finaliser that fills them in
    once the worker drops the request, outside the guarded call, before the judge fetches the kept result."""
    r = torch.zeros(a.shape[0], b.shape[0], dtype=a.dtype)
    a.note = Filler(r, a.clone(), b.clone())
    return r
'''


@pytest.mark.parametrize("how", ["lazy", "eager"])
def test_a_finaliser_run_after_the_guarded_call_is_watched(tmp_path, how):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "student.py").write_text(AFTER_THE_CALL)
    cfg = SandboxConfig(
        root=tmp_path,
        student_files=["pkg/student.py"],
        guarded=["torch.cdist"],
        call_timeout=60,
        memory_mb=2048,
        guard=how,
    )
    with Sandbox(cfg) as sb:
        r = sb.call("pkg.student", "distances", (A, B), forbidden=["torch.cdist"], keep=True)
        value = sb.get(r.value)
        later = sb.call("pkg.student", "distances", (A, B), forbidden=["torch.cdist"])
    assert torch.allclose(value, torch.cdist(A, B))  # the forbidden work was done, and its result graded
    assert "torch.cdist" in _names(r) + _names(later), (r.forbidden_hits, later.forbidden_hits)


RETURNED = '''
import torch

done = []

class Spy:
    def __init__(self, a, b):
        self.a, self.b = a, b
    def __del__(self):
        done.append(torch.cdist(self.a, self.b))

def distances(a, b):
    """Returns zeros; the returned tensor carries a finaliser that runs the forbidden call once the worker drops
    the value it sent back: after the call, unless the guard sees it go."""
    r = torch.zeros(a.shape[0], b.shape[0], dtype=a.dtype)
    r.note = Spy(a.clone(), b.clone())
    return [r, {"same": r}]

def ran():
    return len(done)
'''


@pytest.mark.parametrize("how", ["lazy", "eager"])
def test_a_finaliser_on_a_returned_value_runs_inside_the_guarded_call(tmp_path, how):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "student.py").write_text(RETURNED)
    cfg = SandboxConfig(
        root=tmp_path, student_files=["pkg/student.py"], guarded=["torch.cdist"], call_timeout=60, guard=how
    )
    with Sandbox(cfg) as sb:
        r = sb.call("pkg.student", "distances", (A, B), forbidden=["torch.cdist"])
        assert sb.call("pkg.student", "ran").value == 1  # the finaliser has run, and within the call's window:
    assert "torch.cdist" in _names(r), r.forbidden_hits
    value, nested = r.value
    assert torch.equal(value, torch.zeros(3, 5, dtype=A.dtype)) and torch.equal(nested["same"], value)


FROM_LIBRARY = '''
import torch

def flatten(x, use):
    """The same method the forbidden module's forward calls (Tensor.flatten), first from the student's own line."""
    return torch.nn.Flatten()(x) if use else x.flatten(1, -1)

def to_vector(ps, use):
    """What torch.nn.utils.parameters_to_vector does (device, view, cat: no name of torch.nn is called), first
    written by hand."""
    if use:
        return torch.nn.utils.parameters_to_vector(ps)
    return torch.cat([p.view(-1) for p in ps if p.device.type != "cuda"])
'''


@pytest.mark.parametrize(
    "function, forbidden",
    [("flatten", ["torch.nn.Flatten"]), ("to_vector", ["torch.nn"])],
)
def test_a_call_passed_on_from_the_students_line_is_watched_from_a_forbidden_module_or_package(
    tmp_path, function, forbidden
):
    """The function mode's fast path passes on arithmetic a student's own line makes once it was seen harmless;
    the same function with arguments of the same kinds, made by a forbidden module's forward or a forbidden
    package's code, must still be found (lazy as eager), and the student's own line left alone."""
    student, namespace = _load(tmp_path / "library.py", FROM_LIBRARY)
    x = torch.randn(2, 3, 4)
    args = {"flatten": lambda use: (x, use), "to_vector": lambda use: ([x, x[0]], use)}[function]
    seen = {}
    for lazy in (False, True):
        guard = Guard(str(tmp_path), {str(student)}, guarded=forbidden, lazy=lazy)
        got = []
        for use in (False, False, False, True):
            guard.enter(forbidden)
            try:
                namespace[function](*args(use))
            finally:
                got.append(sorted({h["name"] for h in guard.exit()}))
        seen[lazy] = got
    assert seen[False] == [[], [], [], forbidden], seen[False]
    assert seen[True] == seen[False], seen


CALLED_BACK = '''
import torch
from torch.overrides import handle_torch_function

def _linear(x, use):
    return torch.nn.Linear(4, 3)(x) if use else x

def apply_(x, use):
    """A forbidden module used inside a function Tensor.apply_ calls back for each element."""
    found = [x]
    torch.zeros(2, dtype=torch.float64).apply_(lambda v: found.append(_linear(x, use)) or v)
    return found[-1]

def map_(x, use):
    found = [x]
    t = torch.zeros(2, dtype=torch.float64)
    t.map_(torch.ones(2, dtype=torch.float64), lambda a, b: found.append(_linear(x, use)) or a + b)
    return found[-1]

def handler(x, use):
    """The student's own function run by PyTorch's torch-function machinery (the static scan refuses
    torch.overrides; the guard must not rely on that)."""
    return handle_torch_function(_linear, (x,), x, use)

def map_keyword(x, use):
    found = [x]
    t = torch.zeros(2, dtype=torch.float64)
    t.map_(torch.ones(2, dtype=torch.float64), callable=lambda a, b: found.append(_linear(x, use)) or a + b)
    return found[-1]

@torch.no_grad()
def _decorated(x, use):
    return _linear(x, use)

def handler_decorated(x, use):
    """The function PyTorch runs is PyTorch's own wrapper (torch.no_grad's) around the student's."""
    return handle_torch_function(_decorated, (x,), x, use)

def _again(x, use):
    """PyTorch's own pattern: a function that hands itself to the machinery while a mode is on."""
    from torch.overrides import has_torch_function
    if has_torch_function((x,)):
        return handle_torch_function(_again, (x,), x, use)
    return x * 2

def handler_again(x, use):
    return handle_torch_function(_again, (x,), x, use)
'''


@pytest.mark.parametrize("how", [False, True])
@pytest.mark.parametrize("function", ["apply_", "map_", "handler", "map_keyword", "handler_decorated"])
def test_student_code_pytorch_calls_back_is_watched_by_the_function_mode(tmp_path, function, how):
    """PyTorch runs a callback (Tensor.apply_, Tensor.map_) or a torch-function handler's function with the
    function mode switched off: a forbidden name no operator stands for (a PyTorch module) used there is still
    found, lazy as eager, and the same callback without it is left alone."""
    student, namespace = _load(tmp_path / "called_back.py", CALLED_BACK)
    forbidden = ["torch.nn.Linear"]
    guard = Guard(str(tmp_path), {str(student)}, guarded=forbidden, lazy=how)
    x = torch.randn(2, 4)
    got = []
    for use in (False, False, True):
        guard.enter(forbidden)
        try:
            namespace[function](x, use)
        finally:
            got.append(sorted({h["name"] for h in guard.exit()}))
    assert got == [[], [], forbidden], got


def test_a_function_that_hands_itself_to_the_machinery_again_still_runs(tmp_path):
    """PyTorch's own Python functions dispatch to themselves while a mode is on: run watched, such a function must
    not dispatch to itself without end (a RecursionError would fail code that broke no rule)."""
    student, namespace = _load(tmp_path / "called_back.py", CALLED_BACK)
    x = torch.randn(2, 4)
    for how in (False, True):
        guard = Guard(str(tmp_path), {str(student)}, guarded=["torch.nn.Linear"], lazy=how)
        guard.enter(["torch.nn.Linear"])
        try:
            out = namespace["handler_again"](x, False)
        finally:
            hits = guard.exit()
        assert torch.equal(out, x * 2) and hits == [], (how, hits)


LOOKALIKES = '''
import torch

class _AsTensor(type(torch.Tensor)):
    """Its classes hash as int and compare equal to int and to torch.Tensor."""
    def __hash__(cls):
        return hash(int)
    def __eq__(cls, other):
        return other is int or other is torch.Tensor or type.__eq__(cls, other)

class _AsInt(type):
    def __hash__(cls):
        return hash(int)
    def __eq__(cls, other):
        return other is int or type.__eq__(cls, other)

state = {}

class Key(torch.Tensor, metaclass=_AsTensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        state["out"] = torch.cdist(state["a"], state["b"])
        return state["out"]

class Row(metaclass=_AsInt):
    def __index__(self):
        state["out"] = torch.cdist(state["a"], state["b"])
        return 0

def tensor_subclass(a, b, use):
    """An index that is a tensor subclass whose class passes for torch.Tensor and for int."""
    state.update(a=a, b=b, out=a)
    x = torch.zeros(4, 4)
    x[torch.zeros(()).as_subclass(Key)] if use else x[0]
    return state["out"]

def index_object(a, b, use):
    """An index whose class passes for int: PyTorch calls its __index__ inside the call."""
    state.update(a=a, b=b, out=a)
    torch.zeros(4, 4)[Row() if use else 0]
    return state["out"]
'''


@pytest.mark.parametrize("function", ["tensor_subclass", "index_object"])
def test_a_class_that_hashes_and_compares_as_a_plain_kind_is_watched(tmp_path, function):
    """The guard's caches hold PyTorch's types and functions by identity: a student's class whose metaclass makes it
    hash and compare equal to int (or torch.Tensor) must not take the place of a call seen harmless (warmed by
    indexing with an int), lazy as eager."""
    student, namespace = _load(tmp_path / "lookalikes.py", LOOKALIKES)
    seen = {lazy: _cdist_uses(tmp_path, student, namespace[function], lazy) for lazy in (False, True)}
    assert seen[False][:2] == [[], []] and "torch.cdist" in seen[False][2], seen
    assert seen[True] == seen[False], seen


WARNED = '''
import torch
import torch.nn.functional as F

state = {"use": False}

def _show(message, category, filename, lineno, file=None, line=None):
    if state["use"]:
        state["out"] = torch.cdist(state["a"], state["b"])

def warned(a, b, use):
    """A warnings hook of the student's (the warnings module reached through torch.nn.functional), run by a
    warning PyTorch gives inside torch.tensor (copy-constructing from a tensor), every time."""
    F.warnings.showwarning = _show
    F.warnings.simplefilter("always")
    state.update(use=use, a=a, b=b, out=a)
    torch.tensor(a)
    return state["out"]

def warned_by_a_property(a, b, use):
    """The same through a property read (x.T of a 3-d tensor warns), which the fast path passes on."""
    F.warnings.showwarning = _show
    F.warnings.simplefilter("always")
    torch.set_warn_always(True)  # PyTorch warns of x.T once per process otherwise
    state.update(use=use, a=a, b=b, out=a)
    a[None].T
    return state["out"]
'''


@pytest.mark.parametrize("function", ["warned", "warned_by_a_property"])
def test_a_warnings_hook_run_inside_a_call_is_watched(tmp_path, function):
    student, namespace = _load(tmp_path / "warned.py", WARNED)
    import warnings

    with warnings.catch_warnings():  # the student's hook and filter go with this block
        try:
            seen = {lazy: _cdist_uses(tmp_path, student, namespace[function], lazy) for lazy in (False, True)}
        finally:
            torch.set_warn_always(False)
    assert seen[False] == [[], [], ["torch.cdist"]], seen
    assert seen[True] == seen[False], seen
