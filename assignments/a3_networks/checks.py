"""Public checks for A3. Each judges the student's layer, network or choice against an oracle computed here, in the
judge: PyTorch's own ops (`F.linear`, `F.relu`, `F.conv2d`, `F.max_pool2d`, `F.batch_norm`, `torch.optim`) in
float64, differentiated with `torch.autograd` (autograd is fine in the judge; only the student's code must do without
it). Hidden variants (other seeds, shapes, strides, paddings, dtypes and hyperparameters) live in hidden.py.

Nothing here imports the a3_networks package. Networks are built in the sandbox and their parameters read back with
`ctx.getattr`; the judge re-implements each network with PyTorch's ops from those parameters. Trained parameters are
evaluated here, on data whose labels never enter the sandbox.

Composite units are judged on their own logic: a network that is wrong only because a layer it uses is wrong (Linear,
ReLU, Dropout, BatchNorm, ...) does not lose its points too (the layer's own checks judge it), and the choices of
hyperparameters are judged by training a correct model here when the student's own model cannot train.
"""

from __future__ import annotations

import ast
import contextlib
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from grader.checks import CheckFailed, check, describe_value, fmt_shape, rel_error
from grader.sandbox import SandboxError
from grader.staticscan import find_function
from grader.wire import Handle

FWD, BWD, NET = 1e-7, 1e-8, 1e-6        # float64 bounds: layers forward, layers backward, networks (the course's)
LOW = 1e-4                              # anything computed in float32
FC_MODULE = "a3_networks.fully_connected_networks"
CONV_MODULE = "a3_networks.convolutional_networks"
TRAIN_KEYS = ("X_train", "y_train", "X_val", "y_val")

# How much the checks that train do, per data set. The grader trains the student's model with the kit's own Solver
# (dlcv.solver, staged from the kit) under these caps: the student chooses only the model and the hyperparameters.
# digits (the offline stand-in) trains on the CPU: the two-layer solver gets at most fc_epochs epochs, the
# convolutional one conv_epochs (deterministic, a few seconds each for the reference). cifar10: the course's final
# runs, as many epochs as the student asked for within the time limits (the convolutional one: 60 s on a GPU).
# A limit is the Solver's train(time_limit=...); the call itself is stopped at 1.5 times the limit plus 30 s.
# conv_train_samples caps the training images the Solver measures its (reported) training accuracy on each epoch:
# it does not change the training, only saves time.
SCALE = {
    "digits": {"fc_epochs": 20, "fc_time_limit": 30.0, "conv_epochs": 2, "conv_time_limit": 60.0,
               "conv_train_samples": 100},
    "cifar10": {"fc_epochs": None, "fc_time_limit": 120.0, "conv_epochs": None, "conv_time_limit": 60.0,
                "conv_train_samples": None},
}


def bound(dtype: torch.dtype, b: float) -> float:
    return b if dtype == torch.float64 else LOW


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


# ---- general helpers ----------------------------------------------------------------------------


def _cpu64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float64)


def expect_float(ctx, value: Any, name: str, positive: bool = True) -> float:
    if isinstance(value, torch.Tensor):
        ctx.fail(f"{name}: expected a Python float, found a tensor; convert it with .item().")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        ctx.fail(f"{name}: expected a finite Python float, found {describe_value(value)}.")
    if positive and value <= 0:
        ctx.fail(f"{name}: expected a positive number, found {value!r}.")
    return float(value)


def same_tensor(a: Any, b: Any) -> bool:
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
            and a.dtype == b.dtype and torch.equal(a.cpu(), b.cpu()))


def close(a: Any, b: Any, tol: float) -> bool:
    """Tensors of one shape within relative error tol (False for anything else)."""
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
            and rel_error(a, b) <= tol)


def expect_inputs_unchanged(ctx, function: str, names: list[str], before: list, after: list | None) -> None:
    for name, b, a in zip(names, before, after or []):
        if isinstance(b, torch.Tensor) and not same_tensor(b, a):
            ctx.fail(f"{function} modified its input {name}; it must leave its inputs unchanged (work on new tensors, "
                     "e.g. out = x.clamp(min=0) or x.clone(), not x.clamp_(...) or x[...] = ...).")


def expect_layout(ctx, got: Any, shape: tuple, dtype: torch.dtype, name: str, hint: str = "") -> None:
    """A tensor of this shape and dtype on the grading device (its values are judged elsewhere)."""
    fits = isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(shape) and got.dtype == dtype
    expected = got.detach().cpu() if fits else torch.zeros(shape, dtype=dtype)
    ctx.expect_tensor(got, expected, name, bound=math.inf, hint=hint)


def expect_loss(ctx, got: Any, want: torch.Tensor, name: str, *, tol: float, mistakes: dict | None = None) -> None:
    """A loss: a one-element tensor (0-dim, as the docstrings say) or a Python number, close to `want`."""
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            ctx.fail(f"{name}: expected a 0-dim tensor, found {describe_value(got)}.")
        if got.requires_grad:
            ctx.fail(f"{name} requires grad: this assignment computes gradients by hand, without autograd.")
        got = got.item()
    ctx.expect_close(got, float(want), name, bound=tol, mistakes={k: float(v) for k, v in (mistakes or {}).items()})


def with_grads(fn: Callable, inputs: list[torch.Tensor], dout: torch.Tensor | None = None):
    """(value, [gradient of each input]) of fn by autograd, in float64 on the CPU; dout is the upstream gradient
    (None when fn returns a scalar)."""
    xs = [_cpu64(t).requires_grad_(True) for t in inputs]
    with torch.enable_grad():
        out = fn(*xs)
        grads = torch.autograd.grad(out, xs, grad_outputs=None if dout is None else _cpu64(dout), allow_unused=True)
    return out.detach(), [torch.zeros_like(x) if g is None else g for g, x in zip(grads, xs)]


def expect_grads(ctx, got: Any, wants: list[tuple[str, torch.Tensor]], what: str, dtype: torch.dtype, tol: float, *,
                 n: int | None = None, mistakes: dict[str, dict] | None = None, hints: dict[str, str] | None = None):
    """The result of a backward pass: one gradient per tensor argument of forward, in that order (a lone tensor
    when there is one). Names a result returned in the wrong order."""
    names = [w[0] for w in wants]
    if len(wants) == 1:
        got = (got,)
    else:
        got = ctx.expect_items(got, len(wants), f"the result of {what} ({', '.join(names)})")
    for i, (name, want) in enumerate(wants):
        g = got[i]
        if isinstance(g, torch.Tensor) and (tuple(g.shape) != tuple(want.shape) or rel_error(g, want) > tol):
            for j, (other, w2) in enumerate(wants):
                if j != i and tuple(g.shape) == tuple(w2.shape) and \
                        (tuple(g.shape) != tuple(want.shape) or rel_error(g, w2) <= tol):
                    ctx.fail(f"{what}: item {i} of the result is {other}, not {name}. Likely bug: the gradients are "
                             f"returned in the wrong order; return ({', '.join(names)}), one per tensor argument of "
                             "forward, in the order of those arguments.")
        ctx.expect_tensor(g, want.to(dtype), f"{name} ({what})", bound=tol, n=n,
                          mistakes=(mistakes or {}).get(name), hint=(hints or {}).get(name, ""))


def probe(ctx, names: list[str]) -> str | None:
    """Which of the student's building blocks `names` is wrong ("your BatchNorm is wrong"), None if all look right.
    Probes run small versions of the blocks' checks. A block found wrong is only a candidate explanation: a composite
    is excused only where its own result equals what the student's blocks give (see `excuse`)."""
    for name in names:
        notes = list(ctx.notes)
        try:
            PROBES[name](ctx)
        except Exception:  # noqa: BLE001 - a CheckFailed, or a result too odd to judge: wrong either way
            return f"your {name} is wrong (see its checks)"
        finally:
            ctx.notes[:] = notes
    return None


@dataclass
class Outcome:
    """What one call into the sandbox gave: its Reply, or the error it raised; the forbidden calls it made."""
    reply: Any = None
    error: SandboxError | None = None
    hits: list = field(default_factory=list)
    failure: CheckFailed | None = None      # the feedback the call alone earns (None: judge its value)


def attempt(ctx, call: Callable[[], Any]) -> Outcome:
    """Run `call` (one ctx.invoke or ctx.invoke_method) and keep what happened instead of failing at once."""
    n = len(ctx.calls)
    try:
        return Outcome(reply=call())
    except CheckFailed as e:
        err = e.__context__ if isinstance(e.__context__, SandboxError) else None
        if err is not None:
            return Outcome(error=err, failure=e)
        if len(ctx.calls) > n and ctx.calls[-1].forbidden_hits:      # the call ran, but made a forbidden call
            return Outcome(reply=ctx.calls[-1], hits=list(ctx.calls[-1].forbidden_hits), failure=e)
        raise


def owns(function: str, unit: str) -> bool:
    """`function` (a qualified name) is `unit` itself or one of its methods."""
    return function == unit or function.startswith(unit + ".")


def hit_function(ctx, hit: Any, candidates: list[str]) -> str | None:
    """The function of the submission that made a forbidden call: named by the hit (a dict with "function"), or
    found from its line among `candidates` (hits written "name (line N)")."""
    if isinstance(hit, dict):
        fn = hit.get("function")
        return fn if isinstance(fn, str) else None
    line = re.search(r"\(line (\d+)\)", str(hit))
    if line is None:
        return None
    n = int(line.group(1))
    for name in candidates:
        for part in ctx.run.manifest.parts:
            if name not in part.functions:
                continue
            src = ctx.run.staged.sources.get(part.file)
            try:
                node = find_function(ast.parse(src), name) if src else None
            except SyntaxError:
                node = None
            if node is not None and node.lineno <= n <= (node.end_lineno or node.lineno):
                return name
    return None


class ChainBroken(Exception):
    """The student's blocks, chained by the judge, could not give a result."""


def excuse(ctx, failure: CheckFailed, unit: str, blocks: list[str], outcomes: list[Outcome | None],
           rebuild: Callable[[], Any] | None, compare: Callable[[Any], str | None]) -> None:
    """`unit` failed with `failure`. Return (the check passes, with a note) only where a wrong block explains it:
    a block in `blocks` is wrong by its own checks, `unit` raised no error in its own lines (and no timeout or crash),
    every forbidden call it made was made inside a block, and its result equals what the judge gets by chaining the
    student's own blocks on the same inputs (`rebuild`, then `compare` -> None; an error of `unit` outside its own
    lines is explained when the chain breaks too). Otherwise raise the failure, saying why the block does not
    explain it."""
    broken = probe(ctx, blocks)
    if broken is None:
        raise failure
    outcomes = [o for o in outcomes if o is not None]
    errors = [o.error for o in outcomes if o.error is not None]
    reason = None
    for err in errors[:1]:
        inner = err.where[-1].get("function", "") if err.where else ""
        if err.kind != "exception":
            reason = f"{unit} did not finish ({err.kind})"
        elif owns(str(inner), unit):
            if err.type_name == "NotImplementedError":
                raise failure
            reason = f"the error is raised in {unit}'s own code ({inner})"
    for o in outcomes:
        for hit in o.hits:
            if reason is None and not any(owns(hit_function(ctx, hit, blocks) or "", b) for b in blocks):
                reason = f"{unit} itself makes a forbidden call"
    if reason is None and rebuild is not None:
        try:
            chain = rebuild()
        except ChainBroken as b:
            reason = None if errors else f"your own blocks, chained by the grader on the same inputs, fail ({b})"
        else:
            reason = (f"your own blocks, chained by the grader on the same inputs, run without an error" if errors
                      else compare(chain))
    elif reason is None:
        reason = "the grader cannot rebuild its result from your blocks"
    if reason is not None:
        raise CheckFailed(f"{failure}\n  ({broken[0].upper()}{broken[1:]}, but that does not explain this failure: "
                          f"{reason}.)")
    problem = str(failure) if len(str(failure)) < 400 else str(failure)[:400] + " ..."
    ctx.note(f"{unit} could not be judged on its own: {broken}, and {unit} gives what your own blocks give when the "
             f"grader chains them on the same inputs, so it keeps its points. What differed from the oracle: {problem}")


def unit_source(ctx, unit: str) -> ast.AST | None:
    """The submitted definition of `unit` (a class or function of the graded file), None when it is not there."""
    file = ctx.run.manifest.part_of(ctx.spec.function).file
    ctx.run.module_for(unit, ctx.spec.function)  # missing file / syntax error: the usual feedback
    src = ctx.run.staged.sources.get(file)
    return None if src is None else find_function(ast.parse(src), unit)


GIVEN_FAST = ("FastConv", "FastMaxPool", "ConvVectorized", "Conv_ReLU", "Conv_ReLU_Pool", "Conv_BatchNorm_ReLU",
              "Conv_BatchNorm_ReLU_Pool")


def expect_naive(ctx, unit: str) -> None:
    """The naive layers compute every window themselves: they may not hand the work to the given fast layers
    (which call PyTorch's convolution and pooling where the run-time guard cannot tell who asked)."""
    node = unit_source(ctx, unit)
    if node is None:
        return
    for n in ast.walk(node):
        used = n.id if isinstance(n, ast.Name) else n.value if isinstance(n, ast.Constant) else None
        if isinstance(used, str) and used in GIVEN_FAST:
            ctx.fail(f"{unit} uses {used} (line {n.lineno}); {unit} is the naive layer: compute every window "
                     f"yourself with loops, without the given fast layers (they call PyTorch's own convolution and "
                     "pooling, which this layer may not use).")


def side_randn(ctx, *shape: int, dtype: torch.dtype, offset: int = 1) -> torch.Tensor:
    """Normal values from a generator other than the check's (the sandbox's random numbers come from the check's seed:
    inputs drawn from the same stream would be correlated with, e.g., a dropout mask)."""
    gen = torch.Generator().manual_seed(ctx.seed * 7919 + offset)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(ctx.device, dtype)


# ---- data -----------------------------------------------------------------------------------------

_DATA: dict = {}


def course_data(ctx, flatten: bool) -> dict:
    """The grading data set as dlcv.preprocess_cifar10 gives it (float32, on the CPU): pixels / 255, the per-channel
    mean of the training images subtracted, optionally flattened, the last 20% of the training images kept for
    validation. X_test / y_test never leave the judge."""
    x_train, y_train, x_test, y_test, _ = ctx.dataset()
    key = (ctx.run.dataset_name, flatten)
    if key not in _DATA:
        _DATA.clear()
        xs = x_train.to(torch.float32) / 255
        xt = x_test.to(torch.float32) / 255
        mean = xs.mean(dim=(0, 2, 3), keepdim=True)
        xs, xt = xs - mean, xt - mean
        if flatten:
            xs, xt = xs.flatten(1), xt.flatten(1)
        cut = xs.shape[0] - int(round(0.2 * xs.shape[0]))
        _DATA[key] = {"X_train": xs[:cut], "y_train": y_train[:cut], "X_val": xs[cut:], "y_val": y_train[cut:],
                      "X_test": xt, "y_test": y_test}
    return _DATA[key]


def scale(ctx, key: str) -> Any:
    ctx.dataset()
    return SCALE.get(ctx.run.dataset_name, SCALE["cifar10"])[key]


def on_device(ctx, data: dict, keys=TRAIN_KEYS) -> dict:
    return {k: data[k].to(ctx.device) for k in keys}


@contextlib.contextmanager
def one_thread():
    """The judge's own training runs on one thread (on a busy machine more threads only contend)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def accuracy(scores: torch.Tensor, y: torch.Tensor) -> float:
    """Percent of rows whose highest score is the label."""
    return 100.0 * (scores.argmax(1).cpu() == y.cpu()).double().mean().item()


# ---- oracles: the networks, re-implemented with PyTorch's ops -------------------------------------


def count_layers(p: dict) -> int:
    return sum(1 for k in p if k.startswith("W") and k[1:].isdigit())


def two_layer_scores(p: dict, X: torch.Tensor) -> torch.Tensor:
    hidden = F.relu(F.linear(X.flatten(1), p["W1"].t(), p["b1"]))
    return F.linear(hidden, p["W2"].t(), p["b2"])


def fc_scores(p: dict, X: torch.Tensor, masks: list | None = None) -> torch.Tensor:
    """FullyConnectedNet: {linear - relu - [dropout: times its mask]} x (L - 1) - linear."""
    L, h = count_layers(p), X.flatten(1)
    for i in range(1, L):
        h = F.relu(F.linear(h, p[f"W{i}"].t(), p[f"b{i}"]))
        if masks is not None:
            h = h * masks[i - 1]
    return F.linear(h, p[f"W{L}"].t(), p[f"b{L}"])


def three_layer_scores(p: dict, X: torch.Tensor) -> torch.Tensor:
    pad = (p["W1"].shape[2] - 1) // 2
    h = F.max_pool2d(F.relu(F.conv2d(X, p["W1"], p["b1"], padding=pad)), 2, 2)
    h = F.relu(F.linear(h.flatten(1), p["W2"].t(), p["b2"]))
    return F.linear(h, p["W3"].t(), p["b3"])


def deep_scores(p: dict, X: torch.Tensor, max_pools, stats: list | None = None, eps: float = 1e-5) -> torch.Tensor:
    """DeepConvNet: {3x3 conv pad 1 - [batchnorm] - relu - [2x2 pool]} x (L - 1) - linear. With batchnorm, `stats`
    None normalises with the batch's statistics (train mode), else with stats[i] = (running_mean, running_var)."""
    L, h = count_layers(p), X
    for i in range(1, L):
        h = F.conv2d(h, p[f"W{i}"], p[f"b{i}"], padding=1)
        if f"gamma{i}" in p:
            rm, rv = (None, None) if stats is None else stats[i - 1]
            h = F.batch_norm(h, rm, rv, p[f"gamma{i}"], p[f"beta{i}"], training=stats is None, eps=eps)
        h = F.relu(h)
        if i - 1 in max_pools:
            h = F.max_pool2d(h, 2, 2)
    return F.linear(h.flatten(1), p[f"W{L}"].t(), p[f"b{L}"])


def objective(forward: Callable, keys: list[str], X, y, reg: float, weights: list[str], coef: float = 1.0,
              regularised: list[str] | None = None) -> Callable:
    """The loss as a function of the parameters (in `keys` order): mean softmax loss plus coef * reg * sum of squares
    of `regularised` (default: the weights)."""
    def fn(*values):
        p = dict(zip(keys, values))
        penalty = sum((p[k] * p[k]).sum() for k in (regularised or weights))
        return F.cross_entropy(forward(p, X), y) + coef * reg * penalty
    return fn


def net_expectations(forward: Callable, params: dict, X, y, reg: float, weights: list[str]):
    """(loss, grads, loss mistakes, grad mistakes): the oracle and the regulariser's usual mistakes."""
    keys = list(params)
    Xc, yc = _cpu64(X), y.cpu()
    vals = [params[k] for k in keys]

    def run(coef=1.0, regularised=None):
        loss, grads = with_grads(objective(forward, keys, Xc, yc, reg, weights, coef, regularised), vals)
        return loss, dict(zip(keys, grads))

    loss, grads = run()
    if reg == 0:
        return loss, grads, {}, {}
    none, double, half, every = run(0.0), run(2.0), run(0.5), run(1.0, keys)
    loss_mistakes = {"the regulariser is missing from the loss (reg * the sum of W * W over the weights)": none[0],
                     "the regulariser is counted twice": double[0],
                     "the regulariser has a factor 1/2; this course's regulariser is reg * sum(W * W)": half[0]}
    groups = {"the biases are regularised too; only the weights are": [k for k in keys if k.startswith("b")],
              "gamma and beta are regularised too; only the weights are": [k for k in keys if k.startswith(("gamma",
                                                                                                              "beta"))],
              "gamma is regularised too; only the weights are": [k for k in keys if k.startswith("gamma")],
              "every parameter is regularised; only the weights are": [k for k in keys if k not in weights]}
    for desc, extra in groups.items():
        if extra and (desc.startswith("every") or len(extra) < len(keys) - len(weights)):
            loss_mistakes[desc] = run(1.0, weights + extra)[0]
    grad_mistakes = {}
    for k in keys:
        if k in weights:
            grad_mistakes[k] = {f"the regulariser's gradient 2 * reg * {k} is missing": none[1][k],
                                f"the regulariser's gradient is counted twice (4 * reg * {k})": double[1][k],
                                f"the regulariser's gradient is reg * {k}; the derivative of reg * sum({k} * {k}) is "
                                f"2 * reg * {k}": half[1][k]}
        else:
            grad_mistakes[k] = {f"{k} is regularised; only the weights are (no 2 * reg * {k} in its gradient)":
                                every[1][k]}
    return loss, grads, loss_mistakes, grad_mistakes


# ---- networks: built in the sandbox, judged here --------------------------------------------------


def expect_params(ctx, params: Any, shapes: dict[str, tuple], dtype: torch.dtype, what: str, hint: str = "") -> None:
    ctx.expect_type(params, dict, f"{what}.params")
    if set(params) != set(shapes):
        missing, extra = sorted(set(shapes) - set(params)), sorted(set(params) - set(shapes))
        ctx.fail(f"{what}.params: expected the keys {list(shapes)}, found {sorted(params)}"
                 + (f" (missing {missing})" if missing else "") + (f" (unexpected {extra})" if extra else "") + ".")
    for k, s in shapes.items():
        expect_layout(ctx, params[k], s, dtype, f"{what}.params['{k}']", hint=hint)


def expect_std(ctx, t: torch.Tensor, want: float, name: str, alternatives: dict[str, float] | None = None) -> None:
    """Values drawn from N(0, want^2): the sample standard deviation within a few standard errors."""
    v = _cpu64(t).flatten()
    n = v.numel()
    std, mean = v.std().item(), v.mean().item()
    tol = 5 / math.sqrt(2 * n) + 0.01
    if not abs(std / want - 1) <= tol:
        why = next((d for d, a in (alternatives or {}).items()
                    if abs(std / a - 1) <= tol and abs(a / want - 1) > 2 * tol), None)
        ctx.fail(f"{name}: the standard deviation of its {n} values is {std:.4g}; expected {want:.4g} (within "
                 f"{100 * tol:.0f}%)." + (f" Likely bug: {why}." if why else ""))
    if not abs(mean) <= 6 * want / math.sqrt(n):
        ctx.fail(f"{name}: the mean of its {n} values is {mean:.3g}; expected about 0 (normal values with mean 0).")


def expect_zeros(ctx, t: torch.Tensor, name: str, value: float = 0.0) -> None:
    if not bool((t.cpu() == value).all()):
        ctx.fail(f"{name}: expected all {'zeros' if value == 0 else f'{value:g}s'} at initialisation, found values "
                 f"from {t.min().item():.3g} to {t.max().item():.3g}.")


def set_params(ctx, model: Handle, params: dict) -> None:
    """Replace the values in model.params (the dict itself, as the Solver does) with the judge's."""
    held = ctx.invoke_method(model, "__getattribute__", "params", keep=True).value
    ctx.method(held, "update", params)


def random_params(ctx, shapes: dict[str, tuple], dtype: torch.dtype, w_scale: float, b_scale: float) -> dict:
    out = {}
    for k, s in shapes.items():
        if k.startswith("gamma"):
            out[k] = 1 + ctx.randn(*s, dtype=dtype, scale=0.3)
        else:
            out[k] = ctx.randn(*s, dtype=dtype, scale=w_scale if k.startswith("W") else b_scale)
    return out


def judge_net_loss(ctx, model: Handle, cls: str, params: dict, X, y, reg: float, forward: Callable, dtype, what: str,
                   test_forward: Callable | None = None, test_mistakes: Callable | None = None, *,
                   blocks: list[str], program: list[tuple], train: bool = True) -> None:
    """model.loss(X, y) -> (loss, grads) and model.loss(X) -> scores against the oracle `forward` (train mode) and
    `test_forward` (test mode: called after the train-mode call, default `forward`). `train=False` judges the scores
    only. A failure is excused only where the student's `blocks`, chained as `program` says, give the same result."""
    run_train = attempt(ctx, lambda: ctx.invoke_method(model, "loss", X, y, return_args=True)) if train else None
    run_test = attempt(ctx, lambda: ctx.invoke_method(model, "loss", X)) \
        if run_train is None or run_train.error is None else None
    try:
        for o in (run_train, run_test):
            if o is not None and o.failure is not None:
                raise o.failure
        if run_train is not None:
            judge_net_train(ctx, run_train.reply, cls, params, X, y, reg, forward, dtype, what)
        scores = run_test.reply.value
        if isinstance(scores, (tuple, list)):
            ctx.fail(f"{cls}.loss(X) without labels should return the scores alone, a tensor; found "
                     f"{describe_value(scores)}.")
        q = {k: _cpu64(v) for k, v in params.items()}
        want = (test_forward or forward)(q, _cpu64(X))
        ctx.expect_tensor(scores, want.to(dtype), f"the scores of {cls}.loss(X) {what}", bound=bound(dtype, NET),
                          mistakes=test_mistakes(q, _cpu64(X)) if test_mistakes else None,
                          hint=f"scores is (N, num_classes) = {fmt_shape(want.shape)}.")
    except CheckFailed as e:
        excuse(ctx, e, cls, blocks, [run_train, run_test],
               lambda: run_chain(ctx, program, params, X, y, reg, dtype, train),
               lambda chain: compare_chain(chain, run_train, run_test, dtype))


def judge_net_train(ctx, reply, cls: str, params: dict, X, y, reg: float, forward: Callable, dtype, what: str) -> None:
    weights = [k for k in params if k.startswith("W")]
    expect_inputs_unchanged(ctx, f"{cls}.loss", ["X"], [X], reply.args)
    loss, grads = ctx.expect_items(reply.value, 2, f"the result of {cls}.loss(X, y) (loss, grads)")
    want_loss, want_grads, loss_mistakes, grad_mistakes = net_expectations(forward, params, X, y, reg, weights)
    tol = bound(dtype, NET)
    expect_loss(ctx, loss, want_loss, f"the loss {what}", tol=tol, mistakes=loss_mistakes)
    ctx.expect_type(grads, dict, f"grads {what}")
    if set(grads) != set(params):
        ctx.fail(f"grads {what}: expected one gradient per parameter, keys {list(params)}; found {sorted(grads)}.")
    top = max(g.abs().max().item() for g in want_grads.values())
    for k in params:
        if want_grads[k].abs().max().item() <= 1e-9 * top:
            # e.g. the bias of a convolution followed by a batch normalisation: the normalisation removes it, so its
            # gradient is zero up to rounding, and only an absolute comparison means anything
            expect_layout(ctx, grads[k], tuple(params[k].shape), dtype, f"grads['{k}'] {what}")
            ctx.expect(bool(grads[k].detach().abs().max().item() <= tol * top),
                       f"grads['{k}'] {what}: expected zeros (up to rounding): the batch normalisation after the "
                       f"layer removes any constant shift, so {k} has no effect on the loss; found values up to "
                       f"{grads[k].detach().abs().max().item():.3g}.")
            continue
        ctx.expect_tensor(grads[k], want_grads[k].to(dtype), f"grads['{k}'] {what}", bound=tol,
                          n=X.shape[0], mistakes=grad_mistakes.get(k),
                          hint=f"grads['{k}'] has the shape of params['{k}'], {fmt_shape(params[k].shape)}.")


# ---- the oracle rebuilt from the student's blocks ------------------------------------------------
# A network as a program of steps: ("linear", W, b), ("relu",), ("dropout", p), ("sbn", gamma, beta, i) run the
# student's layer in the sandbox; ("conv", W, b, pad) and ("pool",) are the given FastConv / FastMaxPool, computed
# here (they are PyTorch's own conv2d and max_pool2d). Softmax and the regulariser are computed here too.


def two_layer_program() -> list[tuple]:
    return [("linear", "W1", "b1"), ("relu",), ("linear", "W2", "b2")]


def fc_program(L: int, dropout: float = 0.0) -> list[tuple]:
    steps: list[tuple] = []
    for i in range(1, L):
        steps += [("linear", f"W{i}", f"b{i}"), ("relu",)] + ([("dropout", dropout)] if dropout else [])
    return steps + [("linear", f"W{L}", f"b{L}")]


def three_layer_program(filter_size: int) -> list[tuple]:
    return [("conv", "W1", "b1", (filter_size - 1) // 2), ("relu",), ("pool",), ("linear", "W2", "b2"), ("relu",),
            ("linear", "W3", "b3")]


def deep_program(L: int, max_pools, batchnorm: bool) -> list[tuple]:
    steps: list[tuple] = []
    for i in range(1, L):
        steps.append(("conv", f"W{i}", f"b{i}", 1))
        if batchnorm:
            steps.append(("sbn", f"gamma{i}", f"beta{i}", i - 1))
        steps.append(("relu",))
        if i - 1 in max_pools:
            steps.append(("pool",))
    return steps + [("linear", f"W{L}", f"b{L}")]


STEP_LAYER = {"linear": ("Linear", FC_MODULE), "relu": ("ReLU", FC_MODULE), "dropout": ("Dropout", FC_MODULE),
              "sbn": ("SpatialBatchNorm", CONV_MODULE)}


def block_call(ctx, layer: str, method: str, *args, return_args: bool = False):
    """The student's `layer.method(*args)` in the sandbox; ChainBroken when it raises (its forbidden calls are its
    own checks' business)."""
    name, module = STEP_LAYER[layer]
    o = attempt(ctx, lambda: ctx.invoke(ctx.ref(f"{name}.{method}", module=module), *args, return_args=return_args))
    if o.error is not None:
        raise ChainBroken(f"{name}.{method} raised {o.error.type_name or o.error.kind}")
    return o.reply


def _tensors(value: Any, n: int, what: str) -> tuple:
    items = (value,) if n == 1 else value
    if not isinstance(items, (tuple, list)) or len(items) != n or \
            not all(isinstance(t, torch.Tensor) for t in items):
        raise ChainBroken(f"{what} returned {describe_value(value)}")
    return tuple(items)


def run_chain(ctx, program: list[tuple], params: dict, X, y, reg: float, dtype, train: bool = True) -> dict:
    """What the network gives when built from the student's own blocks: {"loss", "grads", "scores"}, each gradient
    and the scores with the (dtype, device) of the step that made them."""
    device = ctx.device
    bn: dict[int, dict] = {}

    def cast(t):
        return t.detach().to(device, dtype)

    def forward(mode: str):
        h, caches = X, []
        for step in program:
            kind = step[0]
            if kind == "linear":
                reply = block_call(ctx, kind, "forward", h, params[step[1]], params[step[2]])
                h, cache = _pair(reply.value, "Linear.forward")
            elif kind == "relu":
                h, cache = _pair(block_call(ctx, kind, "forward", h).value, "ReLU.forward")
            elif kind == "dropout":
                h, cache = _pair(block_call(ctx, kind, "forward", h, {"mode": mode, "p": step[1], "seed": 123}).value,
                                 "Dropout.forward")
            elif kind == "sbn":
                param = dict(bn.get(step[3], {}), mode=mode)
                reply = block_call(ctx, kind, "forward", h, params[step[1]], params[step[2]], param, return_args=True)
                h, cache = _pair(reply.value, "SpatialBatchNorm.forward")
                after = reply.args[3] if reply.args and len(reply.args) > 3 else None
                if mode == "train":
                    bn[step[3]] = after if isinstance(after, dict) else {}
            elif kind == "conv":
                cache = (_cpu64(h), _cpu64(params[step[1]]), _cpu64(params[step[2]]), step[3])
                h = cast(F.conv2d(*cache[:3], padding=step[3]))
            else:
                cache = _cpu64(h)
                h = cast(F.max_pool2d(cache, 2, 2))
            caches.append(cache)
        return h, caches

    out: dict = {"grads": {}, "meta": {}}
    if train:
        s, caches = forward("train")
        if tuple(s.shape) != (X.shape[0], params[program[-1][1]].shape[1]):
            raise ChainBroken(f"the scores have shape {fmt_shape(s.shape)}")
        loss, (ds,) = with_grads(lambda a: F.cross_entropy(a, y.cpu()), [s])
        dh, grads, meta = cast(ds), out["grads"], out["meta"]
        for step, cache in zip(reversed(program), reversed(caches)):
            kind = step[0]
            if kind in ("linear", "sbn"):
                name = "Linear" if kind == "linear" else "SpatialBatchNorm"
                got = _tensors(block_call(ctx, kind, "backward", dh, cache).value, 3, f"{name}.backward")
                dh = got[0]
                for key, g in zip(step[1:3], got[1:]):
                    grads[key], meta[key] = _cpu64(g), (g.dtype, g.device.type, tuple(g.shape))
            elif kind in ("relu", "dropout"):
                (dh,) = _tensors(block_call(ctx, kind, "backward", dh, cache).value, 1,
                                 f"{STEP_LAYER[kind][0]}.backward")
            elif kind == "conv":
                x64, w64, b64, pad = cache
                _, (dx, dw, db) = with_grads(lambda a, w, c: F.conv2d(a, w, c, padding=pad), [x64, w64, b64], dh)
                for key, g in zip(step[1:3], (dw, db)):
                    grads[key], meta[key] = g, (dtype, device.type, tuple(g.shape))
                dh = cast(dx)
            else:
                _, (dx,) = with_grads(lambda a: F.max_pool2d(a, 2, 2), [cache], dh)
                dh = cast(dx)
        for k, v in params.items():
            if k.startswith("W"):
                loss = loss + reg * (_cpu64(v) ** 2).sum()
                grads[k] = grads[k] + 2 * reg * _cpu64(v)
        out["loss"] = float(loss)
    s, _ = forward("test")
    out["scores"], out["scores_meta"] = _cpu64(s), (s.dtype, s.device.type)
    return out


def _pair(value: Any, what: str) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not isinstance(value[0], torch.Tensor):
        raise ChainBroken(f"{what} returned {describe_value(value)}, not (out, cache)")
    return value[0], value[1]


def _differs(got: Any, want: torch.Tensor, meta: tuple, tol: float, floor: float = 0.0) -> bool:
    """`got` is not the tensor `want` (made in dtype, device meta[:2]) within tol (relative to at least `floor`)."""
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(want.shape) or (got.dtype, got.device.type) != \
            tuple(meta[:2]):
        return True
    g = _cpu64(got)
    scale = max((g.abs() + want.abs()).max().item() if g.numel() else 0.0, floor, 1e-30)
    return not (g - want).abs().max().item() / scale <= tol if g.numel() else False


def compare_chain(chain: dict, run_train: Outcome | None, run_test: Outcome | None, dtype) -> str | None:
    """None when the network's results equal the chain's; else what differs."""
    tol = bound(dtype, NET)
    if run_train is not None:
        value = run_train.reply.value
        if not isinstance(value, (tuple, list)) or len(value) != 2 or not isinstance(value[1], dict):
            return f"loss(X, y) returned {describe_value(value)}, not (loss, grads)"
        loss, grads = value
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            loss = loss.item()
        if isinstance(loss, bool) or not isinstance(loss, (int, float)) or \
                not abs(loss - chain["loss"]) <= tol * max(abs(loss) + abs(chain["loss"]), 1e-10):
            return f"its loss is {describe_value(loss)}; your blocks give {chain['loss']:.6g}"
        if set(grads) != set(chain["grads"]):
            return f"its grads have the keys {sorted(grads)}; expected {sorted(chain['grads'])}"
        top = max((g.abs().max().item() for g in chain["grads"].values() if g.numel()), default=0.0)
        for k, want in chain["grads"].items():
            if _differs(grads[k], want, chain["meta"][k], tol, floor=math.sqrt(tol) * top):
                return f"its grads['{k}'] differs from the one your blocks give"
    if run_test is not None and _differs(run_test.reply.value, chain["scores"], chain["scores_meta"], tol):
        return "the scores of loss(X) differ from the ones your blocks give"
    return None


def build(ctx, cls: str, **kwargs) -> Handle:
    model = ctx.call(cls, **kwargs)
    if not isinstance(model, Handle) or model.type != cls:
        ctx.fail(f"{cls}(...) should build a {cls} object; found {describe_value(model)}.")
    return model


# ---- Linear and ReLU ------------------------------------------------------------------------------


def linear_problem(ctx, N, shape, M, dtype):
    D = math.prod(shape)
    return (ctx.randn(N, *shape, dtype=dtype), ctx.randn(D, M, dtype=dtype, scale=0.5),
            ctx.randn(M, dtype=dtype))


def linear_oracle(x, w, b):
    return F.linear(x.reshape(x.shape[0], -1), w.t(), b)


@check("a3.fully_connected.linear_forward", function="Linear", N=3, shape=(2, 3, 4), M=5, dtype=torch.float64)
def linear_forward(ctx, N, shape, M, dtype):
    """Linear.forward: out = x (each example flattened) @ w + b"""
    x, w, b = linear_problem(ctx, N, shape, M, dtype)
    reply = ctx.invoke("Linear.forward", x, w, b, return_args=True)
    expect_inputs_unchanged(ctx, "Linear.forward", ["x", "w", "b"], [x, w, b], reply.args)
    out, _ = ctx.expect_items(reply.value, 2, "the result of Linear.forward (out, cache)")
    X, W, B = _cpu64(x), _cpu64(w), _cpu64(b)
    what = f"x {fmt_shape(x.shape)}, w {fmt_shape(w.shape)}, {_name(dtype)}"
    ctx.expect_tensor(out, linear_oracle(X, W, B).to(dtype), f"out ({what})", bound=bound(dtype, FWD),
                      mistakes={"the bias b is not added": X.reshape(N, -1) @ W},
                      hint=f"out is (N, M) = {fmt_shape((N, M))}: flatten each example of x into a row of "
                           f"D = {w.shape[0]} numbers first.")


def judge_linear_backward(ctx, N, shape, M, dtype):
    x, w, b = linear_problem(ctx, N, shape, M, dtype)
    _, cache = ctx.expect_items(ctx.call("Linear.forward", x, w, b), 2, "the result of Linear.forward (out, cache)")
    dout = ctx.randn(N, M, dtype=dtype)
    reply = ctx.invoke("Linear.backward", dout, cache, return_args=True)
    expect_inputs_unchanged(ctx, "Linear.backward", ["dout"], [dout], reply.args)
    _, (dx, dw, db) = with_grads(linear_oracle, [x, w, b], dout)
    what = f"Linear.backward, x {fmt_shape(x.shape)}, w {fmt_shape(w.shape)}, {_name(dtype)}"
    expect_grads(ctx, reply.value, [("dx", dx), ("dw", dw), ("db", db)], what, dtype, bound(dtype, BWD), n=N,
                 hints={"dx": f"dx has the shape of x, {fmt_shape(x.shape)}: reshape dout @ w.T back to it.",
                        "dw": f"dw has the shape of w, {fmt_shape(w.shape)}: (flattened x).T @ dout.",
                        "db": f"db has the shape of b, {fmt_shape(b.shape)}: sum dout over the examples."})


@check("a3.fully_connected.linear_backward", function="Linear", N=4, shape=(3, 5), M=6, dtype=torch.float64)
def linear_backward(ctx, **kw):
    """Linear.backward: dx, dw, db match autograd"""
    judge_linear_backward(ctx, **kw)


def relu_input(ctx, shape, dtype, zeros: bool):
    x = ctx.randn(*shape, dtype=dtype)
    if zeros:   # exact zeros: ReLU's gradient there is 0 (the docstring: zero where x <= 0)
        x = torch.where(ctx.rand(*shape) < 0.2, torch.zeros_like(x), x)
    return x


@check("a3.fully_connected.relu_forward", function="ReLU", shape=(5, 7), dtype=torch.float64, zeros=False)
def relu_forward(ctx, shape, dtype, zeros):
    """ReLU.forward: max(0, x), x unchanged"""
    x = relu_input(ctx, shape, dtype, zeros)
    reply = ctx.invoke("ReLU.forward", x, return_args=True)
    expect_inputs_unchanged(ctx, "ReLU.forward", ["x"], [x], reply.args)
    out, _ = ctx.expect_items(reply.value, 2, "the result of ReLU.forward (out, cache)")
    X = _cpu64(x)
    ctx.expect_tensor(out, F.relu(X).to(dtype), f"out (x {fmt_shape(x.shape)}, {_name(dtype)})",
                      bound=bound(dtype, FWD), mistakes={"out is x: the negative entries must become 0": X,
                                                         "the positive entries are zeroed, not the negative ones":
                                                         X.clamp(max=0)})


@check("a3.fully_connected.relu_backward", function="ReLU", shape=(4, 3, 5), dtype=torch.float64, zeros=False)
def relu_backward(ctx, shape, dtype, zeros):
    """ReLU.backward: the gradient passes where x > 0 only"""
    x = relu_input(ctx, shape, dtype, zeros)
    _, cache = ctx.expect_items(ctx.call("ReLU.forward", x), 2, "the result of ReLU.forward (out, cache)")
    dout = ctx.randn(*shape, dtype=dtype)
    got = ctx.call("ReLU.backward", dout, cache)
    _, (dx,) = with_grads(F.relu, [x], dout)
    D, X = _cpu64(dout), _cpu64(x)
    expect_grads(ctx, got, [("dx", dx)], f"ReLU.backward, x {fmt_shape(x.shape)}, {_name(dtype)}", dtype,
                 bound(dtype, BWD), mistakes={"dx": {
                     "dx is dout everywhere: zero it where x <= 0": D,
                     "dx is dout * relu(x); ReLU's derivative is 1 where x > 0 and 0 elsewhere": D * F.relu(X),
                     "the gradient passes where x >= 0; at x = 0 it must be 0 (zero where x <= 0)": D * (X >= 0)}})


# ---- Dropout --------------------------------------------------------------------------------------


@check("a3.fully_connected.dropout_test_mode", function="Dropout", shape=(20, 30), p=0.6, dtype=torch.float64)
def dropout_test_mode(ctx, shape, p, dtype):
    """Dropout in test mode is the identity (forward and backward)"""
    x = ctx.randn(*shape, dtype=dtype)
    reply = ctx.invoke("Dropout.forward", x, {"mode": "test", "p": p}, return_args=True)
    expect_inputs_unchanged(ctx, "Dropout.forward", ["x"], [x], reply.args)
    out, cache = ctx.expect_items(reply.value, 2, "the result of Dropout.forward (out, cache)")
    ctx.expect_tensor(out, x, f"out in test mode (p={p:g})", bound=0.0,
                      mistakes={f"test mode scales x by 1 - p = {1 - p:g}; inverted dropout does nothing at test time":
                                _cpu64(x) * (1 - p)})
    dout = ctx.randn(*shape, dtype=dtype)
    ctx.expect_tensor(ctx.call("Dropout.backward", dout, cache), dout, "dx in test mode", bound=0.0)


def dropout_stats(ctx, p: float, dtype: torch.dtype, shape=(500, 400), seed=None):
    """Run Dropout.forward in train mode on positive x; (x, out, cache) after the layout checks."""
    x = 1 + side_randn(ctx, *shape, dtype=dtype).abs()   # positive: a zero output is a dropped unit
    param = {"mode": "train", "p": p} if seed is None else {"mode": "train", "p": p, "seed": seed}
    reply = ctx.invoke("Dropout.forward", x, param, return_args=True)
    expect_inputs_unchanged(ctx, "Dropout.forward", ["x"], [x], reply.args)
    out, cache = ctx.expect_items(reply.value, 2, "the result of Dropout.forward (out, cache)")
    expect_layout(ctx, out, tuple(x.shape), dtype, f"out in train mode (p={p:g})")
    return x, out, cache


@check("a3.fully_connected.dropout_train", function="Dropout", p=0.3, dtype=torch.float64)
def dropout_train(ctx, p, dtype):
    """Dropout in train mode drops a fraction p, scales the rest by 1/(1-p), keeps the mean"""
    x, out, _ = dropout_stats(ctx, p, dtype)
    X, O = _cpu64(x), _cpu64(out)
    n = X.numel()
    dropped = (O == 0).double().mean().item()
    tol = 6 * math.sqrt(p * (1 - p) / n) + 1e-3 if 0 < p < 1 else 1e-12
    if abs(dropped - p) > tol:
        why = (" Likely bug: p is taken as the probability of KEEPING a unit; in this course p is the probability of "
               "dropping one (keep each with probability 1 - p)." if abs(dropped - (1 - p)) <= tol else "")
        ctx.fail(f"with p={p:g} a fraction {dropped:.4f} of the {n} units was dropped (zero); expected about {p:g}."
                 + why)
    kept = O != 0
    if kept.any():
        ratio = (O[kept] / X[kept])
        want = 1 / (1 - p)
        if rel_error(ratio, torch.full_like(ratio, want)) > bound(dtype, FWD):
            seen = ratio.median().item()
            known = {f"the kept units are scaled by 1/p = {1 / p:.4g}; inverted dropout scales them by "
                     f"1/(1 - p) = {want:.4g}": 1 / p,
                     f"the kept units are multiplied by p = {p:g}; inverted dropout scales them by 1/(1 - p)": p,
                     f"the kept units are multiplied by 1 - p = {1 - p:g}; inverted dropout divides by it": 1 - p,
                     "the kept units are not scaled; inverted dropout scales them by 1/(1 - p) so that the expected "
                     "output equals the input": 1.0} if p > 0 else {}
            why = next((d for d, v in known.items() if abs(seen / v - 1) < 1e-6), None)
            ctx.fail(f"with p={p:g} the kept units should equal x / (1 - p) = {want:.4g} x; found out / x = "
                     f"{seen:.4g} (median over the kept units)." + (f" Likely bug: {why}." if why else ""))
    m_in, m_out = X.mean().item(), O.mean().item()
    if abs(m_out / m_in - 1) > 0.02:
        ctx.fail(f"in train mode the mean of out ({m_out:.4f}) should be close to the mean of x ({m_in:.4f}): "
                 "drop with probability p and scale what is kept by 1/(1 - p).")
    ctx.note(f"p={p:g}: dropped {100 * dropped:.2f}% of {n} units, mean {m_in:.4f} -> {m_out:.4f}")


def judge_dropout_backward(ctx, p, dtype, shape):
    x, out, cache = dropout_stats(ctx, p, dtype, shape=shape, seed=123)
    dout = ctx.randn(*shape, dtype=dtype)
    got = ctx.call("Dropout.backward", dout, cache)
    X, O, D = _cpu64(x), _cpu64(out), _cpu64(dout)
    scale_kept = O / X        # 1/(1 - p) where kept, 0 where dropped: the layer's own mask
    expect_grads(ctx, got, [("dx", D * scale_kept)], f"Dropout.backward, train mode, p={p:g}", dtype,
                 bound(dtype, BWD), mistakes={"dx": {
                     "dx is dout: in train mode the gradient flows only through the kept units": D,
                     "dx is not scaled: the kept units' gradient is dout / (1 - p), as in forward": D * (O != 0),
                     "dx is scaled by p instead of 1/(1 - p)": D * (O != 0) * p}})


@check("a3.fully_connected.dropout_backward", function="Dropout", p=0.4, dtype=torch.float64, shape=(30, 40))
def dropout_backward(ctx, p, dtype, shape):
    """Dropout.backward: the gradient flows only through the kept units, scaled by 1/(1-p)"""
    judge_dropout_backward(ctx, p, dtype, shape)


@check("a3.fully_connected.dropout_seed", function="Dropout", p=0.5, dtype=torch.float64, shape=(40, 50))
def dropout_seed(ctx, p, dtype, shape):
    """Dropout: a seed in dropout_param repeats the mask; another seed draws another"""
    x = 1 + ctx.randn(*shape, dtype=dtype).abs()
    outs = []
    for seed in (17, 17, 18):
        out, _ = ctx.expect_items(ctx.call("Dropout.forward", x, {"mode": "train", "p": p, "seed": seed}), 2,
                              "the result of Dropout.forward (out, cache)")
        expect_layout(ctx, out, tuple(x.shape), dtype, "out in train mode")
        outs.append(out)
    if not same_tensor(outs[0], outs[1]):
        ctx.fail("two calls with the same dropout_param['seed'] (17) dropped different units; when a seed is given, "
                 "seed the random number generator with it (torch.manual_seed) before drawing the mask.")
    if same_tensor(outs[0], outs[2]):
        ctx.fail("the seeds 17 and 18 dropped the same units: draw the mask after seeding with dropout_param['seed'].")
    out, _ = ctx.expect_items(ctx.call("Dropout.forward", x, {"mode": "train", "p": 0.0}), 2,
                          "the result of Dropout.forward (out, cache)")
    ctx.expect_tensor(out, x, "out in train mode with p=0 (nothing is dropped)", bound=bound(dtype, FWD),
                      mistakes={"everything is dropped with p=0: the kept units are multiplied by p; inverted dropout "
                                "keeps each unit with probability 1 - p and scales it by 1/(1 - p)": 0 * _cpu64(x)})


# ---- TwoLayerNet and FullyConnectedNet ----------------------------------------------------------


def two_layer_shapes(D, H, C):
    return {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}


@check("a3.fully_connected.two_layer_init", function="TwoLayerNet", D=200, H=150, C=7, weight_scale=0.05,
       dtype=torch.float64)
def two_layer_init(ctx, D, H, C, weight_scale, dtype):
    """TwoLayerNet: params W1, b1, W2, b2 with weights N(0, weight_scale^2), zero biases"""
    kwargs = {} if dtype is None else {"dtype": dtype}
    model = build(ctx, "TwoLayerNet", input_dim=D, hidden_dim=H, num_classes=C, weight_scale=weight_scale,
                  device=str(ctx.device), **kwargs)
    dtype = dtype or torch.float32
    params = ctx.getattr(model, "params")
    what = f"TwoLayerNet(input_dim={D}, hidden_dim={H}, num_classes={C}, weight_scale={weight_scale:g}, {_name(dtype)})"
    expect_params(ctx, params, two_layer_shapes(D, H, C), dtype, what,
                  hint="W1 (input_dim, hidden_dim), b1 (hidden_dim,), W2 (hidden_dim, num_classes), b2 (num_classes,), "
                       "in the dtype asked for (float32 by default), on the device asked for.")
    for k in ("W1", "W2"):
        expect_std(ctx, params[k], weight_scale, f"{what}.params['{k}']",
                   {"the weights are not multiplied by weight_scale": 1.0})
    for k in ("b1", "b2"):
        expect_zeros(ctx, params[k], f"{what}.params['{k}']")


@check("a3.fully_connected.two_layer_loss", function="TwoLayerNet", N=7, shape=(3, 4, 4), H=10, C=5, reg=0.1,
       dtype=torch.float64)
def two_layer_loss(ctx, N, shape, H, C, reg, dtype):
    """TwoLayerNet.loss: scores, loss and every gradient match autograd (L2 on the weights only)"""
    D = math.prod(shape)
    model = build(ctx, "TwoLayerNet", input_dim=D, hidden_dim=H, num_classes=C, weight_scale=0.1, reg=reg,
                  dtype=dtype, device=str(ctx.device))
    shapes = two_layer_shapes(D, H, C)
    expect_params(ctx, ctx.getattr(model, "params"), shapes, dtype, "TwoLayerNet")
    params = random_params(ctx, shapes, dtype, 0.4, 0.4)
    set_params(ctx, model, params)
    X, y = ctx.randn(N, *shape, dtype=dtype), ctx.randint(0, C, (N,))
    judge_net_loss(ctx, model, "TwoLayerNet", params, X, y, reg, two_layer_scores, dtype,
                   f"(N={N}, D={D}, H={H}, C={C}, reg={reg:g}, {_name(dtype)})", blocks=["Linear", "ReLU"],
                   program=two_layer_program())


def fc_shapes(hidden_dims, D, C):
    dims = [D, *hidden_dims, C]
    out = {}
    for i in range(1, len(dims)):
        out[f"W{i}"], out[f"b{i}"] = (dims[i - 1], dims[i]), (dims[i],)
    return out


@check("a3.fully_connected.fc_init", function="FullyConnectedNet", hidden_dims=(60, 50, 40), D=120, C=9,
       weight_scale=0.05, dtype=torch.float64)
def fc_init(ctx, hidden_dims, D, C, weight_scale, dtype):
    """FullyConnectedNet: params W1..WL, b1..bL chained through hidden_dims; N(0, weight_scale^2) weights"""
    kwargs = {} if dtype is None else {"dtype": dtype}
    model = build(ctx, "FullyConnectedNet", hidden_dims=list(hidden_dims), input_dim=D, num_classes=C,
                  weight_scale=weight_scale, device=str(ctx.device), **kwargs)
    dtype = dtype or torch.float32
    params = ctx.getattr(model, "params")
    what = f"FullyConnectedNet({list(hidden_dims)}, input_dim={D}, num_classes={C}, {_name(dtype)})"
    shapes = fc_shapes(hidden_dims, D, C)
    expect_params(ctx, params, shapes, dtype, what,
                  hint="layer i maps the previous layer's output (the input for i = 1) to hidden_dims[i - 1] "
                       "(num_classes for the last layer).")
    for k in shapes:
        if k.startswith("W"):
            expect_std(ctx, params[k], weight_scale, f"{what}.params['{k}']",
                       {"the weights are not multiplied by weight_scale": 1.0})
        else:
            expect_zeros(ctx, params[k], f"{what}.params['{k}']")


def judge_fc_loss(ctx, N, hidden_dims, D, C, reg, dtype, dropout=0.0):
    kwargs = {"dropout": dropout, "seed": 123} if dropout else {}
    model = build(ctx, "FullyConnectedNet", hidden_dims=list(hidden_dims), input_dim=D, num_classes=C, reg=reg,
                  weight_scale=0.1, dtype=dtype, device=str(ctx.device), **kwargs)
    shapes = fc_shapes(hidden_dims, D, C)
    expect_params(ctx, ctx.getattr(model, "params"), shapes, dtype, "FullyConnectedNet")
    params = random_params(ctx, shapes, dtype, 0.5, 0.3)
    set_params(ctx, model, params)
    X, y = ctx.randn(N, D, dtype=dtype), ctx.randint(0, C, (N,))
    what = f"(hidden_dims={list(hidden_dims)}, reg={reg:g}, dropout={dropout:g}, {_name(dtype)})"
    blocks, L = ["Linear", "ReLU"], len(hidden_dims) + 1
    if not dropout:
        judge_net_loss(ctx, model, "FullyConnectedNet", params, X, y, reg, fc_scores, dtype, what, blocks=blocks,
                       program=fc_program(L))
        return
    blocks.append("Dropout")
    # The masks: your own Dropout, seeded as the net seeds it (every Dropout.forward call reseeds with seed=123, so
    # the mask of layer i depends only on its shape (N, hidden_dims[i])).
    masks = []
    try:
        for h in hidden_dims:
            ones = torch.ones(N, h, dtype=dtype, device=ctx.device)
            out, _ = ctx.expect_items(ctx.call("Dropout.forward", ones, {"mode": "train", "p": dropout,
                                                                         "seed": 123}), 2, "")
            expect_layout(ctx, out, (N, h), dtype, "")
            masks.append(_cpu64(out))
    except CheckFailed:
        masks = None
    if masks is None or probe(ctx, ["Dropout"]):
        ctx.note("FullyConnectedNet with dropout was judged in test mode only: your Dropout is wrong (see its checks), "
                 "so the masks the net should draw are not known.")
        judge_net_loss(ctx, model, "FullyConnectedNet", params, X, y, reg, fc_scores, dtype,
                       f"{what} (test mode: no dropout)", blocks=blocks, program=fc_program(L, dropout), train=False)
        return

    def train_forward(p, X_):
        return fc_scores(p, X_, masks)

    def test_mistakes(q, Xc):
        return {"dropout is applied in test mode too (loss(X) runs the net in test mode: no dropout)":
                fc_scores(q, Xc, masks)}

    judge_net_loss(ctx, model, "FullyConnectedNet", params, X, y, reg, train_forward, dtype, what,
                   test_forward=fc_scores, test_mistakes=test_mistakes, blocks=blocks, program=fc_program(L, dropout))


@check("a3.fully_connected.fc_loss", function="FullyConnectedNet", N=6, hidden_dims=(7, 5), D=8, C=4, reg=0.05,
       dtype=torch.float64)
def fc_loss(ctx, **kw):
    """FullyConnectedNet.loss: scores, loss and every gradient match autograd"""
    judge_fc_loss(ctx, **kw)


@check("a3.fully_connected.fc_loss_dropout", function="FullyConnectedNet", N=6, hidden_dims=(7, 5), D=8, C=3,
       reg=0.1, dtype=torch.float64, dropout=0.3)
def fc_loss_dropout(ctx, **kw):
    """FullyConnectedNet with dropout: a dropout after each hidden ReLU in training, none at test time"""
    judge_fc_loss(ctx, **kw)


# ---- update rules -------------------------------------------------------------------------------

RULES = {   # the defaults of the docstrings, and the state each rule keeps in its config
    "sgd_momentum": ({"learning_rate": 1e-2, "momentum": 0.9}, ("velocity",)),
    "rmsprop": ({"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}, ("cache",)),
    "adam": ({"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}, ("m", "v", "t")),
}


def torch_steps(rule: str, w0: torch.Tensor, dws: list[torch.Tensor], hyper: dict) -> list[tuple]:
    """(next_w, state in the course's names) after each step, from torch.optim (float64)."""
    p = _cpu64(w0).clone()
    if rule == "sgd_momentum":
        opt = torch.optim.SGD([p], lr=hyper["learning_rate"], momentum=hyper["momentum"])
    elif rule == "rmsprop":
        opt = torch.optim.RMSprop([p], lr=hyper["learning_rate"], alpha=hyper["decay_rate"], eps=hyper["epsilon"])
    else:
        opt = torch.optim.Adam([p], lr=hyper["learning_rate"], betas=(hyper["beta1"], hyper["beta2"]),
                               eps=hyper["epsilon"])
    out = []
    for dw in dws:
        p.grad = _cpu64(dw)
        opt.step()
        s = opt.state[p]
        if rule == "sgd_momentum":   # torch keeps buf = momentum * buf + dw and steps -lr * buf: v = -lr * buf
            state = {"velocity": -hyper["learning_rate"] * s["momentum_buffer"]}
        elif rule == "rmsprop":
            state = {"cache": s["square_avg"].clone()}
        else:
            state = {"m": s["exp_avg"].clone(), "v": s["exp_avg_sq"].clone(), "t": int(s["step"])}
        out.append((p.detach().clone(), state))
    return out


def rule_mistakes(rule: str, w0, dws, hyper: dict) -> dict[str, list[torch.Tensor]]:
    """next_w after each step for the rule's well-known mistakes (float64)."""
    lr = hyper["learning_rate"]
    w, seqs = _cpu64(w0), {}
    g = [_cpu64(d) for d in dws]

    def run(step):
        cur, state, outs = w, {}, []
        for t, d in enumerate(g, start=1):
            cur = step(cur, d, state, t)
            outs.append(cur)
        return outs

    if rule == "sgd_momentum":
        mu = hyper["momentum"]

        def old_velocity(cur, d, s, t):
            v_old = s.get("v", torch.zeros_like(cur))
            s["v"] = mu * v_old - lr * d
            return cur + v_old
        seqs["w is moved by the previous velocity: update v first, then next_w = w + v"] = run(old_velocity)
        seqs["the momentum is ignored (plain SGD)"] = run(lambda cur, d, s, t: cur - lr * d)
    elif rule == "rmsprop":
        rho, eps = hyper["decay_rate"], hyper["epsilon"]

        def eps_inside(cur, d, s, t):
            s["c"] = rho * s.get("c", torch.zeros_like(cur)) + (1 - rho) * d * d
            return cur - lr * d / torch.sqrt(s["c"] + eps)

        def fresh(cur, d, s, t):
            return cur - lr * d / (torch.sqrt((1 - rho) * d * d) + eps)

        def adagrad(cur, d, s, t):
            s["c"] = s.get("c", torch.zeros_like(cur)) + d * d
            return cur - lr * d / (torch.sqrt(s["c"]) + eps)
        seqs["epsilon is added inside the square root; add it to sqrt(cache)"] = run(eps_inside)
        seqs["the cache is not kept between steps: store it in config['cache']"] = run(fresh)
        seqs["the cache is not decayed (cache += dw * dw): cache = decay_rate * cache + (1 - decay_rate) * dw * dw"] = \
            run(adagrad)
    else:
        b1, b2, eps = hyper["beta1"], hyper["beta2"], hyper["epsilon"]

        def adam_like(correct: bool, carry: bool):
            def step(cur, d, s, t):
                m = b1 * (s.get("m", 0 * d) if carry else 0 * d) + (1 - b1) * d
                v = b2 * (s.get("v", 0 * d) if carry else 0 * d) + (1 - b2) * d * d
                s["m"], s["v"] = m, v
                k = t if carry else 1
                if correct:
                    m, v = m / (1 - b1 ** k), v / (1 - b2 ** k)
                return cur - lr * m / (v.sqrt() + eps)
            return step
        seqs["no bias correction: divide m by (1 - beta1 ** t) and v by (1 - beta2 ** t)"] = run(adam_like(False, True))
        seqs["m, v and t are not kept between steps: store them back in config"] = run(adam_like(True, False))
    return seqs


def judge_rule(ctx, rule: str, hyper: dict | None, steps: int, shape: tuple, dtype: torch.dtype) -> None:
    defaults, state_keys = RULES[rule]
    full = dict(defaults, **(hyper or {}))
    w = ctx.randn(*shape, dtype=dtype)
    dws = [ctx.randn(*shape, dtype=dtype) for _ in range(steps)]
    want = torch_steps(rule, w, dws, full)
    alts = rule_mistakes(rule, w, dws, full)
    tol = bound(dtype, 1e-8)
    config = None if hyper is None else dict(hyper)
    setting = "config=None (the defaults)" if hyper is None else \
        "config " + ", ".join(f"{k}={v:g}" for k, v in hyper.items())
    cur = w
    for k, dw in enumerate(dws):
        args = (cur, dw) if config is None else (cur, dw, config)
        reply = ctx.invoke(rule, *args, return_args=True)
        expect_inputs_unchanged(ctx, rule, ["w", "dw"], [cur, dw], reply.args)
        next_w, config = ctx.expect_items(reply.value, 2, f"the result of {rule} (next_w, config)")
        what = f"step {k + 1} of {steps} with {setting}" + (", passing back the config returned" if k else "")
        expect_layout(ctx, next_w, tuple(shape), dtype, f"next_w ({what})")
        if k == 0 and rule == "adam" and not torch.isfinite(next_w.cpu()).all():
            ctx.fail(f"next_w ({what}) holds nan or inf. Likely bug: t is incremented after the bias correction; "
                     "increment it first, so the first step uses t = 1 (1 - beta1 ** 0 = 0 divides by zero).")
        step_got, step_want = _cpu64(next_w) - _cpu64(cur), want[k][0] - _cpu64(cur)
        mistakes = {d: seq[k] - _cpu64(cur) for d, seq in alts.items()}
        ctx.expect_tensor(step_got, step_want, f"the step next_w - w ({what})", bound=tol, device=None,
                          mistakes=mistakes)
        ctx.expect_type(config, dict, f"the config returned by {rule} ({what})")
        for key, value in defaults.items():
            if hyper is None or key not in hyper:
                got = config.get(key)
                ctx.expect(isinstance(got, (int, float)) and not isinstance(got, bool) and abs(got - value) <= 1e-15,
                           f"config['{key}'] ({what}): expected the default {value:g}, found {describe_value(got)}.")
        for key in state_keys:
            ctx.expect(key in config, f"config ({what}): expected config['{key}'], the rule's state, to be stored "
                                      f"for the next step; found the keys {sorted(config)}.")
            if key == "t":
                ctx.expect(config["t"] == want[k][1]["t"] and not isinstance(config["t"], bool),
                           f"config['t'] ({what}): expected {want[k][1]['t']}, the number of steps taken so far; "
                           f"found {describe_value(config['t'])}.")
            else:
                ctx.expect_tensor(config[key], want[k][1][key].to(dtype), f"config['{key}'] ({what})", bound=tol)
        cur = next_w


@check("a3.fully_connected.sgd_momentum", function="sgd_momentum", steps=4, shape=(5, 4), dtype=torch.float64,
       hyper={"learning_rate": 0.05, "momentum": 0.8})
def sgd_momentum(ctx, steps, shape, dtype, hyper):
    """sgd_momentum: v = momentum * v - lr * dw; next_w = w + v, over several steps"""
    judge_rule(ctx, "sgd_momentum", hyper, steps, shape, dtype)


@check("a3.fully_connected.sgd_momentum_defaults", function="sgd_momentum", steps=2, shape=(7,), dtype=torch.float64)
def sgd_momentum_defaults(ctx, steps, shape, dtype):
    """sgd_momentum: config=None uses learning_rate 1e-2, momentum 0.9"""
    judge_rule(ctx, "sgd_momentum", None, steps, shape, dtype)


@check("a3.fully_connected.rmsprop", function="rmsprop", steps=4, shape=(3, 6), dtype=torch.float64,
       hyper={"learning_rate": 0.02, "decay_rate": 0.9, "epsilon": 1e-6})
def rmsprop(ctx, steps, shape, dtype, hyper):
    """rmsprop: the moving average of dw * dw scales each step, over several steps"""
    judge_rule(ctx, "rmsprop", hyper, steps, shape, dtype)


@check("a3.fully_connected.rmsprop_defaults", function="rmsprop", steps=2, shape=(7,), dtype=torch.float64)
def rmsprop_defaults(ctx, steps, shape, dtype):
    """rmsprop: config=None uses learning_rate 1e-2, decay_rate 0.99, epsilon 1e-8"""
    judge_rule(ctx, "rmsprop", None, steps, shape, dtype)


@check("a3.fully_connected.adam", function="adam", steps=5, shape=(4, 5), dtype=torch.float64,
       hyper={"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.95, "epsilon": 1e-6})
def adam(ctx, steps, shape, dtype, hyper):
    """adam: moving averages with bias correction (t counted from 1), over several steps"""
    judge_rule(ctx, "adam", hyper, steps, shape, dtype)


@check("a3.fully_connected.adam_defaults", function="adam", steps=2, shape=(7,), dtype=torch.float64)
def adam_defaults(ctx, steps, shape, dtype):
    """adam: config=None uses learning_rate 1e-3, beta1 0.9, beta2 0.999, epsilon 1e-8"""
    judge_rule(ctx, "adam", None, steps, shape, dtype)


# ---- training: solver instances and overfitting ---------------------------------------------------


KNOWN_RULES = ("sgd", *RULES)
OPTIM_KEYS = ("learning_rate", "momentum", "decay_rate", "epsilon", "beta1", "beta2")
BUILD_TIMEOUT = 60.0    # create_*_solver_instance builds a model and a Solver; the grader trains it
UNTRAINED = 30.0        # percent on held-out data above which the model handed over counts as trained already


def solver_choice(ctx, solver: Any, function: str, model_type: str, module: str) -> dict:
    """What the student chose, read from the Solver their function returned: the model (their class) and the
    hyperparameters. Nothing else of it is used: the grader trains with the kit's own Solver."""
    ctx.expect(isinstance(solver, Handle) and solver.type == "Solver",
               f"{function} should return a Solver (from dlcv); found {describe_value(solver)}.")
    model = ctx.getattr(solver, "model")
    ctx.expect(isinstance(model, Handle) and model.type == model_type,
               f"the Solver returned by {function} should train a {model_type}; its model is {describe_value(model)}.")
    origin = ctx.getattr(model, "__class__.__module__")
    ctx.expect(origin == module, f"the Solver returned by {function} should train your {model_type} (from {module}); "
                                 f"its model's class comes from {describe_value(origin)}.")
    try:
        rule = ctx.getattr(solver, "update_rule.__name__")
    except CheckFailed:
        rule = None
    ctx.expect(isinstance(rule, str) and rule in KNOWN_RULES,
               f"solver.update_rule: expected one of the update rules of fully_connected_networks.py "
               f"({', '.join(KNOWN_RULES)}); found {describe_value(rule)}. The grader trains your model with the "
               "rule of that name.")
    config = ctx.getattr(solver, "optim_config")
    ctx.expect(isinstance(config, dict) and all(
        isinstance(k, str) and k in OPTIM_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)
        and math.isfinite(v) for k, v in config.items()),
        f"solver.optim_config: expected a dict of the update rule's hyperparameters ({', '.join(OPTIM_KEYS)}) with "
        f"numbers as values; found {describe_value(config)}.")
    choice = {"model": model, "update_rule": rule, "optim_config": dict(config),
              "lr_decay": expect_float(ctx, ctx.getattr(solver, "lr_decay"), "solver.lr_decay")}
    for name in ("batch_size", "num_epochs"):
        v = ctx.getattr(solver, name)
        ctx.expect(isinstance(v, int) and not isinstance(v, bool) and v > 0,
                   f"solver.{name}: expected a positive int, found {describe_value(v)}.")
        choice[name] = v
    return choice


def judge_fit(forward: Callable, params: dict, data: dict, choice: dict, reg: float, epochs: int, seed: int,
              time_limit: float) -> dict:
    """The kit Solver's protocol run here with a correct model (autograd, torch.optim, float32 on the CPU): minibatches
    drawn without replacement, `epochs` epochs, the learning rate decayed after each; the final parameters."""
    X, y = data["X_train"].to(torch.float32), data["y_train"]
    gen = torch.Generator().manual_seed(seed)
    p = {k: v.detach().to("cpu", torch.float32).clone().requires_grad_(True) for k, v in params.items()}
    rule, batch = choice["update_rule"], choice["batch_size"]
    h = dict(RULES[rule][0] if rule in RULES else {"learning_rate": 1e-2}, **choice["optim_config"])
    if rule in ("sgd", "sgd_momentum"):
        opt = torch.optim.SGD(list(p.values()), lr=h["learning_rate"], momentum=h.get("momentum", 0.0))
    elif rule == "rmsprop":
        opt = torch.optim.RMSprop(list(p.values()), lr=h["learning_rate"], alpha=h["decay_rate"], eps=h["epsilon"])
    else:
        opt = torch.optim.Adam(list(p.values()), lr=h["learning_rate"], betas=(h["beta1"], h["beta2"]),
                               eps=h["epsilon"])
    per_epoch = max(X.shape[0] // batch, 1)
    start = time.perf_counter()
    with one_thread(), torch.enable_grad():
        for t in range(epochs * per_epoch):
            if time.perf_counter() - start > time_limit:
                break
            rows = torch.randperm(X.shape[0], generator=gen)[:batch]
            penalty = sum((v * v).sum() for k, v in p.items() if k.startswith("W"))
            loss = F.cross_entropy(forward(p, X[rows]), y[rows]) + reg * penalty
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (t + 1) % per_epoch == 0:
                for g in opt.param_groups:
                    g["lr"] *= choice["lr_decay"]
    return {k: v.detach() for k, v in p.items()}


def judge_solver(ctx, function: str, model_type: str, module: str, *, flatten: bool, prefix: str, blocks: list[str],
                 target_key: str, evaluate: Callable, describe: Callable, layout: Callable, advice: str) -> None:
    """Build the student's Solver, take its model and hyperparameters, train the model with the kit's own Solver
    under the grader's epoch cap and time limit, and judge the trained parameters on held-out data here."""
    data = course_data(ctx, flatten=flatten)
    hdata = ctx.put(on_device(ctx, data))
    solver = ctx.call(function, hdata, torch.float32, str(ctx.device), timeout=BUILD_TIMEOUT)
    choice = solver_choice(ctx, solver, function, model_type, module)
    model, rule = choice["model"], choice["update_rule"]
    start = ctx.getattr(model, "params")
    ctx.expect_type(start, dict, "solver.model.params")
    start = {k: _cpu64(v) for k, v in start.items() if isinstance(v, torch.Tensor)}
    X_test, y_test = _cpu64(data["X_test"]), data["y_test"]
    try:
        before = accuracy(evaluate(ctx, model, start, X_test[:500], False), y_test[:500])
    except (KeyError, RuntimeError, IndexError, TypeError, ValueError):
        before = 0.0       # judged after training
    ctx.expect(before <= UNTRAINED, f"the model of the Solver returned by {function} is trained already ({before:.0f}% "
                                    "on held-out data before training): return an untrained model; the grader "
                                    "trains it with the hyperparameters you chose.")
    epochs, cap, limit = choice["num_epochs"], scale(ctx, f"{prefix}_epochs"), scale(ctx, f"{prefix}_time_limit")
    run = min(epochs, cap) if cap is not None else epochs
    kwargs = {"update_rule": rule, "optim_config": choice["optim_config"], "lr_decay": choice["lr_decay"],
              "batch_size": choice["batch_size"], "num_epochs": run, "device": str(ctx.device), "verbose": False}
    samples = SCALE.get(ctx.run.dataset_name, SCALE["cifar10"]).get(f"{prefix}_train_samples")
    if samples is not None:
        kwargs["num_train_samples"] = samples
    kit = ctx.call(ctx.ref("Solver", module="dlcv.solver"), model, hdata, **kwargs)
    trained = attempt(ctx, lambda: ctx.invoke_method(kit, "train", time_limit=limit, timeout=1.5 * limit + 30))
    target = ctx.target(target_key)
    shown = f"{run} of its {epochs} epochs" if run < epochs else f"{epochs} epoch{'s' if epochs > 1 else ''}"
    setting = (f"{rule} with optim_config {choice['optim_config']}, lr_decay {choice['lr_decay']:g}, batch "
               f"{choice['batch_size']}, {shown}")
    try:
        if trained.failure is not None:
            raise trained.failure
        params = ctx.getattr(model, "params")
        ctx.expect_type(params, dict, "solver.model.params")
        layout(params)
        q = {k: _cpu64(v) for k, v in params.items() if isinstance(v, torch.Tensor)}
        try:
            with torch.no_grad():
                scores = torch.cat([evaluate(ctx, model, q, X_test[i:i + 100], True)
                                    for i in range(0, len(X_test), 100)])
        except (KeyError, RuntimeError, IndexError, TypeError, ValueError) as e:
            ctx.fail(f"the trained {model_type}'s params could not be evaluated as a {model_type}: {e}")
        acc = accuracy(scores, y_test)
        ctx.note(f"{describe(q)}, trained by the grader's Solver ({setting}, time limit {limit:g} s; "
                 f"{trained.reply.seconds:.1f} s): {acc:.1f}% on the held-out test split of {ctx.run.dataset_name} "
                 f"(target {target:g}%)")
        ctx.expect(acc >= target, f"the trained {model_type} reaches {acc:.1f}% on held-out data, below the target "
                                  f"{target:g}%: {advice}")
    except CheckFailed as e:
        excuse_training(ctx, e, function, model_type, blocks + ([rule] if rule in RULES else []), trained,
                        lambda: judge_fit_accuracy(ctx, model, start, data, choice, evaluate, run, limit), target,
                        setting)


def judge_fit_accuracy(ctx, model: Handle, start: dict, data: dict, choice: dict, evaluate: Callable, epochs: int,
                       limit: float) -> float:
    reg = ctx.getattr(model, "reg")
    reg = float(reg) if isinstance(reg, (int, float)) and not isinstance(reg, bool) and math.isfinite(reg) else 0.0
    q = judge_fit(lambda p, X: evaluate(ctx, None, p, X, False), start, data, choice, reg, epochs, ctx.seed, limit)
    X_test = data["X_test"].to(torch.float32)
    with torch.no_grad():
        scores = torch.cat([evaluate(ctx, None, q, X_test[i:i + 100], False) for i in range(0, len(X_test), 100)])
    return accuracy(scores, data["y_test"])


def excuse_training(ctx, failure: CheckFailed, unit: str, model_type: str, blocks: list[str], trained: Outcome,
                    fit: Callable[[], float], target: float, setting: str) -> None:
    """A Solver whose training fails, or reaches too little, keeps its points only where a wrong block explains it:
    a block is wrong by its own checks, the training did not time out or crash, and a correct model trained here
    from the same initial parameters with the same choices reaches the target."""
    broken = probe(ctx, blocks)
    if broken is None:
        raise failure
    reason = None
    if trained.error is not None and trained.error.kind != "exception":
        reason = f"the training did not finish ({trained.error.kind})"
    elif any(not any(owns(hit_function(ctx, h, blocks) or "", b) for b in blocks) for h in trained.hits):
        reason = "the training makes a forbidden call outside those blocks"
    else:
        try:
            acc = fit()
        except (KeyError, RuntimeError, IndexError, TypeError, ValueError) as e:
            acc, reason = 0.0, f"a correct {model_type} could not be trained from your model's parameters ({e})"
        if reason is None and acc < target:
            reason = (f"a correct {model_type} trained by the grader from the same initial parameters with your "
                      f"choices ({setting}) reaches {acc:.1f}%, below the target {target:g}% too")
    if reason is not None:
        raise CheckFailed(f"{failure}\n  ({broken[0].upper()}{broken[1:]}, but that does not explain this failure: "
                          f"{reason}.)")
    problem = str(failure) if len(str(failure)) < 400 else str(failure)[:400] + " ..."
    ctx.note(f"{unit} could not be judged on its own: {broken}, and a correct {model_type} trained by the grader from "
             f"the same initial parameters with your choices ({setting}) reaches {acc:.1f}% (target {target:g}%), so "
             f"it keeps its points. What went wrong with your own model: {problem}")


@check("a3.fully_connected.create_solver_instance", function="create_solver_instance", timeout=600.0)
def create_solver_instance(ctx):
    """create_solver_instance: its TwoLayerNet, trained by the grader's Solver, reaches the target on held-out data"""
    data = course_data(ctx, flatten=True)
    D, C = data["X_train"].shape[1], int(data["y_train"].max()) + 1

    def evaluate(ctx_, model, q, X, trained):
        return two_layer_scores(q, X.to(q["W1"].dtype))

    def layout(params):
        W1 = params.get("W1")
        H = W1.shape[1] if isinstance(W1, torch.Tensor) and W1.dim() == 2 else 1
        expect_params(ctx, params, two_layer_shapes(D, H, C), torch.float32, "solver.model")

    judge_solver(ctx, "create_solver_instance", "TwoLayerNet", FC_MODULE, flatten=True, prefix="fc",
                 blocks=["Linear", "ReLU", "TwoLayerNet"], target_key="two_layer_solver_accuracy", evaluate=evaluate,
                 layout=layout,
                 describe=lambda q: f"TwoLayerNet with {q['W1'].shape[1]} hidden units",
                 advice="tune the hidden size, weight scale, learning rate (and its decay), regularisation and number "
                        "of epochs on the validation set.")


def overfit_data(ctx, n: int = 50) -> dict:
    data = course_data(ctx, flatten=False)
    return {"X_train": data["X_train"][:n], "y_train": data["y_train"][:n], "X_val": data["X_val"][:n],
            "y_val": data["y_val"][:n]}


def judge_train(forward: Callable, params: dict, data: dict, *, epochs: int, batch_size: int, rule: str, lr: float,
                reg: float, seed: int) -> float:
    """The Solver's protocol, run here with a correct model (autograd, torch.optim): minibatches drawn without
    replacement, `epochs` epochs, no decay; the final parameters' training accuracy in percent."""
    X, y = data["X_train"].to(torch.float32), data["y_train"]
    gen = torch.Generator().manual_seed(seed)
    p = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    opt = (torch.optim.SGD if rule == "sgd" else torch.optim.Adam)(list(p.values()), lr=lr)
    iters = epochs * max(X.shape[0] // batch_size, 1)
    with one_thread(), torch.enable_grad():
        for _ in range(iters):
            rows = torch.randperm(X.shape[0], generator=gen)[:batch_size]
            penalty = sum((v * v).sum() for k, v in p.items() if k.startswith("W"))
            loss = F.cross_entropy(forward(p, X[rows]), y[rows]) + reg * penalty
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return accuracy(forward(p, X), y)


def judge_overfit(ctx, function: str, unit: str, make: dict, forward: Callable, solver_kw: dict, rule: str,
                  reg: float, init: Callable[[float, torch.Generator], dict]) -> None:
    ws, lr = ctx.expect_items(ctx.call(function), 2, f"the result of {function} (weight_scale, learning_rate)")
    ws, lr = expect_float(ctx, ws, "weight_scale"), expect_float(ctx, lr, "learning_rate")
    small = overfit_data(ctx)
    hsmall = ctx.put(on_device(ctx, small))
    epochs, batch = solver_kw["num_epochs"], solver_kw["batch_size"]
    setting = (f"{unit}({', '.join(f'{k}={v}' for k, v in make.items())}) with weight_scale={ws:g}, "
               f"{rule} with learning_rate={lr:g}, {epochs} epochs of batch {batch} on 50 training images")
    acc, problem = None, None
    try:
        model = build(ctx, unit, weight_scale=ws, reg=reg, dtype=torch.float32, device=str(ctx.device), **make)
        rule_ref = ctx.ref(rule, module=FC_MODULE)
        solver = ctx.call(ctx.ref("Solver", module="dlcv.solver"), model, hsmall, update_rule=rule_ref,
                          optim_config={"learning_rate": lr}, device=str(ctx.device), verbose=False, **solver_kw)
        ctx.method(solver, "train", return_best_params=False)
        params = ctx.getattr(model, "params")
        q = {k: _cpu64(v) for k, v in params.items()} if isinstance(params, dict) else {}
        acc = accuracy(forward(q, _cpu64(small["X_train"])), small["y_train"])
    except (CheckFailed, KeyError, RuntimeError, TypeError, ValueError, IndexError) as e:
        problem = str(e)
    if acc is not None and acc >= 100.0:
        ctx.note(f"{setting}: 100% training accuracy")
        return
    broken = probe(ctx, ["Linear", "ReLU", unit] + ([rule] if rule in RULES else []))
    if broken is None:
        if problem is not None:
            ctx.fail(f"{setting}: the training could not run: {problem}")
        ctx.fail(f"{setting}: the final training accuracy is {acc:.0f}%, not 100%. Try other values of both, on a "
                 "log scale (a larger weight scale, a larger learning rate, ...).")
    gen = torch.Generator().manual_seed(ctx.seed)
    acc = judge_train(forward, init(ws, gen), small, epochs=epochs, batch_size=batch, rule=rule, lr=lr, reg=reg,
                      seed=ctx.seed)
    ctx.note(f"{broken}, so your values were tried here with a correct {unit}: {setting}: {acc:.0f}% training "
             "accuracy.")
    ctx.expect(acc >= 100.0, f"{setting} (trained here with a correct {unit}, since {broken}): the final training "
                             f"accuracy is {acc:.0f}%, not 100%. Try other values of both, on a log scale.")


def fc_init_params(hidden_dims, D=3 * 32 * 32, C=10):
    def init(ws, gen):
        return {k: (ws * torch.randn(*s, generator=gen) if k.startswith("W") else torch.zeros(*s))
                for k, s in fc_shapes(hidden_dims, D, C).items()}
    return init


@check("a3.fully_connected.three_layer_overfit", function="get_three_layer_network_params", timeout=300.0)
def three_layer_overfit(ctx):
    """get_three_layer_network_params: FullyConnectedNet([100, 100]) overfits 50 images in 20 epochs"""
    judge_overfit(ctx, "get_three_layer_network_params", "FullyConnectedNet", {"hidden_dims": [100, 100]}, fc_scores,
                  {"num_epochs": 20, "batch_size": 25}, "sgd", 0.0, fc_init_params([100, 100]))


@check("a3.fully_connected.five_layer_overfit", function="get_five_layer_network_params", timeout=300.0)
def five_layer_overfit(ctx):
    """get_five_layer_network_params: FullyConnectedNet([100] * 4) overfits 50 images in 20 epochs"""
    judge_overfit(ctx, "get_five_layer_network_params", "FullyConnectedNet", {"hidden_dims": [100] * 4}, fc_scores,
                  {"num_epochs": 20, "batch_size": 25}, "sgd", 0.0, fc_init_params([100] * 4))


# ---- Conv -----------------------------------------------------------------------------------------


def conv_problem(ctx, N, C, H, W, F_, HH, WW, dtype):
    return (ctx.randn(N, C, H, W, dtype=dtype), ctx.randn(F_, C, HH, WW, dtype=dtype, scale=0.5),
            ctx.randn(F_, dtype=dtype))


def conv_out_shape(N, H, W, F_, HH, WW, stride, pad):
    return (N, F_, 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride)


def conv_shifted(x, w, b, stride, pad, d, shape):
    """The convolution with every window d pixels off (down and right): padding off by one, or missing."""
    HH, WW = w.shape[2:]
    padded = F.pad(x, (pad - d, pad + d + WW, pad - d, pad + d + HH))
    return F.conv2d(padded, w, b, stride=stride)[:, :, :shape[2], :shape[3]]


@check("a3.convolutional.conv_forward", function="Conv", N=2, C=3, H=8, W=8, F_=4, HH=3, WW=3, stride=2, pad=1,
       dtype=torch.float64)
def conv_forward(ctx, N, C, H, W, F_, HH, WW, stride, pad, dtype):
    """Conv.forward matches F.conv2d (stride and zero padding)"""
    expect_naive(ctx, "Conv")
    x, w, b = conv_problem(ctx, N, C, H, W, F_, HH, WW, dtype)
    conv_param = {"stride": stride, "pad": pad}
    reply = ctx.invoke("Conv.forward", x, w, b, conv_param, return_args=True)
    expect_inputs_unchanged(ctx, "Conv.forward", ["x", "w", "b"], [x, w, b], reply.args)
    out, _ = ctx.expect_items(reply.value, 2, "the result of Conv.forward (out, cache)")
    X, Wt, B = _cpu64(x), _cpu64(w), _cpu64(b)
    want = F.conv2d(X, Wt, B, stride=stride, padding=pad)
    shape = tuple(want.shape)
    mistakes = {"the filters are flipped (a true convolution); this layer slides the filter as it is (a "
                "cross-correlation, like F.conv2d)": F.conv2d(X, Wt.flip(2, 3), B, stride=stride, padding=pad),
                "the bias b is not added": F.conv2d(X, Wt, None, stride=stride, padding=pad)}
    for d, desc in ((1, "the padding is off by one: the windows are one pixel off (up and left); pad exactly `pad` "
                        "zeros on every side and take window (i, j) at row i * stride, column j * stride of the "
                        "padded input"),
                    (-1, "the padding is off by one: the windows are one pixel off (down and right); pad exactly "
                         "`pad` zeros on every side and take window (i, j) at row i * stride, column j * stride of "
                         "the padded input"),
                    (pad, "the input is not padded at the top and left: pad `pad` zeros on every side")):
        if pad > 0 or abs(d) == 1:
            mistakes.setdefault(desc, conv_shifted(X, Wt, B, stride, pad, d, shape))
    what = f"x {fmt_shape(x.shape)}, w {fmt_shape(w.shape)}, stride {stride}, pad {pad}, {_name(dtype)}"
    ctx.expect_tensor(out, want.to(dtype), f"out ({what})", bound=bound(dtype, FWD), mistakes=mistakes,
                      hint=f"out is (N, F, H', W') = {fmt_shape(shape)} with H' = 1 + (H + 2 * pad - HH) // stride "
                           f"and W' = 1 + (W + 2 * pad - WW) // stride.")


def judge_conv_backward(ctx, N, C, H, W, F_, HH, WW, stride, pad, dtype):
    expect_naive(ctx, "Conv")
    x, w, b = conv_problem(ctx, N, C, H, W, F_, HH, WW, dtype)
    conv_param = {"stride": stride, "pad": pad}
    _, cache = ctx.expect_items(ctx.call("Conv.forward", x, w, b, conv_param), 2,
                            "the result of Conv.forward (out, cache)")
    dout = ctx.randn(*conv_out_shape(N, H, W, F_, HH, WW, stride, pad), dtype=dtype)
    reply = ctx.invoke("Conv.backward", dout, cache, return_args=True)
    expect_inputs_unchanged(ctx, "Conv.backward", ["dout"], [dout], reply.args)
    _, (dx, dw, db) = with_grads(lambda a, c, e: F.conv2d(a, c, e, stride=stride, padding=pad), [x, w, b], dout)
    what = f"Conv.backward, x {fmt_shape(x.shape)}, w {fmt_shape(w.shape)}, stride {stride}, pad {pad}, {_name(dtype)}"
    expect_grads(ctx, reply.value, [("dx", dx), ("dw", dw), ("db", db)], what, dtype, bound(dtype, BWD), n=N,
                 mistakes={"dw": {"dw is flipped": dw.flip(2, 3)}},
                 hints={"dx": f"dx has the shape of x, {fmt_shape(x.shape)}: drop the padding's rows and columns "
                              "from the gradient of the padded input.",
                        "dw": f"dw has the shape of w, {fmt_shape(w.shape)}.",
                        "db": f"db has the shape of b, {fmt_shape(b.shape)}: sum dout over N, H' and W'."})


@check("a3.convolutional.conv_forward_s1", function="Conv", N=3, C=2, H=6, W=5, F_=3, HH=5, WW=3, stride=1, pad=2,
       dtype=torch.float64)
def conv_forward_s1(ctx, **kw):
    """Conv.forward matches F.conv2d (stride 1, a 5x3 filter, pad 2)"""
    conv_forward(ctx, **kw)


@check("a3.convolutional.conv_backward", function="Conv", N=2, C=3, H=8, W=8, F_=4, HH=3, WW=3, stride=2, pad=1,
       dtype=torch.float64)
def conv_backward(ctx, **kw):
    """Conv.backward: dx, dw, db match autograd (stride 2, pad 1)"""
    judge_conv_backward(ctx, **kw)


@check("a3.convolutional.conv_backward_s1", function="Conv", N=3, C=2, H=6, W=5, F_=3, HH=5, WW=3, stride=1, pad=2,
       dtype=torch.float64)
def conv_backward_s1(ctx, **kw):
    """Conv.backward: dx, dw, db match autograd (stride 1, a 5x3 filter, pad 2)"""
    judge_conv_backward(ctx, **kw)


# ---- MaxPool --------------------------------------------------------------------------------------


def pool_param(HP, WP, stride):
    return {"pool_height": HP, "pool_width": WP, "stride": stride}


def judge_pool_forward(ctx, N, C, H, W, HP, WP, stride, dtype):
    expect_naive(ctx, "MaxPool")
    x = ctx.randn(N, C, H, W, dtype=dtype)
    reply = ctx.invoke("MaxPool.forward", x, pool_param(HP, WP, stride), return_args=True)
    expect_inputs_unchanged(ctx, "MaxPool.forward", ["x"], [x], reply.args)
    out, _ = ctx.expect_items(reply.value, 2, "the result of MaxPool.forward (out, cache)")
    X = _cpu64(x)
    want = F.max_pool2d(X, (HP, WP), stride=stride)
    what = f"x {fmt_shape(x.shape)}, {HP}x{WP} windows, stride {stride}, {_name(dtype)}"
    ctx.expect_tensor(out, want.to(dtype), f"out ({what})", bound=bound(dtype, FWD),
                      mistakes={"out is the average of each window; max pooling takes its maximum":
                                F.avg_pool2d(X, (HP, WP), stride=stride),
                                "out is the minimum of each window; take the maximum":
                                -F.max_pool2d(-X, (HP, WP), stride=stride)},
                      hint=f"out is (N, C, H', W') = {fmt_shape(want.shape)} with H' = 1 + (H - pool_height) // stride "
                           "and W' = 1 + (W - pool_width) // stride.")


def judge_pool_backward(ctx, N, C, H, W, HP, WP, stride, dtype):
    expect_naive(ctx, "MaxPool")
    x = ctx.randn(N, C, H, W, dtype=dtype)
    _, cache = ctx.expect_items(ctx.call("MaxPool.forward", x, pool_param(HP, WP, stride)), 2,
                            "the result of MaxPool.forward (out, cache)")
    shape = (N, C, 1 + (H - HP) // stride, 1 + (W - WP) // stride)
    dout = ctx.randn(*shape, dtype=dtype)
    got = ctx.call("MaxPool.backward", dout, cache)
    _, (dx,) = with_grads(lambda a: F.max_pool2d(a, (HP, WP), stride=stride), [x], dout)
    _, (spread,) = with_grads(lambda a: F.avg_pool2d(a, (HP, WP), stride=stride), [x], dout)
    mistakes = {"the gradient is spread over the whole window; it goes to the window's maximum only": spread,
                "the gradient is spread over the whole window without dividing by its size": spread * HP * WP}
    expect_grads(ctx, got, [("dx", dx)], f"MaxPool.backward, x {fmt_shape(x.shape)}, {HP}x{WP} windows, "
                                         f"stride {stride}, {_name(dtype)}", dtype, bound(dtype, BWD),
                 mistakes={"dx": mistakes},
                 hints={"dx": "Each output's gradient goes to the position of its window's maximum"
                              + (" and ADDS to what is there (windows overlap at this stride: one entry can be the "
                                 "maximum of several windows)." if stride < max(HP, WP) else ".")})


@check("a3.convolutional.maxpool_forward", function="MaxPool", N=2, C=3, H=8, W=6, HP=2, WP=2, stride=2,
       dtype=torch.float64)
def maxpool_forward(ctx, **kw):
    """MaxPool.forward matches F.max_pool2d (2x2, stride 2)"""
    judge_pool_forward(ctx, **kw)


@check("a3.convolutional.maxpool_forward_overlap", function="MaxPool", N=2, C=2, H=7, W=9, HP=3, WP=2, stride=2,
       dtype=torch.float64)
def maxpool_forward_overlap(ctx, **kw):
    """MaxPool.forward matches F.max_pool2d (3x2 windows, stride 2: overlapping)"""
    judge_pool_forward(ctx, **kw)


@check("a3.convolutional.maxpool_backward", function="MaxPool", N=2, C=3, H=8, W=6, HP=2, WP=2, stride=2,
       dtype=torch.float64)
def maxpool_backward(ctx, **kw):
    """MaxPool.backward matches autograd (2x2, stride 2)"""
    judge_pool_backward(ctx, **kw)


@check("a3.convolutional.maxpool_backward_overlap", function="MaxPool", N=2, C=2, H=7, W=9, HP=3, WP=3, stride=1,
       dtype=torch.float64)
def maxpool_backward_overlap(ctx, **kw):
    """MaxPool.backward matches autograd (3x3 windows, stride 1: overlapping)"""
    judge_pool_backward(ctx, **kw)


# ---- ThreeLayerConvNet ----------------------------------------------------------------------------


def three_layer_shapes(dims, F_, fs, hidden, C):
    c, h, w = dims
    pad = (fs - 1) // 2
    hp, wp = (h + 2 * pad - fs + 1) // 2, (w + 2 * pad - fs + 1) // 2
    return {"W1": (F_, c, fs, fs), "b1": (F_,), "W2": (F_ * hp * wp, hidden), "b2": (hidden,), "W3": (hidden, C),
            "b3": (C,)}


@check("a3.convolutional.three_layer_init", function="ThreeLayerConvNet", dims=(3, 16, 16), num_filters=8,
       filter_size=5, hidden=50, C=7, weight_scale=0.05, dtype=torch.float64)
def three_layer_init(ctx, dims, num_filters, filter_size, hidden, C, weight_scale, dtype):
    """ThreeLayerConvNet: params W1..W3, b1..b3 (shapes, dtype, device), N(0, weight_scale^2) weights"""
    kwargs = {} if dtype is None else {"dtype": dtype}
    model = build(ctx, "ThreeLayerConvNet", input_dims=tuple(dims), num_filters=num_filters, filter_size=filter_size,
                  hidden_dim=hidden, num_classes=C, weight_scale=weight_scale, device=str(ctx.device), **kwargs)
    dtype = dtype or torch.float32
    shapes = three_layer_shapes(dims, num_filters, filter_size, hidden, C)
    params = ctx.getattr(model, "params")
    what = (f"ThreeLayerConvNet(input_dims={tuple(dims)}, num_filters={num_filters}, filter_size={filter_size}, "
            f"hidden_dim={hidden}, num_classes={C}, {_name(dtype)})")
    expect_params(ctx, params, shapes, dtype, what,
                  hint="W2 maps the pooled conv output, num_filters * H/2 * W/2 values (the conv keeps H and W, the "
                       "2x2 pool halves them), to hidden_dim.")
    for k in shapes:
        if k.startswith("W"):
            expect_std(ctx, params[k], weight_scale, f"{what}.params['{k}']",
                       {"the weights are not multiplied by weight_scale": 1.0})
        else:
            expect_zeros(ctx, params[k], f"{what}.params['{k}']")


@check("a3.convolutional.three_layer_loss", function="ThreeLayerConvNet", N=4, dims=(3, 8, 8), num_filters=4,
       filter_size=3, hidden=6, C=5, reg=0.07, dtype=torch.float64)
def three_layer_loss(ctx, N, dims, num_filters, filter_size, hidden, C, reg, dtype):
    """ThreeLayerConvNet.loss: scores, loss and every gradient match autograd"""
    model = build(ctx, "ThreeLayerConvNet", input_dims=tuple(dims), num_filters=num_filters, filter_size=filter_size,
                  hidden_dim=hidden, num_classes=C, weight_scale=0.1, reg=reg, dtype=dtype, device=str(ctx.device))
    shapes = three_layer_shapes(dims, num_filters, filter_size, hidden, C)
    expect_params(ctx, ctx.getattr(model, "params"), shapes, dtype, "ThreeLayerConvNet")
    params = random_params(ctx, shapes, dtype, 0.3, 0.3)
    set_params(ctx, model, params)
    X, y = ctx.randn(N, *dims, dtype=dtype), ctx.randint(0, C, (N,))
    judge_net_loss(ctx, model, "ThreeLayerConvNet", params, X, y, reg, three_layer_scores, dtype,
                   f"(input {fmt_shape(X.shape)}, {num_filters} {filter_size}x{filter_size} filters, "
                   f"reg={reg:g}, {_name(dtype)})", blocks=["Linear", "ReLU"],
                   program=three_layer_program(filter_size))


# ---- DeepConvNet ----------------------------------------------------------------------------------


def deep_shapes(dims, num_filters, max_pools, C, batchnorm):
    c, h, w = dims
    out = {}
    for i, f in enumerate(num_filters, start=1):
        out[f"W{i}"], out[f"b{i}"] = (f, c, 3, 3), (f,)
        if batchnorm:
            out[f"gamma{i}"], out[f"beta{i}"] = (f,), (f,)
        c = f
        if i - 1 in max_pools:
            h, w = h // 2, w // 2
    L = len(num_filters) + 1
    out[f"W{L}"], out[f"b{L}"] = (c * h * w, C), (C,)
    return out


def kaiming_std(shape: tuple, relu: bool) -> float:
    fan_in = shape[0] if len(shape) == 2 else shape[1] * shape[2] * shape[3]
    return math.sqrt((2.0 if relu else 1.0) / fan_in)


@check("a3.convolutional.deep_init", function="DeepConvNet", dims=(3, 16, 16), num_filters=(16, 32, 8),
       max_pools=(0, 2), C=6, weight_scale=0.05, dtype=torch.float64)
def deep_init(ctx, dims, num_filters, max_pools, C, weight_scale, dtype):
    """DeepConvNet: params (with and without batchnorm): shapes, dtype, device, initial values"""
    for batchnorm in (False, True):
        kwargs = {} if dtype is None else {"dtype": dtype}
        model = build(ctx, "DeepConvNet", input_dims=tuple(dims), num_filters=list(num_filters),
                      max_pools=list(max_pools), batchnorm=batchnorm, num_classes=C, weight_scale=weight_scale,
                      device=str(ctx.device), **kwargs)
        dt = dtype or torch.float32
        what = (f"DeepConvNet(input_dims={tuple(dims)}, num_filters={list(num_filters)}, max_pools={list(max_pools)}, "
                f"batchnorm={batchnorm}, {_name(dt)})")
        shapes = deep_shapes(dims, num_filters, max_pools, C, batchnorm)
        params = ctx.getattr(model, "params")
        expect_params(ctx, params, shapes, dt, what,
                      hint="Each 3x3 convolution (padding 1) keeps H and W, each listed pooling halves them; the last "
                           "layer is linear, from the flattened output of the last convolution.")
        for k in shapes:
            if k.startswith("W"):
                expect_std(ctx, params[k], weight_scale, f"{what}.params['{k}']",
                           {"the weights are not multiplied by weight_scale": 1.0})
            else:
                expect_zeros(ctx, params[k], f"{what}.params['{k}']", 1.0 if k.startswith("gamma") else 0.0)


@check("a3.convolutional.deep_init_kaiming", function="DeepConvNet", dims=(3, 16, 16), num_filters=(32, 64),
       max_pools=(0, 1), C=10, dtype=torch.float64)
def deep_init_kaiming(ctx, dims, num_filters, max_pools, C, dtype):
    """DeepConvNet(weight_scale='kaiming'): Kaiming weights (gain 2 for the convolutions, 1 for the last layer)"""
    what = f"DeepConvNet(num_filters={list(num_filters)}, weight_scale='kaiming')"
    shapes = deep_shapes(dims, num_filters, max_pools, C, False)
    L = len(num_filters) + 1
    made = attempt(ctx, lambda: ctx.invoke("DeepConvNet", input_dims=tuple(dims), num_filters=list(num_filters),
                                           max_pools=list(max_pools), num_classes=C, weight_scale="kaiming",
                                           dtype=dtype, device=str(ctx.device)))
    got: dict = {}
    try:
        if made.failure is not None:
            raise made.failure
        model = made.reply.value
        if not isinstance(model, Handle) or model.type != "DeepConvNet":
            ctx.fail(f"DeepConvNet(...) should build a DeepConvNet object; found {describe_value(model)}.")
        params = got["params"] = ctx.getattr(model, "params")
        expect_params(ctx, params, shapes, dtype, what)
        for k, s in shapes.items():
            if k.startswith("W"):
                relu = k != f"W{L}"
                want = kaiming_std(s, relu)
                expect_std(ctx, params[k], want, f"{what}.params['{k}']", {
                    "the weights are not Kaiming-initialised (weight_scale='kaiming' means weight_initializer(...))":
                    1e-3,
                    "the gain is wrong: 2 for the convolutions (a ReLU follows them), 1 for the last linear layer":
                    kaiming_std(s, not relu)})
    except CheckFailed as e:
        excuse(ctx, e, "DeepConvNet", ["kaiming_initializer"], [made],
               lambda: kaiming_chain(ctx, shapes, L, dtype), lambda chain: compare_kaiming(chain, got.get("params")))


def kaiming_chain(ctx, shapes: dict, L: int, dtype) -> dict:
    """What your kaiming_initializer gives for each weight of the net (Din, Dout, K=3, relu=True for the
    convolutions; K=None, relu=False for the last layer)."""
    out = {}
    for k, s in shapes.items():
        if not k.startswith("W"):
            continue
        last = k == f"W{L}"
        args = (s[0], s[1]) if last else (s[1], s[0])
        o = attempt(ctx, lambda: ctx.invoke("kaiming_initializer", *args, K=None if last else 3, relu=not last,
                                            device=str(ctx.device), dtype=dtype))
        if o.error is not None:
            raise ChainBroken(f"kaiming_initializer raised {o.error.type_name or o.error.kind}")
        if not isinstance(o.reply.value, torch.Tensor):
            raise ChainBroken(f"kaiming_initializer returned {describe_value(o.reply.value)}")
        out[k] = o.reply.value
    return out


def compare_kaiming(chain: dict, params: Any) -> str | None:
    """None when each weight of the net looks drawn as your kaiming_initializer draws it (shape, dtype, device and,
    within sampling error, standard deviation)."""
    if not isinstance(params, dict):
        return "its params could not be read"
    for k, want in chain.items():
        got = params.get(k)
        if not isinstance(got, torch.Tensor) or (got.shape, got.dtype, got.device.type) != \
                (want.shape, want.dtype, want.device.type):
            return f"its params['{k}'] is {describe_value(got)}; your kaiming_initializer gives {describe_value(want)}"
        a, b = _cpu64(got).flatten(), _cpu64(want).flatten()
        if a.numel() < 2:
            continue
        sa, sb = a.std().item(), b.std().item()
        tol = 2 * (5 / math.sqrt(2 * a.numel()) + 0.01)
        if not abs(sa - sb) <= tol * max(sa, sb, 1e-30):
            return (f"the standard deviation of its params['{k}'] is {sa:.4g}; your kaiming_initializer gives "
                    f"{sb:.4g}")
    return None


def deep_stats(ctx, model: Handle, n: int) -> list:
    """[(running_mean, running_var)] of each batchnorm, read from model.bn_params."""
    bn_params = ctx.getattr(model, "bn_params")
    ctx.expect(isinstance(bn_params, list) and len(bn_params) == n,
               f"DeepConvNet.bn_params: expected a list of {n} dicts, found {describe_value(bn_params)}.")
    out = []
    for i, bp in enumerate(bn_params):
        ok = isinstance(bp, dict) and all(isinstance(bp.get(k), torch.Tensor) for k in ("running_mean", "running_var"))
        if not ok:
            broken = probe(ctx, ["SpatialBatchNorm", "BatchNorm"])
            ctx.fail(f"after a training step, bn_params[{i}] holds no running_mean and running_var: pass "
                     "self.bn_params[i] to the batch normalisation of layer i (it stores its statistics there)."
                     + (f" (Also, {broken}.)" if broken else ""))
        out.append((_cpu64(bp["running_mean"]), _cpu64(bp["running_var"])))
    return out


def judge_deep_loss(ctx, N, dims, num_filters, max_pools, C, reg, dtype, batchnorm=False):
    model = build(ctx, "DeepConvNet", input_dims=tuple(dims), num_filters=list(num_filters), max_pools=list(max_pools),
                  batchnorm=batchnorm, num_classes=C, weight_scale=0.1, reg=reg, dtype=dtype, device=str(ctx.device))
    shapes = deep_shapes(dims, num_filters, max_pools, C, batchnorm)
    expect_params(ctx, ctx.getattr(model, "params"), shapes, dtype, "DeepConvNet")
    params = random_params(ctx, shapes, dtype, 0.3, 0.2)
    set_params(ctx, model, params)
    X, y = ctx.randn(N, *dims, dtype=dtype), ctx.randint(0, C, (N,))
    what = (f"(input {fmt_shape(X.shape)}, num_filters={list(num_filters)}, max_pools={list(max_pools)}, "
            f"batchnorm={batchnorm}, reg={reg:g}, {_name(dtype)})")
    pools = list(max_pools)

    def train_forward(p, X_):
        return deep_scores(p, X_, pools)
    blocks = ["Linear", "ReLU"] + (["SpatialBatchNorm", "BatchNorm"] if batchnorm else [])
    program = deep_program(len(num_filters) + 1, pools, batchnorm)
    if not batchnorm:
        judge_net_loss(ctx, model, "DeepConvNet", params, X, y, reg, train_forward, dtype, what, blocks=blocks,
                       program=program)
        return
    holder: dict = {}

    def test_forward(q, Xc):
        holder["stats"] = deep_stats(ctx, model, len(num_filters))
        return deep_scores(q, Xc, pools, holder["stats"])

    def test_mistakes(q, Xc):
        return {"the batch normalisations use the batch's statistics in test mode: loss(X) sets every "
                "bn_param['mode'] to 'test'": deep_scores(q, Xc, pools)}

    judge_net_loss(ctx, model, "DeepConvNet", params, X, y, reg, train_forward, dtype, what,
                   test_forward=test_forward, test_mistakes=test_mistakes, blocks=blocks, program=program)


@check("a3.convolutional.deep_loss", function="DeepConvNet", N=4, dims=(3, 8, 8), num_filters=(3, 4, 2),
       max_pools=(0, 2), C=5, reg=0.1, dtype=torch.float64)
def deep_loss(ctx, **kw):
    """DeepConvNet.loss: scores, loss and every gradient match autograd"""
    judge_deep_loss(ctx, **kw)


@check("a3.convolutional.deep_loss_batchnorm", function="DeepConvNet", N=5, dims=(2, 6, 6), num_filters=(3, 4),
       max_pools=(1,), C=4, reg=0.05, dtype=torch.float64, batchnorm=True)
def deep_loss_batchnorm(ctx, **kw):
    """DeepConvNet with batchnorm: train-mode loss and gradients (gamma, beta too), test-mode scores"""
    judge_deep_loss(ctx, **kw)


# ---- kaiming_initializer --------------------------------------------------------------------------


def judge_kaiming(ctx, Din, Dout, K, relu, dtype):
    kwargs = {"device": str(ctx.device)}
    if relu is not None:
        kwargs["relu"] = relu
    if dtype is not None:
        kwargs["dtype"] = dtype
    got = ctx.call("kaiming_initializer", Din, Dout, K=K, **kwargs)
    relu = True if relu is None else relu
    dtype = dtype or torch.float32
    shape = (Din, Dout) if K is None else (Dout, Din, K, K)
    what = f"kaiming_initializer({Din}, {Dout}, K={K}, relu={relu}, {_name(dtype)})"
    expect_layout(ctx, got, shape, dtype, what,
                  hint="(Din, Dout) for a linear layer, (Dout, Din, K, K) for a convolutional one.")
    gain = 2.0 if relu else 1.0
    fan_in = Din if K is None else Din * K * K
    want = math.sqrt(gain / fan_in)
    alts = {"the fan-in is Dout; it is the number of inputs of one output unit, Din (times K * K for a "
            "convolution)": math.sqrt(gain / (Dout if K is None else Dout * K * K)),
            f"the gain is {3 - gain:g}; it is 2 with relu=True, 1 with relu=False": math.sqrt((3 - gain) / fan_in),
            "the standard deviation is gain / fan_in; it is sqrt(gain / fan_in)": gain / fan_in}
    if K is not None:
        alts["the fan-in leaves out K * K: it is Din * K * K for a convolution"] = math.sqrt(gain / Din)
    expect_std(ctx, got, want, what, alts)


@check("a3.convolutional.kaiming_linear", function="kaiming_initializer", Din=400, Dout=300, K=None, relu=True,
       dtype=torch.float64)
def kaiming_linear(ctx, **kw):
    """kaiming_initializer for a linear layer: (Din, Dout), std sqrt(2 / Din)"""
    judge_kaiming(ctx, **kw)


@check("a3.convolutional.kaiming_conv", function="kaiming_initializer", Din=32, Dout=64, K=3, relu=False,
       dtype=torch.float64)
def kaiming_conv(ctx, **kw):
    """kaiming_initializer for a convolution without ReLU: (Dout, Din, K, K), std sqrt(1 / (Din K K))"""
    judge_kaiming(ctx, **kw)


# ---- BatchNorm ------------------------------------------------------------------------------------


def bn_inputs(ctx, N, D, dtype):
    x = ctx.randn(N, D, dtype=dtype, scale=4.0) + ctx.randn(D, dtype=dtype, scale=3.0)
    return x, 1 + ctx.randn(D, dtype=dtype, scale=0.3), ctx.randn(D, dtype=dtype)


def bn_train(x, gamma, beta, eps):
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


def bn_forward_mistakes(X, G, B, eps) -> dict:
    m, var_b, var_u = X.mean(0), X.var(0, unbiased=False), X.var(0, unbiased=True)
    return {"the batch variance is the unbiased one (divided by N - 1); batch normalisation uses the biased one "
            "(divided by N)": (X - m) / torch.sqrt(var_u + eps) * G + B,
            "eps is added to the standard deviation; add it to the variance, under the square root":
            (X - m) / (var_b.sqrt() + eps) * G + B,
            "gamma and beta are swapped: out = gamma * x_hat + beta": (X - m) / torch.sqrt(var_b + eps) * B + G}


@check("a3.convolutional.bn_forward_train", function="BatchNorm", N=20, D=6, dtype=torch.float64, eps=None)
def bn_forward_train(ctx, N, D, dtype, eps):
    """BatchNorm.forward in train mode matches F.batch_norm (batch statistics, biased variance)"""
    x, gamma, beta = bn_inputs(ctx, N, D, dtype)
    param = {"mode": "train"} if eps is None else {"mode": "train", "eps": eps}
    eps = 1e-5 if eps is None else eps
    reply = ctx.invoke("BatchNorm.forward", x, gamma, beta, param, return_args=True)
    expect_inputs_unchanged(ctx, "BatchNorm.forward", ["x", "gamma", "beta"], [x, gamma, beta], reply.args)
    out, _ = ctx.expect_items(reply.value, 2, "the result of BatchNorm.forward (out, cache)")
    X, G, B = _cpu64(x), _cpu64(gamma), _cpu64(beta)
    ctx.expect_tensor(out, bn_train(X, G, B, eps).to(dtype), f"out (train mode, x {fmt_shape(x.shape)}, eps={eps:g}, "
                      f"{_name(dtype)})", bound=bound(dtype, FWD), mistakes=bn_forward_mistakes(X, G, B, eps),
                      hint="Normalise each feature (column) with the mean and variance over the batch (dim 0).")


def running_expectations(xs: list, momentum: float, start: tuple | None, rows: Callable = lambda t: t):
    """[(running_mean, running_var)] after each step, and the mistakes' versions."""
    D = rows(xs[0]).shape[1]
    rm0, rv0 = start if start is not None else (torch.zeros(D, dtype=torch.float64),) * 2

    def seq(unbiased=False, reverse=False, carry=True):
        rm, rv, out = rm0, rv0, []
        for x in xs:
            r = rows(x)
            mean, var = r.mean(0), r.var(0, unbiased=unbiased)
            keep = (1 - momentum) if reverse else momentum
            base_m, base_v = (rm, rv) if carry else (rm0, rv0)
            rm, rv = keep * base_m + (1 - keep) * mean, keep * base_v + (1 - keep) * var
            out.append((rm, rv))
        return out

    mistakes = {"the running variance averages the unbiased batch variance (divided by N - 1); keep the biased one, "
                "the variance used to normalise": seq(unbiased=True),
                "the momentum is reversed: running = momentum * running + (1 - momentum) * batch": seq(reverse=True),
                "the running statistics do not carry over: each call must start from bn_param's running_mean and "
                "running_var (and store the new ones there)": seq(carry=False)}
    return seq(), mistakes


def judge_running(ctx, layer: str, xs, gamma, beta, momentum, start, dtype, rows: Callable,
                  fallback: Callable | None = None) -> None:
    """Call layer.forward in train mode on each x, passing the same bn_param along; judge the running statistics."""
    D = gamma.shape[0]
    param: dict = {"mode": "train"}
    if momentum is not None:
        param["momentum"] = momentum
    if start is not None:
        param["running_mean"], param["running_var"] = start
    want, mistakes = running_expectations([_cpu64(x) for x in xs], 0.9 if momentum is None else momentum,
                                          None if start is None else tuple(_cpu64(t) for t in start), rows)
    for k, x in enumerate(xs):
        before = dict(param)
        reply = ctx.invoke(f"{layer}.forward", x, gamma, beta, param, return_args=True)
        ctx.expect_items(reply.value, 2, f"the result of {layer}.forward (out, cache)")
        after = reply.args[3] if reply.args and len(reply.args) > 3 else None
        what = f"after {k + 1} training step{'s' if k else ''}" + (f", momentum {momentum:g}" if momentum else "")
        try:
            ctx.expect(isinstance(after, dict) and all(isinstance(after.get(n), torch.Tensor)
                                                       for n in ("running_mean", "running_var")),
                       f"bn_param {what}: expected the running statistics in bn_param['running_mean'] and "
                       f"bn_param['running_var'] (tensors of shape ({D},)); found {describe_value(after)}.")
            for i, name in enumerate(("running_mean", "running_var")):
                ctx.expect_tensor(after[name], want[k][i].to(dtype), f"bn_param['{name}'] {what}",
                                  bound=bound(dtype, FWD), mistakes={d: s[k][i] for d, s in mistakes.items()})
        except CheckFailed:
            if fallback is None or not fallback(before, x, after):
                raise
            ctx.note(f"{layer}'s running statistics differ from the oracle's but match your BatchNorm's on the same "
                     "rows; BatchNorm's own checks judge those.")
            rest = [_cpu64(t) for t in xs[k + 1:]]
            if rest:   # the next steps start from the statistics your BatchNorm gave
                more, more_mistakes = running_expectations(rest, 0.9 if momentum is None else momentum,
                                                           (_cpu64(after["running_mean"]),
                                                            _cpu64(after["running_var"])), rows)
                want = want[:k + 1] + more
                mistakes = {d: seq[:k + 1] + more_mistakes[d] for d, seq in mistakes.items()}
        param = after


@check("a3.convolutional.bn_running_stats", function="BatchNorm", N=16, D=5, steps=3, momentum=None, start=False,
       dtype=torch.float64)
def bn_running_stats(ctx, N, D, steps, momentum, start, dtype):
    """BatchNorm: running averages over several steps (biased variance, running = m * running + (1 - m) * batch)"""
    xs = [bn_inputs(ctx, N, D, dtype)[0] for _ in range(steps)]
    _, gamma, beta = bn_inputs(ctx, N, D, dtype)
    init = (ctx.randn(D, dtype=dtype), ctx.rand(D, dtype=dtype) + 0.5) if start else None
    judge_running(ctx, "BatchNorm", xs, gamma, beta, momentum, init, dtype, rows=lambda t: t)


@check("a3.convolutional.bn_forward_test", function="BatchNorm", N=10, D=7, dtype=torch.float64)
def bn_forward_test(ctx, N, D, dtype):
    """BatchNorm.forward in test mode normalises with the running statistics (F.batch_norm, eval)"""
    x, gamma, beta = bn_inputs(ctx, N, D, dtype)
    rm, rv = ctx.randn(D, dtype=dtype), ctx.rand(D, dtype=dtype) + 0.5
    param = {"mode": "test", "running_mean": rm, "running_var": rv}
    reply = ctx.invoke("BatchNorm.forward", x, gamma, beta, param, return_args=True)
    out, _ = ctx.expect_items(reply.value, 2, "the result of BatchNorm.forward (out, cache)")
    X, G, B = _cpu64(x), _cpu64(gamma), _cpu64(beta)
    want = F.batch_norm(X, _cpu64(rm), _cpu64(rv), G, B, training=False, eps=1e-5)
    ctx.expect_tensor(out, want.to(dtype), f"out (test mode, x {fmt_shape(x.shape)}, {_name(dtype)})",
                      bound=bound(dtype, FWD),
                      mistakes={"test mode uses the batch's statistics; it normalises with bn_param's running_mean "
                                "and running_var": bn_train(X, G, B, 1e-5)})
    after = reply.args[3] if reply.args and len(reply.args) > 3 else {}
    for name, t in (("running_mean", rm), ("running_var", rv)):
        ctx.expect(same_tensor(after.get(name), t), f"bn_param['{name}'] changed in test mode; the running statistics "
                                                     "are updated in train mode only.")


def judge_bn_backward(ctx, method: str, N, D, dtype):
    x, gamma, beta = bn_inputs(ctx, N, D, dtype)
    _, cache = ctx.expect_items(ctx.call("BatchNorm.forward", x, gamma, beta, {"mode": "train"}), 2,
                            "the result of BatchNorm.forward (out, cache)")
    dout = ctx.randn(N, D, dtype=dtype)
    got = ctx.call(f"BatchNorm.{method}", dout, cache)
    _, (dx, dgamma, dbeta) = with_grads(lambda a, g, b: bn_train(a, g, b, 1e-5), [x, gamma, beta], dout)
    X, G, Do = _cpu64(x), _cpu64(gamma), _cpu64(dout)
    std = torch.sqrt(X.var(0, unbiased=False) + 1e-5)
    expect_grads(ctx, got, [("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta)],
                 f"BatchNorm.{method}, x {fmt_shape(x.shape)}, {_name(dtype)}", dtype, bound(dtype, BWD), n=N,
                 mistakes={"dx": {"dx treats the batch mean and variance as constants; they depend on every example "
                                  "of the batch": Do * G / std},
                           "dgamma": {"dgamma sums dout * x; it sums dout * x_hat (the normalised x)":
                                      (Do * X).sum(0)}})


@check("a3.convolutional.bn_backward", function="BatchNorm", N=12, D=5, dtype=torch.float64)
def bn_backward(ctx, **kw):
    """BatchNorm.backward: dx, dgamma, dbeta match autograd"""
    judge_bn_backward(ctx, "backward", **kw)


@check("a3.convolutional.bn_backward_alt", function="BatchNorm", N=12, D=5, dtype=torch.float64)
def bn_backward_alt(ctx, **kw):
    """BatchNorm.backward_alt: dx, dgamma, dbeta match autograd (and so backward)"""
    judge_bn_backward(ctx, "backward_alt", **kw)


# ---- SpatialBatchNorm -----------------------------------------------------------------------------


def as_rows(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N * H * W, C): one row per example and position, one column per channel."""
    return t.movedim(1, -1).flatten(0, -2)


def from_rows(r: torch.Tensor, shape) -> torch.Tensor:
    N, C, H, W = shape
    return r.reshape(N, H, W, C).movedim(-1, 1)


def sbn_inputs(ctx, shape, dtype):
    N, C, H, W = shape
    x = ctx.randn(*shape, dtype=dtype, scale=3.0) + ctx.randn(1, C, 1, 1, dtype=dtype, scale=2.0)
    return x, 1 + ctx.randn(C, dtype=dtype, scale=0.3), ctx.randn(C, dtype=dtype)


def via_batchnorm(ctx, x, gamma, beta, param):
    """Your BatchNorm.forward on the rows of x: (out in (N, C, H, W), cache, bn_param after), None if it fails."""
    try:
        reply = ctx.invoke("BatchNorm.forward", as_rows(x).contiguous(), gamma, beta, dict(param), return_args=True)
        out, cache = ctx.expect_items(reply.value, 2, "")
        after = reply.args[3]
        return from_rows(out, x.shape), cache, after if isinstance(after, dict) else {}
    except Exception:  # noqa: BLE001 - your BatchNorm failed or returned something else: no alternative
        return None


def sbn_wrong_layout(X, G, B, eps):
    """Statistics over the rows of x.reshape(-1, C) (no transpose): a known mistake."""
    C = X.shape[1]
    return bn_train(X.reshape(-1, C), G, B, eps).reshape(X.shape)


@check("a3.convolutional.sbn_forward_train", function="SpatialBatchNorm", shape=(3, 4, 5, 6), steps=2,
       momentum=None, dtype=torch.float64)
def sbn_forward_train(ctx, shape, steps, momentum, dtype):
    """SpatialBatchNorm.forward in train mode: statistics per channel over (N, H, W), running averages"""
    x, gamma, beta = sbn_inputs(ctx, shape, dtype)
    reply = ctx.invoke("SpatialBatchNorm.forward", x, gamma, beta, {"mode": "train"}, return_args=True)
    expect_inputs_unchanged(ctx, "SpatialBatchNorm.forward", ["x", "gamma", "beta"], [x, gamma, beta], reply.args)
    out, _ = ctx.expect_items(reply.value, 2, "the result of SpatialBatchNorm.forward (out, cache)")
    X, G, B = _cpu64(x), _cpu64(gamma), _cpu64(beta)
    what = f"train mode, x {fmt_shape(x.shape)}, {_name(dtype)}"
    try:
        ctx.expect_tensor(out, bn_train(X, G, B, 1e-5).to(dtype), f"out ({what})", bound=bound(dtype, FWD),
                          mistakes={"the statistics are taken over the rows of x.reshape(-1, C), which mixes channels: "
                                    "move the channels last before flattening (permute)":
                                    sbn_wrong_layout(X, G, B, 1e-5)},
                          hint="Normalise each channel with the mean and (biased) variance over N, H and W.")
    except CheckFailed:
        alt = via_batchnorm(ctx, x, gamma, beta, {"mode": "train"})
        if alt is None or not close(out, alt[0], bound(dtype, FWD)) or not probe(ctx, ["BatchNorm"]):
            raise
        ctx.note("SpatialBatchNorm's output differs from the oracle's but matches your BatchNorm.forward on the rows "
                 "(N * H * W, C); BatchNorm's own checks judge it.")
    xs = [x] + [sbn_inputs(ctx, shape, dtype)[0] for _ in range(steps - 1)]

    def fallback(before, x_k, after):
        alt = via_batchnorm(ctx, x_k, gamma, beta, before)
        return alt is not None and isinstance(after, dict) and all(
            close(after.get(n), alt[2].get(n), bound(dtype, FWD)) for n in ("running_mean", "running_var")) \
            and probe(ctx, ["BatchNorm"]) is not None

    judge_running(ctx, "SpatialBatchNorm", xs, gamma, beta, momentum, None, dtype, rows=as_rows, fallback=fallback)


@check("a3.convolutional.sbn_forward_test", function="SpatialBatchNorm", shape=(2, 3, 4, 5), dtype=torch.float64)
def sbn_forward_test(ctx, shape, dtype):
    """SpatialBatchNorm.forward in test mode uses the running statistics per channel"""
    x, gamma, beta = sbn_inputs(ctx, shape, dtype)
    C = shape[1]
    rm, rv = ctx.randn(C, dtype=dtype), ctx.rand(C, dtype=dtype) + 0.5
    out, _ = ctx.expect_items(ctx.call("SpatialBatchNorm.forward", x, gamma, beta,
                                        {"mode": "test", "running_mean": rm, "running_var": rv}), 2,
                          "the result of SpatialBatchNorm.forward (out, cache)")
    X, G, B = _cpu64(x), _cpu64(gamma), _cpu64(beta)
    want = F.batch_norm(X, _cpu64(rm), _cpu64(rv), G, B, training=False, eps=1e-5)
    wrong_rows = F.batch_norm(X.reshape(-1, C), _cpu64(rm), _cpu64(rv), G, B, training=False, eps=1e-5)
    ctx.expect_tensor(out, want.to(dtype), f"out (test mode, x {fmt_shape(x.shape)}, {_name(dtype)})",
                      bound=bound(dtype, FWD),
                      mistakes={"test mode uses the batch's statistics; it normalises with the running ones":
                                bn_train(X, G, B, 1e-5),
                                "the rows are taken from x.reshape(-1, C), which mixes channels: move the channels "
                                "last before flattening (permute), and back after": wrong_rows.reshape(X.shape)})


@check("a3.convolutional.sbn_backward", function="SpatialBatchNorm", shape=(2, 3, 4, 5), dtype=torch.float64)
def sbn_backward(ctx, shape, dtype):
    """SpatialBatchNorm.backward: dx, dgamma, dbeta match autograd"""
    x, gamma, beta = sbn_inputs(ctx, shape, dtype)
    _, cache = ctx.expect_items(ctx.call("SpatialBatchNorm.forward", x, gamma, beta, {"mode": "train"}), 2,
                            "the result of SpatialBatchNorm.forward (out, cache)")
    dout = ctx.randn(*shape, dtype=dtype)
    got = ctx.call("SpatialBatchNorm.backward", dout, cache)
    _, (dx, dgamma, dbeta) = with_grads(lambda a, g, b: bn_train(a, g, b, 1e-5), [x, gamma, beta], dout)
    _, (dx_bad, _, _) = with_grads(lambda a, g, b: sbn_wrong_layout(a, g, b, 1e-5), [x, gamma, beta], dout)
    what = f"SpatialBatchNorm.backward, x {fmt_shape(x.shape)}, {_name(dtype)}"
    try:
        expect_grads(ctx, got, [("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta)], what, dtype, bound(dtype, BWD),
                     mistakes={"dx": {"the rows are taken from x.reshape(-1, C), which mixes channels: move the "
                                      "channels last before flattening (permute), and back after": dx_bad}},
                     hints={"dx": f"dx has the shape of x, {fmt_shape(x.shape)}."})
    except CheckFailed:
        # built on your BatchNorm, whose own checks judge it: accepted when it matches BatchNorm's backward on the rows
        alt = via_batchnorm(ctx, x, gamma, beta, {"mode": "train"})
        if alt is None or not isinstance(got, (tuple, list)) or len(got) != 3 or probe(ctx, ["BatchNorm"]) is None:
            raise
        for method in ("backward", "backward_alt"):
            try:
                r = ctx.call(f"BatchNorm.{method}", as_rows(dout).contiguous(), alt[1])
                ok = all(close(a, b, bound(dtype, BWD)) for a, b in zip(got, (from_rows(r[0], x.shape), r[1], r[2])))
            except Exception:  # noqa: BLE001 - your BatchNorm's backward failed: no alternative
                ok = False
            if ok:
                ctx.note(f"SpatialBatchNorm.backward differs from the oracle's but matches your BatchNorm.{method} on "
                         "the rows (N * H * W, C); BatchNorm's own checks judge it.")
                return
        raise


# ---- find_overfit_parameters and the convolutional solver ---------------------------------------

OVERFIT_FILTERS, OVERFIT_POOLS = [8, 16, 32, 64], [0, 1, 2, 3]


def deep_init_params(ws, gen):
    return {k: (ws * torch.randn(*s, generator=gen) if k.startswith("W") else torch.zeros(*s))
            for k, s in deep_shapes((3, 32, 32), OVERFIT_FILTERS, OVERFIT_POOLS, 10, False).items()}


def overfit_scores(p, X):
    return deep_scores(p, X, OVERFIT_POOLS)


@check("a3.convolutional.find_overfit_parameters", function="find_overfit_parameters", timeout=300.0)
def find_overfit_parameters(ctx):
    """find_overfit_parameters: DeepConvNet([8, 16, 32, 64]) with Adam overfits 50 images in 30 epochs"""
    judge_overfit(ctx, "find_overfit_parameters", "DeepConvNet",
                  {"input_dims": (3, 32, 32), "num_classes": 10, "num_filters": OVERFIT_FILTERS,
                   "max_pools": OVERFIT_POOLS}, overfit_scores, {"num_epochs": 30, "batch_size": 10}, "adam", 1e-5,
                  deep_init_params)


@check("a3.convolutional.create_convolutional_solver_instance", function="create_convolutional_solver_instance",
       timeout=600.0)
def create_convolutional_solver_instance(ctx):
    """create_convolutional_solver_instance: its DeepConvNet, trained by the grader's Solver (time-limited), reaches
    the target"""
    held: dict = {}

    def evaluate(ctx_, model, q, X, trained):
        if "max_pools" not in held:
            max_pools = ctx.getattr(model, "max_pools")
            ctx.expect(isinstance(max_pools, list) and all(isinstance(i, int) for i in max_pools),
                       f"solver.model.max_pools: expected a list of ints, found {describe_value(max_pools)}.")
            held["max_pools"] = max_pools
        stats = None
        if trained and "gamma1" in q:
            if "stats" not in held:
                held["stats"] = deep_stats(ctx, model, count_layers(q) - 1)
            stats = held["stats"]
        return deep_scores(q, X.to(q["W1"].dtype), held["max_pools"], stats)

    def describe(q):
        L = count_layers(q)
        return f"DeepConvNet with {L - 1} conv layers ({'with' if 'gamma1' in q else 'without'} batchnorm)"

    judge_solver(ctx, "create_convolutional_solver_instance", "DeepConvNet", CONV_MODULE, flatten=False,
                 prefix="conv", blocks=["Linear", "ReLU", "DeepConvNet", "SpatialBatchNorm", "BatchNorm",
                                        "kaiming_initializer"],
                 target_key="conv_solver_accuracy", evaluate=evaluate, describe=describe, layout=lambda params: None,
                 advice="batchnorm, Kaiming initialisation, Adam and a good learning rate help; the training is "
                        "time-limited, so a model that learns fast wins.")


# ---- probes: small versions of the checks, to tell a composite's own failure from its blocks' ----


def _probe_rule(rule: str) -> Callable:
    def run(ctx):
        judge_rule(ctx, rule, None, 2, (3,), torch.float64)
    return run


def _probe_net(ctx, cls):
    if cls == "TwoLayerNet":
        two_layer_loss(ctx, N=3, shape=(4,), H=5, C=3, reg=0.1, dtype=torch.float64)
    elif cls == "FullyConnectedNet":
        judge_fc_loss(ctx, N=3, hidden_dims=(4, 5), D=4, C=3, reg=0.1, dtype=torch.float64)
    else:
        judge_deep_loss(ctx, N=3, dims=(2, 4, 4), num_filters=(2, 3), max_pools=(0,), C=3, reg=0.1,
                        dtype=torch.float64)


PROBES: dict[str, Callable] = {
    "Linear": lambda ctx: judge_linear_backward(ctx, N=3, shape=(4,), M=2, dtype=torch.float64)
    or linear_forward(ctx, N=2, shape=(3,), M=2, dtype=torch.float64),
    "ReLU": lambda ctx: relu_backward(ctx, shape=(3, 4), dtype=torch.float64, zeros=False)
    or relu_forward(ctx, shape=(3, 4), dtype=torch.float64, zeros=False),
    "Dropout": lambda ctx: dropout_seed(ctx, p=0.5, dtype=torch.float64, shape=(6, 7))
    or judge_dropout_backward(ctx, 0.4, torch.float64, (40, 50)),
    "TwoLayerNet": lambda ctx: _probe_net(ctx, "TwoLayerNet"),
    "FullyConnectedNet": lambda ctx: _probe_net(ctx, "FullyConnectedNet"),
    "DeepConvNet": lambda ctx: _probe_net(ctx, "DeepConvNet"),
    "kaiming_initializer": lambda ctx: judge_kaiming(ctx, 200, 100, None, True, torch.float64)
    or judge_kaiming(ctx, 8, 16, 3, True, torch.float64),
    "BatchNorm": lambda ctx: bn_forward_train(ctx, N=6, D=3, dtype=torch.float64, eps=None)
    or bn_running_stats(ctx, N=6, D=3, steps=2, momentum=None, start=False, dtype=torch.float64)
    or judge_bn_backward(ctx, "backward", 6, 3, torch.float64)
    or judge_bn_backward(ctx, "backward_alt", 6, 3, torch.float64),
    "SpatialBatchNorm": lambda ctx: sbn_backward(ctx, shape=(2, 3, 2, 2), dtype=torch.float64),
    **{rule: _probe_rule(rule) for rule in RULES},
}
