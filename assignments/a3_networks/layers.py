"""Judging one of A3's layers (shared by checks_fc.py and checks_conv.py; it defines no checks).

Every layer follows one contract: `out, cache = Layer.forward(*tensors, *params)` leaves its inputs unchanged,
and `Layer.backward(dout, cache)` returns one gradient per tensor argument of forward, in that order. A `Layer`
says how to judge one: its expected forward (from expected.py, computed here in float64; the gradients are its
autograd) and a table of the classic mistakes, each the value that mistake gives, named in the feedback only
when the numbers prove it. A layer check is then a few lines:

    @check("a3.convolutional.conv_forward", function="Conv", N=2, ..., dtype=torch.float64)
    def conv_forward(ctx, N, ..., dtype):
        \"\"\"Conv.forward matches F.conv2d (stride and zero padding)\"\"\"
        judge_forward(ctx, CONV, conv_problem(ctx, ...), {"stride": stride, "pad": pad}, what=...)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch

from grader.checks import CheckFailed
from grader.judging import cpu64, dtype_name, fmt_shape, rel_error, vjp

FWD, BWD, NET = 1e-7, 1e-8, 1e-6  # float64 bounds: layers forward, layers backward, networks (the course's)
LOW = 1e-4  # anything computed in float32
FC_MODULE = "a3_networks.fully_connected_networks"
CONV_MODULE = "a3_networks.convolutional_networks"
GIVEN_MODULE = "a3_networks.layer_utils"  # the kit's given code: sandwich layers, softmax_loss, sgd


def bound(dtype: torch.dtype, b: float) -> float:
    return b if dtype == torch.float64 else LOW


@dataclass(frozen=True)
class Layer:
    """How to judge one of the student's layers."""

    name: str  # the class, e.g. "Conv"
    tensors: tuple[str, ...]  # forward's tensor arguments, in order, e.g. ("x", "w", "b")
    reference: Callable[..., torch.Tensor]  # forward's out from (*tensors, *params), float64 in, float64 out
    # description -> fn(*tensors, *params): the out that mistake gives
    forward_mistakes: dict[str, Callable[..., torch.Tensor]] = field(default_factory=dict)
    # gradient ("dx") -> description -> fn(v): the gradient that mistake gives; v holds the float64 inputs by name,
    # dout, the correct gradients by name ("dx", ...) and the params
    backward_mistakes: dict[str, dict[str, Callable[[Any], torch.Tensor]]] = field(default_factory=dict)
    grad_hints: dict[str, str] = field(default_factory=dict)  # gradient -> hint (may use {shape})
    # (v, got) -> the expected gradients, where the contract allows more than one answer (ReLU at exactly 0)
    accepted: Callable[[Any, tuple], dict[str, torch.Tensor]] | None = None


def judge_forward(
    ctx,
    layer: Layer,
    tensors: list[torch.Tensor],
    *params: Any,
    what: str,
    hint: str = "",
    mistakes: dict[str, torch.Tensor] | None = None,
) -> tuple[Any, Any]:
    """Layer.forward(*tensors, *params): inputs unchanged, (out, cache), out equal to the reference's. Returns
    (out, cache)."""
    reply = ctx.invoke(f"{layer.name}.forward", *tensors, *params, return_args=True)
    ctx.expect_unchanged(list(tensors), reply, list(layer.tensors))
    out, cache = ctx.expect_items(reply.value, 2, f"the result of {layer.name}.forward (out, cache)")
    args = [cpu64(t) for t in tensors]
    dtype = tensors[0].dtype
    known = {d: f(*args, *params) for d, f in layer.forward_mistakes.items()}
    ctx.expect_tensor(
        out,
        layer.reference(*args, *params).to(dtype),
        f"out ({what})",
        bound=bound(dtype, FWD),
        mistakes={**known, **(mistakes or {})},
        hint=hint,
    )
    return out, cache


def judge_backward(
    ctx,
    layer: Layer,
    tensors: list[torch.Tensor],
    *params: Any,
    what: str,
    method: str = "backward",
    n: int | None = None,
) -> None:
    """Layer.<method>(dout, cache) after forward: dout unchanged, one gradient per tensor argument of forward (in
    that order), each equal to the reference's autograd gradient."""
    _, cache = ctx.expect_items(
        ctx.call(f"{layer.name}.forward", *tensors, *params), 2, f"the result of {layer.name}.forward (out, cache)"
    )
    args = [cpu64(t) for t in tensors]
    dtype = tensors[0].dtype
    out = layer.reference(*args, *params)
    dout = ctx.randn(*out.shape, dtype=dtype)
    reply = ctx.invoke(f"{layer.name}.{method}", dout, cache, return_args=True)
    ctx.expect_unchanged([dout], reply, ["dout"])
    grads = vjp(lambda *ts: layer.reference(*ts, *params), args, cpu64(dout))
    names = [f"d{t}" for t in layer.tensors]
    v = SimpleNamespace(**dict(zip(layer.tensors, args)), **dict(zip(names, grads)), dout=cpu64(dout), params=params)
    wants = dict(zip(names, grads))
    if layer.accepted is not None:
        wants = layer.accepted(v, reply.value if len(names) > 1 else (reply.value,))
    shapes = dict(zip(names, (t.shape for t in tensors)))
    expect_grads(
        ctx,
        reply.value,
        list(wants.items()),
        f"{layer.name}.{method}, {what}",
        dtype,
        bound(dtype, BWD),
        n=n,
        mistakes={g: {d: f(v) for d, f in table.items()} for g, table in layer.backward_mistakes.items()},
        hints={g: h.format(shape=fmt_shape(shapes[g])) for g, h in layer.grad_hints.items()},
    )


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
):
    """The result of a backward pass: one gradient per tensor argument of forward, in that order (a lone tensor when
    there is one), each judged (every problem of every gradient reported). Names a result returned in the wrong
    order."""
    names = [w[0] for w in wants]
    got = (got,) if len(wants) == 1 else ctx.expect_items(got, len(wants), f"the result of {what} ({', '.join(names)})")
    for i, (name, want) in enumerate(wants):
        g = got[i]
        if isinstance(g, torch.Tensor) and (tuple(g.shape) != tuple(want.shape) or rel_error(g, want) > tol):
            for j, (other, w2) in enumerate(wants):
                if (
                    j != i
                    and tuple(g.shape) == tuple(w2.shape)
                    and (tuple(g.shape) != tuple(want.shape) or rel_error(g, w2) <= tol)
                ):
                    ctx.fail(
                        f"{what}: item {i} of the result is {other}, not {name}. Likely bug: the gradients are "
                        f"returned in the wrong order; return ({', '.join(names)}), one per tensor argument of "
                        "forward, in the order of those arguments.",
                        mistakes=["the gradients are returned in the wrong order"],
                    )
    problems = []
    for i, (name, want) in enumerate(wants):
        try:
            ctx.expect_tensor(
                got[i],
                want.to(dtype),
                f"{name} ({what})",
                bound=tol,
                n=n,
                mistakes=(mistakes or {}).get(name),
                hint=(hints or {}).get(name, ""),
            )
        except CheckFailed as e:
            problems.append(str(e))
    if problems:
        ctx.fail("\n".join(problems))


def side_randn(ctx, *shape: int, dtype: torch.dtype, offset: int = 1) -> torch.Tensor:
    """Normal values from a generator other than the check's (the sandbox's random numbers come from the check's seed:
    inputs drawn from the same stream would be correlated with, e.g., a dropout mask)."""
    gen = torch.Generator().manual_seed(ctx.seed * 7919 + offset)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(ctx.device, dtype)


GIVEN_FAST = (
    "FastConv",
    "FastMaxPool",
    "ConvVectorized",
    "Conv_ReLU",
    "Conv_ReLU_Pool",
    "Conv_BatchNorm_ReLU",
    "Conv_BatchNorm_ReLU_Pool",
)


def expect_naive(ctx, unit: str) -> None:
    """The naive layers compute every window themselves: they may not hand the work to the given fast layers
    (which call PyTorch's convolution and pooling in the kit's own file, where the run-time guard lets them)."""
    import ast

    node = ctx.definition(unit)
    if node is None:
        return
    for n in ast.walk(node):
        used = n.id if isinstance(n, ast.Name) else n.value if isinstance(n, ast.Constant) else None
        if isinstance(used, str) and used in GIVEN_FAST:
            ctx.fail(
                f"{unit} uses {used} (line {n.lineno}); {unit} is the naive layer: compute every window "
                f"yourself with loops, without the given fast layers (they call PyTorch's own convolution and "
                "pooling, which this layer may not use)."
            )


def describe(tensors: dict[str, torch.Tensor], *extra: str) -> str:
    """`x (2, 3, 8, 8), w (4, 3, 3, 3), stride 2, float64`: what a check's inputs are, for its feedback."""
    dtype = next(iter(tensors.values())).dtype
    return ", ".join([*(f"{k} {fmt_shape(t.shape)}" for k, t in tensors.items()), *extra, dtype_name(dtype)])
