"""Judging A3's networks (shared by checks_fc.py and checks_conv.py; it defines no checks).

A network is built in the sandbox and its parameters read back with `ctx.getattr`; the judge sets known random
parameters, calls `loss`, and compares with the network restated in expected.py (PyTorch's own ops, differentiated by
autograd, in float64). Nothing here knows about building blocks: a network that fails because a layer it uses is
broken is judged again by the grader with the course's layer in its place (the manifest's [parts.blocks]).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from grader.judging import cpu64, describe_value, fmt_shape, rel_error
from grader.wire import Handle

from .expected import net_loss
from .layers import NET, bound


def build(ctx, cls: str, **kwargs) -> Handle:
    model = ctx.call(cls, **kwargs)
    if not isinstance(model, Handle) or model.type != cls:
        ctx.fail(f"{cls}(...) should build a {cls} object; found {describe_value(model)}.")
    return model


def expect_params(ctx, params: Any, shapes: dict[str, tuple], dtype: torch.dtype, what: str, hint: str = "") -> None:
    ctx.expect_type(params, dict, f"{what}.params")
    if set(params) != set(shapes):
        missing, extra = sorted(set(shapes) - set(params)), sorted(set(params) - set(shapes))
        ctx.fail(
            f"{what}.params: expected the keys {list(shapes)}, found {sorted(params)}"
            + (f" (missing {missing})" if missing else "")
            + (f" (unexpected {extra})" if extra else "")
            + "."
        )
    for k, s in shapes.items():
        ctx.expect_layout(params[k], s, dtype, f"{what}.params['{k}']", hint=hint)


def expect_std(ctx, t: torch.Tensor, want: float, name: str, alternatives: dict[str, float] | None = None) -> None:
    """Values drawn from N(0, want^2): the sample standard deviation within a few standard errors."""
    v = cpu64(t).flatten()
    n = v.numel()
    std, mean = v.std().item(), v.mean().item()
    tol = 5 / math.sqrt(2 * n) + 0.01
    if not abs(std / want - 1) <= tol:
        why = next(
            (d for d, a in (alternatives or {}).items() if abs(std / a - 1) <= tol and abs(a / want - 1) > 2 * tol),
            None,
        )
        ctx.fail(
            f"{name}: the standard deviation of its {n} values is {std:.4g}; expected {want:.4g} (within "
            f"{100 * tol:.0f}%)." + (f" Likely bug: {why}." if why else ""),
            mistakes=[why] if why else [],
        )
    if not abs(mean) <= 6 * want / math.sqrt(n):
        ctx.fail(f"{name}: the mean of its {n} values is {mean:.3g}; expected about 0 (normal values with mean 0).")


def expect_initial(ctx, params: dict, shapes: dict, weight_scale: float, what: str) -> None:
    """Weights N(0, weight_scale^2), biases and betas zero, gammas one."""
    for k in shapes:
        if k.startswith("W"):
            expect_std(
                ctx,
                params[k],
                weight_scale,
                f"{what}.params['{k}']",
                {"the weights are not multiplied by weight_scale": 1.0},
            )
        else:
            value = 1.0 if k.startswith("gamma") else 0.0
            t = params[k].cpu()
            if not bool((t == value).all()):
                ctx.fail(
                    f"{what}.params['{k}']: expected all {'zeros' if value == 0 else 'ones'} at initialisation, "
                    f"found values from {t.min().item():.3g} to {t.max().item():.3g}."
                )


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


def net_expectations(scores: Callable, params: dict, X, y, reg: float):
    """(loss, grads, loss mistakes, grad mistakes), in float64: expected, and the regulariser's usual mistakes."""
    keys = list(params)
    p, Xc, yc = cpu64(params), cpu64(X), y.cpu()
    weights = [k for k in keys if k.startswith("W")]
    loss, grads = net_loss(scores, p, Xc, yc, reg)
    if reg == 0:
        return loss, grads, {}, {}
    none, double, half = (net_loss(scores, p, Xc, yc, reg * c) for c in (0.0, 2.0, 0.5))
    every = net_loss(scores, p, Xc, yc, reg, keys)
    loss_mistakes = {
        "the regulariser is missing from the loss (reg * the sum of W * W over the weights)": none[0],
        "the regulariser is counted twice": double[0],
        "the regulariser has a factor 1/2 in the loss but not in the gradients: use reg * sum(W * W) with "
        "gradients 2 * reg * W (this kit's convention), or 0.5 * reg * sum(W * W) with gradients reg * W (the "
        "course's text for FullyConnectedNet), the same in the loss and every gradient": half[0],
    }
    groups = {
        "the biases are regularised too; only the weights are": [k for k in keys if k.startswith("b")],
        "gamma and beta are regularised too; only the weights are": [
            k for k in keys if k.startswith(("gamma", "beta"))
        ],
        "gamma is regularised too; only the weights are": [k for k in keys if k.startswith("gamma")],
        "every parameter is regularised; only the weights are": [k for k in keys if k not in weights],
    }
    for desc, extra in groups.items():
        if extra and (desc.startswith("every") or len(extra) < len(keys) - len(weights)):
            loss_mistakes[desc] = net_loss(scores, p, Xc, yc, reg, weights + extra)[0]
    grad_mistakes = {}
    for k in keys:
        if k in weights:
            grad_mistakes[k] = {
                f"the regulariser's gradient 2 * reg * {k} is missing": none[1][k],
                f"the regulariser's gradient is counted twice (4 * reg * {k})": double[1][k],
                f"the regulariser's gradient is reg * {k}, but the loss has reg * sum({k} * {k}), whose "
                f"derivative is 2 * reg * {k} (a loss with 0.5 * reg * sum({k} * {k}) goes with reg * {k})": half[1][k],
            }
        else:
            grad_mistakes[k] = {
                f"{k} is regularised; only the weights are (no 2 * reg * {k} in its gradient)": every[1][k]
            }
    return loss, grads, loss_mistakes, grad_mistakes


def half_convention(loss: Any, grads: Any, scores: Callable, params: dict, X, y, reg: float, tol: float):
    """(loss, grads) of the regulariser 0.5 * reg * sum(W * W) when the student's loss and every gradient agree with
    it within `tol` (and not with the kit's reg * sum(W * W)); None otherwise. The course's own text asks for this
    factor in FullyConnectedNet: either convention is right when the loss and its gradients use the same one."""
    if reg == 0 or not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not isinstance(grads, dict):
        return None
    if set(grads) != set(params) or not all(isinstance(g, torch.Tensor) for g in grads.values()):
        return None
    p, Xc, yc = cpu64(params), cpu64(X), y.cpu()
    full_loss = net_loss(scores, p, Xc, yc, reg)[0]
    half_loss, half_grads = net_loss(scores, p, Xc, yc, 0.5 * reg)
    if rel_error(loss, half_loss) > tol or rel_error(loss, full_loss) <= tol:
        return None
    for k, want in half_grads.items():
        if tuple(grads[k].shape) != tuple(want.shape) or rel_error(grads[k], want) > tol:
            return None
    return half_loss, half_grads


def judge_net_loss(
    ctx,
    model: Handle,
    cls: str,
    params: dict,
    X,
    y,
    reg: float,
    scores: Callable,
    what: str,
    test_scores: Callable | None = None,
    test_mistakes: Callable | None = None,
    *,
    train: bool = True,
) -> None:
    """model.loss(X, y) -> (loss, grads) against the expected `scores` (train mode), then model.loss(X) -> scores
    against `test_scores` (test mode, default `scores`; called after the train-mode call)."""
    dtype = X.dtype
    tol = bound(dtype, NET)
    if train:
        reply = ctx.invoke_method(model, "loss", X, y, return_args=True)
        ctx.expect_unchanged([X], reply, ["X"])
        loss, grads = ctx.expect_items(reply.value, 2, f"the result of {cls}.loss(X, y) (loss, grads)")
        want_loss, want_grads, loss_mistakes, grad_mistakes = net_expectations(scores, params, X, y, reg)
        half = half_convention(loss, grads, scores, params, X, y, reg, tol)
        if half is not None:  # the course's 0.5 * reg * sum(W * W), the same in the loss and every gradient
            want_loss, want_grads = half
            loss_mistakes, grad_mistakes = {}, {}
            ctx.note(
                f"{cls}'s regulariser is 0.5 * reg * sum(W * W), with gradients reg * W, in the loss and every "
                "gradient: accepted (this kit's convention is reg * sum(W * W), gradients 2 * reg * W)."
            )
        ctx.expect_loss(loss, want_loss.to(dtype), f"the loss {what}", bound=tol, mistakes=loss_mistakes)
        ctx.expect_type(grads, dict, f"grads {what}")
        if set(grads) != set(params):
            ctx.fail(f"grads {what}: expected one gradient per parameter, keys {list(params)}; found {sorted(grads)}.")
        top = max(g.abs().max().item() for g in want_grads.values())
        # e.g. the bias of a convolution followed by a batch normalisation: the normalisation removes it, so its
        # gradient is zero up to rounding, and only an absolute comparison means anything
        flat = [k for k in params if want_grads[k].abs().max().item() <= 1e-9 * top]
        for k in flat:
            ctx.expect_layout(grads[k], tuple(params[k].shape), dtype, f"grads['{k}'] {what}")
            ctx.expect(
                bool(grads[k].detach().abs().max().item() <= tol * top),
                f"grads['{k}'] {what}: expected zeros (up to rounding): the batch normalisation after the "
                f"layer removes any constant shift, so {k} has no effect on the loss; found values up to "
                f"{grads[k].detach().abs().max().item():.3g}.",
            )
        rest = [k for k in params if k not in flat]
        ctx.expect_dict(
            {k: grads[k] for k in rest},
            {k: want_grads[k].to(dtype) for k in rest},
            f"grads {what}",
            bound=tol,
            n=X.shape[0],
            mistakes={k: grad_mistakes.get(k, {}) for k in rest},
            hints={k: f"grads['{k}'] has the shape of params['{k}'], {fmt_shape(params[k].shape)}." for k in rest},
        )
    got = ctx.method(model, "loss", X)
    if isinstance(got, (tuple, list)):
        ctx.fail(f"{cls}.loss(X) without labels should return the scores alone, a tensor; found {describe_value(got)}.")
    q, Xc = cpu64(params), cpu64(X)
    want = (test_scores or scores)(q, Xc)
    ctx.expect_tensor(
        got,
        want.to(dtype),
        f"the scores of {cls}.loss(X) {what}",
        bound=tol,
        mistakes=test_mistakes(q, Xc) if test_mistakes else None,
        hint=f"scores is (N, num_classes) = {fmt_shape(want.shape)}.",
    )
