"""Judging A4's layers (shared by the check files; it defines no checks).

Every layer is a pair of functions, `outs..., cache = forward(*inputs)` and `backward(*douts, cache)`, one gradient
per differentiable input, in the order of the inputs. A `Layer` says how to judge one pair: its expected forward
(expected.py, float64; the gradients are its autograd), the cache the kit's given lines build (the layout its
docstring states), and the classic mistakes, each the value it gives, named only when the numbers prove it.

A backward pass is judged on its own, never by its forward's bug: when the student's forward gives wrong outputs on
the check's inputs, the backward receives the cache a right forward makes (built here, in the kit's layout) instead
of the one the student's forward made, and its feedback says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch

from grader.checks import CheckFailed
from grader.judging import cpu64, dtype_name, fmt_shape, rel_error, vjp

FWD, BWD = 1e-8, 1e-7  # float64 bounds (forward, backward)
LOW = 2e-4  # anything computed in float32


def bound(dtype: torch.dtype, b: float) -> float:
    return b if dtype == torch.float64 else LOW


@dataclass(frozen=True)
class Layer:
    """How to judge one forward/backward pair."""

    forward: str  # e.g. "rnn_step_forward"
    backward: str  # e.g. "rnn_step_backward"
    inputs: tuple[str, ...]  # forward's tensor arguments, e.g. ("x", "prev_h", "Wx", "Wh", "b")
    outputs: tuple[str, ...]  # forward's results before the cache, e.g. ("next_h",)
    wrt: tuple[str, ...]  # the inputs backward returns a gradient for, in order
    reference: Callable[..., tuple]  # (*float64 inputs) -> the expected outputs
    cache: Callable[..., Any]  # (*float64 inputs) -> the cache the kit's given lines build from a right forward
    # description -> fn(*float64 inputs): the outputs that mistake gives
    forward_mistakes: dict[str, Callable[..., tuple]] = field(default_factory=dict)
    # gradient ("dx") -> description -> fn(v): v holds the float64 inputs by name, the douts ("dnext_h", ...),
    # the right gradients ("dx", ...)
    backward_mistakes: dict[str, dict[str, Callable[[Any], torch.Tensor]]] = field(default_factory=dict)
    hints: dict[str, str] = field(default_factory=dict)  # output or gradient -> hint


def _float(t: torch.Tensor) -> bool:
    return t.is_floating_point()


def as64(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """The judge's copies: float64 on the CPU (indices stay int64, on the CPU)."""
    return [cpu64(t) if _float(t) else t.cpu() for t in inputs]


def to_check(value: Any, dtype: torch.dtype, device: torch.device) -> Any:
    """A structure of float64 tensors (tuples, lists) in the check's dtype on its device."""
    if isinstance(value, torch.Tensor):
        return value.to(device, dtype if _float(value) else value.dtype)
    if isinstance(value, (tuple, list)):
        return type(value)(to_check(v, dtype, device) for v in value)
    return value


def check_dtype(inputs: list[torch.Tensor]) -> torch.dtype:
    return next(t.dtype for t in inputs if _float(t))


def describe(tensors: dict[str, torch.Tensor], *extra: str) -> str:
    """`x (2, 3, 4), Wx (4, 5), float64`: what a check's inputs are, for its feedback."""
    dtype = check_dtype(list(tensors.values()))
    return ", ".join([*(f"{k} {fmt_shape(t.shape)}" for k, t in tensors.items()), *extra, dtype_name(dtype)])


def judge_forward(ctx, layer: Layer, inputs: list[torch.Tensor], what: str) -> None:
    """forward(*inputs): inputs unchanged, (outs..., cache), each out equal to the reference's."""
    reply = ctx.invoke(layer.forward, *inputs, return_args=True)
    ctx.expect_unchanged(list(inputs), reply, list(layer.inputs))
    n = len(layer.outputs)
    names = ", ".join((*layer.outputs, "cache"))
    got = ctx.expect_items(reply.value, n + 1, f"the result of {layer.forward} ({names})")
    args, dtype = as64(inputs), check_dtype(inputs)
    want = layer.reference(*args)
    known = {d: f(*args) for d, f in layer.forward_mistakes.items()}
    problems = []
    for i, name in enumerate(layer.outputs):
        try:
            ctx.expect_tensor(
                got[i],
                want[i].to(dtype),
                f"{name} ({what})",
                bound=bound(dtype, FWD),
                mistakes={d: v[i] for d, v in known.items()},
                hint=layer.hints.get(name, ""),
            )
        except CheckFailed as e:
            problems.append(str(e))
    if problems:
        ctx.fail("\n".join(problems))


def forward_is_right(got: tuple, want: tuple, dtype: torch.dtype) -> bool:
    return all(
        isinstance(g, torch.Tensor) and g.shape == w.shape and rel_error(g, w) <= bound(dtype, FWD)
        for g, w in zip(got, want, strict=True)
    )


def kit_cache(ctx, layer: Layer, inputs: list[torch.Tensor]) -> Any:
    """The cache a right forward makes from `inputs` (the kit's layout), in the check's dtype on its device."""
    return to_check(layer.cache(*as64(inputs)), check_dtype(inputs), ctx.device)


def judge_backward(ctx, layer: Layer, inputs: list[torch.Tensor], what: str, n: int | None = None) -> None:
    """backward(*douts, cache) after forward: douts unchanged, one gradient per input of `layer.wrt` (a lone tensor
    when there is one), each equal to the reference's autograd gradient. Where the student's forward gives wrong
    outputs here, the backward gets the cache a right forward makes instead of the student's."""
    dtype = check_dtype(inputs)
    n_out = len(layer.outputs)
    args = as64(inputs)
    want_outs = layer.reference(*args)
    douts = [ctx.randn(*o.shape, dtype=dtype) for o in want_outs]
    dnames = [f"d{o}" for o in layer.outputs]
    try:  # the student's forward: whatever goes wrong there (an error, a forbidden call) is its own checks' business
        got = ctx.expect_items(ctx.call(layer.forward, *inputs), n_out + 1, "forward's result")
        cache, own = got[-1], forward_is_right(got[:-1], want_outs, dtype)
    except CheckFailed:
        cache, own = None, False
    d64 = [cpu64(d) for d in douts]
    grads = expected_grads(layer, args, d64)
    gnames = [f"d{w}" for w in layer.wrt]
    v = SimpleNamespace(
        **dict(zip(layer.inputs, args)), **dict(zip(dnames, d64)), **dict(zip(gnames, grads)), inputs=args
    )

    def judge(given: Any) -> None:
        reply = ctx.invoke(layer.backward, *douts, given, return_args=True)
        ctx.expect_unchanged(douts, reply, dnames)
        expect_grads(
            ctx,
            reply.value,
            list(zip(gnames, grads)),
            f"{layer.backward} ({what})",
            dtype,
            bound(dtype, BWD),
            n=n,
            mistakes={g: {d: f(v) for d, f in table.items()} for g, table in layer.backward_mistakes.items()},
            hints=layer.hints,
        )

    if own:
        judge(cache)
        return
    fwd, bwd = layer.forward, layer.backward
    try:
        judge(kit_cache(ctx, layer, inputs))
    except CheckFailed as e:
        if cache is not None and agrees_with_own_forward(ctx, layer, inputs, d64):
            ctx.note(
                f"Your {fwd} gives wrong outputs on these inputs and {bwd} does not read the cache a right {fwd} "
                f"makes, so {bwd} was judged against the derivative of your own {fwd} (centred differences along "
                f"random directions, in float64), with your own cache; it matches. {fwd} loses points in its own "
                "checks only."
            )
            return
        own_too = (
            f"; with your own {fwd}'s cache it does not match the derivative of your own {fwd} either"
            if cache is not None
            else ""
        )
        raise CheckFailed(
            f"{e}\n(Your {fwd} gives wrong outputs on these inputs, so {bwd} was given the cache a right {fwd} "
            f"makes, in the layout its docstring states{own_too}: this problem is {bwd}'s own.)"
        ) from None
    ctx.note(
        f"Your {fwd} gives wrong outputs on these inputs, so {bwd} was judged with the cache a right {fwd} makes "
        f"(the layout its docstring states); with it, {bwd} is right. {fwd} loses points in its own checks only."
    )


def expected_grads(layer: Layer, args: list[torch.Tensor], douts: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The reference's gradients (autograd, float64) of sum(out * dout) over its outputs, for `layer.wrt`."""
    idx = [layer.inputs.index(w) for w in layer.wrt]

    def scalar(*ts):
        full = list(args)
        for i, t in zip(idx, ts, strict=True):
            full[i] = t
        return sum((o * d).sum() for o, d in zip(layer.reference(*full), douts, strict=True))

    return vjp(scalar, [args[i] for i in idx])


STEP, DIRECTIONS, AGREE = 1e-6, 2, 1e-5  # centred differences: step, directions per input, relative agreement


def agrees_with_own_forward(ctx, layer: Layer, inputs: list[torch.Tensor], douts: list[torch.Tensor]) -> bool:
    """Whether the student's backward, given the cache of the student's own forward (both called in float64), is
    the derivative of that forward: for each input of `layer.wrt`, along random directions u, <gradient, u> equals
    the centred difference of sum(out * dout). The judge owns the directions and the arithmetic; any failure in
    the student's code is a no."""
    x64 = [t.to(ctx.device, torch.float64) if _float(t) else t for t in inputs]
    d_dev = [d.to(ctx.device) for d in douts]
    n_out = len(layer.outputs)

    def objective(args: list[torch.Tensor]) -> float:
        outs = ctx.expect_items(ctx.call(layer.forward, *args), n_out + 1, "forward's result")[:n_out]
        if not all(isinstance(o, torch.Tensor) and o.shape == d.shape for o, d in zip(outs, douts, strict=True)):
            raise CheckFailed("forward's outputs")
        return sum(float((cpu64(o) * d).sum()) for o, d in zip(outs, douts, strict=True))

    try:
        cache = ctx.expect_items(ctx.call(layer.forward, *x64), n_out + 1, "forward's result")[-1]
        got = ctx.call(layer.backward, *d_dev, cache)
        got = (got,) if len(layer.wrt) == 1 else ctx.expect_items(got, len(layer.wrt), "backward's result")
        gen = torch.Generator().manual_seed(ctx.seed + 7919)
        for name, g in zip(layer.wrt, got, strict=True):
            k = layer.inputs.index(name)
            if not isinstance(g, torch.Tensor) or g.shape != x64[k].shape:
                return False
            for _ in range(DIRECTIONS):
                u = torch.randn(*x64[k].shape, generator=gen, dtype=torch.float64)
                moved = [[*x64[:k], x64[k] + e * u.to(ctx.device), *x64[k + 1 :]] for e in (STEP, -STEP)]
                numeric = (objective(moved[0]) - objective(moved[1])) / (2 * STEP)
                analytic = float((cpu64(g) * u).sum())
                if not abs(numeric - analytic) <= AGREE * max(abs(numeric) + abs(analytic), 1e-3):
                    return False
    except CheckFailed:
        return False
    return True


def expect_grads(
    ctx,
    got: Any,
    wants: list[tuple[str, torch.Tensor]],
    what: str,
    dtype: torch.dtype,
    tol: float,
    *,
    n: int | None = None,
    mistakes: dict[str, dict] | None = None,
    hints: dict[str, str] | None = None,
) -> None:
    """The result of a backward pass: one gradient per differentiable input, in order (a lone tensor when there is
    one), every problem of every gradient reported (grader.judging's expect_dict, keyed by the gradients' names)."""
    names = [w[0] for w in wants]
    got = (got,) if len(wants) == 1 else ctx.expect_items(got, len(wants), f"the result of {what} ({', '.join(names)})")
    try:
        ctx.expect_dict(
            dict(zip(names, got)),
            {name: want.to(dtype) for name, want in wants},
            "the gradients",
            bound=tol,
            n=n,
            mistakes=mistakes,
            hints=hints,
        )
    except CheckFailed as e:
        raise CheckFailed(f"{what}: {e}") from None
