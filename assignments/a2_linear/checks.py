"""Public checks for A2. Each judges the student's function against an oracle computed here, in the judge: PyTorch's
own losses (`F.multi_margin_loss`, `F.cross_entropy`) plus the regulariser, differentiated with `torch.autograd` in
float64 (autograd is fine in the judge; only the student's code must do without it). Hidden variants (other seeds,
shapes, dtypes and edge cases) live in hidden.py.

Nothing here imports the a2_linear package. Test labels of the grading data set stay in the judge: the sandbox gets
training and validation data only, and returns weights or predictions that the judge scores.

Composite functions (training, searches) are judged on their own logic: where they call the student's other
functions, the expectation is built from those same functions (e.g. an SGD step is replayed with the student's own
loss), so a bug in a loss costs the loss's points, not the trainer's too.
"""

from __future__ import annotations

import ast
import contextlib
import math
import time
import zlib
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F

from grader.checks import CheckFailed, check, describe_value, fmt_shape, rel_error
from grader.sandbox import SandboxError
from grader.wire import Handle

if TYPE_CHECKING:
    from grader.sandbox import Reply

# How much the checks that train do, per data set. digits (the offline stand-in) is small and easy: short runs on
# the CPU. cifar10 is the course's data set (graded on a GPU): runs long enough for the course's targets.
# net_grid: the hyperparameters find_best_net is given (None: the student's own nn_get_search_params);
# net_pool: find_best_net's images are average-pooled by this factor first (digits: 3x8x8 = 192 features, which
# the 8x8 digits lose nothing to, and a net trains in well under a second).
SCALE = {
    "digits": {"train_iters": 200, "search_iters": 100, "one_param_iters": 100,
               "net_grid": ([1e-5, 1.0, 2e-5], [32], [1e-4], [0.95]), "net_pool": 4},
    "cifar10": {"train_iters": 1500, "search_iters": 1500, "one_param_iters": 300, "net_grid": None, "net_pool": 1},
}
BOUND = {torch.float64: 1e-8, torch.float32: 1e-4}
REPLAY = {torch.float64: 1e-10, torch.float32: 1e-6}   # a replayed SGD run (the same operations, in the judge)
LOSSES = {"svm": ("svm_loss_naive", "svm_loss_vectorized"),
          "softmax": ("softmax_loss_naive", "softmax_loss_vectorized")}
NET_KEYS = ("W1", "b1", "W2", "b2")


# ---- oracles (float64, on the CPU) --------------------------------------------------------------


def _cpu64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float64)


def svm_data_loss(W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, detach_correct: bool = False) -> torch.Tensor:
    """Mean over examples of the sum over the wrong classes of max(0, s_j - s_y + 1). F.multi_margin_loss divides
    that sum by C, hence the factor. `detach_correct` detaches the correct class's score (a known mistake: its
    column of dW never receives the -X[i])."""
    scores = torch.mm(X, W)
    if detach_correct:
        own = scores.gather(1, y[:, None]).detach()
        scores = torch.scatter(scores, 1, y[:, None], own)
    return F.multi_margin_loss(scores, y, p=1, margin=1.0) * W.shape[1]


def softmax_data_loss(W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, detach_correct: bool = False) -> torch.Tensor:
    """Mean cross-entropy. `detach_correct` drops the gradient of -s_y (a known mistake: dW = X^T P / N, no -Y)."""
    scores = torch.mm(X, W)
    if detach_correct:
        return (torch.logsumexp(scores, dim=1) - scores.gather(1, y[:, None]).squeeze(1).detach()).mean()
    return F.cross_entropy(scores, y)


DATA_LOSS = {"svm": svm_data_loss, "softmax": softmax_data_loss}


def value_and_grad(fn: Callable[[torch.Tensor], torch.Tensor], W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    W = _cpu64(W).requires_grad_(True)
    with torch.enable_grad():
        value = fn(W)
        (grad,) = torch.autograd.grad(value, W)
    return value.detach(), grad


def linear_expectations(kind: str, W, X, y, reg: float):
    """(loss, dW, loss mistakes, dW mistakes) for a linear loss, all float64 on the CPU."""
    W, X, y = _cpu64(W), _cpu64(X), y.cpu()
    N = X.shape[0]
    data = DATA_LOSS[kind]
    loss0, grad0 = value_and_grad(lambda w: data(w, X, y), W)
    penalty, dpenalty = reg * (W * W).sum(), 2 * reg * W
    loss_mistakes = {
        "the regulariser reg * sum(W * W) is missing from the loss": loss0,
        "the regulariser is counted twice": loss0 + 2 * penalty,
        "the regulariser has a factor 1/2; this course's regulariser is reg * sum(W * W)": loss0 + penalty / 2,
        "the data loss is summed over the examples, not averaged (divide it by N)": loss0 * N + penalty,
        "the regulariser is divided by N too; only the data loss is averaged over the examples": loss0 + penalty / N,
    }
    grad_mistakes = {
        "dW is missing the regulariser's gradient 2 * reg * W": grad0,
        "the regulariser's gradient is reg * W; the derivative of reg * sum(W * W) is 2 * reg * W":
            grad0 + dpenalty / 2,
        "the regulariser's gradient is counted twice": grad0 + 2 * dpenalty,
        "the data gradient is not divided by N (the loss is a mean over the examples)": grad0 * N + dpenalty,
        "the regulariser's gradient is divided by N too; only the data part is averaged": grad0 + dpenalty / N,
    }
    _, grad_own = value_and_grad(lambda w: data(w, X, y, detach_correct=True), W)
    if kind == "svm":
        loss_mistakes["the correct class's own hinge max(0, s_y - s_y + 1) = 1 is counted; sum over the wrong "
                      "classes j != y[i] only"] = loss0 + 1 + penalty
        grad_mistakes["dW misses the correct class's column: every positive hinge also subtracts X[i] from "
                      "dW[:, y[i]]"] = grad_own + dpenalty
    else:
        grad_mistakes["dW misses the -1 at the correct class: the gradient of the scores is P - Y (probabilities "
                      "minus the one-hot labels)"] = grad_own + dpenalty
    return loss0 + penalty, grad0 + dpenalty, loss_mistakes, grad_mistakes


def net_parts(p: dict, X: torch.Tensor, straight_through: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, hidden) of the two-layer net. `straight_through` keeps the forward values but lets the gradient
    through the ReLU everywhere (a known mistake: the ReLU's mask is missing in the backward pass)."""
    pre = torch.addmm(p["b1"], X, p["W1"])
    hidden = F.relu(pre)
    if straight_through:
        hidden = pre + (hidden - pre).detach()
    return torch.addmm(p["b2"], hidden, p["W2"]), hidden


def net_loss(p: dict, X, y, reg: float, *, biases_too: bool = False, half: bool = False, total: bool = False,
             straight_through: bool = False) -> torch.Tensor:
    scores, _ = net_parts(p, X, straight_through)
    data = F.cross_entropy(scores, y, reduction="sum" if total else "mean")
    names = NET_KEYS if biases_too else ("W1", "W2")
    penalty = reg * sum((p[k] * p[k]).sum() for k in names)
    return data + (penalty / 2 if half else penalty)


def net_value_and_grads(params: dict, X, y, reg: float, **variant) -> tuple[torch.Tensor, dict]:
    p = {k: _cpu64(params[k]).requires_grad_(True) for k in NET_KEYS}
    with torch.enable_grad():
        loss = net_loss(p, _cpu64(X), y.cpu(), reg, **variant)
        grads = torch.autograd.grad(loss, [p[k] for k in NET_KEYS])
    return loss.detach(), dict(zip(NET_KEYS, grads))


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return (pred.cpu() == y.cpu()).double().mean().item()


# ---- data ---------------------------------------------------------------------------------------

_DATA: dict = {}


def course_data(ctx, bias_trick: bool, pool: int = 1) -> dict:
    """The grading data set as dlcv.preprocess_cifar10 gives it (float32, on the CPU): pixels / 255, the
    per-channel mean of the training images subtracted, (average-pooled by `pool`,) flattened, a column of ones
    with the bias trick, the last 20% of the training images kept for validation. X_test / y_test never leave
    the judge."""
    x_train, y_train, x_test, y_test, _ = ctx.dataset()
    key = (ctx.run.dataset_name, bias_trick, pool)
    if key not in _DATA:
        for other in [k for k in _DATA if k[0] != key[0]]:
            del _DATA[other]
        xs = x_train.to(torch.float32) / 255
        xt = x_test.to(torch.float32) / 255
        mean = xs.mean(dim=(0, 2, 3), keepdim=True)
        xs, xt = xs - mean, xt - mean
        if pool > 1:
            xs, xt = F.avg_pool2d(xs, pool), F.avg_pool2d(xt, pool)
        xs, xt = xs.flatten(1), xt.flatten(1)
        if bias_trick:
            xs = torch.cat([xs, xs.new_ones(xs.shape[0], 1)], dim=1)
            xt = torch.cat([xt, xt.new_ones(xt.shape[0], 1)], dim=1)
        num_val = int(round(0.2 * xs.shape[0]))
        cut = xs.shape[0] - num_val
        _DATA[key] = {"X_train": xs[:cut], "y_train": y_train[:cut], "X_val": xs[cut:], "y_val": y_train[cut:],
                      "X_test": xt, "y_test": y_test}
    return _DATA[key]


def scale(ctx, key: str) -> Any:
    ctx.dataset()
    return SCALE.get(ctx.run.dataset_name, SCALE["cifar10"])[key]


@contextlib.contextmanager
def one_thread():
    """The judge's own training runs on one thread (on a busy machine more threads only contend)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


# ---- calling the student's code ----------------------------------------------------------------
# Composite functions run the student's other functions (a trainer runs the loss it is given). The sandbox's guard
# reports autograd or torch.nn used anywhere in the student's code during a call, and the call then fails the check
# under way. These wrappers let such a use pass when it sits inside one of the graded building blocks the composite
# is meant to run (BUILDING_BLOCKS): that function loses its own points for it, in its own checks. A use in the
# function under check, in a helper that is not graded, or in any other function still fails it (so autograd cannot
# be parked in a cheap function and called from a valuable one).

_LOSSES = {"svm_loss_naive", "svm_loss_vectorized", "softmax_loss_naive", "softmax_loss_vectorized"}
BUILDING_BLOCKS = {
    "train_linear_classifier": _LOSSES | {"sample_batch"},
    "test_one_param_set": _LOSSES | {"sample_batch", "train_linear_classifier", "predict_linear_classifier"},
    "nn_train": {"nn_forward_pass", "nn_forward_backward", "nn_predict", "sample_batch"},
    "nn_predict": {"nn_forward_pass", "nn_forward_backward"},
    "find_best_net": {"nn_forward_pass", "nn_forward_backward", "nn_predict", "nn_train", "sample_batch"},
}
PREDICT_CHAIN = {"nn_predict", "nn_forward_backward", "nn_forward_pass"}   # nn_predict runs the forward pass
BLOCK_CHECKED = {"nn_forward_pass": "nn_forward_backward"}   # blocks_problem judges the forward pass through this


_SPANS: dict = {}   # source text -> [(first line, last line, name)] of its top-level functions and classes


def _owners(ctx, line: int, file: str | None) -> list[str]:
    """The top-level function (or class) holding `line` of the student's `file` (the guard's record names the
    file's base name)."""
    out = []
    for path, src in ctx.run.staged.sources.items():
        if path.rsplit("/", 1)[-1] != file:
            continue
        if src not in _SPANS:
            try:
                tree = ast.parse(src)
            except SyntaxError:
                tree = ast.Module(body=[], type_ignores=[])
            if len(_SPANS) > 16:
                _SPANS.clear()
            _SPANS[src] = [(n.lineno, n.end_lineno or n.lineno, n.name) for n in tree.body
                           if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        out += [name for first, last, name in _SPANS[src] if first <= line <= last]
    return out


def _excused(ctx, run: Callable[[], "Reply"]) -> "Reply":
    n = len(ctx.calls)
    try:
        return run()
    except CheckFailed:
        reply = ctx.calls[-1] if len(ctx.calls) == n + 1 else None
        if reply is None or not reply.forbidden_hits:
            raise
        blocks = BUILDING_BLOCKS.get(ctx.spec.function, set())
        for hit in reply.forbidden_hits:   # one per line and name found, however many calls were made
            owners = _owners(ctx, hit["line"], hit["file"]) if hit.get("line") is not None else []
            if ctx.spec.function in owners or not set(owners) & blocks:
                raise
        return reply


def invoke(ctx, function: str, *args: Any, **kwargs: Any) -> "Reply":
    """ctx.invoke, forgiving forbidden calls made inside the building blocks of the function under check."""
    return _excused(ctx, lambda: ctx.invoke(function, *args, **kwargs))


def call(ctx, function: str, *args: Any, **kwargs: Any) -> Any:
    return invoke(ctx, function, *args, **kwargs).value


def method(ctx, obj: Handle, name: str, *args: Any, **kwargs: Any) -> Any:
    return _excused(ctx, lambda: ctx.invoke_method(obj, name, *args, **kwargs)).value


# A composite's failure is excused only when one of its building blocks explains it: an exception raised in the
# block's own lines (the innermost of the student's frames is the block), never one raised in the composite's own
# lines or in a helper of the student's that is not graded, and never a time-out. Each site below also makes sure
# the block fails on its own in this run (and, where it can, that the composite's output matches what the judge
# rebuilds from the block), so breaking a cheap block cannot buy a valuable composite's points.


def sandbox_failure(e: BaseException | None) -> SandboxError | None:
    """The failure in the sandbox behind a CheckFailed (ctx.invoke raises CheckFailed from it)."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, SandboxError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def raised_in(e: BaseException) -> str | None:
    """The function of the student's whose own line raised the exception behind `e` ('nn_train' for a function
    nested in nn_train too); None when `e` is not an exception raised in the student's code."""
    err = sandbox_failure(e)
    if err is None or err.kind != "exception" or not err.where:
        return None
    return str(err.where[-1].get("function", "")).split(".<locals>")[0] or None


def block_raised(e: BaseException, blocks: set[str] | list[str]) -> str | None:
    """The building block (one of `blocks`) that raised the exception behind `e`, or None."""
    name = raised_in(e)
    return name if name in set(blocks) else None


# ---- judging helpers ----------------------------------------------------------------------------


def expect_float(ctx, value: Any, name: str) -> float:
    if isinstance(value, torch.Tensor):
        ctx.fail(f"{name}: expected a Python float, found a tensor; convert it with .item().")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        ctx.fail(f"{name}: expected a Python float, found {describe_value(value)}.")
    if not math.isfinite(value):
        ctx.fail(f"{name}: expected a finite number, found {value}.")
    return float(value)


def expect_fraction(ctx, value: Any, name: str) -> float:
    v = expect_float(ctx, value, name)
    if v > 1.0:
        ctx.fail(f"{name}: expected a fraction in [0, 1], found {v:g}" + (" (a percentage? divide by 100)."
                                                                        if v <= 100 else "."))
    if v < 0.0:
        ctx.fail(f"{name}: expected a fraction in [0, 1], found {v:g}.")
    return v


def expect_loss(ctx, got: Any, expected: torch.Tensor, name: str, *, bound: float, n: int | None = None,
                mistakes: dict | None = None, hint: str = "") -> None:
    """A loss: a 0-dim tensor of the inputs' dtype on their device, close to `expected`."""
    if isinstance(got, (int, float)) and not isinstance(got, bool):
        ctx.fail(f"{name}: expected a 0-dim tensor, found a Python {type(got).__name__} ({got:.6g}); return the loss "
                 "as a tensor (no .item() or float()).")
    if isinstance(got, torch.Tensor) and got.dim() != 0:
        ctx.fail(f"{name}: expected a 0-dim tensor, found one of shape {fmt_shape(got.shape)}"
                 + (" (reduce with .sum() or .mean() over everything, or index the single element)."
                    if got.numel() == 1 else "."))
    ctx.expect_tensor(got, expected, name, bound=bound, n=n, mistakes=_distinct(mistakes, expected, bound), hint=hint)


def _distinct(mistakes: dict | None, expected: torch.Tensor, bound: float) -> dict:
    """The mistakes whose values differ from the expected ones (with reg = 0, 'regulariser missing' is right)."""
    out = {}
    for desc, alt in (mistakes or {}).items():
        if alt.shape == expected.shape and rel_error(alt, expected) > 10 * max(bound, 1e-7):
            out[desc] = alt
    return out


def expect_layout(ctx, got: Any, shape: tuple, dtype: torch.dtype, name: str, hint: str = "") -> None:
    """A tensor of this shape and dtype on the grading device (its values are judged elsewhere)."""
    fits = isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(shape) and got.dtype == dtype
    expected = got.detach().cpu() if fits else torch.zeros(shape, dtype=dtype)
    ctx.expect_tensor(got, expected, name, bound=math.inf, hint=hint)


def same_tensor(a: Any, b: Any) -> bool:
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
            and a.dtype == b.dtype and torch.equal(a.cpu(), b.cpu()))


def expect_inputs_unchanged(ctx, function: str, pairs: list[tuple[str, Any, Any]]) -> None:
    """(name, before, after) for each input; tensors and dicts of tensors must come back identical."""
    for name, before, after in pairs:
        if isinstance(before, dict):
            ok = isinstance(after, dict) and before.keys() == after.keys() and \
                all(same_tensor(before[k], after[k]) for k in before)
        else:
            ok = same_tensor(before, after)
        if not ok:
            ctx.fail(f"{function} modified its input {name}; it must leave its inputs unchanged (work on new "
                     "tensors, e.g. W = W - ... instead of W -= ...).")


def linear_problem(ctx, N: int, D: int, C: int, dtype: torch.dtype, *, w_scale: float = 0.3,
                   integer: bool = False, offset: float = 0.0):
    """W (D, C), X (N, D), y (N,) on the grading device. Scores of order 1: many hinges active, none on its kink.
    `integer` draws small integers instead, so that hinges sit exactly on their kinks (gradient 0 there).
    `offset` makes the last column of X ones (the bias trick) and gives every class the bias `offset`: the
    scores are all near `offset`, where exp() overflows unless each row is shifted by its maximum."""
    if integer:
        W = ctx.randint(-1, 2, (D, C)).to(dtype)
        X = ctx.randint(-2, 3, (N, D)).to(dtype)
    else:
        W = ctx.randn(D, C, dtype=dtype, scale=w_scale)
        X = ctx.randn(N, D, dtype=dtype)
    if offset:
        X[:, -1] = 1
        W[-1, :] = offset
    return W, X, ctx.randint(0, C, (N,))


# ---- the losses ---------------------------------------------------------------------------------

# The cases every loss is judged on: the regulariser off and on, float64 and float32, and scores near 1e4
# (float64) or 200 (float32), where exp() overflows without the shift by the row maximum. A case is
# (N, D, C, reg, dtype, options).
LOSS_CASES = (
    (12, 7, 5, 0.0, torch.float64, {}),
    (10, 6, 4, 0.1, torch.float64, {}),
    (16, 9, 6, 0.05, torch.float32, {}),
    (8, 5, 4, 0.0, torch.float64, {"offset": 1e4}),
    (9, 6, 3, 0.0, torch.float32, {"offset": 200.0}),
)


STABLE_HINT = ("Scores this large overflow exp(): subtract each row's largest score from the row before "
               "exponentiating (it does not change the probabilities).")


def finite(value: Any) -> bool:
    """No nan or inf in the tensors of `value` (a tensor or a tuple of them)."""
    items = value if isinstance(value, (tuple, list)) else [value]
    return all(torch.isfinite(t.detach().cpu()).all() for t in items if isinstance(t, torch.Tensor))


def judge_linear_loss(ctx, function: str, kind: str, *, N: int, D: int, C: int, reg: float, dtype: torch.dtype,
                      w_scale: float = 0.3, integer: bool = False, offset: float = 0.0) -> None:
    W, X, y = linear_problem(ctx, N, D, C, dtype, w_scale=w_scale, integer=integer, offset=offset)
    reply = invoke(ctx, function, W, X, y, reg, return_args=True)
    expect_inputs_unchanged(ctx, function, list(zip(["W", "X", "y"], [W, X, y], reply.args)))
    loss, dW = ctx.expect_items(reply.value, 2, f"the result of {function}")
    want_loss, want_dW, loss_mistakes, grad_mistakes = linear_expectations(kind, W, X, y, reg)
    bound = BOUND[dtype]
    what = (f"(N={N}, D={D}, C={C}, reg={reg:g}, {str(dtype).replace('torch.', '')}"
            + (f", scores near {offset:g}" if offset else "") + (", hinges on their kinks" if integer else "") + ")")
    hint = ""
    if offset and kind == "softmax" and not finite(reply.value):
        hint = STABLE_HINT
    elif integer:
        hint = "Where a hinge is exactly 0 (on its kink) its gradient is taken to be 0: count only margins > 0."
    expect_loss(ctx, loss, want_loss.to(dtype), f"the loss {what}", bound=bound, n=N, mistakes=loss_mistakes,
                hint=hint)
    ctx.expect_tensor(dW, want_dW.to(dtype), f"dW {what}", bound=bound, n=N,
                      mistakes=_distinct(grad_mistakes, want_dW, bound),
                      hint=hint or f"dW has W's shape (D, C) = {fmt_shape(W.shape)}: dW[:, j] collects the "
                                   "examples' contributions to class j.")


def _loss_body(function: str, kind: str):
    def body(ctx, cases):
        for N, D, C, reg, dtype, options in cases:
            judge_linear_loss(ctx, function, kind, N=N, D=D, C=C, reg=reg, dtype=dtype, **options)
    return body


svm_naive_body = _loss_body("svm_loss_naive", "svm")
svm_vectorized_body = _loss_body("svm_loss_vectorized", "svm")
softmax_naive_body = _loss_body("softmax_loss_naive", "softmax")
softmax_vectorized_body = _loss_body("softmax_loss_vectorized", "softmax")


@check("a2.linear.svm_naive", function="svm_loss_naive", cases=LOSS_CASES)
def svm_naive(ctx, cases):
    """svm_loss_naive: loss and dW match PyTorch (reg 0 and > 0, float64 and float32)"""
    svm_naive_body(ctx, cases)


@check("a2.linear.svm_vectorized", function="svm_loss_vectorized", cases=tuple(
    (4 * N, 3 * D, 2 * C, reg, dtype, options) for N, D, C, reg, dtype, options in LOSS_CASES))
def svm_vectorized(ctx, cases):
    """svm_loss_vectorized: loss and dW match PyTorch (reg 0 and > 0, float64 and float32)"""
    svm_vectorized_body(ctx, cases)


@check("a2.linear.softmax_naive", function="softmax_loss_naive", cases=LOSS_CASES)
def softmax_naive(ctx, cases):
    """softmax_loss_naive: loss and dW match PyTorch, also on huge scores"""
    softmax_naive_body(ctx, cases)


@check("a2.linear.softmax_vectorized", function="softmax_loss_vectorized", cases=tuple(
    (4 * N, 3 * D, 2 * C, reg, dtype, options) for N, D, C, reg, dtype, options in LOSS_CASES))
def softmax_vectorized(ctx, cases):
    """softmax_loss_vectorized: loss and dW match PyTorch, also on huge scores"""
    softmax_vectorized_body(ctx, cases)


# -- speed: the student's vectorized loss against a baseline the judge runs itself: the same loss written as the
# course's solution writes it (one matrix product for the scores, one for dW), timed here, in the judge, on the same
# inputs, on one thread as the sandbox runs (and on the same device). Nothing the student wrote enters the baseline:
# not their naive loss, not any function of the sandbox. The student's call is timed by the judge around the call,
# on inputs already in the sandbox (ctx.put) and with results kept there (keep=True), so only the compute and a
# round trip count. The timings alternate (student, baseline) and the fastest of each is kept, so a busy machine
# slows both alike. The inputs are many examples of few features, where a loop over the examples costs 10 to 40
# times the baseline (measured on a loaded 2-core machine; the reference takes 1 to 4 times it), with the bias trick
# and a large bias shared by the classes (scores near 100); the result must be right too: a fast wrong answer earns
# nothing.
SPEED_FACTOR = 5.0     # the student's loss may take this many times the baseline ...
SPEED_SLACK = 0.003    # ... plus this (seconds): a call's round trip through the sandbox


def reference_loss(kind: str, W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float):
    """The judge's own vectorized loss and gradient (W's dtype and device): the speed check's baseline."""
    N = X.shape[0]
    rows = torch.arange(N, device=X.device)
    scores = X @ W
    if kind == "svm":
        margins = (scores - scores[rows, y][:, None] + 1).clamp(min=0)
        margins[rows, y] = 0
        loss = margins.sum() / N
        dscores = (margins > 0).to(X.dtype)
        dscores[rows, y] = -dscores.sum(dim=1)
    else:
        scores = scores - scores.max(dim=1, keepdim=True).values
        log_norm = torch.log(torch.exp(scores).sum(dim=1))
        loss = (log_norm - scores[rows, y]).mean()
        dscores = torch.exp(scores - log_norm[:, None])
        dscores[rows, y] -= 1
    return loss + reg * torch.sum(W * W), X.t() @ dscores / N + 2 * reg * W


def time_reference(kind: str, W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float) -> float:
    """Seconds one run of reference_loss takes here (waiting for the GPU, if that is where the inputs are)."""
    t0 = time.perf_counter()
    reference_loss(kind, W, X, y, reg)
    if W.device.type == "cuda":
        torch.cuda.synchronize(W.device)
    return time.perf_counter() - t0


def judge_speed(ctx, kind: str, N: int, D: int, C: int, dtype: torch.dtype, repeats: int, reg: float = 1e-4,
                offset: float = 100.0) -> None:
    vectorized = LOSSES[kind][1]
    W, X, y = linear_problem(ctx, N, D, C, dtype, w_scale=1e-2, offset=offset)
    hW, hX, hy = ctx.put(W), ctx.put(X), ctx.put(y)
    # right at this size too (and the first call warms up)
    loss, dW = ctx.expect_items(call(ctx, vectorized, hW, hX, hy, reg), 2, f"the result of {vectorized}")
    want_loss, want_dW, loss_mistakes, grad_mistakes = linear_expectations(kind, W, X, y, reg)
    what = f"(N={N}, D={D}, C={C}, reg={reg:g}, scores near {offset:g})"
    hint = STABLE_HINT if kind == "softmax" and not finite((loss, dW)) else ""
    expect_loss(ctx, loss, want_loss.to(dtype), f"the loss {what}", bound=BOUND[dtype], n=N, mistakes=loss_mistakes,
                hint=hint)
    ctx.expect_tensor(dW, want_dW.to(dtype), f"dW {what}", bound=BOUND[dtype], n=N,
                      mistakes=_distinct(grad_mistakes, want_dW, BOUND[dtype]), hint=hint)
    theirs, ours = [], []
    with one_thread():
        time_reference(kind, W, X, y, reg)   # warm-up
        for _ in range(repeats):
            theirs.append(invoke(ctx, vectorized, hW, hX, hy, reg, keep=True).seconds)
            ours.append(time_reference(kind, W, X, y, reg))
    t_vec, t_ref = min(theirs), min(ours)
    allowed = SPEED_FACTOR * t_ref + SPEED_SLACK
    size = f"N={N}, D={D}, C={C}, {str(dtype).replace('torch.', '')}"
    if t_vec <= allowed:
        ctx.note(f"{vectorized} took {1e3 * t_vec:.1f} ms on {size}; a vectorized loss timed here took "
                 f"{1e3 * t_ref:.1f} ms (at most {1e3 * allowed:.1f} ms allowed): fast enough.")
        return
    ctx.fail(f"{vectorized} is not much faster than a loop: it took {1e3 * t_vec:.1f} ms on {size} (the fastest "
             f"of {repeats} runs), where a vectorized loss takes {1e3 * t_ref:.1f} ms here; at most "
             f"{1e3 * allowed:.1f} ms ({SPEED_FACTOR:g} times that, plus {1e3 * SPEED_SLACK:g} ms) is allowed. "
             "Compute all the scores with one matrix product and work on the whole (N, C) array at once; do not "
             "loop (or call a function that loops) over the examples.")


@check("a2.linear.svm_vectorized_speed", function="svm_loss_vectorized", kind="svm", N=2000, D=500, C=10,
       dtype=torch.float32, repeats=7)
def svm_vectorized_speed(ctx, **kw):
    """svm_loss_vectorized is about as fast as a vectorized loss timed by the judge"""
    judge_speed(ctx, **kw)


@check("a2.linear.softmax_vectorized_speed", function="softmax_loss_vectorized", kind="softmax", N=2000, D=500,
       C=10, dtype=torch.float32, repeats=7)
def softmax_vectorized_speed(ctx, **kw):
    """softmax_loss_vectorized is about as fast as a vectorized loss timed by the judge"""
    judge_speed(ctx, **kw)


# ---- sample_batch -------------------------------------------------------------------------------


def indexed_rows(ctx, N: int, D: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """X (N, D) whose column 0 holds the row's index (exact in every float dtype), labels y (N,)."""
    X = ctx.randn(N, D, dtype=dtype)
    X[:, 0] = torch.arange(N, device=X.device, dtype=dtype)
    return X, ctx.randint(0, 10, (N,))


def drawn_indices(ctx, X: torch.Tensor, y: torch.Tensor, got: Any, num_train: int, batch_size: int) -> torch.Tensor:
    """Check a (X_batch, y_batch) and return the row index of each drawn example."""
    X_batch, y_batch = ctx.expect_items(got, 2, "the result of sample_batch")
    expect_layout(ctx, X_batch, (batch_size, X.shape[1]), X.dtype, "X_batch",
                  hint=f"X_batch holds batch_size = {batch_size} rows of X (drawn with replacement, so batch_size "
                       "may exceed num_train).")
    expect_layout(ctx, y_batch, (batch_size,), torch.int64, "y_batch")
    Xb, yb, Xc = X_batch.cpu(), y_batch.cpu(), X.cpu()
    idx = Xb[:, 0].round().long()
    ctx.expect(bool(((idx >= 0) & (idx < X.shape[0])).all()) and torch.equal(Xb, Xc[idx.clamp(0, X.shape[0] - 1)]),
               "X_batch: its rows are not rows of X; pick whole rows, X[indices].")
    outside = idx >= num_train
    if outside.any():
        ctx.fail(f"X_batch holds row {int(idx[outside][0])} of X, but only the first num_train = {num_train} rows "
                 "may be drawn: draw indices in [0, num_train).")
    if not torch.equal(yb, y.cpu()[idx]):
        k = int((yb != y.cpu()[idx]).nonzero()[0])
        ctx.fail(f"y_batch[{k}] = {int(yb[k])} is not the label of X_batch[{k}] (row {int(idx[k])} of X, label "
                 f"{int(y.cpu()[idx[k]])}); use the same indices for X and y.")
    return idx


@check("a2.linear.sample_batch", function="sample_batch", N=60, D=5, num_train=40, batch_size=40, dtype=torch.float32)
def sample_batch(ctx, N, D, num_train, batch_size, dtype):
    """sample_batch draws matching rows and labels, with replacement"""
    X, y = indexed_rows(ctx, N, D, dtype)
    reply = invoke(ctx, "sample_batch", X, y, num_train, batch_size, return_args=True)
    expect_inputs_unchanged(ctx, "sample_batch", list(zip(["X", "y"], [X, y], reply.args)))
    idx = drawn_indices(ctx, X, y, reply.value, num_train, batch_size)
    if torch.equal(idx, torch.arange(batch_size)):
        ctx.fail("sample_batch returned the first batch_size rows in order; draw them at random.")
    if idx.unique().numel() == idx.numel():
        ctx.fail(f"the {batch_size} rows drawn from {num_train} are all different: sample_batch seems to draw "
                 "without replacement (a permutation). Draw each index independently, e.g. with torch.randint, so "
                 "the same example can come up twice.")


@check("a2.linear.sample_batch_many", function="sample_batch", N=30, D=3, num_train=20, batch_size=2000,
       dtype=torch.float64)
def sample_batch_many(ctx, N, D, num_train, batch_size, dtype):
    """sample_batch: batch_size > num_train, every row drawn about equally often"""
    X, y = indexed_rows(ctx, N, D, dtype)
    idx = drawn_indices(ctx, X, y, call(ctx, "sample_batch", X, y, num_train, batch_size), num_train, batch_size)
    counts = torch.bincount(idx, minlength=num_train)[:num_train]
    mean = batch_size / num_train
    missing = (counts == 0).nonzero().flatten().tolist()
    ctx.expect(not missing, f"in {batch_size} draws from {num_train} rows, rows {missing[:5]} never came up; every "
                            "row in [0, num_train) should be drawn, each with the same probability.")
    lo, hi = int(counts.min()), int(counts.max())
    ctx.expect(lo >= 0.5 * mean and hi <= 1.5 * mean,
               f"in {batch_size} draws from {num_train} rows each row should come up about {mean:.0f} times; found "
               f"counts from {lo} to {hi}. Draw the indices uniformly from [0, num_train).")


# ---- training a linear classifier ---------------------------------------------------------------

LOSS_ORDER = [("svm_loss_vectorized", "svm"), ("softmax_loss_vectorized", "softmax"), ("svm_loss_naive", "svm"),
              ("softmax_loss_naive", "softmax")]


def loss_output(ctx, name: str, W, X, y, reg: float) -> Any:
    """What the student's loss `name` returns, or None when it fails (it cannot be trained with then)."""
    try:
        return call(ctx, name, W, X, y, reg)
    except CheckFailed:
        return None


def student_loss(ctx, verified: bool, dtype: torch.dtype = torch.float64) -> tuple[str, str] | None:
    """One of the student's losses to train with: the first that runs and returns (loss, dW) tensors, in float64
    and in `dtype` (the dtype it will train in), or with `verified` the first that also matches the oracle. None if
    there is none. (A loss that works in float64 only must not make the trainer fail in float32.)"""
    W = ctx.randn(6, 4, dtype=torch.float64, scale=0.3)
    X = ctx.randn(9, 6, dtype=torch.float64)
    y = ctx.randint(0, 4, (9,))
    for name, kind in LOSS_ORDER:
        ok = True
        for dt in dict.fromkeys((torch.float64, dtype)):
            out = loss_output(ctx, name, W.to(dt), X.to(dt), y, 0.05)
            ok = isinstance(out, (tuple, list)) and len(out) == 2 and \
                all(isinstance(t, torch.Tensor) for t in out) and out[1].shape == W.shape
            if ok and verified:
                want_loss, want_dW, _, _ = linear_expectations(kind, W, X, y, 0.05)
                bound = 1e-6 if dt == torch.float64 else 1e-3
                ok = out[0].numel() == 1 and rel_error(out[0].reshape(()), want_loss) <= bound and \
                    rel_error(out[1], want_dW) <= bound
            if not ok:
                break
        if ok:
            return name, kind
    return None


def replay_sgd(ctx, loss_name: str, W0, Xb, yb, lr: float, reg: float, num_iters: int, sign: float = -1.0):
    """The weights and losses that num_iters steps W <- W - lr * dW give with the student's own loss on (Xb, yb)."""
    W, losses = W0, []
    for _ in range(num_iters):
        loss, dW = call(ctx, loss_name, W, Xb, yb, reg)
        losses.append(float(loss))
        W = W + sign * lr * dW
    return W, losses


def judge_train_init(ctx, N: int, D: int, labels: tuple, dtype: torch.dtype) -> None:
    """W None and num_iters=0: the initial weights 1e-6 * randn(D, C), C = max(y) + 1, and no losses."""
    X = ctx.randn(N, D, dtype=dtype)
    y = torch.tensor(labels, device=ctx.device)[ctx.randint(0, len(labels), (N,))]
    y[0] = max(labels)
    C = max(labels) + 1
    W, history = ctx.expect_items(call(ctx, "train_linear_classifier", ctx.ref("svm_loss_vectorized"), None, X, y,
                                            num_iters=0), 2, "the result of train_linear_classifier")
    ctx.expect_type(W, torch.Tensor, "W (with W=None and num_iters=0: the initial weights)")
    if tuple(W.shape) == (D, len(set(labels))):
        ctx.fail(f"W: expected shape {fmt_shape((D, C))}, found {fmt_shape(W.shape)}: the labels are {list(labels)}, "
                 f"so C = max(y) + 1 = {C}, not the number of distinct labels.")
    expect_layout(ctx, W, (D, C), dtype, "W (with W=None and num_iters=0: the initial weights)",
                  hint=f"W is (D, C) with C = max(y) + 1 = {C}, in X's dtype, on X's device.")
    std = W.double().std().item()
    ctx.expect(1e-7 < std < 1e-5, f"the initial weights should be 1e-6 * randn(D, C); their standard deviation is "
                                  f"{std:.2e}.")
    ctx.expect(isinstance(history, list) and len(history) == 0,
               f"loss_history: expected an empty list for num_iters=0, found {describe_value(history)}.")


@check("a2.linear.train_steps", function="train_linear_classifier", N=20, D=6, C=4, batch_size=7, num_iters=4,
       lr=0.5, reg=0.01, dtype=torch.float64, init=(30, 7, (0, 2, 4), torch.float32))
def train_steps(ctx, N, D, C, batch_size, num_iters, lr, reg, dtype, init):
    """train_linear_classifier: W None starts at 1e-6 randn(D, max(y) + 1); SGD steps W <- W - lr * dW"""
    judge_train_init(ctx, *init)
    # Every row of X is the same example, so every minibatch is the same whatever rows are drawn, and the steps
    # can be replayed here with the student's own loss (whose correctness is judged in its own checks).
    x = ctx.randn(1, D, dtype=dtype)
    X = x.expand(N, D).clone()
    y = ctx.randint(0, C, (1,)).expand(N).clone()
    W0 = ctx.randn(D, C, dtype=dtype, scale=0.5)
    chosen = student_loss(ctx, verified=False, dtype=dtype)
    if chosen is None:
        ctx.fail("train_linear_classifier could not be judged: none of your loss functions runs and returns "
                 f"(loss, dW) in {str(dtype).replace('torch.', '')} (see their checks).")
    loss_name, _ = chosen
    reply = invoke(ctx, "train_linear_classifier", ctx.ref(loss_name), W0, X, y, learning_rate=lr, reg=reg,
                       num_iters=num_iters, batch_size=batch_size, return_args=True)
    expect_inputs_unchanged(ctx, "train_linear_classifier", list(zip(["W", "X", "y"], [W0, X, y], reply.args[1:])))
    W, history = ctx.expect_items(reply.value, 2, "the result of train_linear_classifier")
    Xb, yb = X[:1].expand(batch_size, X.shape[1]).clone(), y[:1].expand(batch_size).clone()  # any minibatch
    want_W, want_losses = replay_sgd(ctx, loss_name, W0, Xb, yb, lr, reg, num_iters)
    name = f"W after {num_iters} steps (learning_rate={lr:g}, with your {loss_name})"
    try:
        ctx.expect_tensor(W, want_W, name, bound=REPLAY[dtype])
    except CheckFailed as e:
        if isinstance(W, torch.Tensor) and W.shape == W0.shape:
            alts = {"W is returned unchanged: the update step is missing": W0}
            alts["the step goes uphill: W <- W - learning_rate * dW"] = \
                replay_sgd(ctx, loss_name, W0, Xb, yb, lr, reg, num_iters, sign=+1.0)[0]
            alts["the learning rate is ignored: W <- W - learning_rate * dW"] = \
                replay_sgd(ctx, loss_name, W0, Xb, yb, 1.0, reg, num_iters)[0]
            alts["only one step is taken"] = replay_sgd(ctx, loss_name, W0, Xb, yb, lr, reg, 1)[0]
            why = next((d for d, a in alts.items() if rel_error(W, a) <= REPLAY[dtype]), None)
            if why:
                raise CheckFailed(f"{e} Likely bug: {why}.") from None
        raise
    ctx.expect(isinstance(history, list) and len(history) == num_iters,
               f"loss_history: expected a list of num_iters = {num_iters} losses, found {describe_value(history)}.")
    for k, (got, want) in enumerate(zip(history, want_losses)):
        got = expect_float(ctx, got, f"loss_history[{k}]")
        ctx.expect(abs(got - want) <= REPLAY[dtype] * max(1.0, abs(want)),
                   f"loss_history[{k}]: expected {want:.6g}, the loss at iteration {k}, found {got:.6g}.")


LINEAR_HYPER = {"svm": (1e-2, 1e-3), "softmax": (1e-1, 1e-3)}   # learning rate, reg: good on both data sets


def blocks_problem(ctx, names: list[str]) -> str | None:
    """Which of the student's building blocks (`names`) is broken, in a few words; None if all look right.
    Used to tell a composite's own failure from one it inherits."""
    for name in names:
        if name == "sample_batch":
            X, y = indexed_rows(ctx, 30, 3, torch.float32)
            try:
                idx = drawn_indices(ctx, X, y, call(ctx, "sample_batch", X, y, 20, 100), 20, 100)
                if idx.unique().numel() < 10:
                    return "your sample_batch does not draw random rows"
            except CheckFailed:
                return "your sample_batch is wrong"
        elif name == "nn_forward_backward":
            p, X, y = net_problem(ctx, 6, 5, 4, 3, torch.float64, 0.5)
            try:
                loss, grads = ctx.expect_items(call(ctx, "nn_forward_backward", p, X, y=y, reg=0.01), 2, "")
                want_loss, want = net_value_and_grads(p, X, y, 0.01)
                ok = rel_error(loss, want_loss) < 1e-6 and all(rel_error(grads[k], want[k]) < 1e-6 for k in NET_KEYS)
            except (CheckFailed, KeyError, TypeError, RuntimeError):
                ok = False
            if not ok:
                return "your nn_forward_backward is wrong"
        elif name == "nn_train":
            if nn_train_problem(ctx) is not None:
                return "your nn_train is wrong"
        elif name == "nn_predict":
            p, X, _ = net_problem(ctx, 6, 5, 4, 3, torch.float64, 0.5)
            try:
                got = call(ctx, "nn_predict", p, ctx.ref("nn_forward_backward"), X)
                ok = isinstance(got, torch.Tensor) and torch.equal(got.cpu(), net_parts(
                    {k: _cpu64(v) for k, v in p.items()}, _cpu64(X))[0].argmax(1))
            except CheckFailed:
                ok = False
            if not ok:
                return "your nn_predict (or the scores of nn_forward_backward) is wrong"
    return None


def block_fails_in_training(ctx, block: str, data: dict, hX: Handle, hy: Handle, reg: float) -> bool:
    """Whether the student's `block` (sample_batch or a loss) raises when the judge calls it as the training of
    train_accuracy does: a minibatch of 200 from the training split; the loss at W = 1e-6 randn(D, C)."""
    X, y = data["X_train"], data["y_train"]
    try:
        if block == "sample_batch":
            call(ctx, "sample_batch", hX, hy, X.shape[0], 200)
        else:
            W = 1e-6 * ctx.randn(X.shape[1], int(y.max()) + 1, dtype=X.dtype)
            call(ctx, block, W, X[:200].to(ctx.device), y[:200].to(ctx.device), reg)
    except CheckFailed as e:
        return raised_in(e) == block
    return False


@check("a2.linear.train_accuracy", function="train_linear_classifier")
def train_accuracy(ctx):
    """train_linear_classifier learns: its W beats the target on the test split"""
    data = course_data(ctx, bias_trick=True)
    dtype = data["X_train"].dtype
    chosen = student_loss(ctx, verified=True, dtype=dtype)
    verified = chosen is not None
    chosen = chosen or student_loss(ctx, verified=False, dtype=dtype)
    if chosen is None:
        ctx.fail("train_linear_classifier could not be judged: none of your loss functions runs and returns "
                 f"(loss, dW) in float64 and in {str(dtype).replace('torch.', '')} (see their checks).")
    loss_name, kind = chosen
    lr, reg = LINEAR_HYPER[kind]
    num_iters = scale(ctx, "train_iters")
    hX, hy = ctx.put(data["X_train"].to(ctx.device)), ctx.put(data["y_train"].to(ctx.device))
    try:
        got = call(ctx, "train_linear_classifier", ctx.ref(loss_name), None, hX, hy, learning_rate=lr, reg=reg,
                   num_iters=num_iters, batch_size=200)
    except CheckFailed as e:
        # excused only for an exception raised in the loss or sample_batch that the judge gets too, calling that
        # block the way the training does (train_linear_classifier's own steps are judged in train_steps)
        raiser = block_raised(e, {loss_name, "sample_batch"})
        if raiser is None or not block_fails_in_training(ctx, raiser, data, hX, hy, reg):
            raise
        ctx.note(f"train_linear_classifier failed inside your {raiser}, which fails the same way when called here "
                 f"as the training calls it (see its checks); the training's accuracy could not be judged. "
                 f"(Here: {e})")
        return
    W, history = ctx.expect_items(got, 2, "the result of train_linear_classifier")
    D, C = data["X_train"].shape[1], int(data["y_train"].max()) + 1
    expect_layout(ctx, W, (D, C), data["X_train"].dtype, "the trained W")
    ctx.expect(isinstance(history, list) and len(history) == num_iters,
               f"loss_history: expected a list of num_iters = {num_iters} losses, found {describe_value(history)}.")
    losses = [v if isinstance(v, float) and not verified else expect_float(ctx, v, f"loss_history[{k}]")
              for k, v in enumerate(history)]   # a wrong loss may diverge (inf, nan): only the run is judged then
    if not verified:
        ctx.note(f"train_linear_classifier ran {num_iters} iterations with your {loss_name}; its accuracy was not "
                 "judged, since none of your losses is right yet (see their checks).")
        return
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    acc = 100 * accuracy((data["X_test"].double() @ W.cpu().double()).argmax(1), data["y_test"])
    target = ctx.target("linear_train_accuracy")
    ctx.note(f"trained with your {loss_name} (learning_rate={lr:g}, reg={reg:g}, {num_iters} iterations) on "
             f"{data['X_train'].shape[0]} images of {ctx.run.dataset_name}: loss {first:.3f} -> {last:.3f}, test "
             f"accuracy {acc:.1f}% (target {target:g}%)")
    if last < first and acc >= target:
        return
    broken = blocks_problem(ctx, ["sample_batch"])
    if broken:
        ctx.note(f"The training did not reach the target, but {broken} (see its checks): train_linear_classifier's "
                 "own steps are judged in another check.")
        return
    ctx.expect(last < first, f"the loss did not decrease over {num_iters} iterations ({first:.3f} -> {last:.3f}).")
    ctx.fail(f"the trained W reaches {acc:.1f}% on the test split, below the target {target:g}%.")


# ---- prediction ---------------------------------------------------------------------------------


@check("a2.linear.predict", function="predict_linear_classifier", N=25, D=8, C=6, dtype=torch.float32)
def predict(ctx, N, D, C, dtype):
    """predict_linear_classifier returns the argmax labels (int64)"""
    W, X, _ = linear_problem(ctx, N, D, C, dtype)
    reply = invoke(ctx, "predict_linear_classifier", W, X, return_args=True)
    expect_inputs_unchanged(ctx, "predict_linear_classifier", list(zip(["W", "X"], [W, X], reply.args)))
    scores = _cpu64(X) @ _cpu64(W)
    expect_labels(ctx, reply.value, scores, "One int64 label per row of X: the index of the highest of its C "
                                            "scores X[i] @ W.")


def expect_labels(ctx, got: Any, scores: torch.Tensor, hint: str) -> None:
    """Labels equal to the argmax of each row of `scores`; names argmin and argmax over the wrong dimension."""
    want = scores.cpu().argmax(1)
    if isinstance(got, torch.Tensor) and got.shape == want.shape and not got.is_floating_point() \
            and torch.equal(got.cpu().long(), scores.cpu().argmin(1)):
        ctx.fail("the predicted labels are the classes of the LOWEST scores; predict the highest (argmax).")
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (scores.shape[1],) and scores.shape[0] != scores.shape[1]:
        ctx.fail(f"the predicted labels: expected one per example, shape {fmt_shape(want.shape)}, found "
                 f"{fmt_shape(got.shape)}: take the argmax over the classes (dim=1), not over the examples.")
    ctx.expect_tensor(got, want, "the predicted labels", hint=hint)


# ---- choosing hyperparameters -------------------------------------------------------------------


def expect_number_list(ctx, value: Any, name: str, *, at_least: int, positive: bool, integer: bool = False,
                       at_most_one: bool = False) -> list:
    if isinstance(value, torch.Tensor) or not isinstance(value, (list, tuple)):
        ctx.fail(f"{name}: expected a list of numbers, found {describe_value(value)}.")
    ctx.expect(len(value) >= at_least, f"{name}: expected at least {at_least} values, found {len(value)}.")
    for v in value:
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        ok = ok and not isinstance(v, bool) and math.isfinite(v) and (v > 0 if positive else v >= 0)
        ok = ok and (not at_most_one or v <= 1)
        if not ok:
            want = ("positive integers" if integer else "numbers in (0, 1]" if at_most_one else
                    "positive numbers" if positive else "numbers >= 0")
            ctx.fail(f"{name}: expected {want}, found {v!r}.")
    return list(value)


def judge_sgd(kind: str, data: dict, lr: float, reg: float, num_iters: int, gen: torch.Generator,
              device: torch.device) -> torch.Tensor:
    """The judge's own SGD on the training split (W0 = 1e-6 randn, minibatches of 200 drawn with replacement),
    gradients by autograd of the oracle loss, on `device` (random numbers drawn on the CPU); W comes back on the CPU."""
    X, y = data["X_train"].to(device), data["y_train"].to(device)
    W = 1e-6 * torch.randn(X.shape[1], int(y.max()) + 1, generator=gen).to(device)
    data_loss = DATA_LOSS[kind]
    with torch.enable_grad():
        for _ in range(num_iters):
            rows = torch.randint(X.shape[0], (200,), generator=gen).to(device)
            Wg = W.clone().requires_grad_(True)
            objective = data_loss(Wg, X[rows], y[rows]) + reg * Wg.square().sum()
            (g,) = torch.autograd.grad(objective, Wg)
            W = (W - lr * g).detach()
            if not torch.isfinite(W).all():
                break
    return W.cpu()


_TRAINED: dict = {}   # (data set, kind, lr, reg, iterations, seed) -> (val, test accuracy, finite): a pure function


def trained_here(ctx, kind: str, data: dict, lr: float, reg: float, num_iters: int) -> tuple[float, float, bool]:
    """(validation fraction, test percentage, finite) of the judge's own SGD with these hyperparameters. Memoised:
    the same values (the kit's defaults, a class's common choices) are trained once per grading process."""
    key = (ctx.run.dataset_name, kind, lr, reg, num_iters, ctx.seed)
    if key not in _TRAINED:
        gen = torch.Generator().manual_seed(zlib.crc32(repr(key[1:]).encode()))
        W = judge_sgd(kind, data, lr, reg, num_iters, gen, ctx.device)
        ok = bool(torch.isfinite(W).all())
        val = accuracy((data["X_val"] @ W).argmax(1), data["y_val"]) if ok else 0.0
        test = 100 * accuracy((data["X_test"] @ W).argmax(1), data["y_test"]) if ok else 0.0
        if len(_TRAINED) > 256:
            _TRAINED.clear()
        _TRAINED[key] = (val, test, ok)
    return _TRAINED[key]


def judge_search(ctx, function: str, kind: str, target_key: str) -> None:
    got = call(ctx, function)
    lrs, regs = ctx.expect_items(got, 2, f"the result of {function} (learning_rates, regularization_strengths)")
    lrs = expect_number_list(ctx, lrs, "learning_rates", at_least=2, positive=True)
    regs = expect_number_list(ctx, regs, "regularization_strengths", at_least=2, positive=False)
    combos = len(lrs) * len(regs)
    ctx.expect(combos < 25, f"{len(lrs)} learning rates x {len(regs)} regularization strengths = {combos} "
                            "combinations; fewer than 25 are allowed.")
    data = course_data(ctx, bias_trick=True)
    num_iters = scale(ctx, "search_iters")
    results = []
    with one_thread():
        for lr in lrs:
            for reg in regs:
                results.append((*trained_here(ctx, kind, data, float(lr), float(reg), num_iters), lr, reg))
    val, acc, ok, lr, reg = max(results, key=lambda r: r[0])
    target = ctx.target(target_key)
    diverged = sum(not r[2] for r in results)
    ctx.note(f"{combos} combinations, each trained here for {num_iters} iterations on {ctx.run.dataset_name}: the "
             f"best, learning_rate={lr:g}, reg={reg:g}, reaches {100 * val:.1f}% on validation and {acc:.1f}% on the test "
             f"split (target {target:g}%)" + (f"; {diverged} diverged" if diverged else ""))
    ctx.expect(acc >= target, f"the best of your {combos} combinations reaches {acc:.1f}% on the test split, below "
                              f"the target {target:g}%. Search over several orders of magnitude first, then narrow "
                              "around the best values.")


@check("a2.linear.svm_search_params", function="svm_get_search_params")
def svm_search_params(ctx):
    """svm_get_search_params: 2+ values each, < 25 combinations, best reaches the target"""
    judge_search(ctx, "svm_get_search_params", "svm", "svm_search_accuracy")


@check("a2.linear.softmax_search_params", function="softmax_get_search_params")
def softmax_search_params(ctx):
    """softmax_get_search_params: 2+ values each, < 25 combinations, best reaches the target"""
    judge_search(ctx, "softmax_get_search_params", "softmax", "softmax_search_accuracy")


CLASS_LOSS = {"LinearSVM": "svm_loss_vectorized", "Softmax": "softmax_loss_vectorized"}


@check("a2.linear.test_one_param_set", function="test_one_param_set", cls="LinearSVM", lr=1e-2, reg=1e-3)
def test_one_param_set(ctx, cls, lr, reg):
    """test_one_param_set trains cls and returns its accuracies as fractions"""
    data = course_data(ctx, bias_trick=True)
    num_iters = scale(ctx, "one_param_iters")
    # cls trains with its loss (LinearSVM: svm_loss_vectorized, Softmax: softmax_loss_vectorized): take a class
    # whose loss can be trained with, so the loss's mistakes stay the loss's
    # (in float64 and in the data's dtype, which it trains in)
    W0, X0, y0 = linear_problem(ctx, 9, 6, 4, torch.float64)
    dtypes = dict.fromkeys((torch.float64, data["X_train"].dtype))
    usable = [c for c in (cls, *(c for c in CLASS_LOSS if c != cls))
              if all(isinstance(loss_output(ctx, CLASS_LOSS[c], W0.to(dt), X0.to(dt), y0, 0.05), (tuple, list))
                     for dt in dtypes)]
    if not usable:
        ctx.fail("test_one_param_set could not be judged: it trains a LinearSVM or a Softmax, and neither "
                 "svm_loss_vectorized nor softmax_loss_vectorized runs yet (see their checks).")
    cls = usable[0]
    dev = {k: data[k].to(ctx.device) for k in ("X_train", "y_train", "X_val", "y_val")}
    hdata = ctx.put(dev)
    model = call(ctx, cls)
    try:
        got = call(ctx, "test_one_param_set", model, hdata, lr, reg, num_iters=num_iters)
    except CheckFailed as e:
        # cls.predict is predict_linear_classifier: when that is what fails (it raised, in its own lines), judge
        # the training alone
        try:
            excused = block_raised(e, {"predict_linear_classifier"}) is not None and predict_problem(ctx) and \
                trained_as_asked(ctx, cls, ctx.getattr(model, "W"), hdata, lr, reg, num_iters)
        except CheckFailed:
            excused = False
        if not excused:
            raise e
        ctx.note(f"test_one_param_set failed, but in your predict_linear_classifier (see its check), and cls was "
                 f"trained as asked; its accuracies could not be judged. (Here: {e})")
        return
    returned, train_acc, val_acc = ctx.expect_items(got, 3, "the result of test_one_param_set (cls, train_acc, "
                                                             "val_acc)")
    ctx.expect(isinstance(returned, Handle) and returned.type == cls,
               f"the first item returned should be the {cls} passed in, trained; found {describe_value(returned)}.")
    W = ctx.getattr(returned, "W")
    ctx.expect(isinstance(W, torch.Tensor), f"cls.W after test_one_param_set: expected the trained weights, found "
                                            f"{describe_value(W)} (train cls with its train method).")
    ctx.expect(same_tensor(W, ctx.getattr(model, "W")),
               "the classifier returned is not the one passed in: train cls itself and return it.")
    train_acc = expect_fraction(ctx, train_acc, "train_acc")
    val_acc = expect_fraction(ctx, val_acc, "val_acc")
    # the accuracies of the returned weights: the judge's own argmax, or the labels of the student's cls.predict
    # (whose correctness is judged in predict_linear_classifier's check)
    Wd = W.cpu().double()
    mine = {s: accuracy((data[f"X_{s}"].double() @ Wd).argmax(1), data[f"y_{s}"]) for s in ("train", "val")}
    theirs = {}
    for s in ("train", "val"):
        try:
            pred = method(ctx, returned, "predict", item_handle(ctx, hdata, f"X_{s}"))
            theirs[s] = accuracy(pred, data[f"y_{s}"]) if isinstance(pred, torch.Tensor) and \
                pred.shape == data[f"y_{s}"].shape else None
        except CheckFailed:
            theirs[s] = None
    slack = {s: 1.5 / data[f"X_{s}"].shape[0] for s in ("train", "val")}   # a near tie may flip one label

    def matches(got: float, s: str) -> bool:
        return any(w is not None and abs(got - w) <= slack[s] for w in (mine[s], theirs[s]))

    if not matches(train_acc, "train") and not matches(val_acc, "val") and \
            abs(train_acc - mine["val"]) <= slack["val"] and abs(val_acc - mine["train"]) <= slack["train"]:
        ctx.fail(f"train_acc and val_acc are swapped: cls.W classifies {mine['train']:.4f} of the training set and "
                 f"{mine['val']:.4f} of the validation set correctly; you returned {train_acc:.4f} and {val_acc:.4f}.")
    ctx.expect(matches(train_acc, "train"),
               f"train_acc: cls.W classifies a fraction {mine['train']:.4f} of data_dict['X_train'] correctly; you "
               f"returned {train_acc:.4f}.")
    ctx.expect(matches(val_acc, "val"),
               f"val_acc: cls.W classifies a fraction {mine['val']:.4f} of data_dict['X_val'] correctly; you "
               f"returned {val_acc:.4f}.")
    if not trained_as_asked(ctx, cls, W, hdata, lr, reg, num_iters):
        ctx.fail(f"cls.W is not what cls.train(X_train, y_train, learning_rate={lr:g}, reg={reg:g}, "
                 f"num_iters={num_iters}) gives: train cls once, on the training set, with the lr, reg and num_iters "
                 "passed in.")
    ctx.note(f"{cls} trained {num_iters} iterations: train {train_acc:.3f}, val {val_acc:.3f}")


def trained_as_asked(ctx, cls: str, W: Any, hdata: Handle, lr: float, reg: float, num_iters: int) -> bool:
    """W is what a fresh cls.train(X_train, y_train, learning_rate=lr, reg=reg, num_iters=num_iters) gives (every
    call into the sandbox starts from the check's random seed, so the same training gives the same weights)."""
    fresh = call(ctx, cls)
    method(ctx, fresh, "train", item_handle(ctx, hdata, "X_train"), item_handle(ctx, hdata, "y_train"),
               learning_rate=lr, reg=reg, num_iters=num_iters)
    return same_tensor(W, ctx.getattr(fresh, "W"))


def predict_problem(ctx) -> bool:
    """Whether the student's predict_linear_classifier is wrong (or fails)."""
    W, X, _ = linear_problem(ctx, 7, 4, 3, torch.float64)
    try:
        got = call(ctx, "predict_linear_classifier", W, X)
    except CheckFailed:
        return True
    return not (isinstance(got, torch.Tensor) and got.shape == (7,) and
                torch.equal(got.cpu(), (_cpu64(X) @ _cpu64(W)).argmax(1)))


def item_handle(ctx, hdata: Handle, key: str) -> Handle:
    """A handle to data_dict[key] in the sandbox (dict.get runs there and the value stays there)."""
    return ctx.invoke_method(hdata, "get", key, keep=True).value


# ---- the two-layer net --------------------------------------------------------------------------


def net_problem(ctx, N: int, D: int, H: int, C: int, dtype: torch.dtype, w_scale: float, b_scale: float | None = None,
                x_scale: float = 1.0):
    """params (W1 (D, H), b1 (H,), W2 (H, C), b2 (C,)), X (N, D), y (N,) on the grading device."""
    b_scale = w_scale if b_scale is None else b_scale
    p = {"W1": ctx.randn(D, H, dtype=dtype, scale=w_scale), "b1": ctx.randn(H, dtype=dtype, scale=b_scale),
         "W2": ctx.randn(H, C, dtype=dtype, scale=w_scale), "b2": ctx.randn(C, dtype=dtype, scale=b_scale)}
    return p, ctx.randn(N, D, dtype=dtype, scale=x_scale), ctx.randint(0, C, (N,))


def toy_problem(ctx, dtype: torch.dtype = torch.float64, zero_biases: bool = False):
    """The course's toy problem: X = 10 randn(5, 4), y = [0, 1, 2, 2, 1], 10 hidden units, 3 classes, weights
    1e-4 randn; biases 1e-4 randn too (or 0, as TwoLayerNet starts, with zero_biases)."""
    p = {"W1": ctx.randn(4, 10, dtype=dtype, scale=1e-4), "b1": ctx.randn(10, dtype=dtype, scale=1e-4),
         "W2": ctx.randn(10, 3, dtype=dtype, scale=1e-4), "b2": ctx.randn(3, dtype=dtype, scale=1e-4)}
    if zero_biases:
        p["b1"], p["b2"] = torch.zeros_like(p["b1"]), torch.zeros_like(p["b2"])
    return p, ctx.randn(5, 4, dtype=dtype, scale=10.0), torch.tensor([0, 1, 2, 2, 1], device=ctx.device)


@check("a2.two_layer.forward_pass", function="nn_forward_pass", N=7, D=5, H=6, C=4, dtype=torch.float64)
def forward_pass(ctx, N, D, H, C, dtype):
    """nn_forward_pass: scores and hidden (after the ReLU)"""
    p, X, _ = net_problem(ctx, N, D, H, C, dtype, 0.7)
    reply = invoke(ctx, "nn_forward_pass", p, X, return_args=True)
    expect_inputs_unchanged(ctx, "nn_forward_pass", list(zip(["params", "X"], [p, X], reply.args)))
    scores, hidden = ctx.expect_items(reply.value, 2, "the result of nn_forward_pass (scores, hidden)")
    q, Xc = {k: _cpu64(v) for k, v in p.items()}, _cpu64(X)
    want_scores, want_hidden = net_parts(q, Xc)
    pre = torch.addmm(q["b1"], Xc, q["W1"])
    bound = BOUND[dtype]
    ctx.expect_tensor(hidden, want_hidden.to(dtype), "hidden", bound=bound,
                      mistakes={"hidden is taken before the ReLU: return max(0, X W1 + b1)": pre,
                                "b1 is missing from the first layer": F.relu(Xc @ q["W1"])},
                      hint=f"hidden is (N, H) = {fmt_shape((N, H))}, the first layer's output after the ReLU.")
    ctx.expect_tensor(scores, want_scores.to(dtype), "scores", bound=bound,
                      mistakes={"the ReLU is missing: the second layer takes max(0, X W1 + b1)":
                                torch.addmm(q["b2"], pre, q["W2"]),
                                "b2 is missing from the second layer": want_hidden @ q["W2"]},
                      hint=f"scores is (N, C) = {fmt_shape((N, C))}: hidden W2 + b2.")


def student_forward(ctx, p: dict, X) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(scores, hidden) from the student's nn_forward_pass when they differ from the oracle's (else None): the
    forward pass nn_forward_backward builds on, whose mistakes are judged in nn_forward_pass's own check."""
    try:
        scores, hidden = ctx.expect_items(call(ctx, "nn_forward_pass", p, X), 2, "")
    except CheckFailed:
        return None
    want_scores, want_hidden = net_parts({k: _cpu64(v) for k, v in p.items()}, _cpu64(X))
    if not (isinstance(scores, torch.Tensor) and isinstance(hidden, torch.Tensor)
            and scores.shape == want_scores.shape and hidden.shape == want_hidden.shape):
        return None
    if rel_error(scores, want_scores) <= 1e-6 and rel_error(hidden, want_hidden) <= 1e-6:
        return None
    return scores, hidden


def net_given_forward(p: dict, X, y, reg: float, scores: torch.Tensor, hidden: torch.Tensor):
    """The loss and gradients a right nn_forward_backward returns when nn_forward_pass gives (scores, hidden):
    the softmax loss of those scores, backpropagated through them, the ReLU's mask read from hidden > 0."""
    q = {k: _cpu64(p[k]).requires_grad_(True) for k in NET_KEYS}
    hs, ss = _cpu64(hidden), _cpu64(scores)
    with torch.enable_grad():
        pre = torch.addmm(q["b1"], _cpu64(X), q["W1"]) * (hs > 0)
        h = pre + (hs - pre).detach()                       # the value of their hidden, the gradient of pre
        out = torch.addmm(q["b2"], h, q["W2"])
        out = out + (ss - out).detach()                     # the value of their scores
        loss = F.cross_entropy(out, y.cpu()) + reg * (q["W1"].square().sum() + q["W2"].square().sum())
        grads = torch.autograd.grad(loss, [q[k] for k in NET_KEYS])
    return loss.detach(), dict(zip(NET_KEYS, grads))


FORWARD_NOTE = ("Your {what} differ from the right ones, but they are exactly what nn_forward_backward should give "
                "for the scores and hidden layer your nn_forward_pass computes: its mistakes are judged in its own "
                "check. (Here: {why})")


def judge_net_grads(ctx, p: dict, X, y, reg: float, dtype: torch.dtype, what: str) -> None:
    reply = invoke(ctx, "nn_forward_backward", p, X, y=y, reg=reg, return_args=True)
    expect_inputs_unchanged(ctx, "nn_forward_backward", list(zip(["params", "X"], [p, X], reply.args)))
    loss, grads = ctx.expect_items(reply.value, 2, "the result of nn_forward_backward with labels (loss, grads)")
    try:
        _judge_net_grads(ctx, p, X, y, reg, dtype, what, loss, grads)
    except CheckFailed as e:
        theirs = student_forward(ctx, p, X)
        if theirs is None or not isinstance(grads, dict) or set(grads) != set(NET_KEYS) or \
                not all(isinstance(grads[k], torch.Tensor) and grads[k].shape == p[k].shape for k in NET_KEYS) or \
                not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise
        want_loss, want = net_given_forward(p, X, y, reg, *theirs)
        bound = BOUND[dtype]
        if rel_error(loss, want_loss) > bound or any(rel_error(grads[k], want[k]) > bound for k in NET_KEYS):
            raise
        ctx.note(FORWARD_NOTE.format(what="loss and gradients", why=e))


def _judge_net_grads(ctx, p: dict, X, y, reg: float, dtype: torch.dtype, what: str, loss, grads) -> None:
    N = X.shape[0]
    want_loss, want = net_value_and_grads(p, X, y, reg)
    bound = BOUND[dtype]
    alt = {name: net_value_and_grads(p, X, y, reg, **kw) for name, kw in
           {"bias": {"biases_too": True}, "half": {"half": True}, "sum": {"total": True},
            "mask": {"straight_through": True}}.items()}
    noreg_loss, noreg = net_value_and_grads(p, X, y, 0.0)
    expect_loss(ctx, loss, want_loss.to(dtype), f"the loss {what}", bound=bound, n=N, mistakes={
        "the regulariser reg * (sum(W1 * W1) + sum(W2 * W2)) is missing": noreg_loss,
        "the biases are regularised too; only W1 and W2 are": alt["bias"][0],
        "the regulariser has a factor 1/2; this course's regulariser is reg * (sum(W1 * W1) + sum(W2 * W2))":
            alt["half"][0],
        "the softmax loss is summed over the examples, not averaged (divide by N)": alt["sum"][0]})
    ctx.expect_type(grads, dict, "grads")
    ctx.expect(set(grads) == set(NET_KEYS), f"grads: expected the keys {list(NET_KEYS)}, found {sorted(grads)}.")
    for k in ("W2", "b2", "W1", "b1"):
        mistakes = {"the gradient flows through the ReLU where it was inactive: zero dhidden where hidden <= 0":
                    alt["mask"][1][k],
                    "the data part is not divided by N (the loss is a mean over the examples)":
                    alt["sum"][1][k]}
        if k.startswith("W"):
            mistakes.update({
                f"grads['{k}'] is missing the regulariser's gradient 2 * reg * {k}": noreg[k],
                f"the regulariser's gradient is reg * {k}; the derivative of reg * sum({k} * {k}) is 2 * reg * {k}":
                    alt["half"][1][k]})
        else:
            mistakes[f"{k} is regularised; only W1 and W2 are (no 2 * reg * {k} in its gradient)"] = alt["bias"][1][k]
        ctx.expect_tensor(grads[k], want[k].to(dtype), f"grads['{k}'] {what}", bound=bound, n=N,
                          mistakes=_distinct(mistakes, want[k], bound),
                          hint=f"grads['{k}'] has the shape of params['{k}'], {fmt_shape(p[k].shape)}.")


@check("a2.two_layer.forward_backward_toy", function="nn_forward_backward", reg=0.05)
def forward_backward_toy(ctx, reg):
    """nn_forward_backward: loss and every gradient on the course's toy problem"""
    p, X, y = toy_problem(ctx)
    judge_net_grads(ctx, p, X, y, reg, torch.float64, f"(toy problem, reg={reg:g})")


@check("a2.two_layer.forward_backward", function="nn_forward_backward", N=9, D=6, H=7, C=4, reg=0.1,
       dtype=torch.float64)
def forward_backward(ctx, N, D, H, C, reg, dtype):
    """nn_forward_backward: the scores without labels; with labels the loss and every gradient vs autograd"""
    p, X, y = net_problem(ctx, N, D, H, C, dtype, 0.5)
    got = call(ctx, "nn_forward_backward", p, X)
    if isinstance(got, (tuple, list)):
        ctx.fail(f"with y=None nn_forward_backward should return the scores alone, a tensor; found {describe_value(got)}.")
    want, _ = net_parts({k: _cpu64(v) for k, v in p.items()}, _cpu64(X))
    try:
        ctx.expect_tensor(got, want.to(dtype), "the scores (y=None)", bound=BOUND[dtype])
    except CheckFailed as e:
        theirs = student_forward(ctx, p, X)
        if theirs is None or not same_tensor(got, theirs[0]):
            raise
        ctx.note(FORWARD_NOTE.format(what="scores", why=e))
    judge_net_grads(ctx, p, X, y, reg, dtype, f"(N={N}, D={D}, H={H}, C={C}, reg={reg:g}, "
                                              f"{str(dtype).replace('torch.', '')})")


# -- nn_train: replayed with the student's own nn_forward_backward and nn_predict on a problem whose minibatches
# are all the same (identical rows), so every step, every recorded accuracy and the learning rate schedule are
# known exactly.

def replay_net(ctx, p0: dict, Xb, yb, X_val, y_val, *, lr: float, decay: float, reg: float, num_iters: int,
               per_epoch: int, schedule: str = "epoch", accuracies: bool = True):
    """(final params, losses, train accuracies, val accuracies) of SGD with the student's functions.
    schedule: 'epoch' (right), 'none', 'iteration' or 'start' (decayed at the start of each epoch) for mistakes."""
    p, rate = dict(p0), lr
    losses, train_accs, val_accs = [], [], []
    for it in range(num_iters):
        if schedule == "start" and it % per_epoch == 0:
            rate *= decay
        loss, grads = call(ctx, "nn_forward_backward", p, Xb, y=yb, reg=reg)
        losses.append(float(loss))
        p = {k: p[k] - rate * grads[k] for k in NET_KEYS}
        if schedule == "iteration":
            rate *= decay
        if (it + 1) % per_epoch == 0:
            if accuracies:
                fb = ctx.ref("nn_forward_backward")
                train_accs.append(accuracy(call(ctx, "nn_predict", p, fb, Xb), yb))
                val_accs.append(accuracy(call(ctx, "nn_predict", p, fb, X_val), y_val))
            if schedule == "epoch":
                rate *= decay
    return p, losses, train_accs, val_accs


def nn_train_problem(ctx, N=6, D=4, H=5, C=3, batch_size=3, num_iters=7, lr=0.5, decay=0.5, reg=0.01,
                     dtype=torch.float64, report: bool = False) -> str | None:
    """Run the student's nn_train on identical rows and compare it with the replay; the problem found (None if
    right). With report, also checks the histories."""
    p, x, _ = net_problem(ctx, 1, D, H, C, dtype, 0.5)
    X = x.expand(N, D).clone()
    y = ctx.randint(0, C, (1,)).expand(N).clone()
    X_val, y_val = ctx.randn(11, D, dtype=dtype), ctx.randint(0, C, (11,))
    per_epoch = max(N // batch_size, 1)
    Xb, yb = X[:1].expand(batch_size, X.shape[1]).clone(), y[:1].expand(batch_size).clone()  # any minibatch
    hp = ctx.put(p)   # params stays in the sandbox: it can be read after the call, even after a failure
    try:
        reply = invoke(ctx, "nn_train", hp, ctx.ref("nn_forward_backward"), ctx.ref("nn_predict"), X, y, X_val, y_val,
                           learning_rate=lr, learning_rate_decay=decay, reg=reg, num_iters=num_iters,
                           batch_size=batch_size)
    except CheckFailed as e:
        # nn_train records accuracies with nn_predict at the end of the first epoch: when nn_predict is what
        # fails (it raised, in its own lines or in the forward pass it runs), judge the steps taken before it
        try:
            broken = blocks_problem(ctx, ["nn_predict"]) if block_raised(e, PREDICT_CHAIN) else None
            after = ctx.fetch(hp) if broken else None
            right = isinstance(after, dict) and set(after) == set(NET_KEYS)
            if right:
                want_p = replay_net(ctx, p, Xb, yb, X_val, y_val, lr=lr, decay=decay, reg=reg, num_iters=per_epoch,
                                    per_epoch=per_epoch, accuracies=False)[0]
                right = max(rel_error(after[k], want_p[k]) for k in NET_KEYS) <= REPLAY[dtype]
        except CheckFailed:
            right = False
        if right:
            if report:
                ctx.note(f"nn_train failed at the end of its first epoch, in {broken.replace('your ', '')} (see its "
                         f"check); its first {per_epoch} steps were right. (Here: {e})")
            return None
        if not report:
            return str(e)
        raise e
    after = ctx.fetch(hp)
    want_p, want_losses, want_train, want_val = replay_net(ctx, p, Xb, yb, X_val, y_val, lr=lr, decay=decay, reg=reg,
                                                           num_iters=num_iters, per_epoch=per_epoch)
    epochs = num_iters // per_epoch
    what = (f"params after nn_train ({num_iters} iterations of batch_size {batch_size} on N={N}: {per_epoch} per "
            f"epoch; learning_rate={lr:g}, learning_rate_decay={decay:g})")
    if not isinstance(after, dict) or set(after) != set(NET_KEYS) or \
            not all(isinstance(after[k], torch.Tensor) and after[k].shape == p[k].shape for k in NET_KEYS):
        return f"{what}: params should keep its keys {list(NET_KEYS)} and shapes; found {describe_value(after)}."
    err = max(rel_error(after[k], want_p[k]) for k in NET_KEYS)
    if err > REPLAY[dtype]:
        if all(same_tensor(after[k], p[k]) for k in NET_KEYS):
            return (f"{what}: params is unchanged; nn_train must update the tensors in params in place (e.g. "
                    "params[name] -= learning_rate * grads[name]).")
        why = None
        for schedule, desc in (("none", "the learning rate never decays: multiply it by learning_rate_decay at the "
                                        "end of every epoch"),
                               ("iteration", "the learning rate decays after every iteration; decay it once per "
                                             "epoch (every max(N // batch_size, 1) iterations)"),
                               ("start", "the learning rate decays at the start of each epoch, the first included; "
                                         "decay it at the end of each epoch")):
            alt = replay_net(ctx, p, Xb, yb, X_val, y_val, lr=lr, decay=decay, reg=reg, num_iters=num_iters,
                             per_epoch=per_epoch, schedule=schedule, accuracies=False)[0]
            if max(rel_error(after[k], alt[k]) for k in NET_KEYS) <= REPLAY[dtype]:
                why = desc
                break
        k = max(NET_KEYS, key=lambda k: rel_error(after[k], want_p[k]))
        return (f"{what}: params['{k}'] differs from plain SGD with your nn_forward_backward (relative error "
                f"{rel_error(after[k], want_p[k]):.1e})." + (f" Likely bug: {why}." if why else
                " Each iteration: params[k] -= learning_rate * grads[k] for every k; at the end of each epoch "
                "record the accuracies, then multiply the learning rate by learning_rate_decay."))
    if not report:
        return None
    stats = reply.value
    ctx.expect_type(stats, dict, "the result of nn_train")
    keys = ("loss_history", "train_acc_history", "val_acc_history")
    ctx.expect(set(keys) <= set(stats), f"the result of nn_train: expected the keys {list(keys)}, found "
                                        f"{sorted(stats)}.")
    for key, n in zip(keys, (num_iters, epochs, epochs)):
        ctx.expect(isinstance(stats[key], list) and len(stats[key]) == n,
                   f"{key}: expected a list of {n} values ({'one per iteration' if n == num_iters else 'one per epoch'}"
                   f"; {num_iters} iterations, {per_epoch} per epoch), found {describe_value(stats[key])}.")
    for k, (got, want) in enumerate(zip(stats["loss_history"], want_losses)):
        got = expect_float(ctx, got, f"loss_history[{k}]")
        ctx.expect(abs(got - want) <= REPLAY[dtype] * max(1.0, abs(want)),
                   f"loss_history[{k}]: expected {want:.6g}, the minibatch loss at iteration {k}, found {got:.6g}.")
    for key, wants, where in (("train_acc_history", want_train, "the epoch's last minibatch"),
                              ("val_acc_history", want_val, "the validation set")):
        for k, (got, want) in enumerate(zip(stats[key], wants)):
            got = expect_fraction(ctx, got, f"{key}[{k}]")
            ctx.expect(abs(got - want) <= 1e-6, f"{key}[{k}]: expected {want:.4f}, the accuracy on {where} at the "
                                                f"end of epoch {k} (after its last step), found {got:.4f}.")
    return None


@check("a2.two_layer.train", function="nn_train", N=6, batch_size=3, num_iters=7, lr=0.5, decay=0.5, reg=0.01,
       dtype=torch.float64, toy=(0.1, 1.0, 1e-6, 200, 200))
def train_net(ctx, N, batch_size, num_iters, lr, decay, reg, dtype, toy):
    """nn_train: SGD in place, learning rate decayed once per epoch, histories; toy loss falls below 1.0"""
    problem = nn_train_problem(ctx, N=N, batch_size=batch_size, num_iters=num_iters, lr=lr, decay=decay, reg=reg,
                               dtype=dtype, report=True)
    if problem:
        ctx.fail(problem)
    judge_toy_training(ctx, *toy)


def judge_toy_training(ctx, lr: float, decay: float, reg: float, num_iters: int, batch_size: int) -> None:
    """On the course's toy problem (as TwoLayerNet starts it: biases 0) the final training loss falls below 1.0."""
    p, X, y = toy_problem(ctx, zero_biases=True)
    try:
        got = call(ctx, "nn_train", p, ctx.ref("nn_forward_backward"), ctx.ref("nn_predict"), X, y, X, y,
                       learning_rate=lr, learning_rate_decay=decay, reg=reg, num_iters=num_iters,
                       batch_size=batch_size)
    except CheckFailed as e:
        # excused only for an exception raised in a block nn_train runs, when that block is broken
        raiser = block_raised(e, BUILDING_BLOCKS["nn_train"])
        broken = blocks_problem(ctx, [BLOCK_CHECKED.get(raiser, raiser)]) if raiser else None
        if not broken:
            raise
        ctx.note(f"The toy training failed in your {raiser}, and {broken} (see its checks); nn_train's own steps "
                 f"are right. (Here: {e})")
        return
    ctx.expect_type(got, dict, "the result of nn_train")
    history = got.get("loss_history")
    ctx.expect(isinstance(history, list) and len(history) == num_iters,
               f"loss_history: expected {num_iters} losses, found {describe_value(history)}.")
    final = expect_float(ctx, history[-1], "loss_history[-1]")
    ctx.note(f"toy problem: loss {float(history[0]):.3f} -> {final:.3f} in {num_iters} iterations "
             f"(learning_rate={lr:g}, learning_rate_decay={decay:g}, batch_size={batch_size})")
    if final < 1.0:
        return
    broken = blocks_problem(ctx, ["nn_forward_backward", "sample_batch"])
    rebuilt = rebuilt_toy_loss(ctx, p, X, y, lr, decay, reg, num_iters, batch_size) if broken else None
    if broken and (rebuilt is None or rebuilt >= 1.0):
        ctx.note(f"The final loss is not below 1.0, but {broken} (see its checks), and plain SGD with your own "
                 "blocks, run here, does no better; nn_train's own steps are right.")
        return
    ctx.fail(f"the final training loss on the toy problem is {final:.3f}; it should fall below 1.0"
             + (f" (plain SGD run here with your own sample_batch and nn_forward_backward, the same learning rate "
                f"schedule and {num_iters} iterations, reaches {rebuilt:.3f})." if broken else "."))


def rebuilt_toy_loss(ctx, p: dict, X, y, lr: float, decay: float, reg: float, num_iters: int,
                     batch_size: int) -> float | None:
    """The last minibatch loss of plain SGD on (X, y) run by the judge step by step with the student's own
    sample_batch (a fresh seed per step, as a run's random stream gives fresh minibatches) and nn_forward_backward:
    what nn_train should reach with those blocks. None when a block fails."""
    params, rate, seed = dict(p), lr, ctx.seed
    per_epoch = max(X.shape[0] // batch_size, 1)
    loss = None
    try:
        for it in range(num_iters):
            ctx.seed = seed + 1 + it
            Xb, yb = ctx.expect_items(call(ctx, "sample_batch", X, y, X.shape[0], batch_size), 2, "sample_batch")
            ctx.seed = seed
            loss, grads = ctx.expect_items(call(ctx, "nn_forward_backward", params, Xb, y=yb, reg=reg), 2, "")
            params = {k: params[k] - rate * grads[k] for k in NET_KEYS}
            if (it + 1) % per_epoch == 0:
                rate *= decay
        return float(loss)
    except (CheckFailed, KeyError, TypeError, ValueError, RuntimeError):
        return None
    finally:
        ctx.seed = seed


@check("a2.two_layer.predict", function="nn_predict", N=20, D=6, H=8, C=5, dtype=torch.float32)
def nn_predict(ctx, N, D, H, C, dtype):
    """nn_predict: argmax of loss_func's scores, int64"""
    p, X, _ = net_problem(ctx, N, D, H, C, dtype, 0.7)
    fb = ctx.ref("nn_forward_backward")
    reply = invoke(ctx, "nn_predict", p, fb, X, return_args=True)
    expect_inputs_unchanged(ctx, "nn_predict", [("params", p, reply.args[0]), ("X", X, reply.args[2])])
    # the labels the student's own scores give (their correctness is judged in nn_forward_backward's checks)
    try:
        scores = call(ctx, "nn_forward_backward", p, X)
    except CheckFailed:
        scores = None
    if not (isinstance(scores, torch.Tensor) and scores.shape == (N, C)):
        scores = net_parts({k: _cpu64(v) for k, v in p.items()}, _cpu64(X))[0]
    expect_labels(ctx, reply.value, scores, "One int64 label per row of X: the index of its highest score in "
                                            "loss_func(params, X).")


@check("a2.two_layer.search_params", function="nn_get_search_params")
def nn_search_params(ctx):
    """nn_get_search_params: four lists, fewer than 256 combinations"""
    got = ctx.expect_items(call(ctx, "nn_get_search_params"), 4, "the result of nn_get_search_params "
                       "(learning_rates, hidden_sizes, regularization_strengths, learning_rate_decays)")
    lrs = expect_number_list(ctx, got[0], "learning_rates", at_least=1, positive=True)
    hs = expect_number_list(ctx, got[1], "hidden_sizes", at_least=1, positive=True, integer=True)
    regs = expect_number_list(ctx, got[2], "regularization_strengths", at_least=1, positive=False)
    decays = expect_number_list(ctx, got[3], "learning_rate_decays", at_least=1, positive=True, at_most_one=True)
    combos = len(lrs) * len(hs) * len(regs) * len(decays)
    ctx.expect(combos < 256, f"{len(lrs)} x {len(hs)} x {len(regs)} x {len(decays)} = {combos} combinations; fewer "
                             "than 256 are allowed.")
    ctx.note(f"{combos} combinations")


def param_set_handle(ctx, grid: tuple) -> Handle:
    """A function in the sandbox that returns `grid` when called without arguments (the bound method copy of a
    list holding the four lists: find_best_net unpacks its result like a tuple)."""
    return ctx.getattr(ctx.put([list(v) for v in grid]), "copy")


@check("a2.two_layer.find_best_net", function="find_best_net", timeout=600.0, grid=None, classes=None)
def find_best_net(ctx, grid, classes):
    """find_best_net keeps the best net; it reaches the target on the test split"""
    data = course_data(ctx, bias_trick=False, pool=scale(ctx, "net_pool"))
    grid = grid or scale(ctx, "net_grid")
    sub = dict(data)
    if classes is not None:   # only some classes: the nets must have C = max(y_train) + 1 outputs
        keep_tr, keep_va, keep_te = (data[f"y_{s}"] < classes for s in ("train", "val", "test"))
        sub = {"X_train": data["X_train"][keep_tr], "y_train": data["y_train"][keep_tr],
               "X_val": data["X_val"][keep_va], "y_val": data["y_val"][keep_va],
               "X_test": data["X_test"][keep_te], "y_test": data["y_test"][keep_te]}
    hdata = ctx.put({k: sub[k].to(ctx.device) for k in ("X_train", "y_train", "X_val", "y_val")})
    fn = param_set_handle(ctx, grid) if grid is not None else ctx.ref("nn_get_search_params")
    D, C = sub["X_train"].shape[1], int(sub["y_train"].max()) + 1
    try:
        got = call(ctx, "find_best_net", hdata, fn)
    except CheckFailed as e:
        raiser = block_raised(e, BUILDING_BLOCKS["find_best_net"])
        broken = blocks_problem(ctx, [BLOCK_CHECKED.get(raiser, raiser)]) if raiser else None
        if broken:
            raise CheckFailed(f"{e}\n  find_best_net trains its nets with TwoLayerNet.train, which runs your nn_train, "
                              f"nn_forward_backward, nn_predict and sample_batch, and {broken} (see its checks): "
                              "fix that first.") from None
        raise CheckFailed(f"{e}\n  (Here data_dict['X_train'] is {fmt_shape(sub['X_train'].shape)}: D = {D} "
                          f"features and C = max(y_train) + 1 = {C} classes; build the nets from the data's sizes.)"
                          ) from None
    net, stat, val_acc = ctx.expect_items(got, 3, "the result of find_best_net (best_net, best_stat, best_val_acc)")
    ctx.expect(isinstance(net, Handle) and net.type == "TwoLayerNet",
               f"best_net: expected a TwoLayerNet, found {describe_value(net)}.")
    params = ctx.getattr(net, "params")
    ctx.expect_type(params, dict, "best_net.params")
    ctx.expect(set(params) == set(NET_KEYS) and all(isinstance(params[k], torch.Tensor) for k in NET_KEYS),
               f"best_net.params: expected tensors under {list(NET_KEYS)}, found {describe_value(params)}.")
    H = params["W1"].shape[-1]
    for k, shape in (("W1", (D, H)), ("b1", (H,)), ("W2", (H, C)), ("b2", (C,))):
        expect_layout(ctx, params[k], shape, sub["X_train"].dtype, f"best_net.params['{k}']",
                      hint=f"The net has D = {D} inputs (X_train's width) and C = max(y_train) + 1 = {C} outputs, "
                           "in X_train's dtype, on its device.")
    if grid is not None:
        ctx.expect(H in grid[1], f"best_net has {H} hidden units; the hidden sizes to try were {list(grid[1])}.")
    ctx.expect_type(stat, dict, "best_stat")
    for key in ("loss_history", "train_acc_history", "val_acc_history"):
        ctx.expect(key in stat and isinstance(stat[key], list),
                   f"best_stat: expected the dict nn_train returned (with '{key}'), found keys {sorted(stat)}.")
    val_acc = expect_fraction(ctx, val_acc, "best_val_acc")
    q = {k: _cpu64(v) for k, v in params.items()}
    want_val = accuracy(net_parts(q, _cpu64(sub["X_val"]))[0].argmax(1), sub["y_val"])
    if abs(val_acc - want_val) > 1.5 / sub["X_val"].shape[0]:
        # the accuracy best_net.predict gives (its forward pass is the student's, judged in its own check)
        try:
            pred = method(ctx, net, "predict", item_handle(ctx, hdata, "X_val"))
            theirs = accuracy(pred, sub["y_val"]) if isinstance(pred, torch.Tensor) and \
                pred.shape == sub["y_val"].shape else None
        except CheckFailed:
            theirs = None
        ctx.expect(theirs is not None and abs(val_acc - theirs) <= 1.5 / sub["X_val"].shape[0],
                   f"best_val_acc: best_net classifies a fraction {want_val:.4f} of the validation set correctly; "
                   f"you returned {val_acc:.4f}.")
    acc = 100 * accuracy(net_parts(q, _cpu64(sub["X_test"]))[0].argmax(1), sub["y_test"])
    target = ctx.target("two_layer_accuracy")
    ctx.note(f"best net: {H} hidden units, validation {100 * want_val:.1f}%, test split {acc:.1f}% on "
             f"{ctx.run.dataset_name} (target {target:g}%)")
    if acc >= target:
        return
    broken = blocks_problem(ctx, ["nn_forward_backward", "sample_batch", "nn_predict", "nn_train"])
    if broken:
        ctx.note(f"The best net is below the target, but {broken} (see its checks) and find_best_net trains with "
                 "it, so the accuracy is not held against find_best_net; its result is consistent.")
        return
    ctx.fail(f"the best net reaches {acc:.1f}% on the test split, below the target {target:g}%"
             + (f" (given learning rates {list(grid[0])}, hidden sizes {list(grid[1])}, regularization strengths "
                f"{list(grid[2])} and decays {list(grid[3])}: keep the net with the best validation accuracy, and "
                "train each long enough)." if grid is not None else "."))
