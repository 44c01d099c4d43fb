"""The worker's operator-level guard (grader.sandbox.guard): every door to a forbidden operation or to autograd is
watched, given code is exempt by its file only, and correct code that uses allowed utilities is left alone."""

import contextlib
import io
import re
import textwrap
import tomllib
from pathlib import Path

import pytest
import torch

from grader.course.manifest import AUTOGRAD_NAMES
from grader.judge.checks import forbidden_feedback
from grader.sandbox.host import Sandbox
from grader.sandbox.isolation import SandboxConfig
from grader.sandbox.lowering import GUARD_REMOVED, aten_ops, watched_at_run_time

ROOT = Path(__file__).resolve().parents[2]

# given code of the kit (exempt from the autograd rules by its file)
GIVEN = """
import torch

class FastConv:
    @staticmethod
    def forward(x, w, b, conv_param):
        tx, tw, tb = (t.detach().requires_grad_(True) for t in (x, w, b))
        with torch.enable_grad():
            out = torch.nn.functional.conv2d(tx, tw, tb, stride=conv_param["stride"], padding=conv_param["pad"])
        return out.detach(), (tx, tw, tb, out)

    @staticmethod
    def backward(dout, cache):
        tx, tw, tb, out = cache
        return torch.autograd.grad(out, (tx, tw, tb), grad_outputs=dout, retain_graph=True)
"""

# the student's file: one function per door (the marker comment names the line the hit must point at)
STUDENT = """
import builtins
import torch
import torch.nn.functional as F
from pkg.given import FastConv as GivenConv

def plain_cdist(a, b):
    return torch.cdist(a, b)  # HIT plain_cdist

def functional_cdist(a, b):
    return torch.functional.cdist(a, b)  # HIT functional_cdist

def vf_cdist(a, b):
    return torch._C._VariableFunctions.cdist(a, b)  # HIT vf_cdist

def vf_conv2d(x, w):
    return torch._C._VariableFunctions.conv2d(x, w)  # HIT vf_conv2d

def vf_max_pool2d(x):
    return torch._C._VariableFunctions.max_pool2d(x, 2)  # HIT vf_max_pool2d

def ops_conv(x, w):
    return torch.ops.aten.convolution(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)  # HIT ops_conv

def by_string(a, b):
    return getattr(torch, "cd" + "ist")(a, b)  # HIT by_string

def exec_compile(a, b):
    ns = {"torch": torch, "a": a, "b": b}
    exec(compile("r = torch.cdist(a, b)", "<string>", "exec"), ns)
    return ns["r"]

def tensorbase_numel(x):
    return torch._C.TensorBase.numel(x)  # HIT tensorbase_numel

def nelement(x):
    return x.nelement()  # HIT nelement

def unfold_method(x):
    return x.unfold(2, 2, 1)  # HIT unfold_method

def batch_norm(x):
    return F.batch_norm(x, None, None, training=True)  # HIT batch_norm

def via_backward(w):
    w = w.clone().requires_grad_()  # HIT via_backward
    (w * w).sum().backward()
    return w.grad.detach()

def via_autograd_grad(w):
    w = w.clone()
    w.requires_grad = True  # HIT via_autograd_grad
    return torch.autograd.grad((w * w).sum(), w)[0]

def via_setattr(w):
    w = w.clone()
    setattr(w, "requires_grad", True)  # HIT via_setattr
    return torch.autograd.grad((w * w).sum(), w)[0]

def via_keyword(w):
    v = torch.zeros(w.shape, dtype=w.dtype, requires_grad=True)  # HIT via_keyword
    return torch.autograd.grad(((v + w) ** 2).sum(), v)[0]

def via_func_grad_and_value(w):
    return torch.func.grad_and_value(lambda v: (v * v).sum())(w)[0]  # HIT via_func_grad_and_value

def via_func_vjp(w):
    _, pullback = torch.func.vjp(lambda v: v * v, w)  # HIT via_func_vjp
    return pullback(torch.ones_like(w))[0]

def via_func_jacrev(w):
    return torch.func.jacrev(lambda v: (v * v).sum())(w)  # HIT via_func_jacrev

def via_saved_original(w):
    saved = (torch.Tensor.backward.__kwdefaults__ or {}).get("_Worker__original") or torch.Tensor.backward
    w = w.clone().requires_grad_()  # HIT via_saved_original
    saved((w * w).sum())
    return w.grad.detach()

def pops_the_modes(x):
    while torch._C._len_torch_dispatch_stack():
        torch._C._pop_torch_dispatch_stack(None)
    while torch._C._len_torch_function_stack():
        torch._C._pop_torch_function_stack()
    return torch.cdist(x, x)

def correct_distances(a, b):
    # allowed utilities: F.pad, F.one_hot, torch.where, einsum
    a2 = torch.einsum("ij,ij->i", a, a)
    padded = F.pad(a, (0, 1))[:, :-1]
    onehot = F.one_hot(torch.arange(2), 2)
    d = a2[:, None] - 2 * padded @ b.t() + (b * b).sum(1)[None]
    return torch.where(d > 0, d, torch.zeros_like(d)) + 0 * onehot.sum()

def vmap_is_fine(a):
    return torch.func.vmap(lambda r: (r * r).sum())(a)

class FastConv:                       # the student's own class reusing the given name: not exempt
    @staticmethod
    def forward(w):
        w = w.clone().requires_grad_()  # HIT FastConv.forward
        return torch.autograd.grad((w * w).sum(), w)[0]

class Net:                            # the given FastConv called from the student's net: exempt for autograd
    @staticmethod
    def loss(x, w, b):
        out, cache = GivenConv.forward(x, w, b, {"stride": 1, "pad": 1})
        dx, dw, db = GivenConv.backward(torch.ones_like(out), cache)
        return out, dw

class Conv:                           # the naive layer handing its work to the given FastConv: conv2d is caught
    @staticmethod
    def forward(x, w, b):
        out, _ = GivenConv.forward(x, w, b, {"stride": 1, "pad": 1})  # HIT Conv.forward
        return out

def helper_uses_cdist(a, b):
    return torch.cdist(a, b)  # HIT helper_uses_cdist

def calls_a_helper(a, b):
    return helper_uses_cdist(a, b)
"""

AUTOGRAD = list(AUTOGRAD_NAMES)
CONV = ["torch.nn.functional.conv2d", "torch.conv2d", "torch.convolution"]


def _line(marker: str) -> int:
    return next(i for i, text in enumerate(STUDENT.splitlines(), start=1) if text.endswith(f"# HIT {marker}"))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("kit")
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "given.py").write_text(GIVEN)
    (root / "pkg" / "student.py").write_text(STUDENT)
    guarded = sorted(
        {
            "torch.cdist",
            "torch.Tensor.numel",
            "torch.Tensor.nelement",
            "torch.numel",
            "torch.nn.functional.max_pool2d",
            "torch.max_pool2d",
            "torch.Tensor.unfold",
            "torch.nn.functional.batch_norm",
            *CONV,
            *AUTOGRAD,
        }
    )
    cfg = SandboxConfig(
        root=root,
        student_files=["pkg/student.py"],
        guarded=guarded,
        exempt=["pkg/given.py"],
        exempt_names=AUTOGRAD,
        call_timeout=60,
        memory_mb=2048,
    )
    with Sandbox(cfg) as sb:
        yield sb


A, B = torch.randn(3, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
X, W = torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3)


@pytest.mark.parametrize(
    "function, args, forbidden, name",
    [
        ("plain_cdist", (A, B), ["torch.cdist"], "torch.cdist"),
        ("functional_cdist", (A, B), ["torch.cdist"], "torch.cdist"),
        ("vf_cdist", (A, B), ["torch.cdist"], "torch.cdist"),
        ("vf_conv2d", (X, W), CONV, "torch.nn.functional.conv2d"),  # the same function as torch.conv2d
        ("vf_max_pool2d", (X,), ["torch.nn.functional.max_pool2d", "torch.max_pool2d"], "torch.max_pool2d"),
        ("ops_conv", (X, W), CONV, "torch.nn.functional.conv2d"),
        ("by_string", (A, B), ["torch.cdist"], "torch.cdist"),
        (
            "tensorbase_numel",
            (X,),
            ["torch.numel", "torch.Tensor.numel", "torch.Tensor.nelement"],
            "torch.Tensor.numel",
        ),
        ("nelement", (X,), ["torch.Tensor.nelement"], "torch.Tensor.nelement"),
        ("unfold_method", (X,), ["torch.Tensor.unfold"], "torch.Tensor.unfold"),
        ("batch_norm", (X,), ["torch.nn.functional.batch_norm"], "torch.nn.functional.batch_norm"),
        ("via_backward", (A,), AUTOGRAD, "torch.Tensor.requires_grad_"),
        ("via_autograd_grad", (A,), AUTOGRAD, "torch.Tensor.requires_grad"),
        ("via_setattr", (A,), AUTOGRAD, "torch.Tensor.requires_grad"),
        ("via_keyword", (A,), AUTOGRAD, "torch.Tensor.requires_grad"),
        ("via_func_grad_and_value", (A,), AUTOGRAD, None),
        ("via_func_vjp", (A,), AUTOGRAD, None),
        ("via_func_jacrev", (A,), AUTOGRAD, None),
        ("via_saved_original", (A,), AUTOGRAD, "torch.Tensor.requires_grad_"),
        ("FastConv.forward", (A,), AUTOGRAD, "torch.Tensor.requires_grad_"),
        ("Conv.forward", (X, W, torch.zeros(3)), CONV + AUTOGRAD, "torch.nn.functional.conv2d"),
        ("calls_a_helper", (A, B), ["torch.cdist"], "torch.cdist"),
    ],
)
def test_each_door_is_watched(sandbox, function, args, forbidden, name):
    hits = sandbox.call("pkg.student", function, args, forbidden=forbidden).forbidden_hits
    assert hits, f"{function}: nothing found"
    marker = function if function != "calls_a_helper" else "helper_uses_cdist"
    first = hits[0]
    assert first["file"] == "student.py" and first["line"] == _line(marker), hits
    assert first["function"] == marker
    if name is not None:
        assert first["name"] == name, hits
    else:  # a torch.func transform: reported as torch.func or the autograd it runs
        assert first["name"] in ("torch.func", "torch.autograd"), hits
    # without the rule, the same call is fine
    assert sandbox.call("pkg.student", function, args, forbidden=[]).forbidden_hits == []


def test_exec_and_compiled_code_is_the_students(sandbox):
    hits = sandbox.call("pkg.student", "exec_compile", (A, B), forbidden=["torch.cdist"]).forbidden_hits
    assert [(h["name"], h["file"], h["line"]) for h in hits] == [("torch.cdist", "<string>", 1)]


def test_correct_code_with_allowed_utilities_is_not_flagged(sandbox):
    forbidden = ["torch.cdist", "torch.norm", "torch.Tensor.norm", "torch.linalg", "torch.dist", *AUTOGRAD]
    r = sandbox.call("pkg.student", "correct_distances", (A, B), forbidden=forbidden)
    assert r.forbidden_hits == []
    assert torch.allclose(r.value, torch.cdist(A, B) ** 2)
    assert sandbox.call("pkg.student", "vmap_is_fine", (A,), forbidden=AUTOGRAD).forbidden_hits == []


def test_the_given_fast_layer_is_exempt_by_its_file_only(sandbox):
    # the kit's FastConv, called from the student's net, may use autograd ...
    r = sandbox.call("pkg.student", "Net.loss", (X, W, torch.zeros(3)), forbidden=AUTOGRAD)
    assert r.forbidden_hits == []
    # ... a student class of the same name may not (see test_each_door_is_watched: FastConv.forward), and the
    # conv2d the given layer runs is still the naive Conv's forbidden operation (Conv.forward above)


def test_a_call_that_removes_the_guard_is_reported(sandbox):
    hits = sandbox.call("pkg.student", "pops_the_modes", (A,), forbidden=["torch.cdist"]).forbidden_hits
    assert any(h["name"] == GUARD_REMOVED for h in hits)
    text = forbidden_feedback(hits, "pops_the_modes", "pops_the_modes")
    assert "removed or disabled the grader's guard" in text
    # the next call is guarded again
    assert sandbox.call("pkg.student", "plain_cdist", (A, B), forbidden=["torch.cdist"]).forbidden_hits


def test_feedback_names_function_name_line_and_file():
    hits = [
        {
            "name": "torch.nn.functional.conv2d",
            "op": "convolution",
            "file": "convolutional_networks.py",
            "function": "Conv.forward",
            "line": 12,
        }
    ]
    assert forbidden_feedback(hits, "Conv.forward", "Conv") == (
        "Conv.forward called torch.nn.functional.conv2d (line 12 of convolutional_networks.py), which Conv may "
        "not use in this assignment."
    )


def _manifest_names() -> set[str]:
    names = set()
    for path in (ROOT / "assignments").glob("*/assignment.toml"):
        for part in tomllib.loads(path.read_text())["parts"]:
            for listed in part.get("forbidden", {}).values():
                names.update(listed)
    return names


# One call per forbidden name of any manifest, made the way a student would write it. Every name listed in an
# assignment must appear here, and the guard must find each.
x4, w4 = torch.randn(2, 3, 6, 6), torch.randn(4, 3, 3, 3)
a2, c2, y2 = torch.randn(5, 4), torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0])
PROBES = {
    "torch.Tensor.dist": "a.dist(c[:5])",
    "torch.dist": "torch.dist(a, a)",
    "torch.Tensor.norm": "a.norm()",
    "torch.norm": "torch.norm(a, dim=1)",
    "torch.Tensor.mean": "a.mean()",
    "torch.mean": "torch.mean(a, 0)",
    "torch.Tensor.std": "a.std(0)",
    "torch.std": "torch.std(a)",
    "torch.std_mean": "torch.std_mean(a)",
    "torch.Tensor.var": "a.var()",
    "torch.var": "torch.var(a)",
    "torch.var_mean": "torch.var_mean(a)",
    "torch.Tensor.numel": "x.numel()",
    "torch.numel": "torch.numel(x)",
    "torch.Tensor.nelement": "x.nelement()",
    "torch.Tensor.relu": "a.relu()",
    "torch.Tensor.relu_": "a.clone().relu_()",
    "torch.relu": "torch.relu(a)",
    "torch.relu_": "torch.relu_(a.clone())",
    "torch.nn.functional.relu": "F.relu(a)",
    "torch.nn.functional.relu_": "F.relu_(a.clone())",
    "torch.Tensor.unfold": "x.unfold(2, 3, 1)",
    "torch.nn.functional.unfold": "F.unfold(x, 3)",
    "torch.nn.functional.fold": "F.fold(torch.ones(2, 27, 16), (6, 6), 3)",
    "torch.batch_norm": "torch.batch_norm(x, None, None, None, None, True, 0.1, 1e-5, False)",
    "torch.nn.functional.batch_norm": "F.batch_norm(x, None, None, training=True)",
    "torch.nn.functional.instance_norm": "F.instance_norm(x)",
    "torch.nn.functional.layer_norm": "F.layer_norm(x, (6,))",
    "torch.nn.functional.group_norm": "F.group_norm(x, 3)",
    "torch.native_batch_norm": "torch.native_batch_norm(x, None, None, None, None, True, 0.1, 1e-5)",
    "torch.instance_norm": "torch.instance_norm(x, None, None, None, None, True, 0.1, 1e-5, False)",
    "torch.layer_norm": "torch.layer_norm(x, (6,))",
    "torch.native_layer_norm": "torch.native_layer_norm(x, (6,), None, None, 1e-5)",
    "torch.group_norm": "torch.group_norm(x, 3)",
    "torch.native_group_norm": "torch.native_group_norm(x, None, None, 2, 3, 36, 3, 1e-5)",
    "torch.nn.functional.normalize": "F.normalize(a, dim=0)",
    "torch.nn.LayerNorm": "torch.nn.LayerNorm(4)(a)",
    # a shape's numel: no mode of PyTorch's sees it (torch.Size is a tuple); the static scan finds it
    "torch.Size.numel": "x.shape.numel()",
    "torch.cdist": "torch.cdist(a, c)",
    "torch.conv2d": "torch.conv2d(x, w)",
    "torch.nn.functional.conv2d": "F.conv2d(x, w, padding=1)",
    "torch.convolution": "torch.convolution(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)",
    "torch.nn.functional.conv_transpose2d": "F.conv_transpose2d(x, w.transpose(0, 1))",
    "torch.conv_transpose2d": "torch.conv_transpose2d(x, w.transpose(0, 1))",
    "torch.nn.grad.conv2d_input": "torch.nn.grad.conv2d_input(x.shape, w, torch.ones(2, 4, 4, 4))",
    "torch.nn.grad.conv2d_weight": "torch.nn.grad.conv2d_weight(x, w.shape, torch.ones(2, 4, 4, 4))",
    "torch.dropout": "torch.dropout(a, 0.5, True)",
    "torch.dropout_": "torch.dropout_(a.clone(), 0.5, True)",
    "torch.nn.functional.dropout": "F.dropout(a, 0.5)",
    "torch.nn.functional.alpha_dropout": "F.alpha_dropout(a, 0.5, True)",
    "torch.nn.functional.feature_alpha_dropout": "F.feature_alpha_dropout(x, 0.5, True)",
    "torch.linalg": "torch.linalg.vector_norm(a)",
    "torch.max_pool2d": "torch.max_pool2d(x, 2)",
    "torch.nn.functional.max_pool2d": "F.max_pool2d(x, 2)",
    "torch.nn.functional.max_pool2d_with_indices": "F.max_pool2d_with_indices(x, 2)",
    "torch.nn.functional.adaptive_max_pool2d": "F.adaptive_max_pool2d(x, 2)",
    "torch.nn.functional.max_unpool2d": "F.max_unpool2d(torch.ones(2, 3, 3, 3), torch.zeros(2, 3, 3, 3, "
    "dtype=torch.int64), 2)",
    "torch.nn.functional.bilinear": "F.bilinear(a, a, torch.ones(3, 4, 4))",
    "torch.nn.functional.linear": "F.linear(a, c)",
    "torch.nn.functional.cross_entropy": "F.cross_entropy(a, y)",
    "torch.nn.functional.nll_loss": "F.nll_loss(a, y)",
    "torch.nn.functional.log_softmax": "F.log_softmax(a, 1)",
    "torch.nn.functional.softmax": "F.softmax(a, 1)",
    "torch.nn.functional.multi_margin_loss": "F.multi_margin_loss(a, y)",
    "torch.nn": "torch.nn.Linear(4, 3)(a)",
    "torch.optim": "torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=0.1)",
    "torch.nanmean": "torch.nanmean(a, 0)",
    "torch.Tensor.nanmean": "a.nanmean()",
    "torch.linalg.norm": "torch.linalg.norm(a, dim=1)",
    "torch.linalg.vector_norm": "torch.linalg.vector_norm(a)",
    "torch.pdist": "torch.pdist(a)",
    "torch.nn.functional.pdist": "F.pdist(a)",
    "torch.pairwise_distance": "torch.pairwise_distance(a, a)",
    "torch.nn.functional.pairwise_distance": "F.pairwise_distance(a, a)",
    "torch.nn.functional.multilabel_margin_loss": "F.multilabel_margin_loss(a, torch.zeros(5, 4, dtype=torch.long))",
    # PyTorch's modules: their forward running is the use
    "torch.nn.Linear": "torch.nn.Linear(4, 3)(a)",
    "torch.nn.ReLU": "torch.nn.ReLU()(a)",
    "torch.nn.Dropout": "torch.nn.Dropout(0.5)(a)",
    "torch.nn.Softmax": "torch.nn.Softmax(1)(a)",
    "torch.nn.LogSoftmax": "torch.nn.LogSoftmax(1)(a)",
    "torch.nn.Conv2d": "torch.nn.Conv2d(3, 4, 3)(x)",
    "torch.nn.MaxPool2d": "torch.nn.MaxPool2d(2)(x)",
    "torch.nn.BatchNorm1d": "torch.nn.BatchNorm1d(4)(a)",
    "torch.nn.BatchNorm2d": "torch.nn.BatchNorm2d(3)(x)",
    "torch.nn.CrossEntropyLoss": "torch.nn.CrossEntropyLoss()(a, y)",
    "torch.nn.NLLLoss": "torch.nn.NLLLoss()(a, y)",
    "torch.nn.MultiMarginLoss": "torch.nn.MultiMarginLoss()(a, y)",
    "torch.nn.MultiLabelMarginLoss": "torch.nn.MultiLabelMarginLoss()(a, torch.zeros(5, 4, dtype=torch.long))",
    "torch.nn.PairwiseDistance": "torch.nn.PairwiseDistance()(a, a)",
}


def test_the_names_no_run_time_check_can_see_are_derived_and_said():
    from grader.cli import main
    from grader.sandbox.lowering import watched_at_run_time

    # found by the static scan only (tests/grader/test_import_rules.py): no PyTorch mode sees a shape's method
    assert {n for n in _manifest_names() if not watched_at_run_time(n)} == {"torch.Size.numel"}
    assert not watched_at_run_time("torch.Tensor.shape") and not watched_at_run_time("torch.pi")
    assert watched_at_run_time("torch.nn.LSTM") and watched_at_run_time("torch.linalg")
    assert watched_at_run_time("torch.nn.functional.embedding") and watched_at_run_time("torch.Tensor.norm")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["list", "--rules", "-a", "a1_knn"])
    assert "found by reading the source only (no check can see them run): torch.Size.numel" in out.getvalue()


def _assignment_probes() -> dict[str, str]:
    """The probes an assignment keeps for its own forbidden names (assignments/NAME/probes.py, PROBES: a name ->
    an expression in a, c, y, x, w as above), so a new assignment adds its names without editing this file."""
    import importlib.util

    found: dict[str, str] = {}
    for path in sorted((ROOT / "assignments").glob("*/probes.py")):
        spec = importlib.util.spec_from_file_location(f"_probes_{path.parent.name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found.update(module.PROBES)
    return found


def test_every_forbidden_name_of_every_manifest_is_detected(tmp_path):
    names = _manifest_names()
    probes = {**PROBES, **_assignment_probes()}
    missing = names - set(probes)
    assert missing == set(), f"add a probe for {sorted(missing)} to the assignment's probes.py (PROBES)"
    lines = ["import torch", "import torch.nn.functional as F", ""]
    for i, (_name, expr) in enumerate(sorted(probes.items())):
        lines.append(f"def probe_{i}(a, c, y, x, w):\n    return {expr}\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "probes.py").write_text("\n".join(lines))
    cfg = SandboxConfig(root=tmp_path, student_files=["pkg/probes.py"], guarded=sorted(names), call_timeout=60)
    with Sandbox(cfg) as sb:
        for i, (name, expr) in enumerate(sorted(probes.items())):
            if name == "torch.optim":  # an optimizer computes in its step: see the next test
                continue
            if not watched_at_run_time(name):  # the static scan's (see the test above)
                continue
            hits = sb.call("pkg.probes", f"probe_{i}", (a2, c2, y2, x4, w4), forbidden=[name]).forbidden_hits
            assert [h["name"] for h in hits][:1] == [name], f"{name}: {expr} gave {hits}"


def test_an_optimizer_step_counts_as_torch_optim(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "opt.py").write_text(
        textwrap.dedent("""
        import torch
        def step():
            p = torch.zeros(3)
            p.grad = torch.ones(3)
            opt = torch.optim.SGD([p], lr=0.1)
            opt.step()
            return p
    """)
    )
    cfg = SandboxConfig(root=tmp_path, student_files=["pkg/opt.py"], guarded=["torch.optim"], call_timeout=60)
    with Sandbox(cfg) as sb:
        hits = sb.call("pkg.opt", "step", forbidden=["torch.optim"]).forbidden_hits
        assert hits and hits[0]["name"] == "torch.optim" and hits[0]["function"] == "step"


def test_the_dispatch_table_knows_the_convolution_and_pooling_operators():
    assert {"convolution", "_convolution"} <= aten_ops("torch.nn.functional.conv2d")
    assert "max_pool2d_with_indices" in aten_ops("torch.max_pool2d")
    assert {"im2col", "nll_loss_forward"} <= aten_ops("torch.nn")
    assert "_cdist_forward" in aten_ops("torch.cdist") and "_euclidean_dist" in aten_ops("torch.cdist")


def test_the_a3_manifest_exempts_the_given_file_not_a_name():
    from grader.course import manifest

    m = manifest.load("a3_networks", ROOT)
    assert m.autograd_allowed_in == ["a3_networks/fast_layers.py"]
    assert not set(m.autograd_allowed_in) & set(m.files)
    assert re.search(
        r"from a3_networks\.fast_layers import", (ROOT / "a3_networks/convolutional_networks.py").read_text()
    )


def test_a_thread_started_by_the_student_is_guarded_too(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "threads.py").write_text(
        textwrap.dedent("""
        import threading
        import torch
        def in_a_thread(a, b):
            out = []
            t = threading.Thread(target=lambda: out.append(torch.cdist(a, b)))
            t.start()
            t.join()
            return out[0]
    """)
    )
    # with the worker's walls, no thread can even start (tests/grader/test_syscall_filter.py); without them, the
    # guard still follows a thread the student starts
    cfg = SandboxConfig(
        root=tmp_path, student_files=["pkg/threads.py"], guarded=["torch.cdist"], call_timeout=60, walls=False
    )
    with Sandbox(cfg) as sb:
        hits = sb.call("pkg.threads", "in_a_thread", (A, B), forbidden=["torch.cdist"]).forbidden_hits
        assert [(h["name"], h["line"]) for h in hits] == [("torch.cdist", 6)]


def test_code_run_at_import_is_guarded_and_reported_by_the_calls_it_concerns(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "at_import.py").write_text(
        textwrap.dedent("""
        import torch
        TABLE = torch.cdist(torch.ones(2, 2), torch.zeros(2, 2))
        def f(a):
            return a + TABLE.sum()
    """)
    )
    cfg = SandboxConfig(root=tmp_path, student_files=["pkg/at_import.py"], guarded=["torch.cdist"], call_timeout=60)
    with Sandbox(cfg) as sb:
        hits = sb.call("pkg.at_import", "f", (A,), forbidden=["torch.cdist"]).forbidden_hits
        assert [(h["name"], h["line"], h["function"]) for h in hits] == [("torch.cdist", 3, "<module>")]
        assert sb.call("pkg.at_import", "f", (A,), forbidden=[]).forbidden_hits == []


def test_autograd_allowed_in_must_name_given_files_of_the_kit():
    from grader.course.manifest import _autograd_allowed_in
    from grader.errors import GraderError

    toml = ROOT / "assignments" / "a3_networks" / "assignment.toml"
    files = ["a3_networks/convolutional_networks.py"]
    assert _autograd_allowed_in({"autograd_allowed_in": ["a3_networks/fast_layers.py"]}, files, toml, str(toml))
    for bad, why in (
        (["FastConv"], "paths of .py files"),
        (files, "taken from a submission"),
        (["a3_networks/missing.py"], "not a file of the kit"),
        (["../x.py"], "paths of .py files"),
    ):
        with pytest.raises(GraderError, match=why):
            _autograd_allowed_in({"autograd_allowed_in": bad}, files, toml, str(toml))


def test_a_name_missing_from_the_table_gets_its_own_operator_from_the_dispatcher():
    from grader.sandbox.lowering import ATEN_OPS, own_ops

    assert "torch.nn.functional.embedding" not in ATEN_OPS and "torch.rnn_tanh_cell" not in ATEN_OPS
    assert aten_ops("torch.nn.functional.embedding") == {"embedding"}
    assert aten_ops("torch.rnn_tanh_cell") == {"rnn_tanh_cell"}
    assert own_ops("torch.linalg.matrix_norm") == {"linalg_matrix_norm"}
    assert own_ops("torch.Tensor.tanh_") == {"tanh", "tanh_"}
    # no operator of that name: a class, a shape's method, a word ATen does not have
    assert own_ops("torch.nn.RNN") == own_ops("torch.Size.numel") == own_ops("torch.nn.functional.no_such") == set()
    # a listed name's entry is final: F.unfold is im2col, never aten::unfold (Tensor.unfold, a sliding view)
    assert "unfold" not in aten_ops("torch.nn.functional.unfold")


THROUGH_ATEN = """
import torch

def embed(W, idx):
    return torch.ops.aten.embedding(W, idx)

def rnn_cell(x, h, wx, wh):
    return torch.ops.aten.rnn_tanh_cell.default(x, h, wx, wh)

def lstm_cell(x, h, c, wx, wh):
    return torch.ops.aten.lstm_cell(x, [h, c], wx, wh)

def windows(x):
    return x.unfold(2, 3, 1)

def by_hand(W, idx):
    return W[idx]
"""


def test_a_forbidden_operator_called_through_torch_ops_aten_is_caught_with_no_table_entry(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "rnn.py").write_text(THROUGH_ATEN)
    names = ["torch.nn.functional.embedding", "torch.rnn_tanh_cell", "torch.lstm_cell", "torch.nn.functional.unfold"]
    cfg = SandboxConfig(root=tmp_path, student_files=["pkg/rnn.py"], guarded=names, call_timeout=60)
    W, idx = torch.randn(5, 3), torch.tensor([[0, 1], [4, 4]])
    x, h, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)

    def hits(fn, *args):
        return [hit["name"] for hit in sb.call("pkg.rnn", fn, args, forbidden=names).forbidden_hits]

    with Sandbox(cfg) as sb:
        assert hits("embed", W, idx) == ["torch.nn.functional.embedding"]
        # composites PyTorch decomposes into mm/add/tanh before any mode sees them run: caught by their operator
        assert hits("rnn_cell", x, h, torch.randn(4, 3), torch.randn(4, 4)) == ["torch.rnn_tanh_cell"]
        assert hits("lstm_cell", x, h, c, torch.randn(16, 3), torch.randn(16, 4)) == ["torch.lstm_cell"]
        # the same arithmetic by hand, and Tensor.unfold where only F.unfold is forbidden, stay allowed
        assert hits("by_hand", W, idx) == []
        assert hits("windows", torch.randn(1, 1, 4, 4)) == []
