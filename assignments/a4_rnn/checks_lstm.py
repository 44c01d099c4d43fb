"""Public checks for A4's LSTM (lstm_layers.py): one step and a whole sequence, forward and backward, against
expected.py's LSTM differentiated by autograd in float64. Hidden variants live in hidden.py."""

from __future__ import annotations

import torch

from grader.checks import check
from grader.judging import vjp

from . import expected as E
from .layers import Layer, describe, judge_backward, judge_forward

f64 = torch.float64


def step_cache(x, prev_h, prev_c, Wx, Wh, b):
    i, f, o, g = E.gates(x @ Wx + prev_h @ Wh + b, prev_h.shape[1])
    return (x, prev_h, prev_c, Wx, Wh, b, i, f, o, g, f * prev_c + i * g)


def sequence_cache(x, h0, Wx, Wh, b):
    h, c, caches = h0, torch.zeros_like(h0), []
    for t in range(x.shape[1]):
        caches.append(step_cache(x[:, t], h, c, Wx, Wh, b))
        h, c = E.lstm_step(x[:, t], h, c, Wx, Wh, b)
    return caches


def order_mistake(order: tuple[str, ...]) -> str:
    return (
        f"the gates are read in the order {', '.join(order)}; the order is i, f, o, g "
        "(input, forget, output, block input)"
    )


ORDERS = [("i", "f", "g", "o"), ("f", "i", "o", "g"), ("i", "o", "f", "g"), ("g", "i", "f", "o")]

LSTM_STEP = Layer(
    "lstm_step_forward",
    "lstm_step_backward",
    ("x", "prev_h", "prev_c", "Wx", "Wh", "b"),
    ("next_h", "next_c"),
    ("x", "prev_h", "prev_c", "Wx", "Wh", "b"),
    reference=E.lstm_step,
    cache=step_cache,
    forward_mistakes={
        **{order_mistake(o): lambda *a, o=o: E.lstm_step(*a, order=o) for o in ORDERS},
        "next_h is o * next_c: it is o * tanh(next_c)": lambda *a: (
            E.lstm_step(*a)[1] * E.gates(a[0] @ a[3] + a[1] @ a[4] + a[5], a[1].shape[1])[2],
            E.lstm_step(*a)[1],
        ),
    },
    backward_mistakes={
        g: {
            "dnext_c is not added: next_c gets dnext_c plus what comes through next_h": lambda v, g=g: dict(
                zip(
                    ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"),
                    vjp(lambda *ts: (E.lstm_step(*ts)[0] * v.dnext_h).sum(), v.inputs),
                )
            )[g]
        }
        for g in ("dx", "dprev_c", "dWx", "db")
    },
    hints={"next_h": "next_h is (N, H): o * tanh(next_c).", "next_c": "next_c is (N, H): f * prev_c + i * g."},
)


def seq_forward(x, h0, Wx, Wh, b):
    return E.lstm(x, h0, Wx, Wh, b)


LSTM = Layer(
    "lstm_forward",
    "lstm_backward",
    ("x", "h0", "Wx", "Wh", "b"),
    ("h",),
    ("x", "h0", "Wx", "Wh", "b"),
    reference=seq_forward,
    cache=sequence_cache,
    forward_mistakes={
        "c0 is h0; the initial cell state is zero": lambda x, h0, Wx, Wh, b: E.lstm(x, h0, Wx, Wh, b, c0=h0)
    },
    backward_mistakes={
        g: {
            "the gradients a step sends back (of h and of c) are not added to the previous step's": lambda v, g=g: dict(
                zip(
                    ("dx", "dh0", "dWx", "dWh", "db"),
                    vjp(lambda *ts: (E.lstm(*ts, detach_carry=True)[0] * v.dh).sum(), v.inputs),
                )
            )[g]
        }
        for g in ("dx", "dWx", "dWh", "db")
    },
    hints={"h": "h is (N, T, H): h[:, t] is the hidden state after step t."},
)


def lstm_problem(ctx, N, T, D, H, dtype, seq: bool):
    x = ctx.randn(N, T, D, dtype=dtype) if seq else ctx.randn(N, D, dtype=dtype)
    out = [x, ctx.randn(N, H, dtype=dtype, scale=0.5)]
    if not seq:
        out.append(ctx.randn(N, H, dtype=dtype, scale=0.5))
    return [
        *out,
        ctx.randn(D, 4 * H, dtype=dtype, scale=0.4),
        ctx.randn(H, 4 * H, dtype=dtype, scale=0.4),
        ctx.randn(4 * H, dtype=dtype, scale=0.3),
    ]


@check("a4.lstm.lstm_step_forward", function="lstm_step_forward", N=3, D=4, H=5, dtype=f64)
def lstm_step_forward(ctx, N, D, H, dtype):
    """lstm_step_forward: next_h and next_c, gates in the order i, f, o, g"""
    args = lstm_problem(ctx, N, 1, D, H, dtype, seq=False)
    judge_forward(ctx, LSTM_STEP, args, describe({"x": args[0], "prev_h": args[1]}))


@check("a4.lstm.lstm_step_backward", function="lstm_step_backward", N=4, D=5, H=6, dtype=f64)
def lstm_step_backward(ctx, N, D, H, dtype):
    """lstm_step_backward: dx, dprev_h, dprev_c, dWx, dWh, db match autograd"""
    args = lstm_problem(ctx, N, 1, D, H, dtype, seq=False)
    judge_backward(ctx, LSTM_STEP, args, describe({"x": args[0], "prev_h": args[1]}))


@check("a4.lstm.lstm_forward", function="lstm_forward", N=2, T=3, D=4, H=5, dtype=f64)
def lstm_forward(ctx, N, T, D, H, dtype):
    """lstm_forward: the hidden state of every time step (c0 = 0)"""
    args = lstm_problem(ctx, N, T, D, H, dtype, seq=True)
    judge_forward(ctx, LSTM, args, describe({"x": args[0], "h0": args[1]}))


@check("a4.lstm.lstm_backward", function="lstm_backward", N=2, T=5, D=4, H=3, dtype=f64)
def lstm_backward(ctx, N, T, D, H, dtype):
    """lstm_backward: dx, dh0, dWx, dWh, db match autograd through every time step"""
    args = lstm_problem(ctx, N, T, D, H, dtype, seq=True)
    judge_backward(ctx, LSTM, args, describe({"x": args[0], "h0": args[1]}))
