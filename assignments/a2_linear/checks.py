"""Public checks for A2. Each judges the student's function against an oracle computed here, in the judge: PyTorch's
own losses (`F.multi_margin_loss`, `F.cross_entropy`) plus the regulariser, differentiated with `torch.autograd` in
float64 (autograd is fine in the judge; only the student's code must do without it). Hidden variants (other seeds,
shapes, dtypes and edge cases) live in hidden.py.

Nothing here imports the a2_linear package. Test labels of the grading data set stay in the judge: the sandbox gets
training and validation data only, and returns weights or predictions that the judge scores.

Composite functions (the trainers, test_one_param_set, nn_forward_backward on top of nn_forward_pass, ...) call the
student's own building blocks, and where the judge replays a computation it replays it with those same blocks (an
SGD step replayed with the student's loss). A composite that fails because a block is broken is judged again by the
grader with the course's block (oracles.py) in its place: see [parts.blocks] in assignment.toml. The checks only
call and judge.

Conventions the checks accept, as the course's code has them: an SGD step may update W or params in place or build
new tensors; nn_train may end its epochs as the kit's given loop does, (it + 1) % iterations_per_epoch == 0, or as
the course's original, it % iterations_per_epoch == 0; find_best_net gets the course's shapes (3x32x32 images
flattened to 3072 features, 10 classes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from grader.checks import CheckFailed, check
from grader.judging import (
    course_data,
    cpu64,
    describe_value,
    dtype_name,
    fmt_shape,
    one_thread,
    rel_error,
    same,
    value_and_grad,
)
from grader.wire import Handle

# How much the checks that train do, per data set. digits (the offline stand-in) is small and easy: short runs on
# the CPU. cifar10 is the course's data set (graded on a GPU): runs long enough for the course's targets.
# net_grid: the hyperparameters find_best_net is given (None: the student's own nn_get_search_params). Both data
# sets have the course's shapes: 3x32x32 images (3072 features) and 10 classes.
# The training the student's code asks for is capped, as A3's Solver runs are: while find_best_net runs, each call
# of the kit's TwoLayerNet.train (a2_linear/classifiers.py, staged from the kit) trains at most net_caps' max_iters
# iterations of at most max_batch_size examples, and stops at the end of the first epoch after max_seconds. On the
# digits, 150 iterations of batch 200 (25 epochs of the 1200 training images, 1.5 to 2 s a net on a busy core) take
# the reference's nets to 94% and 93% on the test split with the two grids (target 88%; 300 iterations gave 96%
# and 93% in twice the time); a search asking for 3000 iterations of batch 1000, as the course's GPU allows, took
# over a minute per net on a grader's single core.
# The two-layer module's docstring states these caps (tests/grader/test_a2_training_caps.py keeps them in step).
# While test_one_param_set runs, cls.train trains at most twice the num_iters the check passes in, in batches of
# at most twice the default 200, and one_param_seconds: a call that asks for more is capped and still differs from
# the run asked for, so a cap never turns a wrong call into a right one.
SCALE = {
    "digits": {
        "train_iters": 200,
        "search_iters": 100,
        "one_param_iters": 100,
        "one_param_seconds": 15.0,
        "net_grid": ([1e-5, 0.5, 2e-5], [32], [1e-3], [0.95]),
        "net_caps": {"max_iters": 150, "max_batch_size": 200, "max_seconds": 15.0},
    },
    "cifar10": {
        "train_iters": 1500,
        "search_iters": 1500,
        "one_param_iters": 300,
        "one_param_seconds": 60.0,
        "net_grid": None,
        "net_caps": {"max_iters": 5000, "max_batch_size": 1000, "max_seconds": 60.0},
    },
}
DEFAULT_BATCH = 200  # the batch_size of LinearClassifier.train and TwoLayerNet.train when none is given
BOUND = {torch.float64: 1e-8, torch.float32: 1e-4}
REPLAY = {torch.float64: 1e-10, torch.float32: 1e-6}  # a replayed SGD run (the same operations, in the sandbox)
NET_KEYS = ("W1", "b1", "W2", "b2")
f32, f64 = torch.float32, torch.float64


# ---- expected values (float64, on the CPU) ------------------------------------------------------


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


def linear_expectations(kind: str, W, X, y, reg: float, mistakes: bool = True):
    """(loss, dW, loss mistakes, dW mistakes) for a linear loss, all float64 on the CPU (without `mistakes`, the
    two tables are empty: one autograd pass instead of two)."""
    W, X, y = cpu64(W), cpu64(X), y.cpu()
    N = X.shape[0]
    data = DATA_LOSS[kind]
    loss0, grad0 = value_and_grad(lambda w: data(w, X, y), W)
    penalty, dpenalty = reg * (W * W).sum(), 2 * reg * W
    if not mistakes:
        return loss0 + penalty, grad0 + dpenalty, {}, {}
    loss_mistakes = {
        "the regulariser reg * sum(W * W) is missing from the loss": loss0,
        "the regulariser is counted twice": loss0 + 2 * penalty,
        "the regulariser has a factor 1/2; this course's regulariser is reg * sum(W * W)": loss0 + penalty / 2,
        "the data loss is summed over the examples, not averaged (divide it by N)": loss0 * N + penalty,
        "the regulariser is divided by N too; only the data loss is averaged over the examples": loss0 + penalty / N,
    }
    grad_mistakes = {
        "dW is missing the regulariser's gradient 2 * reg * W": grad0,
        "the regulariser's gradient is reg * W; the derivative of reg * sum(W * W) is 2 * reg * W": grad0
        + dpenalty / 2,
        "the regulariser's gradient is counted twice": grad0 + 2 * dpenalty,
        "the data gradient is not divided by N (the loss is a mean over the examples)": grad0 * N + dpenalty,
        "the regulariser's gradient is divided by N too; only the data part is averaged": grad0 + dpenalty / N,
    }
    _, grad_own = value_and_grad(lambda w: data(w, X, y, detach_correct=True), W)
    if kind == "svm":
        loss_mistakes[
            "the correct class's own hinge max(0, s_y - s_y + 1) = 1 is counted; sum over the wrong "
            "classes j != y[i] only"
        ] = loss0 + 1 + penalty
        grad_mistakes[
            "dW misses the correct class's column: every positive hinge also subtracts X[i] from dW[:, y[i]]"
        ] = grad_own + dpenalty
    else:
        grad_mistakes[
            "dW misses the -1 at the correct class: the gradient of the scores is P - Y (probabilities "
            "minus the one-hot labels)"
        ] = grad_own + dpenalty
    return loss0 + penalty, grad0 + dpenalty, loss_mistakes, grad_mistakes


def net_parts(p: dict, X: torch.Tensor, straight_through: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, hidden) of the two-layer net. `straight_through` keeps the forward values but lets the gradient
    through the ReLU everywhere (a known mistake: the ReLU's mask is missing in the backward pass)."""
    pre = torch.addmm(p["b1"], X, p["W1"])
    hidden = F.relu(pre)
    if straight_through:
        hidden = pre + (hidden - pre).detach()
    return torch.addmm(p["b2"], hidden, p["W2"]), hidden


def net_loss(
    p: dict,
    X,
    y,
    reg: float,
    *,
    biases_too: bool = False,
    half: bool = False,
    total: bool = False,
    straight_through: bool = False,
) -> torch.Tensor:
    scores, _ = net_parts(p, X, straight_through)
    data = F.cross_entropy(scores, y, reduction="sum" if total else "mean")
    names = NET_KEYS if biases_too else ("W1", "W2")
    penalty = reg * sum((p[k] * p[k]).sum() for k in names)
    return data + (penalty / 2 if half else penalty)


def net_value_and_grads(params: dict, X, y, reg: float, **variant) -> tuple[torch.Tensor, dict]:
    p = {k: cpu64(params[k]).requires_grad_(True) for k in NET_KEYS}
    with torch.enable_grad():
        loss = net_loss(p, cpu64(X), y.cpu(), reg, **variant)
        grads = torch.autograd.grad(loss, [p[k] for k in NET_KEYS])
    return loss.detach(), dict(zip(NET_KEYS, grads))


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return (pred.cpu() == y.cpu()).double().mean().item()


# ---- judging helpers ----------------------------------------------------------------------------


def expect_all(*judgements: Callable[[], Any]) -> None:
    """Run every judgement and report the problems of all of them together (a wrong loss does not hide a wrong
    gradient)."""
    problems = []
    for judge in judgements:
        try:
            judge()
        except CheckFailed as e:
            problems.append(str(e))
    if len(problems) == 1:
        raise CheckFailed(problems[0])
    if problems:
        raise CheckFailed("\n".join(problems))


@contextlib.contextmanager
def hinted(hint: str) -> Iterator[None]:
    """Add `hint` to the feedback of a judgement that fails."""
    try:
        yield
    except CheckFailed as e:
        if not hint:
            raise
        raise CheckFailed(f"{e} {hint}") from None


def expect_fraction(ctx, value: Any, name: str) -> float:
    v = ctx.expect_float(value, name)
    if v > 1.0:
        ctx.fail(
            f"{name}: expected a fraction in [0, 1], found {v:g}"
            + (" (a percentage? divide by 100)." if v <= 100 else ".")
        )
    if v < 0.0:
        ctx.fail(f"{name}: expected a fraction in [0, 1], found {v:g}.")
    return v


def some_args(reply, *positions: int):
    """The reply with only the arguments at `positions` (for ctx.expect_unchanged on some of a call's inputs)."""
    return dataclasses.replace(reply, args=[reply.args[i] for i in positions])


def finite(value: Any) -> bool:
    """No nan or inf in the tensors of `value` (a tensor or a tuple of them)."""
    items = value if isinstance(value, (tuple, list)) else [value]
    return all(bool(torch.isfinite(t.detach().cpu()).all()) for t in items if isinstance(t, torch.Tensor))


def linear_problem(
    ctx, N: int, D: int, C: int, dtype: torch.dtype, *, w_scale: float = 0.3, integer: bool = False, offset: float = 0.0
):
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

# The cases every loss is judged on: the regulariser off and on, float64 and float32 (the dtype the trainers use),
# and scores near 1e4 (float64) or 200 (float32), where exp() overflows without the shift by the row maximum. A case
# is (N, D, C, reg, dtype, options).
LOSS_CASES = (
    (12, 7, 5, 0.0, f64, {}),
    (10, 6, 4, 0.1, f64, {}),
    (16, 9, 6, 0.05, f32, {}),
    (8, 5, 4, 0.0, f64, {"offset": 1e4}),
    (9, 6, 3, 0.0, f32, {"offset": 200.0}),
)

STABLE_HINT = (
    "Scores this large overflow exp(): subtract each row's largest score from the row before "
    "exponentiating (it does not change the probabilities)."
)
KINK_HINT = "Where a hinge is exactly 0 (on its kink) its gradient is taken to be 0: count only margins > 0."


def judge_linear_loss(
    ctx,
    function: str,
    kind: str,
    *,
    N: int,
    D: int,
    C: int,
    reg: float,
    dtype: torch.dtype,
    w_scale: float = 0.3,
    integer: bool = False,
    offset: float = 0.0,
) -> None:
    W, X, y = linear_problem(ctx, N, D, C, dtype, w_scale=w_scale, integer=integer, offset=offset)
    reply = ctx.invoke(function, W, X, y, reg, return_args=True)
    ctx.expect_unchanged([W, X, y], reply, ["W", "X", "y"])
    loss, dW = ctx.expect_items(reply.value, 2, f"the result of {function}")
    want_loss, want_dW, loss_mistakes, grad_mistakes = linear_expectations(kind, W, X, y, reg)
    bound = BOUND[dtype]
    what = (
        f"(N={N}, D={D}, C={C}, reg={reg:g}, {dtype_name(dtype)}"
        + (f", scores near {offset:g}" if offset else "")
        + (", hinges on their kinks" if integer else "")
        + ")"
    )
    hint = ""
    if offset and kind == "softmax" and not finite(reply.value):
        hint = STABLE_HINT
    elif integer:
        hint = KINK_HINT

    def judge_loss() -> None:
        with hinted(hint):
            ctx.expect_loss(loss, want_loss.to(dtype), f"the loss {what}", bound=bound, n=N, mistakes=loss_mistakes)

    expect_all(
        judge_loss,
        lambda: ctx.expect_tensor(
            dW,
            want_dW.to(dtype),
            f"dW {what}",
            bound=bound,
            n=N,
            mistakes=grad_mistakes,
            hint=hint
            or f"dW has W's shape (D, C) = {fmt_shape(W.shape)}: dW[:, j] "
            "collects the examples' contributions to class j.",
        ),
    )


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


@check(
    "a2.linear.svm_vectorized",
    function="svm_loss_vectorized",
    cases=tuple((4 * N, 3 * D, 2 * C, reg, dtype, options) for N, D, C, reg, dtype, options in LOSS_CASES),
)
def svm_vectorized(ctx, cases):
    """svm_loss_vectorized: loss and dW match PyTorch (reg 0 and > 0, float64 and float32)"""
    svm_vectorized_body(ctx, cases)


@check("a2.linear.softmax_naive", function="softmax_loss_naive", cases=LOSS_CASES)
def softmax_naive(ctx, cases):
    """softmax_loss_naive: loss and dW match PyTorch, also on huge scores (float64 and float32)"""
    softmax_naive_body(ctx, cases)


@check(
    "a2.linear.softmax_vectorized",
    function="softmax_loss_vectorized",
    cases=tuple((4 * N, 3 * D, 2 * C, reg, dtype, options) for N, D, C, reg, dtype, options in LOSS_CASES),
)
def softmax_vectorized(ctx, cases):
    """softmax_loss_vectorized: loss and dW match PyTorch, also on huge scores (float64 and float32)"""
    softmax_vectorized_body(ctx, cases)


# -- speed: the student's vectorized loss against a baseline the judge runs itself: the same loss written as the
# course's solution writes it (one matrix product for the scores, one for dW), timed here, in the judge, on the same
# inputs, on one thread as the sandbox runs (and on the same device). Nothing the student wrote enters the baseline:
# not their naive loss, not any function of the sandbox. The student's call is timed by the judge around the call,
# on inputs already in the sandbox (ctx.put) and with results kept there (keep=True), so only the compute and a
# round trip count. Each timed call gets new inputs, and each result is judged. The timings alternate (student,
# baseline) and the fastest of each is kept, so a busy machine slows both alike. The inputs are many examples of few
# features, where a loop over the examples costs 10 to 40 times the baseline (measured on a loaded 2-core machine; the
# reference takes 1 to 4 times it), with the bias trick and a large bias shared by the classes (scores near 100); the
# result must be right too: a fast wrong answer earns nothing.
SPEED_FACTOR = 5.0  # the student's loss may take this many times the baseline ...
SPEED_SLACK = 0.003  # ... plus this (seconds): a call's round trip through the sandbox
HOPELESS = 10.0  # two timed runs in a row over this many times the allowance end the timing (it has failed)
# The timed runs' dW must be the one of their own inputs (a memo's answer for other inputs is off by order 1), not
# right to the last bit: in float32, scores near 100 put a hinge on its kink about once in 280 runs, where the
# course's own vectorized loss flips it (relative error 3e-3). Correctness is judged by the other checks.
TIMED_DW_BOUND = 5e-2
VECTORIZED = {"svm": "svm_loss_vectorized", "softmax": "softmax_loss_vectorized"}


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
    """Seconds one run of reference_loss takes here (waiting for the GPU, if that is where the inputs are), computed
    in float64 from the inputs as given: the slowest way the conventions allow ("computing in float64 inside and
    converting back is fine"), so that a student who does so is not timed against a float32 baseline. A loop over
    the examples is still hundreds of times slower."""
    t0 = time.perf_counter()
    reference_loss(kind, W.double(), X.double(), y, reg)
    if W.device.type == "cuda":
        torch.cuda.synchronize(W.device)
    return time.perf_counter() - t0


def judge_speed(
    ctx, kind: str, N: int, D: int, C: int, dtype: torch.dtype, repeats: int, reg: float = 1e-4, offset: float = 100.0
) -> None:
    vectorized = VECTORIZED[kind]
    W, X, y = linear_problem(ctx, N, D, C, dtype, w_scale=1e-2, offset=offset)
    hW, hX, hy = ctx.put(W), ctx.put(X), ctx.put(y)
    # right at this size too (and the first call warms up)
    loss, dW = ctx.expect_items(ctx.call(vectorized, hW, hX, hy, reg), 2, f"the result of {vectorized}")
    want_loss, want_dW, loss_mistakes, grad_mistakes = linear_expectations(kind, W, X, y, reg)
    what = f"(N={N}, D={D}, C={C}, reg={reg:g}, scores near {offset:g})"
    hint = STABLE_HINT if kind == "softmax" and not finite((loss, dW)) else ""

    def judge_loss() -> None:
        with hinted(hint):
            ctx.expect_loss(
                loss, want_loss.to(dtype), f"the loss {what}", bound=BOUND[dtype], n=N, mistakes=loss_mistakes
            )

    expect_all(
        judge_loss,
        lambda: ctx.expect_tensor(
            dW, want_dW.to(dtype), f"dW {what}", bound=BOUND[dtype], n=N, mistakes=grad_mistakes, hint=hint
        ),
    )
    theirs, ours, kept = [], [], []
    base_W, base_X = W, X
    with one_thread():
        time_reference(kind, W, X, y, reg)  # warm-up
        for i in range(1, repeats + 1):
            # every timed call gets inputs of its own (new tensors, new values), and its result is judged below:
            # a function that remembers an earlier answer (by the inputs' identity or content) gains nothing.
            # New values cheaply: X scaled (its bias column kept), W moved a little, new labels
            X = base_X * (1 + 0.01 * i)
            W = base_W + ctx.randn(D, C, dtype=dtype, scale=1e-3)
            if offset:  # the bias trick exactly as linear_problem has it: every class's bias `offset`, so that
                X[:, -1], W[-1, :] = 1, offset  # score differences stay exact in float32 (no hinge flips a kink)
            y = ctx.randint(0, C, (N,))
            hW, hX, hy = ctx.put(W), ctx.put(X), ctx.put(y)
            reply = ctx.invoke(vectorized, hW, hX, hy, reg, keep=True)
            theirs.append(reply.seconds)
            ours.append(time_reference(kind, W, X, y, reg))
            kept.append((reply.value, (W, X, y)))
            if len(theirs) >= 2 and min(theirs[-2:]) > HOPELESS * (SPEED_FACTOR * min(ours) + SPEED_SLACK):
                break  # two runs in a row far too slow: a loop, and more runs of it would only cost minutes
    for i, (handle, (W, X, y)) in enumerate(kept, 1):
        loss, dW = ctx.expect_items(ctx.fetch(handle), 2, f"the result of {vectorized}")
        want_loss, want_dW, _, _ = linear_expectations(kind, W, X, y, reg, mistakes=False)
        ctx.expect_loss(loss, want_loss.to(dtype), f"the loss of timed run {i} {what}", bound=BOUND[dtype], n=N)
        ctx.expect_tensor(dW, want_dW.to(dtype), f"dW of timed run {i} {what}", bound=TIMED_DW_BOUND, n=N)
    t_vec, t_ref = min(theirs), min(ours)
    allowed = SPEED_FACTOR * t_ref + SPEED_SLACK
    size = f"N={N}, D={D}, C={C}, {dtype_name(dtype)}"
    if t_vec <= allowed:
        ctx.note(
            f"{vectorized} took {1e3 * t_vec:.1f} ms on {size}; a vectorized loss timed here (in float64) took "
            f"{1e3 * t_ref:.1f} ms (at most {1e3 * allowed:.1f} ms allowed): fast enough."
        )
        return
    ctx.fail(
        f"{vectorized} is not much faster than a loop: it took {1e3 * t_vec:.1f} ms on {size} (the fastest "
        f"of {len(theirs)} runs), where a vectorized loss in float64 takes {1e3 * t_ref:.1f} ms here; at most "
        f"{1e3 * allowed:.1f} ms ({SPEED_FACTOR:g} times that, plus {1e3 * SPEED_SLACK:g} ms) is allowed. "
        "Compute all the scores with one matrix product and work on the whole (N, C) array at once; do not "
        "loop (or call a function that loops) over the examples."
    )


@check(
    "a2.linear.svm_vectorized_speed",
    function="svm_loss_vectorized",
    kind="svm",
    N=2000,
    D=500,
    C=10,
    dtype=f32,
    repeats=7,
)
def svm_vectorized_speed(ctx, **kw):
    """svm_loss_vectorized is about as fast as a vectorized loss timed by the judge"""
    judge_speed(ctx, **kw)


@check(
    "a2.linear.softmax_vectorized_speed",
    function="softmax_loss_vectorized",
    kind="softmax",
    N=2000,
    D=500,
    C=10,
    dtype=f32,
    repeats=7,
)
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
    expect_all(
        lambda: ctx.expect_layout(
            X_batch,
            (batch_size, X.shape[1]),
            X.dtype,
            "X_batch",
            hint=f"X_batch holds batch_size = {batch_size} rows of X (drawn with "
            "replacement, so batch_size may exceed num_train).",
        ),
        lambda: ctx.expect_layout(y_batch, (batch_size,), torch.int64, "y_batch"),
    )
    Xb, yb, Xc = X_batch.cpu(), y_batch.cpu(), X.cpu()
    idx = Xb[:, 0].round().long()
    ctx.expect(
        bool(((idx >= 0) & (idx < X.shape[0])).all()) and torch.equal(Xb, Xc[idx.clamp(0, X.shape[0] - 1)]),
        "X_batch: its rows are not rows of X; pick whole rows, X[indices].",
    )
    outside = idx >= num_train
    if outside.any():
        ctx.fail(
            f"X_batch holds row {int(idx[outside][0])} of X, but only the first num_train = {num_train} rows "
            "may be drawn: draw indices in [0, num_train)."
        )
    if not torch.equal(yb, y.cpu()[idx]):
        k = int((yb != y.cpu()[idx]).nonzero()[0])
        ctx.fail(
            f"y_batch[{k}] = {int(yb[k])} is not the label of X_batch[{k}] (row {int(idx[k])} of X, label "
            f"{int(y.cpu()[idx[k]])}); use the same indices for X and y."
        )
    return idx


@check("a2.linear.sample_batch", function="sample_batch", N=60, D=5, num_train=40, batch_size=40, dtype=f32)
def sample_batch(ctx, N, D, num_train, batch_size, dtype):
    """sample_batch draws matching rows and labels, with replacement"""
    X, y = indexed_rows(ctx, N, D, dtype)
    reply = ctx.invoke("sample_batch", X, y, num_train, batch_size, return_args=True)
    ctx.expect_unchanged([X, y], reply, ["X", "y"])
    idx = drawn_indices(ctx, X, y, reply.value, num_train, batch_size)
    if torch.equal(idx, torch.arange(batch_size)):
        ctx.fail("sample_batch returned the first batch_size rows in order; draw them at random.")
    if idx.unique().numel() == idx.numel():
        ctx.fail(
            f"the {batch_size} rows drawn from {num_train} are all different: sample_batch seems to draw "
            "without replacement (a permutation). Draw each index independently, e.g. with torch.randint, so "
            "the same example can come up twice."
        )


@check("a2.linear.sample_batch_many", function="sample_batch", N=30, D=3, num_train=20, batch_size=2000, dtype=f64)
def sample_batch_many(ctx, N, D, num_train, batch_size, dtype):
    """sample_batch: batch_size > num_train, every row drawn about equally often"""
    X, y = indexed_rows(ctx, N, D, dtype)
    idx = drawn_indices(ctx, X, y, ctx.call("sample_batch", X, y, num_train, batch_size), num_train, batch_size)
    counts = torch.bincount(idx, minlength=num_train)[:num_train]
    mean = batch_size / num_train
    missing = (counts == 0).nonzero().flatten().tolist()
    ctx.expect(
        not missing,
        f"in {batch_size} draws from {num_train} rows, rows {missing[:5]} never came up; every "
        "row in [0, num_train) should be drawn, each with the same probability.",
    )
    lo, hi = int(counts.min()), int(counts.max())
    ctx.expect(
        lo >= 0.5 * mean and hi <= 1.5 * mean,
        f"in {batch_size} draws from {num_train} rows each row should come up about {mean:.0f} times; found "
        f"counts from {lo} to {hi}. Draw the indices uniformly from [0, num_train).",
    )


# ---- training a linear classifier ---------------------------------------------------------------
# train_linear_classifier trains with the loss it is given: the checks give it the student's svm_loss_vectorized
# (a building block: when it is broken, the grader judges the trainer again with the course's loss in its place).

TRAIN_LOSS = "svm_loss_vectorized"


def replay_sgd(ctx, W0, Xb, yb, lr: float, reg: float, num_iters: int, sign: float = -1.0):
    """The weights and losses that num_iters steps W <- W - lr * dW give with the student's TRAIN_LOSS on (Xb, yb),
    called in the sandbox (so the replay uses whatever loss the trainer was given)."""
    W, losses = W0, []
    for _ in range(num_iters):
        loss, dW = ctx.expect_items(ctx.call(TRAIN_LOSS, W, Xb, yb, reg), 2, f"the result of {TRAIN_LOSS}")
        losses.append(float(loss))
        W = W + sign * lr * dW
    return W, losses


def judge_train_init(ctx, N: int, D: int, labels: tuple, dtype: torch.dtype) -> None:
    """W None and num_iters=0: the initial weights 1e-6 * randn(D, C), C = max(y) + 1, and no losses."""
    X = ctx.randn(N, D, dtype=dtype)
    y = torch.tensor(labels, device=ctx.device)[ctx.randint(0, len(labels), (N,))]
    y[0] = max(labels)
    C = max(labels) + 1
    W, history = ctx.expect_items(
        ctx.call("train_linear_classifier", ctx.ref(TRAIN_LOSS), None, X, y, num_iters=0),
        2,
        "the result of train_linear_classifier",
    )
    name = "W (with W=None and num_iters=0: the initial weights)"
    ctx.expect_type(W, torch.Tensor, name)
    if tuple(W.shape) == (D, len(set(labels))):
        ctx.fail(
            f"W: expected shape {fmt_shape((D, C))}, found {fmt_shape(W.shape)}: the labels are {list(labels)}, "
            f"so C = max(y) + 1 = {C}, not the number of distinct labels."
        )
    ctx.expect_layout(
        W, (D, C), dtype, name, hint=f"W is (D, C) with C = max(y) + 1 = {C}, in X's dtype, on X's device."
    )
    std = W.double().std().item()
    ctx.expect(
        1e-7 < std < 1e-5, f"the initial weights should be 1e-6 * randn(D, C); their standard deviation is {std:.2e}."
    )
    ctx.expect(
        isinstance(history, list) and len(history) == 0,
        f"loss_history: expected an empty list for num_iters=0, found {describe_value(history)}.",
    )


def expect_history(ctx, history: Any, num_iters: int, wants: list[float] | None, bound: float) -> list[float]:
    """loss_history: a list of num_iters numbers (Python floats, or tensors holding one), close to `wants`."""
    ctx.expect(
        isinstance(history, list) and len(history) == num_iters,
        f"loss_history: expected a list of num_iters = {num_iters} losses, found {describe_value(history)}.",
    )
    values = [ctx.expect_float(v, f"loss_history[{k}]") for k, v in enumerate(history)]
    for k, (got, want) in enumerate(zip(values, wants or [])):
        ctx.expect(
            abs(got - want) <= bound * max(1.0, abs(want)),
            f"loss_history[{k}]: expected {want:.6g}, the minibatch loss at iteration {k}, found {got:.6g}.",
        )
    return values


@check(
    "a2.linear.train_steps",
    function="train_linear_classifier",
    N=20,
    D=6,
    C=4,
    batch_size=7,
    num_iters=4,
    lr=0.5,
    reg=0.01,
    dtype=f64,
    init=(30, 7, (0, 2, 4), f32),
)
def train_steps(ctx, N, D, C, batch_size, num_iters, lr, reg, dtype, init):
    """train_linear_classifier: W None starts at 1e-6 randn(D, max(y) + 1); SGD steps W <- W - lr * dW"""
    judge_train_init(ctx, *init)
    # Every row of X is the same example, so every minibatch is the same whatever rows are drawn, and the steps
    # can be replayed here with the loss the trainer is given. W may be updated in place or replaced: only the W
    # returned is judged.
    x = ctx.randn(1, D, dtype=dtype)
    X = x.expand(N, D).clone()
    y = ctx.randint(0, C, (1,)).expand(N).clone()
    W0 = ctx.randn(D, C, dtype=dtype, scale=0.5)
    reply = ctx.invoke(
        "train_linear_classifier",
        ctx.ref(TRAIN_LOSS),
        W0,
        X,
        y,
        learning_rate=lr,
        reg=reg,
        num_iters=num_iters,
        batch_size=batch_size,
        return_args=True,
    )
    ctx.expect_unchanged([X, y], some_args(reply, 2, 3), ["X", "y"])
    W, history = ctx.expect_items(reply.value, 2, "the result of train_linear_classifier")
    Xb, yb = X[:1].expand(batch_size, X.shape[1]).clone(), y[:1].expand(batch_size).clone()  # any minibatch
    want_W, want_losses = replay_sgd(ctx, W0, Xb, yb, lr, reg, num_iters)
    mistakes = {
        "W is returned unchanged: the update step is missing": W0,
        "the step goes uphill: W <- W - learning_rate * dW": replay_sgd(ctx, W0, Xb, yb, lr, reg, num_iters, 1.0)[0],
        "the learning rate is ignored: W <- W - learning_rate * dW": replay_sgd(ctx, W0, Xb, yb, 1.0, reg, num_iters)[
            0
        ],
        "only one step is taken": replay_sgd(ctx, W0, Xb, yb, lr, reg, 1)[0],
    }
    expect_all(
        lambda: ctx.expect_tensor(
            W, want_W, f"W after {num_iters} steps (learning_rate={lr:g})", bound=REPLAY[dtype], mistakes=mistakes
        ),
        lambda: expect_history(ctx, history, num_iters, want_losses, REPLAY[dtype]),
    )


@check("a2.linear.train_accuracy", function="train_linear_classifier")
def train_accuracy(ctx):
    """train_linear_classifier learns: its W beats the target on the test split"""
    data = course_data(ctx, bias_trick=True)
    lr, reg = LINEAR_HYPER["svm"]
    num_iters = ctx.scale(SCALE)["train_iters"]
    hX, hy = ctx.put(data["X_train"].to(ctx.device)), ctx.put(data["y_train"].to(ctx.device))
    got = ctx.call(
        "train_linear_classifier",
        ctx.ref(TRAIN_LOSS),
        None,
        hX,
        hy,
        learning_rate=lr,
        reg=reg,
        num_iters=num_iters,
        batch_size=200,
    )
    W, history = ctx.expect_items(got, 2, "the result of train_linear_classifier")
    D, C = data["X_train"].shape[1], int(data["y_train"].max()) + 1
    ctx.expect_layout(W, (D, C), data["X_train"].dtype, "the trained W")
    losses = expect_history(ctx, history, num_iters, None, 0.0)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    acc = 100 * accuracy((data["X_test"].double() @ W.cpu().double()).argmax(1), data["y_test"])
    target = ctx.target("linear_train_accuracy")
    ctx.note(
        f"trained with {TRAIN_LOSS} (learning_rate={lr:g}, reg={reg:g}, {num_iters} iterations) on "
        f"{data['X_train'].shape[0]} images of {ctx.dataset_name}: loss {first:.3f} -> {last:.3f}, test "
        f"accuracy {acc:.1f}% (target {target:g}%)"
    )
    ctx.expect(last < first, f"the loss did not decrease over {num_iters} iterations ({first:.3f} -> {last:.3f}).")
    ctx.expect(acc >= target, f"the trained W reaches {acc:.1f}% on the test split, below the target {target:g}%.")


# ---- prediction ---------------------------------------------------------------------------------


def expect_labels(ctx, got: Any, scores: torch.Tensor, hint: str) -> None:
    """Labels equal to the argmax of each row of `scores`; names argmin and argmax over the wrong dimension."""
    want = scores.cpu().argmax(1)
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (scores.shape[1],) and scores.shape[0] != scores.shape[1]:
        ctx.fail(
            f"the predicted labels: expected one per example, shape {fmt_shape(want.shape)}, found "
            f"{fmt_shape(got.shape)}: take the argmax over the classes (dim=1), not over the examples."
        )
    lowest = "the predicted labels are the classes of the LOWEST scores; predict the highest (argmax)"
    ctx.expect_tensor(got, want, "the predicted labels", mistakes={lowest: scores.cpu().argmin(1)}, hint=hint)


@check("a2.linear.predict", function="predict_linear_classifier", N=25, D=8, C=6, dtype=f32)
def predict(ctx, N, D, C, dtype):
    """predict_linear_classifier returns the argmax labels (int64)"""
    W, X, _ = linear_problem(ctx, N, D, C, dtype)
    reply = ctx.invoke("predict_linear_classifier", W, X, return_args=True)
    ctx.expect_unchanged([W, X], reply, ["W", "X"])
    expect_labels(
        ctx,
        reply.value,
        cpu64(X) @ cpu64(W),
        "One int64 label per row of X: the index of the highest of its C scores X[i] @ W.",
    )


# ---- choosing hyperparameters -------------------------------------------------------------------

LINEAR_HYPER = {"svm": (1e-2, 1e-3), "softmax": (1e-1, 1e-3)}  # learning rate, reg: good on both data sets


def expect_number_list(
    ctx, value: Any, name: str, *, at_least: int, positive: bool, integer: bool = False, at_most_one: bool = False
) -> list:
    if isinstance(value, torch.Tensor) or not isinstance(value, (list, tuple)):
        ctx.fail(f"{name}: expected a list of numbers, found {describe_value(value)}.")
    ctx.expect(len(value) >= at_least, f"{name}: expected at least {at_least} values, found {len(value)}.")
    for v in value:
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        ok = ok and not isinstance(v, bool) and math.isfinite(v) and (v > 0 if positive else v >= 0)
        ok = ok and (not at_most_one or v <= 1)
        if not ok:
            want = (
                "positive integers"
                if integer
                else "numbers in (0, 1]"
                if at_most_one
                else "positive numbers"
                if positive
                else "numbers >= 0"
            )
            ctx.fail(f"{name}: expected {want}, found {v!r}.")
    return list(value)


def judge_sgd_many(
    kind: str, data: dict, settings: list[tuple[float, float]], num_iters: int, device: torch.device
) -> list[torch.Tensor]:
    """The judge's own SGD on the training split for each (learning rate, reg) of `settings`, all at once: W0 =
    1e-6 randn (drawn from a seed of the setting's own), minibatches of 200 drawn with replacement (the same rows
    for every setting, from a seed of the kind and num_iters), gradients by autograd of the oracle loss, on
    `device` (random numbers drawn on the CPU). One setting's run never depends on the others in the list: a
    student's best combination trains the same whatever else they try. The weights come back on the CPU (a
    diverged run holds non-finite numbers)."""
    X, y = data["X_train"].to(device), data["y_train"].to(device)
    K, (N, D), C, B = len(settings), X.shape, int(y.max()) + 1, 200
    W0 = [
        1e-6
        * torch.randn(D, C, generator=torch.Generator().manual_seed(zlib.crc32(repr((kind, *s, num_iters)).encode())))
        for s in settings
    ]
    W = torch.stack(W0).to(device)  # (K, D, C): one weight matrix per setting
    lrs = torch.tensor([lr for lr, _ in settings], dtype=W.dtype, device=device).view(K, 1, 1)
    regs = torch.tensor([reg for _, reg in settings], dtype=W.dtype, device=device)
    rows_gen = torch.Generator().manual_seed(zlib.crc32(repr((kind, num_iters)).encode()))
    per_example = PER_EXAMPLE_LOSS[kind]
    with torch.enable_grad():
        for _ in range(num_iters):
            rows = torch.randint(N, (B,), generator=rows_gen).to(device)
            Xb, yb = X[rows], y[rows]
            Wg = W.clone().requires_grad_(True)
            scores = (Xb @ Wg.permute(1, 0, 2).reshape(D, K * C)).reshape(B, K, C).transpose(0, 1)  # (K, B, C)
            data_loss = per_example(scores.reshape(K * B, C), yb.repeat(K)).reshape(K, B).mean(1)  # (K,)
            objective = data_loss.sum() + (regs * Wg.square().sum((1, 2))).sum()  # each W's own objective
            (g,) = torch.autograd.grad(objective, Wg)
            W = (W - lrs * g).detach()
    return list(W.cpu())


# the data losses of svm_data_loss and softmax_data_loss, per example (their means are those losses)
PER_EXAMPLE_LOSS = {
    "svm": lambda s, y: F.multi_margin_loss(s, y, p=1, margin=1.0, reduction="none") * s.shape[1],
    "softmax": lambda s, y: F.cross_entropy(s, y, reduction="none"),
}


def trained_here(
    ctx, kind: str, data: dict, settings: list[tuple[float, float]], num_iters: int
) -> list[tuple[float, float, bool]]:
    """(validation fraction, test percentage, finite) of the judge's own SGD for each (learning rate, reg) of
    `settings`, trained together and computed once per grading run."""

    def train() -> list[tuple[float, float, bool]]:
        out = []
        for W in judge_sgd_many(kind, data, settings, num_iters, ctx.device):
            ok = bool(torch.isfinite(W).all())
            val = accuracy((data["X_val"] @ W).argmax(1), data["y_val"]) if ok else 0.0
            test = 100 * accuracy((data["X_test"] @ W).argmax(1), data["y_test"]) if ok else 0.0
            out.append((val, test, ok))
        return out

    return ctx.cache(("a2.trained_here", kind, tuple(settings), num_iters), train)


def judge_search(ctx, function: str, kind: str, target_key: str) -> None:
    got = ctx.call(function)
    lrs, regs = ctx.expect_items(got, 2, f"the result of {function} (learning_rates, regularization_strengths)")
    lrs = expect_number_list(ctx, lrs, "learning_rates", at_least=2, positive=True)
    regs = expect_number_list(ctx, regs, "regularization_strengths", at_least=2, positive=False)
    combos = len(lrs) * len(regs)
    ctx.expect(
        combos < 25,
        f"{len(lrs)} learning rates x {len(regs)} regularization strengths = {combos} "
        "combinations; fewer than 25 are allowed.",
    )
    data = course_data(ctx, bias_trick=True)
    num_iters = ctx.scale(SCALE)["search_iters"]
    settings = [(float(lr), float(reg)) for lr in lrs for reg in regs]
    with one_thread():
        trained = trained_here(ctx, kind, data, settings, num_iters)
    results = [(*r, lr, reg) for r, (lr, reg) in zip(trained, settings, strict=True)]
    val, acc, _, lr, reg = max(results, key=lambda r: r[0])
    target = ctx.target(target_key)
    diverged = sum(not r[2] for r in results)
    ctx.note(
        f"{combos} combinations, each trained here for {num_iters} iterations on {ctx.dataset_name}: the "
        f"best, learning_rate={lr:g}, reg={reg:g}, reaches {100 * val:.1f}% on validation and {acc:.1f}% on the "
        f"test split (target {target:g}%)" + (f"; {diverged} diverged" if diverged else "")
    )
    ctx.expect(
        acc >= target,
        f"the best of your {combos} combinations reaches {acc:.1f}% on the test split, below "
        f"the target {target:g}%. Search over several orders of magnitude first, then narrow "
        "around the best values.",
    )


@check("a2.linear.svm_search_params", function="svm_get_search_params")
def svm_search_params(ctx):
    """svm_get_search_params: 2+ values each, < 25 combinations, best reaches the target"""
    judge_search(ctx, "svm_get_search_params", "svm", "svm_search_accuracy")


@check("a2.linear.softmax_search_params", function="softmax_get_search_params")
def softmax_search_params(ctx):
    """softmax_get_search_params: 2+ values each, < 25 combinations, best reaches the target"""
    judge_search(ctx, "softmax_get_search_params", "softmax", "softmax_search_accuracy")


GIVEN = "a2_linear.classifiers"  # the kit's module of given classes (LinearSVM, Softmax, TwoLayerNet)


def item_handle(ctx, hdata: Handle, key: str) -> Handle:
    """A handle to data_dict[key] in the sandbox (dict.get runs there and the value stays there)."""
    return ctx.invoke_method(hdata, "get", key, keep=True).value


# ---- the grader's caps on the kit's train methods -----------------------------------------------
# The kit's LinearClassifier.train and TwoLayerNet.train (given code, staged from the kit) honour caps that the
# judge sets in the worker for the duration of a call (set_training_caps in a2_linear/classifiers.py) and record,
# per train call, what was asked and what was trained (training_record). Student code could change them: that
# only makes its own grading slower (the call's time limit still holds), and the accuracy is measured here, on
# held-out data, whatever the record says; the record only feeds the feedback.


@contextlib.contextmanager
def training_caps(ctx, caps: dict) -> Iterator[None]:
    """The kit's train methods capped by `caps` (set_training_caps' keywords) while the block runs."""
    ctx.call(ctx.ref("set_training_caps", module=GIVEN), **caps)
    try:
        yield
    finally:
        with contextlib.suppress(CheckFailed):  # a worker replaced after a failure has no caps to lift
            ctx.call(ctx.ref("set_training_caps", module=GIVEN))


RECORD_KEYS = {
    "model": str,
    "num_iters": int,
    "batch_size": int,
    "iters": int,
    "batch": int,
    "seconds": float,
    "stopped": str,
}


def training_record(ctx) -> list[dict]:
    """What the kit's train methods were asked and did under the caps (see training_caps); entries that are not
    what the kit records are left out (it only feeds the feedback)."""
    try:
        record = ctx.call(ctx.ref("training_record", module=GIVEN))
    except CheckFailed:
        return []
    if not isinstance(record, list):
        return []
    return [
        r
        for r in record
        if isinstance(r, dict)
        and all(
            r.get(k) is None or (isinstance(r.get(k), t) and not isinstance(r.get(k), bool))
            for k, t in RECORD_KEYS.items()
        )
    ]


def batch_capped(r: dict) -> bool:
    return None not in (r.get("batch"), r.get("batch_size")) and r["batch"] < r["batch_size"]


def capped(r: dict) -> bool:
    """Whether a train call of the record trained less than it asked for."""
    return bool(r.get("stopped")) or batch_capped(r)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def values(xs: list) -> str:
    """'3000', '100 and 3000', '100, 300 and 3000' (the distinct values, sorted)."""
    vs = [str(v) for v in sorted(set(xs))]
    return vs[0] if len(vs) == 1 else f"{', '.join(vs[:-1])} and {vs[-1]}"


def describe_caps(caps: dict) -> str:
    """'at most 300 iterations, in batches of at most 200, and at most 15 s per train call'."""
    parts = []
    if caps.get("max_iters") is not None:
        parts.append(f"at most {caps['max_iters']} iterations")
    if caps.get("max_batch_size") is not None:
        parts.append(f"in batches of at most {caps['max_batch_size']}")
    if caps.get("max_seconds") is not None:
        parts.append(f"at most {caps['max_seconds']:g} s")
    if not parts:
        return "none"
    return (", ".join(parts[:-1]) + ", and " + parts[-1] if len(parts) > 1 else parts[0]) + " per train call"


def describe_training(record: list[dict], caps: dict, method: str, dataset: str) -> str:
    """'TwoLayerNet.train ran 3 times, asked for 3000 iterations of batch 1000: trained for at most 500 of your
    3000 iterations, in batches of at most 200 of your 1000 (the grader's caps on digits: ...)'."""
    rule = f"the grader's caps on {dataset}: {describe_caps(caps)}"
    if not record:
        return f"{method} was not called ({rule})"
    asked = [r["num_iters"] for r in record if r.get("num_iters") is not None]
    asked_batch = [r["batch_size"] for r in record if r.get("batch_size") is not None]
    trained = [r["iters"] for r in record if r.get("iters") is not None]
    text = f"{method} ran {plural(len(record), 'time')}"
    if asked and asked_batch:
        text += f", asked for {values(asked)} iterations of batch {values(asked_batch)}"
    said = []
    by_iters = [r for r in record if r.get("stopped") == "iterations" and r.get("iters") is not None]
    if by_iters and asked:
        said.append(f"trained for at most {max(r['iters'] for r in by_iters)} of your {values(asked)} iterations")
    by_batch = [r for r in record if batch_capped(r)]
    if by_batch:
        said.append(
            f"in batches of at most {max(r['batch'] for r in by_batch)} of your "
            f"{values([r['batch_size'] for r in by_batch])}"
        )
    by_time = [r for r in record if r.get("stopped") == "time"]
    if by_time:
        said.append(
            f"{plural(len(by_time), 'call')} stopped at the time cap ({caps.get('max_seconds', 0):g} s) after "
            f"{values([r['iters'] for r in by_time if r.get('iters') is not None])} iterations"
        )
    if not said and trained:
        said.append(f"trained as asked ({values(trained)} iterations)")
    seconds = sum(r["seconds"] for r in record if isinstance(r.get("seconds"), float))
    text = f"{text}: {', '.join(said)}" if said else text
    return f"{text}; {seconds:.1f} s in all ({rule})"


@check("a2.linear.test_one_param_set", function="test_one_param_set", cls="LinearSVM", lr=1e-2, reg=1e-3)
def test_one_param_set(ctx, cls, lr, reg):
    """test_one_param_set trains cls and returns its accuracies as fractions"""
    data = course_data(ctx, bias_trick=True)
    num_iters = ctx.scale(SCALE)["one_param_iters"]
    # cls.train is capped above what is asked here (see SCALE): a call that asks for more is cut short, and differs
    # from the run asked for all the same
    caps = {
        "max_iters": 2 * num_iters,
        "max_batch_size": 2 * DEFAULT_BATCH,
        "max_seconds": ctx.scale(SCALE)["one_param_seconds"],
    }
    hdata = ctx.put({k: data[k].to(ctx.device) for k in ("X_train", "y_train", "X_val", "y_val")})
    model = ctx.call(ctx.ref(cls, module=GIVEN))  # the kit's class, never a submission's copy of it
    with training_caps(ctx, caps):
        got = ctx.call("test_one_param_set", model, hdata, lr, reg, num_iters=num_iters)
        record = training_record(ctx)
    returned, train_acc, val_acc = ctx.expect_items(
        got, 3, "the result of test_one_param_set (cls, train_acc, val_acc)"
    )
    ctx.expect(
        isinstance(returned, Handle) and returned.type == cls,
        f"the first item returned should be the {cls} passed in, trained; found {describe_value(returned)}.",
    )
    W = ctx.getattr(returned, "W")
    ctx.expect(
        isinstance(W, torch.Tensor),
        f"cls.W after test_one_param_set: expected the trained weights, found "
        f"{describe_value(W)} (train cls with its train method).",
    )
    ctx.expect(
        same(W, ctx.getattr(model, "W")),
        "the classifier returned is not the one passed in: train cls itself and return it.",
    )
    # the accuracies of the returned weights, as the judge computes them; a near tie may flip one label
    Wd = W.cpu().double()
    mine = {s: accuracy((data[f"X_{s}"].double() @ Wd).argmax(1), data[f"y_{s}"]) for s in ("train", "val")}
    slack = {s: 1.5 / data[f"X_{s}"].shape[0] for s in ("train", "val")}
    got_acc = {"train": expect_fraction(ctx, train_acc, "train_acc"), "val": expect_fraction(ctx, val_acc, "val_acc")}
    right = {s: abs(got_acc[s] - mine[s]) <= slack[s] for s in mine}
    if (
        not any(right.values())
        and abs(got_acc["train"] - mine["val"]) <= slack["val"]
        and abs(got_acc["val"] - mine["train"]) <= slack["train"]
    ):
        ctx.fail(
            f"train_acc and val_acc are swapped: cls.W classifies {mine['train']:.4f} of the training set and "
            f"{mine['val']:.4f} of the validation set correctly; you returned {got_acc['train']:.4f} and "
            f"{got_acc['val']:.4f}."
        )
    problems = [
        f"{s}_acc: cls.W classifies a fraction {mine[s]:.4f} of data_dict['X_{s}'] correctly; you returned "
        f"{got_acc[s]:.4f}."
        for s in mine
        if not right[s]
    ]
    if problems:
        ctx.fail("\n".join(problems))
    # cls was trained as asked: a fresh cls.train with these arguments (not capped) gives the same weights (every
    # call into the sandbox starts from the check's random seed)
    fresh = ctx.call(ctx.ref(cls, module=GIVEN))
    ctx.method(
        fresh,
        "train",
        item_handle(ctx, hdata, "X_train"),
        item_handle(ctx, hdata, "y_train"),
        learning_rate=lr,
        reg=reg,
        num_iters=num_iters,
    )
    ctx.expect(
        same(W, ctx.getattr(fresh, "W")),
        f"cls.W is not what cls.train(X_train, y_train, learning_rate={lr:g}, reg={reg:g}, num_iters="
        f"{num_iters}) gives: train cls once, on the training set, with the lr, reg and num_iters passed in."
        + (
            f" ({describe_training(record, caps, f'{cls}.train', ctx.dataset_name)}.)"
            if any(capped(r) for r in record)
            else ""
        ),
    )
    ctx.note(f"{cls} trained {num_iters} iterations: train {got_acc['train']:.3f}, val {got_acc['val']:.3f}")


# ---- the two-layer net --------------------------------------------------------------------------


def net_problem(
    ctx,
    N: int,
    D: int,
    H: int,
    C: int,
    dtype: torch.dtype,
    w_scale: float,
    b_scale: float | None = None,
    x_scale: float = 1.0,
):
    """params (W1 (D, H), b1 (H,), W2 (H, C), b2 (C,)), X (N, D), y (N,) on the grading device."""
    b_scale = w_scale if b_scale is None else b_scale
    p = {
        "W1": ctx.randn(D, H, dtype=dtype, scale=w_scale),
        "b1": ctx.randn(H, dtype=dtype, scale=b_scale),
        "W2": ctx.randn(H, C, dtype=dtype, scale=w_scale),
        "b2": ctx.randn(C, dtype=dtype, scale=b_scale),
    }
    return p, ctx.randn(N, D, dtype=dtype, scale=x_scale), ctx.randint(0, C, (N,))


def toy_problem(ctx, dtype: torch.dtype = f64, zero_biases: bool = False):
    """The course's toy problem: X = 10 randn(5, 4), y = [0, 1, 2, 2, 1], 10 hidden units, 3 classes, weights
    1e-4 randn; biases 1e-4 randn too (or 0, as TwoLayerNet starts, with zero_biases)."""
    p = {
        "W1": ctx.randn(4, 10, dtype=dtype, scale=1e-4),
        "b1": ctx.randn(10, dtype=dtype, scale=1e-4),
        "W2": ctx.randn(10, 3, dtype=dtype, scale=1e-4),
        "b2": ctx.randn(3, dtype=dtype, scale=1e-4),
    }
    if zero_biases:
        p["b1"], p["b2"] = torch.zeros_like(p["b1"]), torch.zeros_like(p["b2"])
    return p, ctx.randn(5, 4, dtype=dtype, scale=10.0), torch.tensor([0, 1, 2, 2, 1], device=ctx.device)


def judge_forward(ctx, N: int, D: int, H: int, C: int, dtype: torch.dtype) -> None:
    p, X, _ = net_problem(ctx, N, D, H, C, dtype, 0.7)
    reply = ctx.invoke("nn_forward_pass", p, X, return_args=True)
    ctx.expect_unchanged([p, X], reply, ["params", "X"])
    scores, hidden = ctx.expect_items(reply.value, 2, "the result of nn_forward_pass (scores, hidden)")
    q, Xc = cpu64(p), cpu64(X)
    want_scores, want_hidden = net_parts(q, Xc)
    pre = torch.addmm(q["b1"], Xc, q["W1"])
    bound = BOUND[dtype]
    what = f"(N={N}, D={D}, H={H}, C={C}, {dtype_name(dtype)})"
    expect_all(
        lambda: ctx.expect_tensor(
            hidden,
            want_hidden.to(dtype),
            f"hidden {what}",
            bound=bound,
            mistakes={
                "hidden is taken before the ReLU: return max(0, X W1 + b1)": pre,
                "b1 is missing from the first layer": F.relu(Xc @ q["W1"]),
            },
            hint=f"hidden is (N, H) = {fmt_shape((N, H))}, the first layer's output after the ReLU.",
        ),
        lambda: ctx.expect_tensor(
            scores,
            want_scores.to(dtype),
            f"scores {what}",
            bound=bound,
            mistakes={
                "the ReLU is missing: the second layer takes max(0, X W1 + b1)": torch.addmm(q["b2"], pre, q["W2"]),
                "b2 is missing from the second layer": want_hidden @ q["W2"],
            },
            hint=f"scores is (N, C) = {fmt_shape((N, C))}: hidden W2 + b2.",
        ),
    )


@check("a2.two_layer.forward_pass", function="nn_forward_pass", cases=((7, 5, 6, 4, f64), (12, 9, 5, 3, f32)))
def forward_pass(ctx, cases):
    """nn_forward_pass: scores and hidden (after the ReLU), float64 and float32"""
    for N, D, H, C, dtype in cases:
        judge_forward(ctx, N, D, H, C, dtype)


def judge_net_grads(ctx, p: dict, X, y, reg: float, dtype: torch.dtype, what: str) -> None:
    reply = ctx.invoke("nn_forward_backward", p, X, y=y, reg=reg, return_args=True)
    ctx.expect_unchanged([p, X], reply, ["params", "X"])
    loss, grads = ctx.expect_items(reply.value, 2, "the result of nn_forward_backward with labels (loss, grads)")
    N = X.shape[0]
    want_loss, want = net_value_and_grads(p, X, y, reg)
    bound = BOUND[dtype]
    alt = {
        name: net_value_and_grads(p, X, y, reg, **kw)
        for name, kw in {
            "bias": {"biases_too": True},
            "half": {"half": True},
            "sum": {"total": True},
            "mask": {"straight_through": True},
        }.items()
    }
    noreg_loss, noreg = net_value_and_grads(p, X, y, 0.0)
    (bias_loss, bias), (half_loss, half), (sum_loss, total), (_, unmasked) = (
        alt["bias"],
        alt["half"],
        alt["sum"],
        alt["mask"],
    )
    penalty = "reg * (sum(W1 * W1) + sum(W2 * W2))"
    loss_mistakes = {
        f"the regulariser {penalty} is missing": noreg_loss,
        "the biases are regularised too; only W1 and W2 are": bias_loss,
        f"the regulariser has a factor 1/2; this course's regulariser is {penalty}": half_loss,
        "the softmax loss is summed over the examples, not averaged (divide by N)": sum_loss,
    }
    grad_mistakes = {}
    for k in NET_KEYS:
        mistakes = {
            "the gradient flows through the ReLU where it was inactive: zero dhidden where hidden <= 0": unmasked[k],
            "the data part is not divided by N (the loss is a mean over the examples)": total[k],
        }
        if k.startswith("W"):
            derivative = f"the derivative of reg * sum({k} * {k}) is 2 * reg * {k}"
            mistakes[f"grads['{k}'] is missing the regulariser's gradient 2 * reg * {k}"] = noreg[k]
            mistakes[f"the regulariser's gradient is reg * {k}; {derivative}"] = half[k]
        else:
            mistakes[f"{k} is regularised; only W1 and W2 are (no 2 * reg * {k} in its gradient)"] = bias[k]
        grad_mistakes[k] = mistakes
    expect_all(
        lambda: ctx.expect_loss(
            loss, want_loss.to(dtype), f"the loss {what}", bound=bound, n=N, mistakes=loss_mistakes
        ),
        lambda: ctx.expect_dict(
            grads,
            {k: want[k].to(dtype) for k in NET_KEYS},
            f"grads {what}",
            bound=bound,
            n=N,
            mistakes=grad_mistakes,
            hints={k: f"grads['{k}'] has the shape of params['{k}'], {fmt_shape(p[k].shape)}." for k in NET_KEYS},
        ),
    )


@check("a2.two_layer.forward_backward_toy", function="nn_forward_backward", reg=0.05)
def forward_backward_toy(ctx, reg):
    """nn_forward_backward: loss and every gradient on the course's toy problem"""
    p, X, y = toy_problem(ctx)
    judge_net_grads(ctx, p, X, y, reg, f64, f"(toy problem, reg={reg:g})")


@check(
    "a2.two_layer.forward_backward",
    function="nn_forward_backward",
    cases=((9, 6, 7, 4, 0.1, f64), (10, 8, 6, 5, 0.05, f32)),
)
def forward_backward(ctx, cases):
    """nn_forward_backward: the scores without labels; with labels the loss and every gradient vs autograd"""
    for N, D, H, C, reg, dtype in cases:
        p, X, y = net_problem(ctx, N, D, H, C, dtype, 0.5)
        what = f"(N={N}, D={D}, H={H}, C={C}, reg={reg:g}, {dtype_name(dtype)})"
        got = ctx.call("nn_forward_backward", p, X)
        if isinstance(got, (tuple, list)):
            ctx.fail(
                f"with y=None nn_forward_backward should return the scores alone, a tensor; found "
                f"{describe_value(got)}."
            )
        want, _ = net_parts(cpu64(p), cpu64(X))
        ctx.expect_tensor(got, want.to(dtype), f"the scores (y=None) {what}", bound=BOUND[dtype])
        judge_net_grads(ctx, p, X, y, reg, dtype, what)


# -- nn_train: replayed with the student's own nn_forward_backward and nn_predict (called in the sandbox) on a
# problem whose minibatches are all the same (identical rows), so every step, every recorded accuracy and the
# learning rate schedule are known exactly. An epoch may end as in the kit's given loop, (it + 1) % per_epoch == 0,
# or as in the course's original, it % per_epoch == 0 (which records and decays after the first step too).

SCHEDULES = {"end": "(it + 1) % iterations_per_epoch == 0", "course": "it % iterations_per_epoch == 0"}
SCHEDULE_MISTAKES = {
    "none": "the learning rate never decays: multiply it by learning_rate_decay at the end of every epoch",
    "iteration": "the learning rate decays after every iteration; decay it once per epoch (every "
    "max(N // batch_size, 1) iterations)",
    "start": "the learning rate decays before the epoch's first step; decay it after the epoch's last step",
}


def epoch_ends(schedule: str, it: int, per_epoch: int) -> bool:
    return (it + 1) % per_epoch == 0 if schedule == "end" else it % per_epoch == 0


def replay_net(
    ctx,
    p0: dict,
    Xb,
    yb,
    X_val,
    y_val,
    *,
    lr: float,
    decay: float,
    reg: float,
    num_iters: int,
    per_epoch: int,
    schedule: str = "end",
    accuracies: bool = True,
):
    """(final params, losses, train accuracies, val accuracies) of SGD with the student's functions. schedule:
    'end' or 'course' (both right, see SCHEDULES), or a mistake of SCHEDULE_MISTAKES."""
    p, rate = dict(p0), lr
    losses, train_accs, val_accs = [], [], []
    fb = ctx.ref("nn_forward_backward")
    for it in range(num_iters):
        if schedule == "start" and it % per_epoch == 0:
            rate *= decay
        loss, grads = ctx.expect_items(
            ctx.call("nn_forward_backward", p, Xb, y=yb, reg=reg), 2, "the result of nn_forward_backward"
        )
        losses.append(float(loss))
        p = {k: p[k] - rate * grads[k] for k in NET_KEYS}
        if schedule == "iteration":
            rate *= decay
        if schedule in SCHEDULES and epoch_ends(schedule, it, per_epoch):
            if accuracies:
                train_accs.append(accuracy(ctx.call("nn_predict", p, fb, Xb), yb))
                val_accs.append(accuracy(ctx.call("nn_predict", p, fb, X_val), y_val))
            rate *= decay
    return p, losses, train_accs, val_accs


def judge_nn_train(
    ctx,
    *,
    N: int,
    batch_size: int,
    num_iters: int,
    lr: float,
    decay: float,
    reg: float,
    dtype: torch.dtype,
    D: int = 4,
    H: int = 5,
    C: int = 3,
) -> None:
    """Run the student's nn_train on identical rows and compare params and the histories with the replay."""
    p, x, _ = net_problem(ctx, 1, D, H, C, dtype, 0.5)
    X = x.expand(N, D).clone()
    y = ctx.randint(0, C, (1,)).expand(N).clone()
    X_val, y_val = ctx.randn(11, D, dtype=dtype), ctx.randint(0, C, (11,))
    per_epoch = max(N // batch_size, 1)
    Xb, yb = X[:1].expand(batch_size, X.shape[1]).clone(), y[:1].expand(batch_size).clone()  # any minibatch
    hp = ctx.put(p)  # params stays in the sandbox: nn_train updates it there, and the judge reads it after
    stats = ctx.call(
        "nn_train",
        hp,
        ctx.ref("nn_forward_backward"),
        ctx.ref("nn_predict"),
        X,
        y,
        X_val,
        y_val,
        learning_rate=lr,
        learning_rate_decay=decay,
        reg=reg,
        num_iters=num_iters,
        batch_size=batch_size,
    )
    after = ctx.fetch(hp)
    what = (
        f"params after nn_train ({num_iters} iterations of batch_size {batch_size} on N={N}: {per_epoch} per "
        f"epoch; learning_rate={lr:g}, learning_rate_decay={decay:g}, {dtype_name(dtype)})"
    )
    if (
        not isinstance(after, dict)
        or set(after) != set(NET_KEYS)
        or not all(isinstance(after[k], torch.Tensor) and after[k].shape == p[k].shape for k in NET_KEYS)
    ):
        ctx.fail(f"{what}: params should keep its keys {list(NET_KEYS)} and shapes; found {describe_value(after)}.")
    replays = {
        s: replay_net(
            ctx,
            p,
            Xb,
            yb,
            X_val,
            y_val,
            lr=lr,
            decay=decay,
            reg=reg,
            num_iters=num_iters,
            per_epoch=per_epoch,
            schedule=s,
        )
        for s in SCHEDULES
    }

    def err(q: dict) -> float:
        return max(rel_error(after[k], q[k]) for k in NET_KEYS)

    schedule = min(replays, key=lambda s: err(replays[s][0]))
    want_p, want_losses, want_train, want_val = replays[schedule]
    if err(want_p) > REPLAY[dtype]:
        if all(same(after[k], p[k]) for k in NET_KEYS):
            ctx.fail(
                f"{what}: params is unchanged; nn_train must update the parameters in params (in place, "
                "params[name] -= learning_rate * grads[name], or with new tensors, params[name] = "
                "params[name] - learning_rate * grads[name])."
            )
        mistakes = {
            desc: replay_net(
                ctx,
                p,
                Xb,
                yb,
                X_val,
                y_val,
                lr=lr,
                decay=decay,
                reg=reg,
                num_iters=num_iters,
                per_epoch=per_epoch,
                schedule=s,
                accuracies=False,
            )[0]
            for s, desc in SCHEDULE_MISTAKES.items()
        }
        why = next((desc for desc, alt in mistakes.items() if err(alt) <= REPLAY[dtype]), None)
        k = max(NET_KEYS, key=lambda k: rel_error(after[k], want_p[k]))
        ctx.fail(
            f"{what}: params['{k}'] differs from plain SGD with your nn_forward_backward (relative error "
            f"{rel_error(after[k], want_p[k]):.1e})."
            + (
                f" Likely bug: {why}."
                if why
                else " Each iteration: params[k] -= learning_rate * grads[k] for every k; at the end of each epoch "
                "record the accuracies, then multiply the learning rate by learning_rate_decay."
            ),
            mistakes=[why] if why else [],
        )
    ctx.expect_type(stats, dict, "the result of nn_train")
    keys = ("loss_history", "train_acc_history", "val_acc_history")
    ctx.expect(
        set(keys) <= set(stats), f"the result of nn_train: expected the keys {list(keys)}, found {sorted(stats)}."
    )
    epochs = len(want_train)
    for key, n in zip(keys, (num_iters, epochs, epochs)):
        ctx.expect(
            isinstance(stats[key], list) and len(stats[key]) == n,
            f"{key}: expected a list of {n} values ({'one per iteration' if n == num_iters else 'one per epoch'}"
            f"; {num_iters} iterations, {per_epoch} per epoch, an epoch ending at {SCHEDULES[schedule]}), "
            f"found {describe_value(stats[key])}.",
        )
    expect_history(ctx, stats["loss_history"], num_iters, want_losses, REPLAY[dtype])
    for key, wants, where in (
        ("train_acc_history", want_train, "the epoch's last minibatch"),
        ("val_acc_history", want_val, "the validation set"),
    ):
        for k, (got, want) in enumerate(zip(stats[key], wants)):
            got = expect_fraction(ctx, got, f"{key}[{k}]")
            ctx.expect(
                abs(got - want) <= 1e-6,
                f"{key}[{k}]: expected {want:.4f}, the accuracy on {where} at the "
                f"end of epoch {k} (after its last step), found {got:.4f}.",
            )


def judge_toy_training(ctx, lr: float, decay: float, reg: float, num_iters: int, batch_size: int) -> None:
    """On the course's toy problem (as TwoLayerNet starts it: biases 0) the final training loss falls below 1.0."""
    p, X, y = toy_problem(ctx, zero_biases=True)
    got = ctx.call(
        "nn_train",
        p,
        ctx.ref("nn_forward_backward"),
        ctx.ref("nn_predict"),
        X,
        y,
        X,
        y,
        learning_rate=lr,
        learning_rate_decay=decay,
        reg=reg,
        num_iters=num_iters,
        batch_size=batch_size,
    )
    ctx.expect_type(got, dict, "the result of nn_train")
    history = expect_history(ctx, got.get("loss_history"), num_iters, None, 0.0)
    final = history[-1]
    ctx.note(
        f"toy problem: loss {history[0]:.3f} -> {final:.3f} in {num_iters} iterations "
        f"(learning_rate={lr:g}, learning_rate_decay={decay:g}, batch_size={batch_size})"
    )
    ctx.expect(final < 1.0, f"the final training loss on the toy problem is {final:.3f}; it should fall below 1.0.")


@check(
    "a2.two_layer.train",
    function="nn_train",
    N=6,
    batch_size=3,
    num_iters=7,
    lr=0.5,
    decay=0.5,
    reg=0.01,
    dtypes=(f64, f32),
    toy=(0.1, 1.0, 1e-6, 200, 200),
)
def train_net(ctx, N, batch_size, num_iters, lr, decay, reg, dtypes, toy):
    """nn_train: SGD steps, learning rate decayed once per epoch, histories (float64, float32); toy loss below 1.0"""
    for dtype in dtypes:
        judge_nn_train(ctx, N=N, batch_size=batch_size, num_iters=num_iters, lr=lr, decay=decay, reg=reg, dtype=dtype)
    judge_toy_training(ctx, *toy)


@check("a2.two_layer.predict", function="nn_predict", N=20, D=6, H=8, C=5, dtype=f32)
def nn_predict(ctx, N, D, H, C, dtype):
    """nn_predict: argmax of loss_func's scores, int64"""
    p, X, _ = net_problem(ctx, N, D, H, C, dtype, 0.7)
    reply = ctx.invoke("nn_predict", p, ctx.ref("nn_forward_backward"), X, return_args=True)
    ctx.expect_unchanged([p, X], some_args(reply, 0, 2), ["params", "X"])
    expect_labels(
        ctx,
        reply.value,
        net_parts(cpu64(p), cpu64(X))[0],
        "One int64 label per row of X: the index of its highest score in loss_func(params, X).",
    )


@check("a2.two_layer.search_params", function="nn_get_search_params")
def nn_search_params(ctx):
    """nn_get_search_params: four lists, fewer than 256 combinations"""
    got = ctx.expect_items(
        ctx.call("nn_get_search_params"),
        4,
        "the result of nn_get_search_params "
        "(learning_rates, hidden_sizes, regularization_strengths, learning_rate_decays)",
    )
    lrs = expect_number_list(ctx, got[0], "learning_rates", at_least=1, positive=True)
    hs = expect_number_list(ctx, got[1], "hidden_sizes", at_least=1, positive=True, integer=True)
    regs = expect_number_list(ctx, got[2], "regularization_strengths", at_least=1, positive=False)
    decays = expect_number_list(ctx, got[3], "learning_rate_decays", at_least=1, positive=True, at_most_one=True)
    combos = len(lrs) * len(hs) * len(regs) * len(decays)
    ctx.expect(
        combos < 256,
        f"{len(lrs)} x {len(hs)} x {len(regs)} x {len(decays)} = {combos} combinations; fewer than 256 are allowed.",
    )
    ctx.note(f"{combos} combinations")


def param_set_handle(ctx, grid: tuple) -> Handle:
    """A function in the sandbox that returns `grid` when called without arguments (the bound method copy of a
    list holding the four lists: find_best_net unpacks its result like a tuple)."""
    return ctx.getattr(ctx.put([list(v) for v in grid]), "copy")


@check("a2.two_layer.find_best_net", function="find_best_net", timeout=600.0, grid=None)
def find_best_net(ctx, grid):
    """find_best_net keeps the best net; it reaches the target on the test split"""
    data = course_data(ctx, bias_trick=False)  # the course's shapes: 3x32x32 images as 3072 features, 10 classes
    grid = grid or ctx.scale(SCALE)["net_grid"]
    hdata = ctx.put({k: data[k].to(ctx.device) for k in ("X_train", "y_train", "X_val", "y_val")})
    fn = param_set_handle(ctx, grid) if grid is not None else ctx.ref("nn_get_search_params")
    D, C = data["X_train"].shape[1], int(data["y_train"].max()) + 1
    caps = ctx.scale(SCALE)["net_caps"]
    with training_caps(ctx, caps):  # TwoLayerNet.train trains under the grader's caps (see SCALE)
        got = ctx.call("find_best_net", hdata, fn)
        record = training_record(ctx)
    ctx.note(describe_training(record, caps, "TwoLayerNet.train", ctx.dataset_name))
    net, stat, val_acc = ctx.expect_items(got, 3, "the result of find_best_net (best_net, best_stat, best_val_acc)")
    ctx.expect(
        isinstance(net, Handle) and net.type == "TwoLayerNet",
        f"best_net: expected a TwoLayerNet, found {describe_value(net)}.",
    )
    params = ctx.getattr(net, "params")
    ctx.expect_type(params, dict, "best_net.params")
    ctx.expect(
        set(params) == set(NET_KEYS) and all(isinstance(params[k], torch.Tensor) for k in NET_KEYS),
        f"best_net.params: expected tensors under {list(NET_KEYS)}, found {describe_value(params)}.",
    )
    H = params["W1"].shape[-1]
    expect_all(
        *(
            lambda k=k, shape=shape: ctx.expect_layout(
                params[k],
                shape,
                data["X_train"].dtype,
                f"best_net.params['{k}']",
                hint=f"The net has D = {D} inputs (X_train's width) and C = max(y_train) + 1 = {C} outputs, in "
                "X_train's dtype, on its device.",
            )
            for k, shape in (("W1", (D, H)), ("b1", (H,)), ("W2", (H, C)), ("b2", (C,)))
        )
    )
    if grid is not None:
        ctx.expect(H in grid[1], f"best_net has {H} hidden units; the hidden sizes to try were {list(grid[1])}.")
    ctx.expect_type(stat, dict, "best_stat")
    for key in ("loss_history", "train_acc_history", "val_acc_history"):
        ctx.expect(
            key in stat and isinstance(stat[key], list),
            f"best_stat: expected the dict nn_train returned (with '{key}'), found keys {sorted(stat)}.",
        )
    val_acc = expect_fraction(ctx, val_acc, "best_val_acc")
    q = cpu64(params)
    want_val = accuracy(net_parts(q, cpu64(data["X_val"]))[0].argmax(1), data["y_val"])
    ctx.expect(
        abs(val_acc - want_val) <= 1.5 / data["X_val"].shape[0],
        f"best_val_acc: best_net classifies a fraction {want_val:.4f} of the validation set correctly; you "
        f"returned {val_acc:.4f}.",
    )
    acc = 100 * accuracy(net_parts(q, cpu64(data["X_test"]))[0].argmax(1), data["y_test"])
    target = ctx.target("two_layer_accuracy")
    ctx.note(
        f"best net: {H} hidden units, validation {100 * want_val:.1f}%, test split {acc:.1f}% on "
        f"{ctx.dataset_name} (target {target:g}%)"
    )
    ctx.expect(
        acc >= target,
        f"the best net reaches {acc:.1f}% on the test split, below the target {target:g}%"
        + (
            f" (given learning rates {list(grid[0])}, hidden sizes {list(grid[1])}, regularization strengths "
            f"{list(grid[2])} and decays {list(grid[3])}: keep the net with the best validation accuracy, and "
            f"train each long enough, within the grader's caps: {describe_caps(caps)})."
            if grid is not None
            else f" (the grader's caps: {describe_caps(caps)})."
        ),
    )
